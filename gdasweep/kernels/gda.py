"""The exact nonlinear GDA loop of a kernel GAN, batched over configurations.

One step, with ``a = 1 - eta_d lam`` and the discriminator unrolled:

    grad f^{k+1}(x) = w_{k+1} sum_i p_i grad_1 K(x, x_i)
                      - eta_d sum_{s=0..k} a^{k-s} sum_j q_j grad_1 K(x, y_j^s)
    y_j^{k+1} = y_j^k + eta_g q_j grad f^{k+1}(y_j^k)

where ``x_i, p_i`` are the true points and weights, ``y_j^s, q_j`` the
generated points and weights at step ``s``, and ``w_{k+1} = a w_k + eta_d``
with ``w_0 = 0`` (equal to ``(1 - a^{k+1}) / lam``, and to ``eta_d (k + 1)``
when ``lam = 0``). The recursion for ``w`` avoids the cancellation of the
closed form when ``eta_d lam`` is tiny.

The batch axis comes first in every input and output. Nothing here raises for
a bad configuration: a state that stops being finite, or an error that grows
past ``divergence_factor * max(e_0, sigma)``, ends that configuration's run
and is recorded as diverged at that step.
"""

import math

import numpy as np
from numba import float64, int8, int32, int64, njit, prange, uint64, void

from .._compile_options import CACHE, FASTMATH
from . import expansion, phases, step
from .metrics import classify_run, fit_decay_rate, transient_end

_JIT = dict(nogil=True, cache=CACHE, fastmath=FASTMATH)

#: Codes of the ``method`` output: how a run started computing its history term.
DIRECT = 0
EXPANSION = 1


@njit(float64(float64[:, ::1], float64[::1], float64[:, ::1], int64[::1]), inline="always", **_JIT)
def generator_error(positions, weights, true_points, nearest):
    """Return ``sqrt(sum_j q_j |y_j - x_{nearest[j]}|^2 / sum_j q_j)``."""
    total = 0.0
    weight_sum = 0.0
    for j in range(positions.shape[0]):
        target = true_points[nearest[j]]
        squared = 0.0
        for axis in range(positions.shape[1]):
            diff = positions[j, axis] - target[axis]
            squared += diff * diff
        total += weights[j] * squared
        weight_sum += weights[j]
    return math.sqrt(total / weight_sum)


@njit(float64(float64[:, ::1], float64[:, ::1], float64[::1]), **_JIT)
def _weighted_distance(first, second, weights):
    """Return ``sqrt(sum_j q_j |first_j - second_j|^2 / sum_j q_j)``, the norm of ``e_k``."""
    total = 0.0
    for j in range(first.shape[0]):
        for axis in range(first.shape[1]):
            diff = first[j, axis] - second[j, axis]
            total += weights[j] * diff * diff
    return math.sqrt(total / weights.sum())


@njit(float64(float64[:, ::1], float64[:, ::1], float64[::1], float64[:, ::1], int64[::1]), inline="always", **_JIT)
def displacement_overlap(current, previous, weights, true_points, nearest):
    """Return ``sum_j q_j <y_j - x_a(j), y'_j - x_a(j)>``; negative means a reversal."""
    total = 0.0
    for j in range(current.shape[0]):
        target = true_points[nearest[j]]
        dot = 0.0
        for axis in range(current.shape[1]):
            dot += (current[j, axis] - target[axis]) * (previous[j, axis] - target[axis])
        total += weights[j] * dot
    return total


@njit(
    void(
        float64[:, ::1], float64[:, :, ::1], int64, int64, float64[::1], float64[::1],
        float64, float64, float64[:, ::1], float64[::1], float64[::1], int64[::1],
    ),
    **_JIT,
)
def add_history_sum(current, trace, k, lo, decay, weights, sigma, eta_d, gradient, squared, values, scratch):
    """Add the history term of step ``k`` to ``gradient``.

    That is ``eta_d sum_{s=lo..k} a^{k-s} sum_l q_l (y_j - y_l^s) / sigma^2 K(y_j, y_l^s)``
    for each generated point ``y_j = current[j]``. ``trace`` (N_g, d, T + 1)
    contains the history with the step axis last, so that every inner loop runs
    over contiguous memory, and ``decay[T - m] = a^m``. ``squared``,
    ``values`` and ``scratch`` are work arrays of length at least T + 1.
    """
    n_generated = trace.shape[0]
    for j in range(n_generated):
        for l in range(n_generated):
            step.add_pair_history_sum(
                current, j, trace, l, lo, k + 1, k, decay, weights[l], sigma, eta_d, gradient, squared, values, scratch,
            )


_SPLITMIX_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_SPLITMIX_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_SPLITMIX_MUL2 = np.uint64(0x94D049BB133111EB)


@njit(uint64(int64, int64), **_JIT)
def noise_key(seed, index):
    """Return a 64-bit stream key from the study seed and a configuration's index (SplitMix64).

    The key depends on nothing else, so a configuration's noise is the same
    under any chunking, worker count or order.
    """
    z = np.uint64(seed) * _SPLITMIX_GAMMA + np.uint64(index) + _SPLITMIX_GAMMA
    z = (z ^ (z >> np.uint64(30))) * _SPLITMIX_MUL1
    z = (z ^ (z >> np.uint64(27))) * _SPLITMIX_MUL2
    return z ^ (z >> np.uint64(31))


@njit(
    int64(
        float64[:, ::1], float64[::1], float64[::1], float64, float64, float64, float64,
        float64, float64, int64[::1], float64[:, :, ::1], float64[::1], int32[::1],
        float64[:, ::1], float64, uint64, int64, float64, float64, int64[::1],
    ),
    **_JIT,
)
def run_gda_perturbed(
    true_points, true_weights, generated_weights, eta_d, eta_g, lam, sigma,
    history_tolerance, divergence_factor, nearest, history, errors, flips, gradient, noise, key,
    order, radius, reach, switch,
):
    """Run the GDA loop, adding ``noise |y| (+1 or -1)`` to every new coordinate.

    The signs come from a linear congruential stream started at ``key``. With
    ``noise = 0`` and ``order = 0`` this is ``run_gda``. A relative noise of
    1e-12 mimics the rounding differences between two float64 implementations.

    With ``order > 0`` the history term comes from expansions of that
    truncation order with sources within ``radius`` sigma of their centre
    (``gdasweep.kernels.expansion``), which ignores ``history_tolerance``.
    History terms more than ``reach`` sigma away are left out. ``switch[0]``
    receives the step from which the run used the direct sum instead, or -1
    if it never did.
    """
    steps = history.shape[0] - 1
    n_generated, dim = history.shape[1], history.shape[2]
    a = 1.0 - eta_d * lam
    state = key

    # decay[steps - m] = a^m; terms older than `memory` steps are dropped.
    decay = np.empty(steps + 1)
    decay[steps] = 1.0
    memory = steps + 1
    for m in range(1, steps + 1):
        decay[steps - m] = decay[steps - m + 1] * a
        if memory > steps and (decay[steps - m] == 0.0 or abs(decay[steps - m]) < history_tolerance):
            memory = m

    trace = np.empty((n_generated, dim, steps + 1))
    squared = np.empty(steps + 1)
    values = np.empty(steps + 1)
    scratch = np.empty(steps + 1, dtype=np.int64)
    for j in range(n_generated):
        for axis in range(dim):
            trace[j, axis, 0] = history[0, j, axis]

    switch[0] = -1
    errors[0] = step.error_at(history, 0, generated_weights, true_points, nearest)
    flips[0] = 0
    bound = divergence_factor * max(errors[0], sigma)
    w = 0.0
    start = 0
    blowup = -1
    if order > 0:
        start, w, state, blowup = expansion.run_expansion_steps(
            true_points, true_weights, generated_weights, eta_d, eta_g, lam, sigma, bound, nearest,
            history, errors, flips, gradient, trace, noise, state, order, radius, reach,
        )
        if blowup < 0 and start < steps:
            switch[0] = start

    # The direct sum: for the whole run, or pruned from the step at which
    # an expansion run left its centres.
    pruned = switch[0] >= 0
    if pruned:
        blocks = steps // expansion.BLOCK + 1
        box_low = np.empty((n_generated, dim, blocks))
        box_high = np.empty((n_generated, dim, blocks))
        for s in range(start + 1):
            expansion.update_boxes(trace, s, box_low, box_high)
    else:
        box_low = np.empty((0, 0, 0))
        box_high = np.empty((0, 0, 0))

    for k in range(start, steps if blowup < 0 else start):
        w = a * w + eta_d
        current = history[k]
        for j in range(n_generated):
            for axis in range(dim):
                gradient[j, axis] = 0.0
        step.add_true_gradient(history, k, true_points, true_weights, sigma, w, gradient)
        if pruned:
            expansion.add_pruned_history_sum(
                current, trace, k, decay, generated_weights, sigma, eta_d, reach, box_low, box_high,
                gradient, squared, values, scratch,
            )
        else:
            lo = max(0, k - memory + 1)
            if lo <= k:
                add_history_sum(current, trace, k, lo, decay, generated_weights, sigma, eta_d, gradient,
                                squared, values, scratch)

        state, blown = step.advance(
            history, k, gradient, generated_weights, eta_g, noise, state, trace, errors, flips,
            true_points, nearest, bound,
        )
        if pruned:
            expansion.update_boxes(trace, k + 1, box_low, box_high)
        if blown:
            blowup = k + 1
            break

    if blowup >= 0:
        errors[blowup + 1:] = np.nan
        history[blowup + 1:] = np.nan
        flips[blowup + 1:] = flips[blowup]
    return blowup


@njit(
    int64(
        float64[:, ::1], float64[::1], float64[::1], float64, float64, float64, float64,
        float64, float64, int64[::1], float64[:, :, ::1], float64[::1], int32[::1],
        float64[:, ::1],
    ),
    **_JIT,
)
def run_gda(
    true_points, true_weights, generated_weights, eta_d, eta_g, lam, sigma,
    history_tolerance, divergence_factor, nearest, history, errors, flips, gradient,
):
    """Run the GDA loop from ``history[0]``; return the blow-up step or -1.

    ``history`` (T + 1, N_g, d) receives every generated position, ``errors``
    (T + 1,) the generator error ``e_k`` and ``flips`` (T + 1,) the running
    count of steps whose displacement reverses. History terms whose weight
    ``|a^m|`` is below ``history_tolerance`` are dropped. With a tolerance of
    0 only terms whose weight underflowed to exactly 0 are skipped, which
    changes nothing. After a blow-up at step ``k`` the entries past ``k``
    are NaN.
    """
    return run_gda_perturbed(
        true_points, true_weights, generated_weights, eta_d, eta_g, lam, sigma,
        history_tolerance, divergence_factor, nearest, history, errors, flips, gradient, 0.0, np.uint64(0),
        0, 0.0, 0.0, np.full(1, -1, dtype=np.int64),
    )


@njit(**_JIT)
def simulate_config(
    c, true_points, true_weights, generated_points, generated_weights, nearest,
    eta_d, eta_g, lam, sigma, steps, history_tolerance, divergence_factor, record_steps,
    chaos_noise, seed, config_index, order, radius, reach,
    trajectory, final_error, decay_rate, phase, blowup_step, sign_changes, final_positions, chaos_separation,
    method, switch_step,
):
    """Run configuration ``c`` of a batch and fill entry ``c`` of every output.

    ``order[c] > 0`` computes the history term by expansions of that order and
    trust radius ``radius[c]`` (in units of sigma); ``method[c]`` records 1
    then, 0 for the direct sum, and ``switch_step[c]`` the step from which the
    run fell back to the direct sum (-1: never).

    With ``chaos_noise > 0`` a twin run adds that relative noise to every
    step. A final separation above ``CHAOS_LEVEL`` of the largest error marks
    the run chaotic, and its final values are reported as NaN.
    """
    n_generated, dim = generated_points.shape
    history = np.empty((steps + 1, n_generated, dim))
    errors = np.empty(steps + 1)
    flips = np.empty(steps + 1, dtype=np.int32)
    gradient = np.empty((n_generated, dim))
    history[0] = generated_points

    switch = np.full(1, -1, dtype=np.int64)
    blowup = run_gda_perturbed(
        true_points, true_weights, generated_weights, eta_d[c], eta_g[c], lam[c], sigma[c],
        history_tolerance, divergence_factor, nearest, history, errors, flips, gradient, 0.0, np.uint64(0),
        order[c], radius[c], reach, switch,
    )
    method[c] = EXPANSION if order[c] > 0 else DIRECT
    switch_step[c] = switch[0]

    for r in range(record_steps.shape[0]):
        trajectory[c, r] = errors[record_steps[r]]
    blowup_step[c] = blowup
    sign_changes[c] = flips[steps] if blowup < 0 else flips[blowup]
    if blowup < 0:
        final_error[c] = errors[steps]
        final_positions[c] = history[steps]
    else:
        final_error[c] = np.nan
        final_positions[c] = np.nan

    start = transient_end(1.0 - eta_d[c] * lam[c])
    stop = steps if blowup < 0 else blowup - 1
    projection = np.zeros(steps + 1)
    if 0 <= start <= stop:
        # A point exactly on its true point at ``start`` leaves the projection 0.
        norm = step.overlap_at(history, start, start, generated_weights, true_points, nearest)
        for k in range(start, stop + 1):
            overlap = step.overlap_at(history, k, start, generated_weights, true_points, nearest)
            projection[k] = overlap / norm if norm > 0.0 else 0.0
    decay_rate[c] = fit_decay_rate(errors, projection, start, stop)
    phase[c] = classify_run(errors, flips, start, stop, blowup, decay_rate[c], sigma[c])

    chaos_separation[c] = np.nan
    if chaos_noise > 0.0 and blowup < 0:
        twin = np.empty_like(history)
        twin[0] = generated_points
        twin_blowup = run_gda_perturbed(
            true_points, true_weights, generated_weights, eta_d[c], eta_g[c], lam[c], sigma[c],
            history_tolerance, divergence_factor, nearest, twin, np.empty(steps + 1),
            np.empty(steps + 1, dtype=np.int32), gradient, chaos_noise, noise_key(seed, config_index[c]),
            order[c], radius[c], reach, np.full(1, -1, dtype=np.int64),
        )
        largest = errors.max()
        if twin_blowup >= 0:
            separation = np.inf
        else:
            separation = _weighted_distance(history[steps], twin[steps], generated_weights)
        chaos_separation[c] = separation / largest if largest > 0.0 else 0.0
        if chaos_separation[c] > phases.CHAOS_LEVEL:
            phase[c] = phases.CHAOTIC
            final_error[c] = np.nan
            decay_rate[c] = np.nan
            final_positions[c] = np.nan


_BATCH_SIGNATURE = void(
    float64[:, ::1], float64[::1], float64[:, ::1], float64[::1], int64[::1],
    float64[::1], float64[::1], float64[::1], float64[::1], int64, float64, float64,
    int64[::1], float64, int64, int64[::1], int64[::1], float64[::1], float64,
    float64[:, ::1], float64[::1], float64[::1], int8[::1], int32[::1],
    int32[::1], float64[:, :, ::1], float64[::1], int8[::1], int32[::1],
)

# Two compiled drivers of the same loop, kept as two Python functions because
# Numba's disk cache keys entries by function and signature, not by the
# ``parallel`` flag. Only one parallel layer is active at a time: a Dask worker
# calls the serial driver from each of its threads (the kernel releases the
# GIL), while single-process use takes the prange driver, whose thread count
# is numba.set_num_threads.


@njit(_BATCH_SIGNATURE, **_JIT)
def simulate_batch_serial(
    true_points, true_weights, generated_points, generated_weights, nearest,
    eta_d, eta_g, lam, sigma, steps, history_tolerance, divergence_factor, record_steps,
    chaos_noise, seed, config_index, order, radius, reach,
    trajectory, final_error, decay_rate, phase, blowup_step, sign_changes, final_positions, chaos_separation,
    method, switch_step,
):
    """Run every configuration of the batch, one after another."""
    for c in range(eta_d.shape[0]):
        simulate_config(
            c, true_points, true_weights, generated_points, generated_weights, nearest,
            eta_d, eta_g, lam, sigma, steps, history_tolerance, divergence_factor, record_steps,
            chaos_noise, seed, config_index, order, radius, reach,
            trajectory, final_error, decay_rate, phase, blowup_step, sign_changes, final_positions, chaos_separation,
            method, switch_step,
        )


@njit(_BATCH_SIGNATURE, parallel=True, **_JIT)
def simulate_batch_parallel(
    true_points, true_weights, generated_points, generated_weights, nearest,
    eta_d, eta_g, lam, sigma, steps, history_tolerance, divergence_factor, record_steps,
    chaos_noise, seed, config_index, order, radius, reach,
    trajectory, final_error, decay_rate, phase, blowup_step, sign_changes, final_positions, chaos_separation,
    method, switch_step,
):
    """Run the configurations of the batch on Numba's threads."""
    for c in prange(eta_d.shape[0]):
        simulate_config(
            c, true_points, true_weights, generated_points, generated_weights, nearest,
            eta_d, eta_g, lam, sigma, steps, history_tolerance, divergence_factor, record_steps,
            chaos_noise, seed, config_index, order, radius, reach,
            trajectory, final_error, decay_rate, phase, blowup_step, sign_changes, final_positions, chaos_separation,
            method, switch_step,
        )


__all__ = [
    "generator_error",
    "displacement_overlap",
    "run_gda",
    "simulate_batch_serial",
    "simulate_batch_parallel",
    "phases",
]
