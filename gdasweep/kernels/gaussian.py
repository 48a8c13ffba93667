"""Gaussian kernel ``K(x, z) = exp(-|x - z|^2 / (2 sigma^2))`` and its gradient.

Points are rows of C-contiguous float64 arrays: one point is ``(d,)``, a point
set is ``(n, d)``. Outputs are passed in and overwritten.
"""

import math

from numba import float64, njit, void

from .._compile_options import CACHE, FASTMATH

_JIT = dict(nogil=True, cache=CACHE, fastmath=FASTMATH)


@njit(float64(float64[::1], float64[::1], float64), **_JIT)
def squared_distance(x, z, sigma):
    """Return ``|x - z|^2 / (2 sigma^2)``, the Gaussian kernel's exponent."""
    total = 0.0
    for axis in range(x.shape[0]):
        diff = x[axis] - z[axis]
        total += diff * diff
    return total / (2.0 * sigma * sigma)


@njit(float64(float64[::1], float64[::1], float64), **_JIT)
def gaussian(x, z, sigma):
    """Return ``K(x, z)``."""
    return math.exp(-squared_distance(x, z, sigma))


@njit(void(float64[::1], float64[::1], float64, float64, float64[::1]), **_JIT)
def add_gaussian_gradient(x, z, sigma, weight, out):
    """Add ``weight * grad_x K(x, z) = -weight (x - z) / sigma^2 K(x, z)`` to ``out``."""
    scale = -weight * gaussian(x, z, sigma) / (sigma * sigma)
    for axis in range(x.shape[0]):
        out[axis] += scale * (x[axis] - z[axis])


@njit(void(float64[:, ::1], float64[:, ::1], float64, float64[:, ::1]), **_JIT)
def gaussian_matrix(points_x, points_z, sigma, out):
    """Fill ``out[i, j] = K(x_i, z_j)``; shapes (n, d), (m, d) -> (n, m)."""
    for i in range(points_x.shape[0]):
        for j in range(points_z.shape[0]):
            out[i, j] = gaussian(points_x[i], points_z[j], sigma)


@njit(
    void(float64[:, ::1], float64[:, ::1], float64[::1], float64, float64, float64[:, ::1]),
    **_JIT,
)
def add_weighted_gradient_sum(points_x, points_z, weights, sigma, scale, out):
    """Add ``scale * sum_j weights[j] * grad_1 K(x_i, z_j)`` to ``out[i]``.

    Shapes: ``points_x`` (n, d), ``points_z`` (m, d), ``weights`` (m,),
    ``out`` (n, d).
    """
    for i in range(points_x.shape[0]):
        for j in range(points_z.shape[0]):
            add_gaussian_gradient(points_x[i], points_z[j], sigma, scale * weights[j], out[i])
