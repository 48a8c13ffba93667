"""Tests for the expansion method of the history sum against the direct sum."""

import csv
import dataclasses
import itertools
import math
import pathlib

import numpy as np
import pytest

from gdasweep.kernels import expansion, phases
from gdasweep.sweeps import compute
from gdasweep.sweeps import expansion as planner
from gdasweep.sweeps.spec import Kernel, Model, StudyError, parse_study

DATA = pathlib.Path(__file__).parent / "data"

# Trajectories of the two methods agree to this fraction of e_0, absolute.
TOLERANCE = 1e-10
# Two twins of the direct run change it about as much as a second float64
# implementation would. One moves every point by TWIN_OFFSET, which changes
# only the rounding of every coordinate difference. The chaos check adds
# TWIN_NOISE relative noise at every step, and skips runs that blew up. A
# configuration whose twins move by more than TOLERANCE * e_0 cannot be
# reproduced to that level by any implementation, so it is left out. One
# twin samples the rounding differences once, so the threshold is a tenth of
# the tolerance: the expansion differed from the direct sum by up to 1.7
# times as much as the moved twin did.
TWIN_OFFSET = 0.3
TWIN_NOISE = 1e-15


def make_model(true_points, generated_points, generated_weights, steps, true_weights=None, **settings):
    true_points = np.ascontiguousarray(true_points, dtype=np.float64)
    if true_weights is None:
        true_weights = np.ones(true_points.shape[0])
    return Model(
        true_points=true_points,
        true_weights=np.ascontiguousarray(true_weights, dtype=np.float64),
        generated_points=np.ascontiguousarray(generated_points, dtype=np.float64),
        generated_weights=np.ascontiguousarray(generated_weights, dtype=np.float64),
        kernel=Kernel.GAUSSIAN,
        steps=steps,
        record_every=1,
        history_tolerance=0.0,
        save_positions=True,
        **settings,
    )


def grid(*axes):
    """Return the parameter arrays of the Cartesian product of ``axes``."""
    return np.array(list(itertools.product(*axes))).T


def run_both(model, parameters):
    """Simulate with the direct sum and with the expansion.

    The direct results also contain ``sensitivity``: the largest distance
    between their trajectory and that of the twin moved by ``TWIN_OFFSET``,
    or the final distance to the noisy twin if that is larger.
    """
    noisy = dataclasses.replace(model, method="direct", chaos_check=True, chaos_noise=TWIN_NOISE)
    direct = compute.simulate(noisy, *parameters, seed=7)
    moved = dataclasses.replace(
        model,
        method="direct",
        true_points=model.true_points + TWIN_OFFSET,
        generated_points=model.generated_points + TWIN_OFFSET,
    )
    twin = compute.simulate(moved, *parameters)
    largest = np.nanmax(direct["error"], axis=1)
    separation = np.nan_to_num(direct["chaos_separation"] * largest, nan=0.0, posinf=np.inf)
    direct["sensitivity"] = np.maximum(trajectory_gap(direct, twin, 1.0), separation)
    expanded = compute.simulate(dataclasses.replace(model, method="expansion"), *parameters)
    return direct, expanded


def trajectory_gap(first, second, e_0):
    """Return each configuration's largest |e_k(first) - e_k(second)| / e_0 before either run blew up.

    The error of a blow-up step is only known to exceed the bound: one large
    kick decides it, so the comparison stops before it.
    """
    steps = np.arange(first["error"].shape[1])
    ends = []
    for run in (first, second):
        end = np.where(run["blowup_step"] >= 0, run["blowup_step"], steps.shape[0]).astype(np.int64)
        ends.append(end)
    before = steps[None, :] < np.minimum(*ends)[:, None]
    gap = np.where(before, np.abs(first["error"] - second["error"]), 0.0)
    return gap.max(axis=1) / e_0


def get_sensitive(direct, e_0):
    """Return where the direct run's twins moved by more than TOLERANCE * e_0 / 10."""
    return ~(direct["sensitivity"] <= 0.1 * TOLERANCE * e_0)


def assert_methods_agree(direct, expanded, e_0, max_sensitive_share):
    sensitive = get_sensitive(direct, e_0)
    assert sensitive.mean() <= max_sensitive_share
    gap = trajectory_gap(direct, expanded, e_0)
    worst = int(np.argmax(np.where(sensitive, 0.0, gap)))
    assert gap[~sensitive].max() <= TOLERANCE, f"configuration {worst}: gap {gap[worst]:.3g} e_0"
    np.testing.assert_array_equal(direct["blowup_step"][~sensitive], expanded["blowup_step"][~sensitive])
    assert np.all(expanded["method"] == 1)
    assert np.all(direct["method"] == 0)
    assert np.all(direct["switch_step"] == -1)


def test_two_point_trajectories_match_direct():
    with open(DATA / "two_point_exact.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    parameters = np.array([[float(row[name]) for name in ("eta_d", "eta_g", "lam", "sigma")] for row in rows]).T
    model = make_model([[0.0]], [[0.1]], [1.0], steps=1000)
    direct, expanded = run_both(model, parameters)

    assert_methods_agree(direct, expanded, 0.1, max_sensitive_share=0.15)
    assert trajectory_gap(direct, expanded, 0.1).max() <= TOLERANCE  # the chaotic rows agree as well
    reproducible = np.array([row["reproducible_1e-9_rel"] == "True" for row in rows])
    final = np.array([float(row["final_x_signed"]) for row in rows])
    np.testing.assert_allclose(expanded["final_position"][reproducible, 0, 0], final[reproducible], rtol=1e-9)


def test_two_point_escapes_switch_to_direct_sum():
    # A point that escapes to 950 sigma outruns any fixed set of centres.
    model = make_model([[0.0]], [[0.1]], [1.0], steps=1000)
    expanded = compute.simulate(dataclasses.replace(model, method="expansion"), 0.1, 0.1, 0.01, 0.1)
    assert expanded["switch_step"][0] > 0
    assert abs(expanded["final_position"][0, 0, 0]) > 900 * 0.1


CASES = {
    "d1_mismatch": ([[0.0]], [[0.1]], [0.8], None, 400),
    "d1_matched": ([[0.0]], [[-0.07]], [1.0], None, 400),
    "d2_two_points": ([[0.0, 0.0]], [[0.1, 0.05], [-0.05, 0.1]], [0.5, 0.4], None, 250),
    "d2_two_clusters": ([[0.0, 0.0], [0.0, 0.5]], [[0.1, 0.0], [0.05, 0.45]], [0.5, 0.5], [0.5, 0.5], 250),
    "d3_two_clusters": (
        [[0.0, 0.0, 0.0], [0.6, 0.0, 0.0]], [[0.08, 0.0, 0.05], [0.55, 0.07, 0.0]], [0.5, 0.4], [0.5, 0.5], 200,
    ),
}
# eta_d lam stays <= 1. Beyond 2 the discriminator's history weights grow as
# |1 - eta_d lam|^k with alternating signs, and the rounding of their
# cancellation decides the trajectory in either method.
AXES = ([1.0, 0.3, 0.1, 0.03], [1.0, 0.3, 0.1, 0.01], [1.0, 0.1, 0.01, 0.0], [0.05, 0.1, 0.3, 1.0, 3.0])


@pytest.mark.parametrize("name", CASES)
def test_grid_trajectories_match_direct(name):
    true_points, generated, weights, true_weights, steps = CASES[name]
    model = make_model(true_points, generated, weights, steps, true_weights=true_weights)
    parameters = grid(*AXES)
    direct, expanded = run_both(model, parameters)

    e_0 = direct["error"][0, 0]
    assert_methods_agree(direct, expanded, e_0, max_sensitive_share=0.45)
    compared = ~get_sensitive(direct, e_0)
    assert (direct["observed_phase"][compared] == phases.ESCAPED).any()
    assert (expanded["switch_step"] >= 0).any()


def test_divergent_runs_match_up_to_blowup():
    model = make_model([[0.0]], [[0.1]], [1.0], steps=300)
    direct, expanded = run_both(model, grid([0.1, 0.01], [1e5, 1e6, 1e7], [1.0, 0.1], [0.1, 1.0]))
    assert_methods_agree(direct, expanded, 0.1, max_sensitive_share=0.9)
    compared = ~get_sensitive(direct, 0.1)
    assert (direct["observed_phase"][compared] == phases.DIVERGED).sum() >= 3


def test_grids_cover_a_thousand_configurations():
    assert len(CASES) * np.prod([len(axis) for axis in AXES]) >= 1000


def test_chaos_twin_uses_the_expansion():
    model = make_model([[0.0]], [[0.1]], [1.0], steps=1000, chaos_check=True, method="expansion")
    # The first configuration is chaotic in the two-point reference table.
    out = compute.simulate(model, [1.0, 0.01], [0.1, 0.01], [0.01, 0.1], [0.1, 1.0])
    assert out["observed_phase"][0] == phases.CHAOTIC
    assert out["chaos_separation"][1] < 1e-9


def test_power_table_has_no_subnormal_entries():
    order = 31
    exponents, _, _ = expansion.build_terms(1, order)
    factors, smallest = expansion.build_power_factors(order)
    powers = np.zeros((1, order))
    terms = np.zeros((1, order + 1))
    for x in [1e-300, 1e-60, 1e-20, 1e-5, smallest, 0.5, -3.0, 9.5]:
        expansion.fill_terms(np.array([x]), exponents, factors, smallest, powers, terms, 0)
        nonzero = np.abs(terms[0][terms[0] != 0.0])
        assert nonzero.min() >= expansion.NEGLIGIBLE_POWER
        expected = np.array([x**n / math.sqrt(math.factorial(n)) for n in range(order)])
        kept = terms[0, :order] != 0.0
        np.testing.assert_allclose(terms[0, :order][kept], expected[kept], rtol=1e-13)
        assert np.all(np.abs(expected[~kept]) < expansion.NEGLIGIBLE_POWER)


def test_decay_flushes_coefficients_before_subnormal():
    coefficients = np.array([[1.0, 1e-60, 1e-200, 0.0], [1e-120, 1e-130, 0.0, 0.0]])
    centre_mass = np.array([1.0, 1e-120])
    n_centres = np.array([2])
    floor = expansion.NEGLIGIBLE_COEFFICIENT
    scale = expansion._decay(1e-120, floor, centre_mass, n_centres, coefficients, 3)
    assert scale == 1.0
    np.testing.assert_array_equal(coefficients[0], [1e-120, 0.0, 0.0, 0.0])
    assert centre_mass[1] == 0.0  # the second centre's mass fell below the floor, so it is free
    assert np.all(coefficients[1] == 0.0)
    nonzero = np.abs(coefficients[coefficients != 0.0])
    assert nonzero.min() >= floor

    kept = np.array([[2.0, 3.0, 0.0, 0.0]])
    assert expansion._decay(0.5, floor, np.array([1.0]), np.array([1]), kept, 3) == 0.5
    np.testing.assert_array_equal(kept, [[2.0, 3.0, 0.0, 0.0]])


@pytest.mark.parametrize("dim, order", [(1, 7), (2, 5), (3, 4)])
def test_build_terms_orders_multi_indices(dim, order):
    exponents, raised, factor = expansion.build_terms(dim, order)
    assert exponents.shape == (math.comb(order - 1 + dim, dim), dim)
    assert len({tuple(row) for row in exponents}) == exponents.shape[0]
    assert np.all(np.diff(exponents.sum(axis=1)) >= 0)
    for t, alpha in enumerate(exponents):
        for axis in range(dim):
            up = alpha.copy()
            up[axis] += 1
            if up.sum() < order:
                np.testing.assert_array_equal(exponents[raised[axis, t]], up)
            else:
                assert raised[axis, t] == exponents.shape[0]
            assert factor[axis, t] == math.sqrt(alpha[axis] + 1)


@pytest.mark.parametrize("radius", [0.1, 0.5, 1.0])
def test_truncation_order_meets_bound_on_random_pairs(radius):
    tolerance = 1e-16
    order = planner.truncation_order(radius, tolerance)
    reach = planner.get_reach(tolerance)
    rng = np.random.default_rng(3)
    exponents, _, _ = expansion.build_terms(1, order)
    worst = 0.0
    for _ in range(300):
        v = rng.uniform(-radius, radius)
        u = rng.uniform(-(radius + reach), radius + reach)
        exact = (u - v) * math.exp(-0.5 * (u - v) ** 2)
        n = np.arange(order)
        series = np.array([(u * v) ** k / math.factorial(k) for k in n])
        raised = np.array([(u * v) ** (k - 1) / math.factorial(k - 1) if k else 0.0 for k in n])
        approx = math.exp(-0.5 * (u * u + v * v)) * (u * series.sum() - v * raised.sum())
        worst = max(worst, abs(approx - exact))
    assert worst <= tolerance + 1e-15  # float64 rounding of the sums themselves


def test_auto_method_choice():
    two_point = make_model([[0.0]], [[0.1]], [1.0], steps=1000)
    order, radius = planner.plan_methods(two_point, np.array([0.1, 1.0, 10.0]))
    assert np.all(order > 0)
    assert np.all(radius <= planner.MAX_RADIUS[1])

    ten_dims = make_model([[0.0] * 10], [[0.1] + [0.0] * 9], [1.0], steps=1000)
    assert np.all(planner.plan_methods(ten_dims, np.array([1.0]))[0] == 0)

    tolerant = dataclasses.replace(two_point, history_tolerance=1e-8)
    assert np.all(planner.plan_methods(tolerant, np.array([1.0]))[0] == 0)

    short = dataclasses.replace(two_point, steps=5)
    assert np.all(planner.plan_methods(short, np.array([1.0]))[0] == 0)


STUDY = """
seed = 0
[model]
steps = 10
true_points = {points}
generated_points = {points}
{extra}
[grid]
eta_d = [0.1]
eta_g = [0.1]
lam = [1.0]
sigma = [1.0]
[output]
store = "unused.zarr"
"""


@pytest.mark.parametrize(
    "points, extra, message",
    [
        ("[[0.0]]", 'method = "fast"', 'model.method: invalid value "fast": must be one of: auto, direct, expansion'),
        ("[[0.0, 0.0, 0.0, 0.0]]", 'method = "expansion"', "dimension <= 3"),
        ("[[0.0]]", 'method = "expansion"\nhistory_tolerance = 1e-8', "model.history_tolerance must be 0"),
        ("[[0.0]]", "expansion_tolerance = 0.1", "model.expansion_tolerance: invalid value 0.1"),
        ("[[0.0]]", "expansion_tolerance = 1e-30", "must be >= 1e-20"),
    ],
)
def test_study_rejects_invalid_method_settings(points, extra, message):
    with pytest.raises(StudyError, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_study(STUDY.format(points=points, extra=extra))


def test_study_defaults_to_auto():
    study = parse_study(STUDY.format(points="[[0.0]]", extra=""))
    assert study.model.method == "auto"
    assert study.model.expansion_tolerance == 1e-16
