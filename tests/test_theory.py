"""Tests for the linearized theory, gdasweep.sweeps.compute.predict."""

import csv
import math
import pathlib

import numpy as np
import pytest

from gdasweep.kernels import phases
from gdasweep.sweeps import compute

DATA = pathlib.Path(__file__).parent / "data"

RELATIVE_TOLERANCE = 1e-10
# Same limits as the theory: |z| within this of 1 is marginal, and an
# imaginary part below this fraction of |z| is zero.
MARGINAL_TOLERANCE = 1e-12
REAL_TOLERANCE = 1e-12

PHASE_CODES = {
    "converges_monotone": phases.CONVERGES_MONOTONE,
    "converges_oscillating": phases.CONVERGES_OSCILLATING,
    "marginal": phases.MARGINAL,
    "diverges": phases.DIVERGES,
    "no_fixed_point": phases.NO_FIXED_POINT,
}

# Every output that has no value without a fixed point.
FIXED_POINT_OUTPUTS = (
    "rho_generator", "dominant_real", "dominant_imag", "rho_total",
    "curvature_fixed_point", "rho_continuous", "lam_opt_continuous",
)


def assert_close(actual, expected, label, tolerance=RELATIVE_TOLERANCE):
    """Assert agreement to ``tolerance`` relative, or absolute when ``expected`` is 0."""
    limit = tolerance * abs(expected) if expected != 0.0 else tolerance
    assert abs(actual - expected) <= limit, f"{label}: {actual!r}, expected {expected!r}"


def predict_one(true_weights, generated_weights, eta_d, eta_g, lam, sigma, nearest=None):
    """Return the theory's outputs of a single configuration as Python scalars."""
    out = compute.predict(true_weights, generated_weights, eta_d, eta_g, lam, sigma, nearest=nearest)
    return {name: value[0].item() for name, value in out.items()}


def generator_block(p, weights, eta_d, eta_g, lam, sigma):
    """Return the (n + 1) x (n + 1) linearized generator matrix M of one cluster."""
    weights = np.asarray(weights, dtype=np.float64)
    n = weights.size
    a = 1.0 - eta_d * lam
    delta = p - weights.sum()
    curvature = 0.0 if delta == 0.0 else -delta / (lam * sigma**2)

    block = np.empty((n + 1, n + 1))
    block[0, 0] = a
    block[0, 1:] = -eta_d * weights / sigma**2
    block[1:, 0] = eta_g * weights * a
    block[1:, 1:] = np.diag(1.0 + eta_g * weights * curvature) - eta_g * eta_d * np.outer(weights, weights) / sigma**2
    return block


def dominant_eigenvalue(block):
    """Return the eigenvalue of ``block`` with the largest modulus as (real, |imag|)."""
    eigenvalues = np.linalg.eigvals(block)
    best = eigenvalues[np.argmax(np.abs(eigenvalues))]
    return best.real, abs(best.imag)


def expected_phase(real, imag):
    modulus = math.hypot(real, imag)
    if abs(modulus - 1.0) <= MARGINAL_TOLERANCE:
        return phases.MARGINAL
    if modulus > 1.0:
        return phases.DIVERGES
    if imag <= REAL_TOLERANCE * modulus and real > 0.0:
        return phases.CONVERGES_MONOTONE
    return phases.CONVERGES_OSCILLATING


def assert_matches_block(out, p, weights, eta_d, eta_g, lam, sigma, label):
    real, imag = dominant_eigenvalue(generator_block(p, weights, eta_d, eta_g, lam, sigma))
    modulus = math.hypot(real, imag)

    assert_close(out["rho_generator"], modulus, f"{label} rho_generator")
    # Both parts are compared on the scale of |z|, since either can be near 0.
    assert abs(out["dominant_real"] - real) <= RELATIVE_TOLERANCE * modulus, f"{label} dominant_real"
    assert abs(out["dominant_imag"] - imag) <= RELATIVE_TOLERANCE * modulus, f"{label} dominant_imag"
    assert_close(out["rho_total"], max(modulus, abs(1.0 - eta_d * lam)), f"{label} rho_total")
    assert out["predicted_phase"] == expected_phase(real, imag), label


# Reference table.


def read_linear_theory_rows():
    with open(DATA / "linear_theory.csv", newline="") as file:
        return list(csv.DictReader(file))


LINEAR_THEORY_ROWS = read_linear_theory_rows()


@pytest.mark.parametrize("row", LINEAR_THEORY_ROWS, ids=lambda row: f"case {row['case']}")
def test_predict_matches_linear_theory_table(row):
    n_generated = int(row["n_generated"])
    weights = [float(row["p_generated_each"])] * n_generated
    parameters = [float(row[name]) for name in ("eta_d", "eta_g", "lam", "sigma")]

    out = predict_one([float(row["p_true"])], weights, *parameters)

    for name in ("rho_generator", "dominant_real", "dominant_imag", "rho_total"):
        assert_close(out[name], float(row[name]), name)
    assert out["predicted_phase"] == PHASE_CODES[row["phase"]]


def test_linear_theory_table_covers_every_phase():
    table_phases = {row["phase"] for row in LINEAR_THEORY_ROWS}

    assert table_phases == {"converges_monotone", "converges_oscillating", "marginal", "diverges"}


# One cluster against the eigenvalues of M.


def random_parameters(rng):
    """Return (eta_d, eta_g, lam, sigma), each log-uniform, with about half of the draws converging."""
    eta_d = 10.0 ** rng.uniform(-3.0, -0.3)
    eta_g = 10.0 ** rng.uniform(-3.0, -0.3)
    lam = 10.0 ** rng.uniform(-2.0, 0.5)
    sigma = 10.0 ** rng.uniform(-1.0, 0.7)
    return eta_d, eta_g, lam, sigma


def unequal_weight_cases():
    rng = np.random.default_rng(20)
    cases = []
    for index in range(15):
        n = 2 + index % 3
        weights = rng.uniform(0.05, 0.6, size=n).tolist()
        cases.append((weights, *random_parameters(rng)))
    return cases


@pytest.mark.parametrize("case", unequal_weight_cases(), ids=lambda case: f"n={len(case[0])}")
def test_predict_unequal_weights_match_eigenvalues(case):
    weights, eta_d, eta_g, lam, sigma = case

    out = predict_one([1.0], weights, eta_d, eta_g, lam, sigma)

    assert_matches_block(out, 1.0, weights, eta_d, eta_g, lam, sigma, f"weights {weights}")
    assert out["discriminator_eigenvalue"] == 1.0 - eta_d * lam
    assert_close(out["curvature_fixed_point"], -(1.0 - sum(weights)) / (lam * sigma**2), "curvature_fixed_point")


def equal_weight_cases():
    rng = np.random.default_rng(21)
    cases = []
    for index in range(16):
        n = 1 + index % 4
        # Total generated mass below, equal to and above the true weight 1.
        total = (0.7, 1.0, 1.3, 0.9)[index // 4]
        cases.append(([total / n] * n, *random_parameters(rng)))
    return cases


@pytest.mark.parametrize("case", equal_weight_cases(), ids=lambda case: f"n={len(case[0])} Q={sum(case[0]):.2f}")
def test_predict_equal_weights_match_eigenvalues(case):
    # Equal weights take the closed-form path, so this checks it against LAPACK.
    weights, eta_d, eta_g, lam, sigma = case

    out = predict_one([1.0], weights, eta_d, eta_g, lam, sigma)

    assert_matches_block(out, 1.0, weights, eta_d, eta_g, lam, sigma, f"weights {weights}")


# Several true points.


def nearest_by_loop(true_points, generated_points):
    """Return the index of the nearest true point of each generated point, the lowest index on ties."""
    nearest = []
    for point in generated_points:
        distances = [float(np.sum((point - center) ** 2)) for center in true_points]
        nearest.append(distances.index(min(distances)))
    return np.array(nearest, dtype=np.int64)


def test_nearest_true_points_matches_brute_force():
    rng = np.random.default_rng(22)
    true_points = rng.normal(size=(5, 3))
    generated_points = rng.normal(size=(40, 3))

    nearest = compute.nearest_true_points(true_points, generated_points)

    np.testing.assert_array_equal(nearest, nearest_by_loop(true_points, generated_points))


TRUE_POINTS = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0], [5.0, 5.0]])
TRUE_WEIGHTS = np.array([1.0, 0.8, 1.5, 2.0])
# Generated points in shuffled order, near true points 0, 1 and 2, whose
# mass mismatches are 0.1, 0.2 and 0.3. True point 3 has no generated point.
GENERATED_POINTS = np.array([
    [2.9, 0.2], [0.1, -0.1], [0.2, 2.8], [-0.2, 0.1], [3.1, -0.1], [0.1, 3.2], [0.3, 0.2], [-0.1, 3.0],
])
GENERATED_WEIGHTS = np.array([0.35, 0.3, 0.5, 0.5, 0.25, 0.4, 0.1, 0.3])


def several_point_parameters():
    rng = np.random.default_rng(23)
    return [random_parameters(rng) for _ in range(12)]


def expected_dominant_cluster(nearest, eta_d, eta_g, lam, sigma):
    """Return (true point index, real, imag) of the cluster whose dominant eigenvalue has the largest modulus."""
    best = None
    for owner in np.unique(nearest):
        weights = GENERATED_WEIGHTS[nearest == owner]
        real, imag = dominant_eigenvalue(generator_block(TRUE_WEIGHTS[owner], weights, eta_d, eta_g, lam, sigma))
        if best is None or math.hypot(real, imag) > math.hypot(best[1], best[2]):
            best = (int(owner), real, imag)
    return best


def test_predict_several_true_points_takes_largest_cluster():
    nearest = nearest_by_loop(TRUE_POINTS, GENERATED_POINTS)
    assert nearest.tolist() == [1, 0, 2, 0, 1, 2, 0, 2]
    winners = set()
    converging = 0

    for eta_d, eta_g, lam, sigma in several_point_parameters():
        label = f"eta_d={eta_d:.4g} eta_g={eta_g:.4g} lam={lam:.4g} sigma={sigma:.4g}"
        out = predict_one(TRUE_WEIGHTS, GENERATED_WEIGHTS, eta_d, eta_g, lam, sigma, nearest=nearest)
        owner, real, imag = expected_dominant_cluster(nearest, eta_d, eta_g, lam, sigma)
        winners.add(owner)
        converging += out["predicted_phase"] in (phases.CONVERGES_MONOTONE, phases.CONVERGES_OSCILLATING)
        members = GENERATED_WEIGHTS[nearest == owner]

        assert_matches_block(out, TRUE_WEIGHTS[owner], members, eta_d, eta_g, lam, sigma, label)
        delta = TRUE_WEIGHTS[owner] - members.sum()
        assert_close(out["curvature_fixed_point"], -delta / (lam * sigma**2), f"{label} curvature_fixed_point")

    # More than one cluster must win, or the choice among clusters went untested.
    assert len(winners) >= 2, f"only cluster {winners} won"
    assert converging >= 2


def test_predict_several_true_points_ignores_order():
    nearest = nearest_by_loop(TRUE_POINTS, GENERATED_POINTS)
    order = np.argsort(nearest, kind="stable")[::-1]

    for eta_d, eta_g, lam, sigma in several_point_parameters():
        shuffled = predict_one(TRUE_WEIGHTS, GENERATED_WEIGHTS[order], eta_d, eta_g, lam, sigma, nearest=nearest[order])
        original = predict_one(TRUE_WEIGHTS, GENERATED_WEIGHTS, eta_d, eta_g, lam, sigma, nearest=nearest)

        assert_close(shuffled["rho_generator"], original["rho_generator"], "rho_generator")
        assert shuffled["predicted_phase"] == original["predicted_phase"]


# No discriminator regularization.


def test_predict_lam_zero_mismatch_has_no_fixed_point():
    # One configuration with lam = 0 between two regular ones, for one and for several clusters.
    eta_d = [0.1, 0.1, 0.1]
    eta_g = [0.1, 0.1, 0.1]
    lam = [1.0, 0.0, 0.5]
    sigma = [1.0, 1.0, 1.0]
    inputs = {
        "one cluster": ([1.0], [0.8], None),
        "two clusters, one balanced": ([1.0, 1.0], [0.5, 0.5, 0.7], [0, 0, 1]),
    }

    for label, (true_weights, generated_weights, nearest) in inputs.items():
        out = compute.predict(true_weights, generated_weights, eta_d, eta_g, lam, sigma, nearest=nearest)

        assert out["predicted_phase"][1] == phases.NO_FIXED_POINT, label
        for name in FIXED_POINT_OUTPUTS:
            assert math.isnan(out[name][1]), f"{label}: {name} is {out[name][1]!r}, expected NaN"
        assert out["discriminator_eigenvalue"][1] == 1.0, label
        for index in (0, 2):
            assert out["predicted_phase"][index] != phases.NO_FIXED_POINT, label
            assert np.isfinite(out["rho_generator"][index]), label


@pytest.mark.parametrize(
    "weights", [[1.0], [0.5, 0.5], [0.25, 0.75], [0.25, 0.25, 0.5]], ids=lambda weights: f"q={weights}",
)
def test_predict_lam_zero_balanced_is_marginal(weights):
    assert sum(weights) == 1.0

    out = predict_one([1.0], weights, 0.1, 0.1, 0.0, 1.0)

    assert out["predicted_phase"] == phases.MARGINAL
    assert abs(out["rho_generator"] - 1.0) <= MARGINAL_TOLERANCE
    assert abs(out["rho_total"] - 1.0) <= MARGINAL_TOLERANCE
    assert out["curvature_fixed_point"] == 0.0
    assert out["discriminator_eigenvalue"] == 1.0


# Continuous-time approximation.


def test_lam_opt_continuous_matches_formula():
    rng = np.random.default_rng(24)

    for _ in range(10):
        q = rng.uniform(0.1, 0.95)
        eta_d, eta_g, lam, sigma = random_parameters(rng)
        delta = 1.0 - q

        out = predict_one([1.0], [q], eta_d, eta_g, lam, sigma)

        expected = math.sqrt(eta_g / eta_d * q * delta) / sigma
        assert_close(out["lam_opt_continuous"], expected, f"q={q} eta_d={eta_d} eta_g={eta_g} sigma={sigma}")
