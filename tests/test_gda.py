"""Tests for the exact GDA loop: run_gda against the NumPy reference, and the batch driver simulate."""

import csv
import math
import pathlib
from dataclasses import dataclass

import gda_numpy
import numpy as np
import pytest

from gdasweep.kernels import phases
from gdasweep.kernels.gda import run_gda
from gdasweep.sweeps import compute
from gdasweep.sweeps.spec import Kernel, Model

DATA = pathlib.Path(__file__).parent / "data"

# A run stops once e_k exceeds this many times max(e_0, sigma), as in simulate.
DIVERGENCE_FACTOR = 1e6
# Trajectories agree with the NumPy reference to this fraction of the largest
# reference coordinate. The two sum in different orders, but the settings
# below are far from chaotic, so the measured differences stay below 1e-13.
RELATIVE_TOLERANCE = 1e-10


@dataclass(frozen=True)
class GdaCase:
    """Model and hyperparameters of one run."""

    name: str
    true_points: np.ndarray
    true_weights: np.ndarray
    generated_points: np.ndarray
    generated_weights: np.ndarray
    eta_d: float
    eta_g: float
    lam: float
    sigma: float
    steps: int


def make_case(name, true_points, true_weights, generated_points, generated_weights, eta_d, eta_g, lam, sigma, steps):
    return GdaCase(
        name=name,
        true_points=np.ascontiguousarray(true_points, dtype=np.float64),
        true_weights=np.ascontiguousarray(true_weights, dtype=np.float64),
        generated_points=np.ascontiguousarray(generated_points, dtype=np.float64),
        generated_weights=np.ascontiguousarray(generated_weights, dtype=np.float64),
        eta_d=eta_d,
        eta_g=eta_g,
        lam=lam,
        sigma=sigma,
        steps=steps,
    )


def clustered_points(seed, true_count, dim, owners, spread, true_scale=1.0):
    """Return random true points and generated points placed near the true points listed in ``owners``."""
    rng = np.random.default_rng(seed)
    true_points = true_scale * rng.normal(size=(true_count, dim))
    generated_points = true_points[owners] + spread * rng.normal(size=(len(owners), dim))
    return true_points, generated_points


def build_steady_cases():
    origin = [[0.0]]
    start = [[0.1]]
    cases = [
        make_case("one point", origin, [1.0], start, [1.0], 0.1, 0.1, 1.0, 1.0, 200),
        make_case("light generated point", origin, [1.0], start, [0.8], 0.3, 0.3, 0.3, 1.0, 200),
        make_case("heavy generated point", origin, [1.0], start, [1.2], 0.1, 0.3, 1.0, 0.5, 200),
        make_case("lam 0 balanced", origin, [1.0], start, [1.0], 0.1, 0.1, 0.0, 1.0, 200),
        make_case("lam 0 light", origin, [1.0], start, [0.8], 0.3, 0.3, 0.0, 1.0, 120),
        make_case("lam 0 heavy escapes", origin, [1.0], start, [1.3], 0.1, 0.1, 0.0, 1.0, 150),
        make_case("negative a", origin, [1.0], start, [0.9], 0.5, 0.2, 3.0, 1.0, 200),
        make_case("a exactly 0", origin, [1.0], start, [0.9], 0.5, 0.2, 2.0, 1.0, 150),
        make_case("wide bandwidth", origin, [2.0], [[-0.4]], [1.5], 0.05, 0.2, 0.2, 10.0, 200),
        make_case("small steps long run", origin, [1.0], start, [0.9], 0.05, 0.05, 0.5, 0.5, 300),
        make_case(
            "2-d pair lam 0", [[0.0, 0.0]], [1.0], [[0.1, -0.05], [-0.08, 0.02]], [0.4, 0.6],
            0.2, 0.3, 0.0, 0.5, 150,
        ),
        make_case(
            "2-d start on true point", [[0.0, 0.0], [1.0, 1.0]], [1.0, 1.0], [[0.0, 0.0], [1.1, 0.9]], [0.5, 1.0],
            0.1, 0.2, 0.5, 0.8, 200,
        ),
    ]

    true_points, generated_points = clustered_points(7, 3, 2, [0, 0, 1, 2, 2], 0.1)
    weights = [0.3, 0.5, 1.0, 0.2, 0.4]
    cases.append(make_case(
        "2-d three clusters", true_points, [1.0, 2.0, 0.5], generated_points, weights, 0.1, 0.2, 0.5, 0.7, 200,
    ))
    cases.append(make_case(
        "2-d three clusters lam 0", true_points, [1.0, 2.0, 0.5], generated_points, weights, 0.1, 0.2, 0.0, 0.7, 100,
    ))

    true_points, generated_points = clustered_points(8, 2, 5, [0, 0, 1, 1], 0.2)
    cases.append(make_case(
        "5-d two clusters", true_points, [1.0, 1.5], generated_points, [0.5, 0.4, 0.9, 0.7], 0.2, 0.1, 0.3, 1.5, 150,
    ))

    # True point 2 has no generated point near it.
    true_points, generated_points = clustered_points(9, 4, 3, [0, 0, 1, 1, 3, 3], 0.15, true_scale=2.0)
    cases.append(make_case(
        "3-d true point without generated points", true_points, [1.0, 0.5, 2.0, 1.0], generated_points,
        [0.6, 0.3, 0.2, 0.2, 0.5, 0.6], 0.1, 0.3, 1.0, 1.0, 150,
    ))

    rng = np.random.default_rng(10)
    true_points, generated_points = clustered_points(11, 1, 2, [0] * 8, 0.05)
    cases.append(make_case(
        "2-d eight generated points", true_points, [1.0], generated_points, rng.uniform(0.05, 0.2, size=8),
        0.1, 0.5, 0.05, 0.4, 200,
    ))
    return cases


def build_divergent_cases():
    """Return runs with ``eta_d lam > 2``, so ``|a| > 1`` and the history terms grow without bound."""
    origin = [[0.0]]
    start = [[0.1]]
    return [
        make_case("a -3.2", origin, [1.0], start, [1.0], 1.0, 0.1, 4.2, 0.3, 150),
        make_case("a -5 light", origin, [1.0], start, [0.7], 1.0, 0.5, 6.0, 0.3, 150),
        make_case("a -9", origin, [1.0], start, [1.0], 1.0, 0.1, 10.0, 0.3, 150),
        make_case(
            "2-d two clusters a -5", [[0.0, 0.0], [1.0, 0.0]], [1.0, 0.5], [[0.1, 0.1], [0.9, -0.1]], [0.8, 0.6],
            1.0, 0.5, 6.0, 0.5, 150,
        ),
        make_case(
            "3-d pair a -3.2", [[0.0, 0.0, 0.0]], [1.0], [[0.1, 0.0, -0.1], [0.0, 0.1, 0.05]], [0.5, 0.7],
            1.0, 0.3, 4.2, 0.3, 150,
        ),
    ]


STEADY_CASES = build_steady_cases()
DIVERGENT_CASES = build_divergent_cases()


def nearest_indices(true_points, generated_points):
    """Return the index of the true point nearest to each generated point."""
    squared = np.sum((generated_points[:, None, :] - true_points[None, :, :]) ** 2, axis=-1)
    return np.argmin(squared, axis=1).astype(np.int64)


def generator_errors(positions, true_points, generated_weights, nearest):
    """Return e_k for every step of ``positions`` (steps + 1, n_gen, d)."""
    squared = np.sum((positions - true_points[nearest][None]) ** 2, axis=-1)
    return np.sqrt(squared @ generated_weights / generated_weights.sum())


def run_kernel(case, history_tolerance=0.0, divergence_factor=DIVERGENCE_FACTOR):
    """Run ``run_gda`` on ``case``; return (blow-up step, history, errors, flips)."""
    n_generated, dim = case.generated_points.shape
    history = np.empty((case.steps + 1, n_generated, dim))
    history[0] = case.generated_points
    errors = np.empty(case.steps + 1)
    flips = np.empty(case.steps + 1, dtype=np.int32)
    gradient = np.empty((n_generated, dim))

    blowup = run_gda(
        case.true_points, case.true_weights, case.generated_weights,
        case.eta_d, case.eta_g, case.lam, case.sigma, history_tolerance, divergence_factor,
        nearest_indices(case.true_points, case.generated_points), history, errors, flips, gradient,
    )
    return blowup, history, errors, flips


def run_reference(case, steps):
    return gda_numpy.simulate(
        case.true_points, case.true_weights, case.generated_points, case.generated_weights,
        case.eta_d, case.eta_g, case.lam, case.sigma, steps,
    )


def max_relative_difference(actual, reference):
    """Return max |actual - reference| divided by max |reference|."""
    return np.max(np.abs(actual - reference)) / np.max(np.abs(reference))


@pytest.mark.parametrize("case", STEADY_CASES, ids=lambda case: case.name)
def test_run_gda_matches_reference_trajectory(case):
    blowup, history, errors, flips = run_kernel(case)
    reference = run_reference(case, case.steps)
    nearest = nearest_indices(case.true_points, case.generated_points)
    reference_errors = generator_errors(reference, case.true_points, case.generated_weights, nearest)

    assert blowup == -1
    assert np.all(np.isfinite(history))
    difference = max_relative_difference(history, reference)
    assert difference <= RELATIVE_TOLERANCE, f"positions differ by {difference:.2e} of the largest coordinate"
    error_difference = max_relative_difference(errors, reference_errors)
    assert error_difference <= RELATIVE_TOLERANCE, f"errors differ by {error_difference:.2e} of the largest error"
    assert flips[0] == 0
    assert np.all(np.diff(flips) >= 0)


@pytest.mark.parametrize("case", DIVERGENT_CASES, ids=lambda case: case.name)
def test_run_gda_divergent_run_stops_at_blowup(case):
    blowup, history, errors, flips = run_kernel(case)
    assert blowup > 0, "the run was expected to blow up within its steps"

    reference = run_reference(case, blowup)
    nearest = nearest_indices(case.true_points, case.generated_points)
    reference_errors = generator_errors(reference, case.true_points, case.generated_weights, nearest)
    bound = DIVERGENCE_FACTOR * max(reference_errors[0], case.sigma)
    first_beyond = int(np.flatnonzero(~(reference_errors <= bound))[0])
    assert blowup == first_beyond

    # The last step is compared on its own scale, because it is many orders
    # of magnitude larger than the steps before it and would hide them.
    before = max_relative_difference(history[:blowup], reference[:blowup])
    assert before <= RELATIVE_TOLERANCE, f"positions before the blow-up differ by {before:.2e}"
    last = max_relative_difference(history[blowup], reference[blowup])
    assert last <= RELATIVE_TOLERANCE, f"positions at the blow-up step differ by {last:.2e}"
    whole = max_relative_difference(history[: blowup + 1], reference)
    assert whole <= RELATIVE_TOLERANCE

    assert errors[blowup] > bound
    assert np.all(np.isnan(history[blowup + 1:]))
    assert np.all(np.isnan(errors[blowup + 1:]))
    assert np.all(flips[blowup + 1:] == flips[blowup])


def test_reference_cases_cover_each_kind():
    """Check that the reference comparisons above cover every kind of configuration they claim to."""
    cases = STEADY_CASES + DIVERGENT_CASES

    assert len(cases) >= 20
    assert any(len(c.true_points) > 1 and len(c.generated_points) > 1 for c in cases)
    assert any(c.true_points.shape[1] > 1 for c in cases)
    assert any(c.lam == 0.0 for c in cases)
    assert any(np.unique(c.generated_weights).size > 1 for c in cases)
    assert any(c.generated_weights.sum() != c.true_weights.sum() for c in cases)
    assert all(abs(1.0 - c.eta_d * c.lam) > 1.0 for c in DIVERGENT_CASES)


# Non-finite states.

# eta_g = 1e308 turns the first step into -inf and the next into NaN.
EXPLODING = dict(eta_d=1.0, eta_g=1e308, lam=1.0, sigma=0.1)
HEALTHY = dict(eta_d=0.1, eta_g=0.1, lam=1.0, sigma=1.0)


def two_point_model(steps, record_every):
    """Return the model with the true point 0 (weight 1) and the generated point 0.1 (weight 1) in one dimension."""
    return Model(
        true_points=np.array([[0.0]]),
        true_weights=np.array([1.0]),
        generated_points=np.array([[0.1]]),
        generated_weights=np.array([1.0]),
        kernel=Kernel.GAUSSIAN,
        steps=steps,
        record_every=record_every,
        history_tolerance=0.0,
        save_positions=True,
    )


def test_run_gda_non_finite_state_stops():
    case = make_case("exploding", [[0.0]], [1.0], [[0.1]], [1.0], steps=50, **EXPLODING)

    blowup, history, errors, flips = run_kernel(case, divergence_factor=math.inf)

    assert blowup == 2
    assert errors[1] == math.inf
    assert math.isnan(errors[2])
    assert np.all(np.isnan(history[3:]))
    assert np.all(np.isnan(errors[3:]))


def run_batch(model, configurations, parallel):
    columns = {name: [config[name] for config in configurations] for name in ("eta_d", "eta_g", "lam", "sigma")}
    return compute.simulate(model, **columns, parallel=parallel)


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
def test_simulate_non_finite_run_leaves_others_unchanged(monkeypatch, parallel):
    # An infinite bound lets the state overflow instead of stopping at 1e6 * sigma.
    monkeypatch.setattr(compute, "DIVERGENCE_FACTOR", math.inf)
    model = two_point_model(steps=200, record_every=1)

    mixed = run_batch(model, [EXPLODING, HEALTHY, EXPLODING], parallel)
    alone = run_batch(model, [HEALTHY], parallel)

    for name in compute.SIMULATION_OUTPUTS:
        assert mixed[name][1].tobytes() == alone[name][0].tobytes(), f"output {name!r} changed"
    for index in (0, 2):
        assert mixed["blowup_step"][index] == 2
        assert mixed["observed_phase"][index] == phases.DIVERGED
        assert math.isnan(mixed["final_error"][index])
        assert np.all(np.isnan(mixed["final_position"][index]))
        assert np.all(np.isnan(mixed["error"][index, 2:]))
    assert alone["blowup_step"][0] == -1
    assert alone["observed_phase"][0] in (phases.CONVERGED, phases.OSCILLATING)


# History tolerance.


def kernel_gradients(points, centers, sigma):
    """Return grad_1 K(points_j, centers_l) with shape (n_points, n_centers, d)."""
    diff = points[:, None, :] - centers[None, :, :]
    values = np.exp(-np.sum(diff * diff, axis=-1) / (2.0 * sigma * sigma))
    return -diff / (sigma * sigma) * values[..., None]


def simulate_truncated(case, tolerance):
    """Return all positions of ``case`` when history terms with |a|^m < ``tolerance`` are dropped.

    ``m = k - s`` is the age of the history term from step ``s`` at step ``k``.
    """
    a = 1.0 - case.eta_d * case.lam
    weights = case.generated_weights
    n_generated, dim = case.generated_points.shape
    history = np.empty((case.steps + 1, n_generated, dim))
    history[0] = case.generated_points

    for k in range(case.steps):
        if case.lam == 0.0:
            true_weight = case.eta_d * (k + 1)
        else:
            true_weight = (1.0 - a ** (k + 1)) / case.lam
        current = history[k]
        true_part = np.einsum("i,jid->jd", case.true_weights, kernel_gradients(current, case.true_points, case.sigma))

        ages = np.arange(k + 1)
        decays = a**ages
        within_tolerance = np.abs(decays) >= tolerance
        past = history[k - ages[within_tolerance]]
        gradients = kernel_gradients(current, past.reshape(-1, dim), case.sigma)
        gradients = gradients.reshape(n_generated, past.shape[0], n_generated, dim)
        history_part = np.einsum("s,l,jsld->jd", decays[within_tolerance], weights, gradients)

        gradient = true_weight * true_part - case.eta_d * history_part
        history[k + 1] = current + case.eta_g * weights[:, None] * gradient
    return history


def truncation_cases():
    true_points, generated_points = clustered_points(12, 3, 2, [0, 1, 1, 2], 0.1)
    return [
        (make_case("a 0.7", [[0.0]], [1.0], [[0.1]], [0.9], 0.3, 0.3, 1.0, 0.5, 150), 0.05),
        (make_case("a -0.5", [[0.0]], [1.0], [[0.1]], [0.9], 0.5, 0.2, 3.0, 1.0, 150), 1e-2),
        (
            make_case(
                "2-d three clusters a 0.8", true_points, [1.0, 0.7, 1.2], generated_points, [0.4, 0.3, 0.5, 0.9],
                0.2, 0.3, 1.0, 0.6, 150,
            ),
            1e-3,
        ),
    ]


@pytest.mark.parametrize(("case", "tolerance"), truncation_cases(), ids=lambda value: getattr(value, "name", None))
def test_history_tolerance_drops_small_terms(case, tolerance):
    a = 1.0 - case.eta_d * case.lam
    powers = np.abs(a) ** np.arange(case.steps + 1)
    # A power within rounding of the tolerance could be kept by one side and dropped by the other.
    assert np.min(np.abs(powers / tolerance - 1.0)) > 1e-6

    blowup, history, _, _ = run_kernel(case, history_tolerance=tolerance)
    _, exact, _, _ = run_kernel(case)
    reference = simulate_truncated(case, tolerance)

    assert blowup == -1
    difference = max_relative_difference(history, reference)
    assert difference <= RELATIVE_TOLERANCE, f"positions differ by {difference:.2e} of the largest coordinate"
    # The dropped terms must matter, or this test could not tell truncation from the exact run.
    assert max_relative_difference(history, exact) > 1e-6


def test_history_tolerance_without_decay_keeps_every_term():
    # With lam = 0 every weight |a^m| is 1, so no tolerance below 1 drops a term.
    case = make_case("lam 0", [[0.0]], [1.0], [[0.1]], [0.8], 0.3, 0.3, 0.0, 1.0, 100)

    _, with_tolerance, _, _ = run_kernel(case, history_tolerance=0.5)
    _, exact, _, _ = run_kernel(case)

    assert with_tolerance.tobytes() == exact.tobytes()


def underflow_cases():
    true_points, generated_points = clustered_points(13, 2, 2, [0, 0, 1], 0.1)
    return [
        # a = 1 - 0.999 underflows to 0 after about 108 multiplications.
        make_case("a 1e-3", [[0.0]], [1.0], [[0.1]], [0.9], 0.999, 0.3, 1.0, 0.5, 150),
        # a is exactly 0, so every term but the newest has weight 0.
        make_case("a 0", [[0.0, 0.0]], [1.0], [[0.1, 0.0], [0.0, -0.1]], [0.5, 0.4], 0.5, 0.3, 2.0, 0.5, 100),
        # |a| = 0.01 underflows after about 162 multiplications, with alternating sign.
        make_case(
            "2-d two clusters a -0.01", true_points, [1.0, 0.7], generated_points, [0.5, 0.4, 0.6],
            1.01, 0.3, 1.0, 0.6, 170,
        ),
    ]


@pytest.mark.parametrize("case", underflow_cases(), ids=lambda case: case.name)
def test_history_tolerance_zero_equals_exact_run(case):
    # The NumPy reference adds every term, including those whose weight
    # underflowed to 0, which the kernel skips.
    blowup, history, _, _ = run_kernel(case, history_tolerance=0.0)
    exact = run_reference(case, case.steps)

    assert blowup == -1
    difference = max_relative_difference(history, exact)
    assert difference <= 1e-13, f"positions differ by {difference:.2e} of the largest coordinate"


# Serial and parallel drivers.


def test_simulate_serial_equals_parallel():
    model = Model(
        true_points=np.array([[0.0, 0.0], [1.5, 0.0]]),
        true_weights=np.array([1.0, 0.7]),
        generated_points=np.array([[0.1, -0.1], [-0.05, 0.1], [1.4, 0.2]]),
        generated_weights=np.array([0.5, 0.4, 0.9]),
        kernel=Kernel.GAUSSIAN,
        steps=300,
        record_every=7,
        history_tolerance=0.0,
        save_positions=True,
    )
    # Runs observed as converged, oscillating, not converged (one with lam = 0),
    # escaped and diverged (eta_d lam > 2).
    eta_d = [0.1, 0.3, 0.3, 0.1, 1.0, 1.0, 0.05, 0.5]
    eta_g = [0.1, 0.3, 0.3, 0.5, 0.1, 0.5, 0.2, 0.2]
    lam = [1.0, 0.0, 1.0, 0.01, 4.2, 6.0, 0.3, 3.0]
    sigma = [1.0, 1.0, 0.3, 0.1, 0.3, 0.5, 3.0, 1.0]

    serial = compute.simulate(model, eta_d, eta_g, lam, sigma, parallel=False)
    parallel = compute.simulate(model, eta_d, eta_g, lam, sigma, parallel=True)

    assert set(serial["observed_phase"].tolist()) == {
        phases.CONVERGED, phases.OSCILLATING, phases.NOT_CONVERGED, phases.DIVERGED, phases.ESCAPED,
    }
    for name in compute.SIMULATION_OUTPUTS:
        assert serial[name].dtype == parallel[name].dtype
        assert serial[name].shape == parallel[name].shape
        assert serial[name].tobytes() == parallel[name].tobytes(), f"output {name!r} differs"


# Two-point reference data.


def read_two_point_rows():
    with open(DATA / "two_point_exact.csv", newline="") as file:
        return list(csv.DictReader(file))


def test_simulate_matches_two_point_reference():
    rows = read_two_point_rows()
    model = two_point_model(steps=1000, record_every=10)
    parameters = {name: [float(row[name]) for row in rows] for name in ("eta_d", "eta_g", "lam", "sigma")}

    out = compute.simulate(model, **parameters, parallel=True)

    # record_every = 10, so column r of "error" is step 10 r.
    error_columns = {"log10_err_step100": 10, "log10_err_step500": 50, "log10_err_step1000": 100}
    checked = 0
    mismatches = []
    for index, row in enumerate(rows):
        if row["reproducible_1e-9_rel"] != "True":
            continue
        checked += 1
        label = f"eta_d={row['eta_d']} eta_g={row['eta_g']} lam={row['lam']} sigma={row['sigma']}"

        expected = float(row["final_x_signed"])
        actual = out["final_position"][index, 0, 0]
        if not abs(actual - expected) <= 1e-9 * abs(expected):
            mismatches.append(f"{label}: final position {actual!r}, expected {expected!r}")

        for column, record in error_columns.items():
            expected_log = float(row[column])
            actual_log = math.log10(out["error"][index, record])
            # A relative error of 1e-9 moves log10 by at most 4.4e-10.
            if not abs(actual_log - expected_log) <= 1e-9:
                mismatches.append(f"{label}: {column} {actual_log!r}, expected {expected_log!r}")

    assert checked >= 20
    assert not mismatches, "\n".join(mismatches)
