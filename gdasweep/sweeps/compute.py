"""Python wrappers around the compiled kernels: check inputs, allocate, call.

These are the entry points for single-process use and for the Dask tasks.
Each takes parameter arrays of one length (one entry per configuration) and
returns a dict of NumPy arrays with the batch axis first.
"""

from __future__ import annotations

import logging

import numpy as np

from ..kernels import gda, phases, theory
from .expansion import get_reach, plan_methods
from .grid import get_record_steps

logger = logging.getLogger(__name__)

#: A run stops, marked diverged, once its error exceeds this many times
#: ``max(e_0, sigma)``.
DIVERGENCE_FACTOR = phases.DIVERGENCE_FACTOR

SIMULATION_OUTPUTS = (
    "error", "final_error", "decay_rate", "observed_phase", "blowup_step",
    "sign_changes", "final_position", "chaos_separation", "method", "switch_step",
)
THEORY_OUTPUTS = (
    "rho_generator", "dominant_real", "dominant_imag", "rho_total",
    "discriminator_eigenvalue", "curvature_fixed_point", "rho_continuous",
    "lam_opt_continuous", "predicted_phase",
)


def nearest_true_points(true_points: np.ndarray, generated_points: np.ndarray) -> np.ndarray:
    """Return, for each generated point, the index of the nearest true point (ties: lowest index)."""
    diff = generated_points[:, None, :] - true_points[None, :, :]
    return np.argmin(np.sum(diff * diff, axis=-1), axis=1).astype(np.int64)


def get_clusters(true_weights, generated_weights, nearest):
    """Group generated weights by their nearest true point.

    Returns ``(mass, offsets, weights)``: the true weight of every true point
    that has generated points, offsets into ``weights`` (one more entry than
    ``mass``) and the generated weights sorted by cluster.
    """
    order = np.argsort(nearest, kind="stable")
    members = nearest[order]
    owners, counts = np.unique(members, return_counts=True)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    mass = np.ascontiguousarray(true_weights[owners], dtype=np.float64)
    weights = np.ascontiguousarray(generated_weights[order], dtype=np.float64)
    return mass, offsets, weights


def _as_parameters(eta_d, eta_g, lam, sigma):
    arrays = [np.ascontiguousarray(np.atleast_1d(v), dtype=np.float64) for v in (eta_d, eta_g, lam, sigma)]
    names = ("eta_d", "eta_g", "lam", "sigma")
    lengths = {arr.shape for arr in arrays}
    if len(lengths) != 1 or arrays[0].ndim != 1:
        shapes = ", ".join(f"{name} {arr.shape}" for name, arr in zip(names, arrays))
        raise ValueError(f"parameter arrays must be 1-D and of equal length, got {shapes}")
    for name, arr in zip(names, arrays):
        bad = ~np.isfinite(arr) | ((arr < 0) if name == "lam" else (arr <= 0))
        if bad.any():
            rule = ">= 0" if name == "lam" else "> 0"
            raise ValueError(f"invalid value {name}={float(arr[bad][0])!r}: must be finite and {rule}")
    return arrays


def simulate(
    model, eta_d, eta_g, lam, sigma, *, seed: int = 0, config_index=None, parallel: bool = False
) -> dict[str, np.ndarray]:
    """Run the exact GDA dynamics for a batch of configurations.

    Parameters
    ----------
    model : gdasweep.sweeps.spec.Model
        Points, weights, steps and recording settings shared by the batch.
    eta_d, eta_g, lam, sigma : array_like, shape (n,)
        Discriminator and generator learning rates, regularization and
        bandwidth of each configuration.
    seed : int
        Study seed; with ``config_index`` it keys the noise of the chaos check.
    config_index : array_like of int, shape (n,), optional
        Index of each configuration in its study (default ``0..n-1``), so that
        a configuration's twin run does not depend on how the study is chunked.
    parallel : bool
        Use the multithreaded driver (``numba.set_num_threads`` threads).
        Leave False inside Dask workers, whose threads already run in parallel.

    Returns
    -------
    dict of ndarray
        ``error`` (n, n_record), ``final_error``, ``decay_rate`` (n,) float64;
        ``observed_phase`` (n,) int8; ``blowup_step`` and ``sign_changes``
        (n,) int32, where ``blowup_step`` is -1 when the run stayed finite and
        bounded; ``final_position`` (n, N_g, d) float64; ``chaos_separation``
        (n,) float64, which is NaN unless ``model.chaos_check``; ``method``
        (n,) int8, 1 where the history term came from expansions and 0 where
        from the direct sum; ``switch_step`` (n,) int32, the step from which
        an expansion run used the direct sum, -1 if it never did.

    Examples
    --------
    >>> import numpy as np
    >>> from gdasweep.sweeps.spec import parse_study
    >>> study = parse_study('''
    ... seed = 0
    ... [model]
    ... steps = 100
    ... true_points = [[0.0]]
    ... generated_points = [[0.1]]
    ... [grid]
    ... eta_d = [0.1]
    ... eta_g = [0.1]
    ... lam = [1.0]
    ... sigma = [1.0]
    ... [output]
    ... store = "unused.zarr"
    ... ''')
    >>> out = simulate(study.model, 0.1, 0.1, 1.0, 1.0)
    >>> out["error"].shape
    (1, 101)
    >>> bool(out["final_error"][0] < 0.1)
    True
    """
    eta_d, eta_g, lam, sigma = _as_parameters(eta_d, eta_g, lam, sigma)
    n = eta_d.shape[0]
    n_generated, dim = model.generated_points.shape
    recorded = get_record_steps(model.steps, model.record_every)
    if config_index is None:
        config_index = np.arange(n, dtype=np.int64)
    config_index = np.ascontiguousarray(config_index, dtype=np.int64)
    if config_index.shape != (n,):
        raise ValueError(f"config_index has shape {config_index.shape}, expected ({n},)")
    chaos_noise = float(model.chaos_noise) if getattr(model, "chaos_check", False) else 0.0
    out = {
        "error": np.empty((n, recorded.shape[0])),
        "final_error": np.empty(n),
        "decay_rate": np.empty(n),
        "observed_phase": np.empty(n, dtype=np.int8),
        "blowup_step": np.empty(n, dtype=np.int32),
        "sign_changes": np.empty(n, dtype=np.int32),
        "final_position": np.empty((n, n_generated, dim)),
        "chaos_separation": np.empty(n),
        "method": np.empty(n, dtype=np.int8),
        "switch_step": np.empty(n, dtype=np.int32),
    }
    order, radius = plan_methods(model, sigma)
    driver = gda.simulate_batch_parallel if parallel else gda.simulate_batch_serial
    logger.debug("simulating %d configurations, parallel=%s", n, parallel)
    driver(
        np.ascontiguousarray(model.true_points, dtype=np.float64),
        np.ascontiguousarray(model.true_weights, dtype=np.float64),
        np.ascontiguousarray(model.generated_points, dtype=np.float64),
        np.ascontiguousarray(model.generated_weights, dtype=np.float64),
        nearest_true_points(model.true_points, model.generated_points),
        eta_d, eta_g, lam, sigma,
        np.int64(model.steps), float(model.history_tolerance), DIVERGENCE_FACTOR, recorded,
        chaos_noise, np.int64(seed), config_index, order, radius, get_reach(model.expansion_tolerance),
        out["error"], out["final_error"], out["decay_rate"], out["observed_phase"],
        out["blowup_step"], out["sign_changes"], out["final_position"], out["chaos_separation"],
        out["method"], out["switch_step"],
    )
    return out


def predict(true_weights, generated_weights, eta_d, eta_g, lam, sigma, nearest=None) -> dict[str, np.ndarray]:
    """Compute the linearized theory for a batch of configurations.

    Parameters
    ----------
    true_weights : array_like, shape (N_r,)
        Weights ``p_i`` of the true points.
    generated_weights : array_like, shape (N_g,)
        Weights of the generated points.
    eta_d, eta_g, lam, sigma : array_like, shape (n,)
        One entry per configuration.
    nearest : array_like of int, shape (N_g,), optional
        The true point each generated point belongs to; all belong to the
        first true point by default.

    Returns
    -------
    dict of ndarray, each (n,)
        ``rho_generator`` (spectral radius of the generator block),
        ``dominant_real`` and ``dominant_imag`` (its dominant eigenvalue, the
        imaginary part as a magnitude), ``rho_total`` (with the discriminator
        mode), ``discriminator_eigenvalue`` (``1 - eta_d lam``),
        ``curvature_fixed_point`` (``c*``), ``rho_continuous`` and
        ``lam_opt_continuous`` (continuous-time approximation) and
        ``predicted_phase`` (int8 code).

    Examples
    --------
    No mass mismatch: a complex pair of modulus ``sqrt(1 - eta_d lam)``.

    >>> out = predict([1.0], [1.0], 0.1, 0.1, 1.0, 1.0)
    >>> round(float(out["rho_generator"][0]) ** 2, 12)
    0.9
    >>> out = predict([1.0], [0.8], 0.1, 0.1, 0.0, 1.0)
    >>> int(out["predicted_phase"][0]) == 4  # lam = 0 with a mass mismatch: no fixed point
    True
    """
    eta_d, eta_g, lam, sigma = _as_parameters(eta_d, eta_g, lam, sigma)
    true_weights = np.ascontiguousarray(np.atleast_1d(true_weights), dtype=np.float64)
    generated_weights = np.ascontiguousarray(np.atleast_1d(generated_weights), dtype=np.float64)
    for name, weights in (("true_weights", true_weights), ("generated_weights", generated_weights)):
        if weights.ndim != 1 or weights.size == 0 or not np.all(np.isfinite(weights) & (weights > 0)):
            raise ValueError(f"invalid {name} {weights.tolist()!r}: expected a non-empty list of finite values > 0")
    if nearest is None:
        nearest = np.zeros(generated_weights.shape[0], dtype=np.int64)
    nearest = np.asarray(nearest, dtype=np.int64)
    if nearest.shape != generated_weights.shape or nearest.min() < 0 or nearest.max() >= true_weights.shape[0]:
        raise ValueError(
            f"invalid nearest {nearest.tolist()!r}: expected {generated_weights.shape[0]} indices "
            f"in [0, {true_weights.shape[0]})"
        )
    mass, offsets, weights = get_clusters(true_weights, generated_weights, nearest)

    n = eta_d.shape[0]
    out = {name: np.empty(n) for name in THEORY_OUTPUTS}
    out["predicted_phase"] = np.empty(n, dtype=np.int8)
    theory.predict_batch(
        mass, offsets, weights, eta_d, eta_g, lam, sigma,
        *(out[name] for name in THEORY_OUTPUTS),
    )
    return out
