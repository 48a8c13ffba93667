"""Pieces of one GDA step shared by the direct and the expansion loops.

All are inlined into the step loops. The pieces run at every step index rows
of ``history`` (T + 1, N_g, d) instead of slicing them, because a view costs
two atomic reference-count updates, a large share of a step of the expansion.
The direct history sum slices its rows, since its loops run over the whole
history.
"""

import math

import numpy as np
from numba import njit

from .._compile_options import CACHE, FASTMATH
from .fastexp import exp_array

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


@njit(inline="always", **_JIT)
def _weighted_displacement_sum(weights, points, x):
    """Return ``sum_i weights[i] (x - points[i])``.

    Eight running sums in a fixed order let LLVM vectorize the reduction
    without reassociating floating-point additions, so the result does not
    depend on the CPU's vector width.
    """
    n = weights.shape[0]
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    i = 0
    while i + 8 <= n:
        s0 += weights[i] * (x - points[i])
        s1 += weights[i + 1] * (x - points[i + 1])
        s2 += weights[i + 2] * (x - points[i + 2])
        s3 += weights[i + 3] * (x - points[i + 3])
        s4 += weights[i + 4] * (x - points[i + 4])
        s5 += weights[i + 5] * (x - points[i + 5])
        s6 += weights[i + 6] * (x - points[i + 6])
        s7 += weights[i + 7] * (x - points[i + 7])
        i += 8
    tail = 0.0
    while i < n:
        tail += weights[i] * (x - points[i])
        i += 1
    return (((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))) + tail


@njit(inline="always", **_JIT)
def add_pair_history_sum(current, j, trace, l, start, stop, k, decay, weight, sigma, eta_d, gradient, squared, values, scratch):
    """Add the direct history terms of source ``l`` over steps ``start..stop-1`` to ``gradient[j]``.

    That is ``eta_d / sigma^2 sum_s a^{k-s} q_l (y_j - y_l^s) K(y_j, y_l^s)``
    at ``y_j = current[j]``, with ``trace`` (N_g, d, T + 1) the history with
    the step axis last and ``decay[T - m] = a^m``. ``squared``, ``values``
    and ``scratch`` are work arrays of length at least ``stop - start``.
    The kernel values come from ``exp_array``, whose loop LLVM vectorizes.
    Every inner loop indexes a slice from 0: with ``row[start + i]`` Numba's
    negative-index handling kept LLVM from vectorizing, 5 times slower.
    """
    n = stop - start
    steps = trace.shape[2] - 1
    dim = trace.shape[1]
    half_inv_var = -0.5 / (sigma * sigma)
    scale = eta_d / (sigma * sigma)
    exponent = squared[:n]
    kernel = values[:n]
    work = scratch[:n]
    powers = decay[steps - k + start:steps - k + stop]

    x = current[j, 0]
    row = trace[l, 0, start:stop]
    for i in range(n):
        diff = x - row[i]
        exponent[i] = half_inv_var * (diff * diff)
    for axis in range(1, dim):
        x = current[j, axis]
        row = trace[l, axis, start:stop]
        for i in range(n):
            diff = x - row[i]
            exponent[i] += half_inv_var * (diff * diff)

    exp_array(exponent, kernel, work)
    for i in range(n):
        kernel[i] *= powers[i]

    for axis in range(dim):
        total = _weighted_displacement_sum(kernel, trace[l, axis, start:stop], current[j, axis])
        gradient[j, axis] += scale * weight * total
