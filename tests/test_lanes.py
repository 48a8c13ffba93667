"""Tests for stepping one-point expansion runs together as lanes."""

import dataclasses
import itertools

import numpy as np

from gdasweep.kernels import gda, lanes, phases
from gdasweep.sweeps import compute
from gdasweep.sweeps.spec import Kernel, Model


def one_point_model(steps=400, **settings):
    defaults = dict(
        kernel=Kernel.GAUSSIAN,
        steps=steps,
        record_every=10,
        history_tolerance=0.0,
        save_positions=True,
        # Away from 0, where the lanes' arrays start.
        true_points=np.array([[0.5]]),
        true_weights=np.array([1.0]),
        generated_points=np.array([[0.6]]),
        generated_weights=np.array([1.0]),
        method="expansion",
    )
    defaults.update(settings)
    return Model(**defaults)


def mixed_grid():
    """Return parameters whose runs converge, oscillate, escape, leave their centre and blow up."""
    rows = list(itertools.product([1.0, 0.1, 0.01], [0.1, 0.01, 1e5], [1.0, 0.1, 0.0], [0.05, 0.3, 1.0, 10.0]))
    return [np.array(column, dtype=np.float64) for column in zip(*rows)]


def test_lane_groups_select_one_point_runs():
    order = np.array([13, 0, 31, 13, 22], dtype=np.int64)
    members, bounds = gda.lane_groups(np.zeros((1, 1)), order)
    assert members.tolist() == [0, 3, 4, 2]
    assert bounds.tolist() == [0, 4]
    members, bounds = gda.lane_groups(np.zeros((2, 1)), order)
    assert members.size == 0
    assert bounds.tolist() == [0]
    members, bounds = gda.lane_groups(np.zeros((1, 2)), order)
    assert members.size == 0

    many = np.full(lanes.LANES + 5, 13, dtype=np.int64)
    _, bounds = gda.lane_groups(np.zeros((1, 1)), many)
    assert bounds.tolist() == [0, lanes.LANES, lanes.LANES + 5]


def test_lane_results_independent_of_grouping():
    model = one_point_model(chaos_check=True)
    parameters = mixed_grid()
    n = parameters[0].size
    whole = compute.simulate(model, *parameters, seed=5)

    # Every outcome of a lane occurs, and runs that left their centre were run again.
    assert (whole["observed_phase"] == phases.CONVERGED).any()
    assert (whole["observed_phase"] == phases.DIVERGED).any()
    assert (whole["switch_step"] >= 0).any()
    assert (whole["method"] == gda.EXPANSION).all()

    reverse = np.arange(n)[::-1]
    reversed_ = compute.simulate(model, *(p[reverse] for p in parameters), seed=5, config_index=reverse)
    chunks = [np.arange(start, min(start + 7, n)) for start in range(0, n, 7)]
    pieces = [compute.simulate(model, *(p[chunk] for p in parameters), seed=5, config_index=chunk) for chunk in chunks]
    parallel = compute.simulate(model, *parameters, seed=5, parallel=True)
    for name in compute.SIMULATION_OUTPUTS:
        expected = whole[name].tobytes()
        assert reversed_[name][reverse].tobytes() == expected, name
        assert np.concatenate([piece[name] for piece in pieces]).tobytes() == expected, name
        assert parallel[name].tobytes() == expected, name


def run_general_loop(model, parameters, c, order, radius, noise):
    """Return the errors and switch step of configuration ``c`` run by the general expansion loop."""
    history = np.empty((model.steps + 1, 1, 1))
    history[0] = model.generated_points
    errors = np.empty(model.steps + 1)
    switch = np.full(1, -1, dtype=np.int64)
    gda.run_gda_perturbed(
        model.true_points, model.true_weights, model.generated_weights, *(p[c] for p in parameters),
        0.0, compute.DIVERGENCE_FACTOR, compute.nearest_true_points(model.true_points, model.generated_points),
        history, errors, np.empty(model.steps + 1, dtype=np.int32), np.empty((1, 1)), noise, np.uint64(3),
        order[c], radius[c], compute.get_reach(model.expansion_tolerance), switch,
    )
    return errors, switch[0]


def test_lanes_match_the_general_loop():
    model = one_point_model(steps=300)
    parameters = mixed_grid()
    out = compute.simulate(model, *parameters)
    order, radius = compute.plan_methods(model, parameters[3])
    compared = 0
    for c in range(parameters[0].size):
        if out["switch_step"][c] >= 0 or out["blowup_step"][c] >= 0:
            continue
        errors, switch = run_general_loop(model, parameters, c, order, radius, 0.0)
        if switch >= 0:
            continue
        # The lanes round differently from the general loop (another
        # exponential), so runs that amplify a relative change of 1e-15
        # per step beyond 1e-13 e_0 are not compared.
        twin_errors, _ = run_general_loop(model, parameters, c, order, radius, 1e-15)
        if not np.abs(twin_errors - errors).max() <= 1e-13 * errors[0]:
            continue
        gap = np.abs(errors[:: model.record_every] - out["error"][c]).max()
        assert gap <= 1e-12 * errors[0], (c, gap)
        compared += 1
    assert compared >= 40


def test_direct_runs_do_not_use_lanes():
    model = dataclasses.replace(one_point_model(), method="direct")
    out = compute.simulate(model, *[p[:12] for p in mixed_grid()])
    assert (out["method"] == gda.DIRECT).all()
