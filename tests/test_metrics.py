"""Tests for the run metrics: transient end, fitted decay rate and observed phase."""

import itertools
import math

import numpy as np
import pytest

from gdasweep.kernels import phases
from gdasweep.kernels.metrics import transient_end
from gdasweep.sweeps import compute
from gdasweep.sweeps.spec import Kernel, Model

# Level below which the curvature transient |1 - eta_d lam|^k counts as decayed.
TRANSIENT_LEVEL = 1e-3


def two_point_model(generated_weight, steps, record_every):
    """Return the model with the true point 0 (weight 1) and one generated point at 0.1 in one dimension."""
    return Model(
        true_points=np.array([[0.0]]),
        true_weights=np.array([1.0]),
        generated_points=np.array([[0.1]]),
        generated_weights=np.array([generated_weight]),
        kernel=Kernel.GAUSSIAN,
        steps=steps,
        record_every=record_every,
        history_tolerance=0.0,
        save_positions=True,
    )


# transient_end


@pytest.mark.parametrize(
    ("a", "expected"),
    [(0.5, 10), (-0.5, 10), (0.9, 66), (0.0, 1), (1e-4, 1), (1.0, -1), (-1.0, -1), (1.5, -1), (-3.2, -1)],
)
def test_transient_end_known_values(a, expected):
    assert transient_end(a) == expected


def test_transient_end_is_first_step_below_level():
    rng = np.random.default_rng(30)
    magnitudes = np.concatenate([rng.uniform(0.01, 0.999, size=200), [0.7, 0.97, 0.997, 0.9997]])

    for magnitude in magnitudes:
        for a in (magnitude, -magnitude):
            k = transient_end(a)
            assert magnitude**k < TRANSIENT_LEVEL, f"a={a}: |a|^{k} = {magnitude**k}"
            # One step earlier is not below the level, up to rounding of the logarithms in transient_end.
            assert magnitude ** (k - 1) >= TRANSIENT_LEVEL * (1.0 - 1e-12), f"a={a}: |a|^{k - 1} = {magnitude ** (k - 1)}"


# Acceptance: fitted decay rate against the theory's spectral radius.

GRID_STEPS = 2000
GRID_GENERATED_WEIGHTS = (1.0, 0.8, 0.5)
GRID_ETA_D = (0.3, 0.1, 0.03)
GRID_ETA_G = (0.3, 0.1, 0.03, 0.01)
GRID_LAM = (1.0, 0.3, 0.1, 0.03)
GRID_SIGMA = (0.3, 1.0, 3.0)
# Steps after the transient during which e_k must stay above FIT_FLOOR * e_0.
FIT_STEPS = 200
FIT_FLOOR = 1e-8
RATE_TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def acceptance_runs():
    """Return one dict per grid configuration with its parameters, recorded errors, fitted rate and theory."""
    runs = []
    for weight in GRID_GENERATED_WEIGHTS:
        combinations = list(itertools.product(GRID_ETA_D, GRID_ETA_G, GRID_LAM, GRID_SIGMA))
        eta_d, eta_g, lam, sigma = (np.array(column) for column in zip(*combinations))
        model = two_point_model(weight, steps=GRID_STEPS, record_every=1)

        simulated = compute.simulate(model, eta_d, eta_g, lam, sigma, parallel=True)
        theory = compute.predict([1.0], [weight], eta_d, eta_g, lam, sigma)

        for index, parameters in enumerate(combinations):
            runs.append({
                "q": weight,
                "parameters": parameters,
                "errors": simulated["error"][index],
                "decay_rate": simulated["decay_rate"][index],
                "rho_generator": theory["rho_generator"][index],
                "predicted_phase": theory["predicted_phase"][index],
            })
    return runs


def is_fit_ready(run):
    """Return whether the theory predicts convergence and the errors allow a fit after the transient.

    The transient ends at k0 with |1 - eta_d lam|^k0 < 1e-3, and e_k must stay
    above 1e-8 e_0 for the 200 steps from k0 on.
    """
    if run["predicted_phase"] not in (phases.CONVERGES_MONOTONE, phases.CONVERGES_OSCILLATING):
        return False
    eta_d, _, lam, _ = run["parameters"]
    start = transient_end(1.0 - eta_d * lam)
    if start < 0 or start + FIT_STEPS > GRID_STEPS:
        return False
    errors = run["errors"]
    window = errors[start: start + FIT_STEPS + 1]
    return bool(np.all(window > FIT_FLOOR * errors[0]))


def test_decay_rate_matches_theory_after_transient(acceptance_runs):
    selected = [run for run in acceptance_runs if is_fit_ready(run)]

    failures = []
    for run in selected:
        difference = abs(run["decay_rate"] - run["rho_generator"])
        # NaN fails too, because the comparison is False.
        if not difference <= RATE_TOLERANCE:
            eta_d, eta_g, lam, sigma = run["parameters"]
            failures.append(
                f"q={run['q']} eta_d={eta_d} eta_g={eta_g} lam={lam} sigma={sigma}: "
                f"decay_rate {run['decay_rate']:.6f}, rho_generator {run['rho_generator']:.6f}"
            )

    assert len(selected) >= 100, f"only {len(selected)} configurations are ready for a fit"
    assert not failures, f"{len(failures)} of {len(selected)} rates off by more than 1e-3:\n" + "\n".join(failures)


# Observed phases.

# (eta_d, eta_g, lam, sigma) with q = 1, in the order of the batch below.
MONOTONE = (0.3, 0.3, 1.0, 3.0)
OSCILLATING = (0.3, 0.3, 1.0, 0.3)
DIVERGING = (1.0, 0.1, 4.2, 0.3)
# A row of the two-point reference data whose generated point ends at -95.
ESCAPING = (0.1, 0.1, 0.01, 0.1)
ESCAPED_POSITION = -95.00156024080974


@pytest.fixture(scope="module")
def phase_runs():
    """Return the simulation and theory outputs of the four example runs, in the order above."""
    eta_d, eta_g, lam, sigma = zip(MONOTONE, OSCILLATING, DIVERGING, ESCAPING)
    model = two_point_model(1.0, steps=1000, record_every=10)
    return compute.simulate(model, eta_d, eta_g, lam, sigma), compute.predict([1.0], [1.0], eta_d, eta_g, lam, sigma)


def test_monotone_run_is_converged(phase_runs):
    simulated, theory = phase_runs

    assert theory["predicted_phase"][0] == phases.CONVERGES_MONOTONE
    assert simulated["observed_phase"][0] == phases.CONVERGED
    assert simulated["final_error"][0] < 1e-6 * simulated["error"][0, 0]


def test_oscillating_run_is_oscillating(phase_runs):
    simulated, theory = phase_runs
    rotation = math.atan2(theory["dominant_imag"][1], theory["dominant_real"][1])

    assert theory["predicted_phase"][1] == phases.CONVERGES_OSCILLATING
    # Over one radian per step, so the displacement reverses within a few steps.
    assert rotation > 1.0
    assert simulated["observed_phase"][1] == phases.OSCILLATING
    assert simulated["sign_changes"][1] > 0


def test_large_eta_d_lam_run_is_diverged(phase_runs):
    simulated, theory = phase_runs
    eta_d, _, lam, _ = DIVERGING

    assert eta_d * lam > 2.0
    assert theory["rho_total"][2] > 1.0
    assert simulated["observed_phase"][2] == phases.DIVERGED
    assert simulated["blowup_step"][2] > 0
    assert math.isnan(simulated["final_error"][2])
    assert np.all(np.isnan(simulated["final_position"][2]))


def test_two_point_escaping_run_is_escaped(phase_runs):
    simulated, _ = phase_runs
    position = simulated["final_position"][3, 0, 0]

    assert abs(position - ESCAPED_POSITION) <= 1e-9 * abs(ESCAPED_POSITION)
    assert simulated["blowup_step"][3] == -1
    assert simulated["observed_phase"][3] not in (phases.CONVERGED, phases.OSCILLATING)
    assert simulated["observed_phase"][3] == phases.ESCAPED
