"""Pieces of one GDA step shared by the direct and the expansion loops.

All are inlined into the step loops and index rows of ``history`` (T + 1,
N_g, d) instead of slicing them: a view costs two atomic reference-count
updates, a large share of a step of the expansion.
"""

import math

import numpy as np
from numba import njit

from .._compile_options import CACHE, FASTMATH

_JIT = dict(nogil=True, cache=CACHE, fastmath=FASTMATH)

LCG_MUL = np.uint64(6364136223846793005)
LCG_ADD = np.uint64(1442695040888963407)


@njit(inline="always", **_JIT)
def error_at(history, k, weights, true_points, nearest):
    """Return the generator error ``e_k`` of ``history[k]``."""
    total = 0.0
    weight_sum = 0.0
    for j in range(history.shape[1]):
        squared = 0.0
        for axis in range(history.shape[2]):
            diff = history[k, j, axis] - true_points[nearest[j], axis]
            squared += diff * diff
        total += weights[j] * squared
        weight_sum += weights[j]
    return math.sqrt(total / weight_sum)


@njit(inline="always", **_JIT)
def overlap_at(history, k, previous, weights, true_points, nearest):
    """Return ``sum_j q_j <y_j^k - x_a(j), y_j^previous - x_a(j)>``; negative means a reversal."""
    total = 0.0
    for j in range(history.shape[1]):
        dot = 0.0
        for axis in range(history.shape[2]):
            target = true_points[nearest[j], axis]
            dot += (history[k, j, axis] - target) * (history[previous, j, axis] - target)
        total += weights[j] * dot
    return total


@njit(inline="always", **_JIT)
def add_true_gradient(history, k, true_points, true_weights, sigma, w, gradient):
    """Add ``w sum_i p_i grad_1 K(y_j, x_i)`` at every ``y_j = history[k, j]`` to ``gradient``.

    The same operations in the same order as
    ``gaussian.add_weighted_gradient_sum``, so the results are bit-identical.
    """
    for j in range(history.shape[1]):
        for i in range(true_points.shape[0]):
            total = 0.0
            for axis in range(history.shape[2]):
                diff = history[k, j, axis] - true_points[i, axis]
                total += diff * diff
            kernel = math.exp(-(total / (2.0 * sigma * sigma)))
            scale = -(w * true_weights[i]) * kernel / (sigma * sigma)
            for axis in range(history.shape[2]):
                gradient[j, axis] += scale * (history[k, j, axis] - true_points[i, axis])


@njit(inline="always", **_JIT)
def advance(history, k, gradient, weights, eta_g, noise, state, trace, errors, flips, true_points, nearest, bound):
    """Write step ``k + 1``: positions, trace, error and reversal count.

    Adds ``noise |y| (+1 or -1)`` to every new coordinate when ``noise > 0``,
    with signs from the linear congruential stream ``state``. Returns the new
    stream state and whether the error left ``bound`` (or is not finite).
    """
    n_generated, dim = gradient.shape
    for j in range(n_generated):
        step = eta_g * weights[j]
        for axis in range(dim):
            position = history[k, j, axis] + step * gradient[j, axis]
            if noise > 0.0:
                state = state * LCG_MUL + LCG_ADD
                sign = 1.0 if (state >> np.uint64(63)) == np.uint64(1) else -1.0
                position += noise * abs(position) * sign
            history[k + 1, j, axis] = position
            trace[j, axis, k + 1] = position

    error = error_at(history, k + 1, weights, true_points, nearest)
    errors[k + 1] = error
    reversed_ = overlap_at(history, k + 1, k, weights, true_points, nearest) < 0.0
    flips[k + 1] = flips[k] + (1 if reversed_ else 0)
    return state, not (error <= bound)
