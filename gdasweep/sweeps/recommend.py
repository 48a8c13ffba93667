"""The regularization that makes GDA converge fastest, from the exact discrete theory."""

from __future__ import annotations

import numpy as np

from ..kernels import phases
from .compute import predict

#: Candidate values per bandwidth in the first scan, spread over (0, 2 / eta_d).
SCAN_POINTS = 4000
#: Each refinement evaluates this many points across the bracket of the best one.
ZOOM_POINTS = 101
ZOOM_ROUNDS = 8


def _rho(true_weights, generated_weights, eta_d, eta_g, lam, sigma) -> np.ndarray:
    out = predict(true_weights, generated_weights, np.full(lam.shape, eta_d), np.full(lam.shape, eta_g),
                  lam, sigma)
    rho = out["rho_generator"]
    return np.where(np.isnan(rho), np.inf, rho)


def optimal_lam(true_weights, generated_weights, eta_d: float, eta_g: float, sigmas) -> dict[str, np.ndarray]:
    """Return, for each bandwidth, the ``lam`` in ``[0, 2 / eta_d)`` that minimizes ``rho_generator``.

    A scan over ``SCAN_POINTS`` values, log-spaced near 0 and even-spaced up
    to ``2 / eta_d`` (beyond which the discriminator mode ``1 - eta_d lam``
    diverges), finds the best neighbourhood. Then ``ZOOM_ROUNDS`` scans of
    ``ZOOM_POINTS`` across the bracket of the best point refine it. The
    minimum often sits where two eigenvalues collide, a kink that derivative
    based searches handle badly, so only function values are compared.

    Returns
    -------
    dict of ndarray, each (len(sigmas),)
        ``sigma``, ``lam_opt``, ``rho_generator`` and ``rho_total`` at
        ``lam_opt``, ``predicted_phase`` there and ``converges`` (predicted
        to converge at ``lam_opt``).

    Examples
    --------
    >>> out = optimal_lam([1.0], [0.8], 0.1, 0.1, [1.0])
    >>> bool(out["converges"][0])
    True
    """
    sigmas = np.atleast_1d(np.asarray(sigmas, dtype=np.float64))
    upper = 2.0 / eta_d
    base = np.unique(np.concatenate([
        upper * np.logspace(-9, 0, SCAN_POINTS // 2, endpoint=False),
        np.linspace(0.0, upper, SCAN_POINTS // 2, endpoint=False),
    ]))
    best_lam = np.empty(sigmas.shape)
    for i, sigma in enumerate(sigmas):
        grid = base
        for _ in range(ZOOM_ROUNDS + 1):
            rho = _rho(true_weights, generated_weights, eta_d, eta_g, grid, np.full(grid.shape, sigma))
            k = int(np.argmin(rho))
            low = grid[max(k - 1, 0)]
            high = grid[min(k + 1, grid.size - 1)]
            best = grid[k]
            grid = np.linspace(low, high, ZOOM_POINTS)
        best_lam[i] = best

    out = predict(true_weights, generated_weights, np.full(sigmas.shape, eta_d), np.full(sigmas.shape, eta_g),
                  best_lam, sigmas)
    converging = np.isin(out["predicted_phase"], [phases.CONVERGES_MONOTONE, phases.CONVERGES_OSCILLATING])
    return {
        "sigma": sigmas,
        "lam_opt": best_lam,
        "rho_generator": out["rho_generator"],
        "rho_total": out["rho_total"],
        "predicted_phase": out["predicted_phase"],
        "converges": converging & (out["rho_total"] < 1.0),
    }
