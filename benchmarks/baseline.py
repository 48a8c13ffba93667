"""A plain per-configuration Numba loop of the exact GDA dynamics: the baseline.

It is the straightforward compiled version of the update, one configuration
per call, with ``math.exp`` in the innermost loop and the history summed from
the newest step back. ``run.py`` measures the batched kernel against it.
"""

import math

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def plain_gda(true_points, true_weights, generated, generated_weights, eta_d, eta_g, lam, sigma, steps):
    """Return every generated position, shape (steps + 1, N_g, d)."""
    n_generated, dim = generated.shape
    history = np.empty((steps + 1, n_generated, dim))
    history[0] = generated
    gradient = np.empty((n_generated, dim))
    a = 1.0 - eta_d * lam
    inv_var = 1.0 / (sigma * sigma)
    w = 0.0
    for k in range(steps):
        w = a * w + eta_d
        gradient[:, :] = 0.0
        for j in range(n_generated):
            for i in range(true_points.shape[0]):
                squared = 0.0
                for axis in range(dim):
                    diff = history[k, j, axis] - true_points[i, axis]
                    squared += diff * diff
                factor = -w * true_weights[i] * inv_var * math.exp(-0.5 * squared * inv_var)
                for axis in range(dim):
                    gradient[j, axis] += factor * (history[k, j, axis] - true_points[i, axis])
        decay = 1.0
        for s in range(k, -1, -1):
            if decay == 0.0:
                break
            for j in range(n_generated):
                for l in range(n_generated):
                    squared = 0.0
                    for axis in range(dim):
                        diff = history[k, j, axis] - history[s, l, axis]
                        squared += diff * diff
                    factor = eta_d * decay * generated_weights[l] * inv_var * math.exp(-0.5 * squared * inv_var)
                    for axis in range(dim):
                        gradient[j, axis] += factor * (history[k, j, axis] - history[s, l, axis])
            decay *= a
        for j in range(n_generated):
            for axis in range(dim):
                history[k + 1, j, axis] = history[k, j, axis] + eta_g * generated_weights[j] * gradient[j, axis]
    return history
