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
from . import expansion, lanes, phases, pruned, step
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
    switched = switch[0] >= 0
    if switched and blowup < 0:
        shifts, offsets, box_low, box_high = pruned.build_tree(trace, start)
        blowup, state = pruned.run_pruned_steps(
            start, w, state, true_points, true_weights, generated_weights, eta_d, eta_g, a, sigma, bound, nearest,
            history, errors, flips, gradient, trace, noise, decay, reach, shifts, offsets, box_low, box_high,
            squared, values, scratch,
        )
    for k in range(start, steps if blowup < 0 and not switched else start):
        w = a * w + eta_d
        current = history[k]
        for j in range(n_generated):
            for axis in range(dim):
                gradient[j, axis] = 0.0
        step.add_true_gradient(history, k, true_points, true_weights, sigma, w, gradient)
        lo = max(0, k - memory + 1)
        if lo <= k:
            add_history_sum(current, trace, k, lo, decay, generated_weights, sigma, eta_d, gradient,
                            squared, values, scratch)

        state, blown = step.advance(
            history, k, gradient, generated_weights, eta_g, noise, state, trace, errors, flips,
            true_points, nearest, bound,
        )
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
def record_run(
    c, history, errors, flips, blowup, switch, steps, eta_d, lam, sigma, generated_weights, true_points, nearest,
    record_steps, order, trajectory, final_error, decay_rate, phase, blowup_step, sign_changes, final_positions,
    method, switch_step,
):
    """Fill entry ``c`` of the outputs from a finished run: trajectory, fit, phase and method."""
    method[c] = EXPANSION if order[c] > 0 else DIRECT
    switch_step[c] = switch
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


@njit(**_JIT)
def record_twin(c, final, twin_final, twin_blowup, largest, generated_weights,
                final_error, decay_rate, phase, final_positions, chaos_separation):
    """Record the chaos check of configuration ``c`` from the final positions of its run and twin run.

    ``largest`` is the largest error of the run. A final separation above
    ``CHAOS_LEVEL`` of it marks the run chaotic, and its final values are
    reported as NaN.
    """
    if twin_blowup >= 0:
        separation = np.inf
    else:
        separation = _weighted_distance(final, twin_final, generated_weights)
    chaos_separation[c] = separation / largest if largest > 0.0 else 0.0
    if chaos_separation[c] > phases.CHAOS_LEVEL:
        phase[c] = phases.CHAOTIC
        final_error[c] = np.nan
        decay_rate[c] = np.nan
        final_positions[c] = np.nan


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
    step (see ``record_twin``).
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
    record_run(
        c, history, errors, flips, blowup, switch[0], steps, eta_d, lam, sigma, generated_weights, true_points,
        nearest, record_steps, order, trajectory, final_error, decay_rate, phase, blowup_step, sign_changes,
        final_positions, method, switch_step,
    )

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
        record_twin(c, history[steps], twin[steps], twin_blowup, errors.max(), generated_weights,
                    final_error, decay_rate, phase, final_positions, chaos_separation)


@njit(**_JIT)
def _run_lane_group(
    members, active, true_points, true_weights, generated_points, generated_weights, nearest,
    eta_d, eta_g, lam, sigma, steps, divergence_factor, noise, seed, config_index, order, radius, reach,
):
    """Run the configurations ``members`` where ``active`` in ``lanes.run_lanes`` and return its outputs.

    Returns ``(history, errors, flips, outcome, stop_step, column)``:
    member ``i``'s values are in column ``column[i]`` of the others. Unused
    lanes pad the columns to a multiple of ``lanes.LANE_MULTIPLE``, and
    inactive members finish at once.
    """
    n_members = members.shape[0]
    largest = 1
    for i in range(n_members):
        if active[i]:
            largest = max(largest, order[members[i]])
    factors, _ = expansion.build_power_factors(largest)
    raise_factor = np.sqrt(np.arange(largest + 1) + 1.0)
    # need_table[e]: the smallest p with 2 z^(p-1) / (p-1)! <= tolerance for
    # every z = |u| r below 2^(e - 1022), e the biased binary exponent of z.
    # With |u| and every source within the ball, r <= 1, this bounds the
    # truncation error E of gdasweep.sweeps.expansion for p terms.
    tolerance = reach * math.exp(-0.5 * reach * reach)
    need_table = np.empty(1024, dtype=np.int64)
    for e in range(1024):
        log_z = (e - 1022) * math.log(2.0)
        p = 1
        while p < largest and math.log(2.0) + (p - 1) * log_z - math.lgamma(p) > math.log(tolerance):
            p += 1
        need_table[e] = p
    q = generated_weights[0]
    target = true_points[nearest[0], 0]
    start = generated_points[0, 0]
    diff = start - target
    first_error = math.sqrt((q * (diff * diff)) / q)

    # Unused lanes pad the group to a multiple of the vector loops' stride,
    # so that no loop ends in scalar iterations.
    width = (n_members + lanes.LANE_MULTIPLE - 1) // lanes.LANE_MULTIPLE * lanes.LANE_MULTIPLE
    state = np.zeros((lanes.N_STATE, width))
    streams = np.zeros(width, dtype=np.uint64)
    lane_noise = np.zeros(width)
    lane_order = np.zeros(width, dtype=np.int64)
    for i in range(width):
        state[lanes._SCALE, i] = 1.0
        state[lanes._SIGMA, i] = 1.0
        state[lanes._INVERSE_SIGMA, i] = 1.0
        state[lanes._A, i] = 1.0
        state[lanes._TARGET, i] = target
        if i >= n_members or not active[i]:
            continue
        c = members[i]
        state[lanes._X, i] = start
        state[lanes._ETA_D, i] = eta_d[c]
        state[lanes._ETA_G, i] = eta_g[c]
        state[lanes._A, i] = 1.0 - eta_d[c] * lam[c]
        state[lanes._SIGMA, i] = sigma[c]
        state[lanes._INVERSE_SIGMA, i] = 1.0 / sigma[c]
        state[lanes._RADIUS, i] = radius[c]
        state[lanes._BOUND, i] = divergence_factor * max(first_error, sigma[c])
        lane_order[i] = order[c]
        if noise > 0.0:
            lane_noise[i] = noise
            streams[i] = noise_key(seed, config_index[c])

    powers = np.zeros((largest + 2, width))
    powers[0] = 1.0
    history = np.empty((steps + 1, width))
    errors = np.empty((steps + 1, width))
    flips = np.empty((steps + 1, width), dtype=np.int32)
    history[0] = start
    errors[0] = first_error
    flips[0] = 0
    bits = np.zeros(width, dtype=np.int64)
    work = np.zeros((lanes.WORK_ROWS, width))
    outcome = np.zeros(width, dtype=np.int64)
    stop_step = np.zeros(width, dtype=np.int64)
    owner = np.empty(width, dtype=np.int64)
    lanes.run_lanes(
        steps, true_points[:, :1], true_weights, q, expansion.NEGLIGIBLE_COEFFICIENT * q, lane_noise, lane_order,
        need_table, np.zeros(width, dtype=np.int64), factors, raise_factor, state, streams, np.zeros((largest + 2, width)), powers,
        work, work[1].view(np.int64), np.zeros(width, dtype=np.int64), bits, bits.view(np.float64), history, errors,
        flips, outcome, stop_step, owner,
    )
    column = np.empty(width, dtype=np.int64)
    for c in range(width):
        column[owner[c]] = c
    return history, errors, flips, outcome, stop_step, column


@njit(**_JIT)
def _lane_columns(history, errors, flips, i, blowup):
    """Return lane ``i`` as a run's ``(history (T + 1, 1, 1), errors, flips)``, NaN past a blow-up."""
    steps = history.shape[0] - 1
    run_history = np.empty((steps + 1, 1, 1))
    run_errors = np.empty(steps + 1)
    run_flips = np.empty(steps + 1, dtype=np.int32)
    last = steps if blowup < 0 else blowup
    for k in range(last + 1):
        run_history[k, 0, 0] = history[k, i]
        run_errors[k] = errors[k, i]
        run_flips[k] = flips[k, i]
    for k in range(last + 1, steps + 1):
        run_history[k, 0, 0] = np.nan
        run_errors[k] = np.nan
        run_flips[k] = flips[last, i]
    return run_history, run_errors, run_flips


@njit(**_JIT)
def simulate_lanes(
    members, true_points, true_weights, generated_points, generated_weights, nearest,
    eta_d, eta_g, lam, sigma, steps, history_tolerance, divergence_factor, record_steps,
    chaos_noise, seed, config_index, order, radius, reach,
    trajectory, final_error, decay_rate, phase, blowup_step, sign_changes, final_positions, chaos_separation,
    method, switch_step, done,
):
    """Run the one-point, one-dimensional expansion configurations ``members`` as lanes.

    Fills the outputs of every member whose run kept one centre and sets
    ``done`` there; the caller runs the others with ``simulate_config``. A
    twin run of the chaos check that leaves its centre is run again here
    with the general loop.
    """
    width = members.shape[0]
    active = np.ones(width, dtype=np.bool_)
    history, errors, flips, outcome, stop_step, column = _run_lane_group(
        members, active, true_points, true_weights, generated_points, generated_weights, nearest,
        eta_d, eta_g, lam, sigma, steps, divergence_factor, 0.0, seed, config_index, order, radius, reach,
    )
    finals = np.empty((width, 1, 1))
    largest = np.empty(width)
    twin_active = np.zeros(width, dtype=np.bool_)
    for i in range(width):
        lane = column[i]
        if outcome[lane] == lanes.LEFT_CENTRE:
            continue
        c = members[i]
        blowup = stop_step[lane] if outcome[lane] == lanes.BLOWN_UP else -1
        run_history, run_errors, run_flips = _lane_columns(history, errors, flips, lane, blowup)
        record_run(
            c, run_history, run_errors, run_flips, blowup, -1, steps, eta_d, lam, sigma, generated_weights,
            true_points, nearest, record_steps, order, trajectory, final_error, decay_rate, phase, blowup_step,
            sign_changes, final_positions, method, switch_step,
        )
        chaos_separation[c] = np.nan
        done[c] = True
        finals[i] = run_history[steps]
        largest[i] = run_errors.max()
        twin_active[i] = chaos_noise > 0.0 and blowup < 0
    if not twin_active.any():
        return

    history, errors, flips, outcome, stop_step, column = _run_lane_group(
        members, twin_active, true_points, true_weights, generated_points, generated_weights, nearest,
        eta_d, eta_g, lam, sigma, steps, divergence_factor, chaos_noise, seed, config_index, order, radius, reach,
    )
    twin_final = np.empty((1, 1))
    gradient = np.empty((1, 1))
    for i in range(width):
        if not twin_active[i]:
            continue
        c = members[i]
        lane = column[i]
        if outcome[lane] == lanes.LEFT_CENTRE:
            twin = np.empty((steps + 1, 1, 1))
            twin[0] = generated_points
            twin_blowup = run_gda_perturbed(
                true_points, true_weights, generated_weights, eta_d[c], eta_g[c], lam[c], sigma[c],
                history_tolerance, divergence_factor, nearest, twin, np.empty(steps + 1),
                np.empty(steps + 1, dtype=np.int32), gradient, chaos_noise, noise_key(seed, config_index[c]),
                order[c], radius[c], reach, np.full(1, -1, dtype=np.int64),
            )
            twin_final[0, 0] = twin[steps, 0, 0]
        else:
            twin_blowup = stop_step[lane] if outcome[lane] == lanes.BLOWN_UP else -1
            twin_final[0, 0] = history[steps, lane]
        record_twin(c, finals[i], twin_final, twin_blowup, largest[i], generated_weights,
                    final_error, decay_rate, phase, final_positions, chaos_separation)


@njit(**_JIT)
def lane_groups(generated_points, order):
    """Return the configurations to run as lanes, sorted by order, and the start of each group.

    Only runs of one generated point in one dimension with the expansion
    qualify. Sorting by order keeps lanes of similar cost together.
    """
    if generated_points.shape[0] != 1 or generated_points.shape[1] != 1:
        return np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64)
    ranked = np.argsort(order, kind="mergesort")
    count = 0
    for c in range(order.shape[0]):
        count += 1 if order[c] > 0 else 0
    members = ranked[order.shape[0] - count:]
    n_groups = (count + lanes.LANES - 1) // lanes.LANES
    bounds = np.empty(n_groups + 1, dtype=np.int64)
    for g in range(n_groups + 1):
        bounds[g] = min(g * lanes.LANES, count)
    return members, bounds


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
    """Run every configuration of the batch, one after another, one-point expansion runs as lanes."""
    done = np.zeros(eta_d.shape[0], dtype=np.bool_)
    members, bounds = lane_groups(generated_points, order)
    for g in range(bounds.shape[0] - 1):
        simulate_lanes(
            members[bounds[g]:bounds[g + 1]], true_points, true_weights, generated_points, generated_weights,
            nearest, eta_d, eta_g, lam, sigma, steps, history_tolerance, divergence_factor, record_steps,
            chaos_noise, seed, config_index, order, radius, reach,
            trajectory, final_error, decay_rate, phase, blowup_step, sign_changes, final_positions,
            chaos_separation, method, switch_step, done,
        )
    for c in range(eta_d.shape[0]):
        if done[c]:
            continue
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
    """Run the configurations of the batch on Numba's threads, one-point expansion runs as lanes."""
    done = np.zeros(eta_d.shape[0], dtype=np.bool_)
    members, bounds = lane_groups(generated_points, order)
    for g in prange(bounds.shape[0] - 1):
        simulate_lanes(
            members[bounds[g]:bounds[g + 1]], true_points, true_weights, generated_points, generated_weights,
            nearest, eta_d, eta_g, lam, sigma, steps, history_tolerance, divergence_factor, record_steps,
            chaos_noise, seed, config_index, order, radius, reach,
            trajectory, final_error, decay_rate, phase, blowup_step, sign_changes, final_positions,
            chaos_separation, method, switch_step, done,
        )
    for c in prange(eta_d.shape[0]):
        if done[c]:
            continue
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
