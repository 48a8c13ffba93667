"""Numba-compiled kernels: Gaussian kernel, exact GDA loop, metrics and theory.

Nothing in this subpackage imports Dask, xarray or Zarr, reads files or logs;
``gdasweep.sweeps.compute`` wraps these functions for callers. Names are
imported on first use, so that reading ``gdasweep.kernels.phases`` does not
load the compiled code.
"""

import importlib

_EXPORTS = {
    "add_gaussian_gradient": "gaussian",
    "add_weighted_gradient_sum": "gaussian",
    "gaussian": "gaussian",
    "gaussian_matrix": "gaussian",
    "squared_distance": "gaussian",
    "exp_array": "fastexp",
    "generator_error": "gda",
    "run_gda": "gda",
    "simulate_batch_parallel": "gda",
    "simulate_batch_serial": "gda",
    "classify_run": "metrics",
    "fit_decay_rate": "metrics",
    "transient_end": "metrics",
    "predict_batch": "theory",
}

__all__ = ["phases", *_EXPORTS]


def __getattr__(name: str):
    if name == "phases":
        return importlib.import_module(".phases", __name__)
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
