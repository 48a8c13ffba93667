"""Numba-compiled kernels: Gaussian kernel, exact GDA loop, metrics and theory.

Nothing in this subpackage imports Dask, xarray or Zarr, reads files or logs;
``gdasweep.sweeps.compute`` wraps these functions for callers.
"""

from . import phases
from .gaussian import (
    add_gaussian_gradient,
    add_weighted_gradient_sum,
    gaussian,
    gaussian_matrix,
    squared_distance,
)
from .gda import generator_error, run_gda, simulate_batch_parallel, simulate_batch_serial
from .metrics import classify_run, fit_decay_rate, transient_end
from .theory import predict_batch

__all__ = [
    "phases",
    "add_gaussian_gradient",
    "add_weighted_gradient_sum",
    "gaussian",
    "gaussian_matrix",
    "squared_distance",
    "generator_error",
    "run_gda",
    "simulate_batch_parallel",
    "simulate_batch_serial",
    "classify_run",
    "fit_decay_rate",
    "transient_end",
    "predict_batch",
]
