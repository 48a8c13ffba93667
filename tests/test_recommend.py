import numpy as np
import pytest

from gdasweep.sweeps.cli import main
from gdasweep.sweeps.recommend import optimal_lam


def generator_block_radius(p, weights, eta_d, eta_g, lam, sigma):
    """Spectral radius of the linearized generator block, built directly from its definition."""
    weights = np.asarray(weights, dtype=float)
    n = weights.size
    a = 1.0 - eta_d * lam
    mismatch = p - weights.sum()
    if lam == 0.0:
        if mismatch != 0.0:
            return np.inf
        curvature = 0.0
    else:
        curvature = -mismatch / (lam * sigma**2)
    block = np.zeros((n + 1, n + 1))
    block[0, 0] = a
    block[0, 1:] = -eta_d * weights / sigma**2
    block[1:, 0] = eta_g * weights * a
    block[1:, 1:] = np.diag(1.0 + eta_g * weights * curvature) - eta_g * eta_d * np.outer(weights, weights) / sigma**2
    return np.max(np.abs(np.linalg.eigvals(block)))


def brute_force_minimum(p, weights, eta_d, eta_g, sigma):
    """Minimize over lam in [0, 2 / eta_d] by an even grid, then even grids around the best point."""
    low, high = 0.0, 2.0 / eta_d
    best = None
    for _ in range(6):
        grid = np.linspace(low, high, 2001)
        values = np.array([generator_block_radius(p, weights, eta_d, eta_g, lam, sigma) for lam in grid])
        k = int(np.argmin(values))
        best = (grid[k], values[k])
        low, high = grid[max(k - 2, 0)], grid[min(k + 2, grid.size - 1)]
    return best


CASES = [
    (1.0, [0.8], 0.1, 0.1, 1.0),
    (1.0, [0.8], 0.1, 0.1, 0.3),
    (1.0, [0.95], 0.5, 0.05, 2.0),
    (1.0, [1.0], 0.2, 0.2, 0.5),
    (1.0, [0.4, 0.4], 0.1, 0.3, 0.7),
    (1.0, [0.3, 0.5], 0.3, 0.1, 1.5),
]


@pytest.mark.parametrize(("p", "weights", "eta_d", "eta_g", "sigma"), CASES)
def test_optimal_lam_matches_brute_force(p, weights, eta_d, eta_g, sigma):
    expected_lam, expected_rho = brute_force_minimum(p, weights, eta_d, eta_g, sigma)

    out = optimal_lam([p], weights, eta_d, eta_g, [sigma])

    assert out["rho_generator"][0] == pytest.approx(expected_rho, abs=1e-6)
    assert 0.0 <= out["lam_opt"][0] < 2.0 / eta_d
    # The optimum is often a double eigenvalue, where LAPACK's eigenvalues are
    # accurate only to about sqrt(machine epsilon).
    assert generator_block_radius(p, weights, eta_d, eta_g, out["lam_opt"][0], sigma) == pytest.approx(
        out["rho_generator"][0], abs=1e-7)


def test_recommend_command_lists_converging_bandwidths(capsys):
    status = main(["theory", "--recommend", "--eta-d", "0.1", "--eta-g", "0.1", "--sigma", "0.3", "3",
                   "--sigma-count", "5", "--p-gen", "0.8"])
    out = capsys.readouterr().out
    assert status == 0
    assert len([line for line in out.splitlines() if line.strip().startswith(("0.", "1.", "3"))]) == 5
    assert "predicted to converge for 5 of 5 bandwidths" in out


def test_recommend_rejects_lam(capsys):
    status = main(["theory", "--recommend", "--eta-d", "0.1", "--eta-g", "0.1", "--lam", "1",
                   "--sigma", "0.3", "3"])
    assert status == 2
    assert "drop --lam" in capsys.readouterr().err
