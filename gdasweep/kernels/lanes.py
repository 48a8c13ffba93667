"""The expansion step of one generated point in one dimension, for many runs at once.

A run of the expansion spends most of a step waiting: the power table, the dot
products and two exponentials lie on the path from one position to the next.
``run_lanes`` steps up to ``LANES`` runs together, every operation a loop over
the runs ("lanes") that LLVM turns into vector instructions, so that the
waits of the runs overlap.

Each lane computes what ``expansion.add_expansion_sum_point`` does for a run
that keeps a single centre, with four differences:

- a step uses only the terms that the lane's distance ``|u|`` from its
  centre needs for the tolerance, at most its order, so a converging run
  gets cheaper;
- the exponential comes from the arithmetic of ``fastexp`` (within 1 ulp)
  and, for ``exp(-u^2 / 2)``, from a Taylor polynomial;
- the power table always takes four interleaved products, and its entries
  below ``NEGLIGIBLE_POWER`` are 0;
- the new source is not evaluated at itself. Its term ``(x - x) K(x, x)``
  is exactly 0 in the direct sum, while the truncated series leaves an
  error of the order of the tolerance there.

A lane's arithmetic does not depend on the other lanes. Every lane runs the
same operations in the same order, and its power table is 0 past the terms it
needs, so the extra terms that other lanes need add exact zeros. A run gives
the same bits in any group and position.

A lane stops when its run blows up, finishes, or reaches a position outside
the ball of a centre that has mass. The caller runs such a run again from
step 0 with the general expansion loop, which opens more centres.
"""

import math

import numpy as np
from numba import njit

from .._compile_options import CACHE, FASTMATH
from . import fastexp
from .expansion import NEGLIGIBLE_POWER, RESCALE_HIGH, RESCALE_LOW
from .step import LCG_ADD, LCG_MUL

_JIT = dict(nogil=True, cache=CACHE, fastmath=FASTMATH)

#: The largest number of runs stepped together. Per run, groups of 48 to 96
#: took about 15% less time than groups of 32 on a 2-core AMD EPYC.
LANES = 64
#: Groups are padded with unused lanes to a multiple of this, the lanes that
#: one iteration of the vectorized loops takes on a 2-core AMD EPYC (Numba
#: 0.68.1). Lanes past a multiple run as scalar iterations: 36 lanes took
#: longer than 40.
LANE_MULTIPLE = 8

#: Codes of ``outcome``, the reason a lane stopped.
RUNNING = 0
FINISHED = 1
BLOWN_UP = 2
LEFT_CENTRE = 3

# Rows of the per-lane scalars in ``state``.
_X = 0
_W = 1
_SCALE = 2
_CENTRE = 3
_MASS = 4
_ETA_D = 5
_ETA_G = 6
_A = 7
_SIGMA = 8
_INVERSE_SIGMA = 9
_RADIUS = 10
_BOUND = 11
_TARGET = 12
N_STATE = 13

_T0, _T1, _T2, _T3, _T4, _T5, _T6, _T7, _T8, _T9, _T10, _T11, _T12, _T13, _T14, _T15, _T16 = (
    1.0 / math.factorial(n) for n in range(17)
)
#: Rows of the scratch array ``work``.
WORK_ROWS = 8


@njit(inline="always", **_JIT)
def _exp_lanes(t, out, bits, scale, lanes):
    """Write ``exp(t[c])`` to ``out[c]`` for the first ``lanes`` lanes, as ``fastexp.exp_array`` does.

    ``scale`` is a float64 view of the int64 array ``bits``.
    """
    # The scale 2^k first and the polynomial second, each loop writing one
    # array so that both vectorize.
    for c in range(lanes):
        clipped = max(t[c], fastexp._SMALLEST)
        k = math.floor(clipped * fastexp._INV_LN2 + 0.5)
        bits[c] = (np.int64(k) + 1023) << 52
    for c in range(lanes):
        x = t[c]
        clipped = max(x, fastexp._SMALLEST)
        k = math.floor(clipped * fastexp._INV_LN2 + 0.5)
        out[c] = (fastexp.reduced_exp(clipped, k) if x >= fastexp._SMALLEST else 0.0) * scale[c]


@njit(inline="always", **_JIT)
def _exp_half_ball(t):
    """Return ``exp(t)`` for ``-1/2 <= t <= 0`` from its Taylor polynomial of degree 16."""
    p = _T16
    p = p * t + _T15
    p = p * t + _T14
    p = p * t + _T13
    p = p * t + _T12
    p = p * t + _T11
    p = p * t + _T10
    p = p * t + _T9
    p = p * t + _T8
    p = p * t + _T7
    p = p * t + _T6
    p = p * t + _T5
    p = p * t + _T4
    p = p * t + _T3
    p = p * t + _T2
    p = p * t + _T1
    return p * t + _T0


@njit(inline="always", **_JIT)
def _stop_lane(c, k, reason, outcome, stop_step, state):
    """Record why and at which step lane ``c`` stopped, and freeze it.

    A frozen lane goes on computing at its centre with zero learning rates
    and no decay, so its values stay finite and normal and cost nothing extra.
    """
    outcome[c] = reason
    stop_step[c] = k
    state[_ETA_D, c] = 0.0
    state[_ETA_G, c] = 0.0
    state[_A, c] = 1.0
    state[_X, c] = state[_CENTRE, c]


@njit(inline="always", **_JIT)
def _swap_columns(values, rows, first, second):
    """Swap columns ``first`` and ``second`` of the first ``rows`` rows of ``values``."""
    for row in range(rows):
        first_value = values[row, first]
        values[row, first] = values[row, second]
        values[row, second] = first_value


@njit(inline="always", **_JIT)
def _swap_entries(values, first, second):
    """Swap entries ``first`` and ``second`` of ``values``."""
    first_value = values[first]
    values[first] = values[second]
    values[second] = first_value


@njit(_nrt=False, **_JIT)
def _compact_lanes(
    lanes, written, outcome, owner, order, noise, streams, state, coefficients, powers, history, errors, flips,
    stop_step,
):
    """Move the running lanes among the first ``lanes`` columns before the stopped ones, and return the new lane count.

    Swaps whole lanes: every per-lane value and the first ``written`` rows of
    ``history``, ``errors`` and ``flips``. ``owner`` follows the lanes' first
    columns. The count returned covers the running lanes, rounded up to a
    multiple of ``LANE_MULTIPLE``, so the loops skip stopped lanes at the end.
    """
    low = 0
    high = lanes - 1
    while True:
        while low < high and outcome[low] == RUNNING:
            low += 1
        while high > low and outcome[high] != RUNNING:
            high -= 1
        if low >= high:
            break
        _swap_columns(state, state.shape[0], low, high)
        _swap_columns(coefficients, coefficients.shape[0], low, high)
        _swap_columns(powers, powers.shape[0], low, high)
        _swap_columns(history, written, low, high)
        _swap_columns(errors, written, low, high)
        _swap_columns(flips, written, low, high)
        _swap_entries(outcome, low, high)
        _swap_entries(owner, low, high)
        _swap_entries(order, low, high)
        _swap_entries(noise, low, high)
        _swap_entries(streams, low, high)
        _swap_entries(stop_step, low, high)
    running = 0
    for c in range(lanes):
        running += 1 if outcome[c] == RUNNING else 0
    return (running + LANE_MULTIPLE - 1) // LANE_MULTIPLE * LANE_MULTIPLE


@njit(_nrt=False, **_JIT)
def _stop_flagged_lanes(
    k, reason, written, lanes, flags, outcome, owner, order, noise, streams, state, coefficients, powers,
    history, errors, flips, stop_step,
):
    """Stop the lanes whose ``flags`` entry is set, at step ``k`` for ``reason``, and return ``(running, lanes)``.

    ``running`` is the number of lanes still running. When at least
    ``LANE_MULTIPLE`` of the first ``lanes`` columns have stopped, the
    running lanes move to the front (``_compact_lanes``) and ``lanes``
    shrinks.
    """
    running = 0
    for c in range(lanes):
        if flags[c] > 0:
            _stop_lane(c, k, reason, outcome, stop_step, state)
        running += 1 if outcome[c] == RUNNING else 0
    if 0 < running <= lanes - LANE_MULTIPLE:
        lanes = _compact_lanes(
            lanes, written, outcome, owner, order, noise, streams, state, coefficients, powers, history, errors,
            flips, stop_step,
        )
    return running, lanes


@njit(_nrt=False, error_model="numpy", **_JIT)
def run_lanes(
    steps, true_points, true_weights, q, floor, noise, order, need_table, need, factors, raise_factor,
    state, streams, coefficients, powers, work, bits_exponent, flags, bits, bits_float, history, errors, flips, outcome,
    stop_step, owner,
):
    """Step one-point runs in one dimension together from step 0 until every lane stops.

    The lanes are the columns of every two-dimensional argument. ``state``
    (N_STATE, lanes) contains the scalars of each lane: position, weight ``w``,
    common factor, centre, mass, learning rates, decay ``a``, bandwidth and
    its inverse, trust radius, blow-up bound and the true point its error is
    measured to. ``streams`` contains the noise streams and ``noise`` the
    relative noise of every lane. ``order`` is each lane's truncation order,
    0 for an unused lane. ``need_table[e]`` is the number of terms that meets
    the tolerance when ``|u| r`` has the biased binary exponent ``e``, and
    ``need`` receives the count each lane used last, at most its order. A
    lane's power table is 0 past its count. ``coefficients`` and ``powers``
    (largest order + 2, lanes) end in zero rows. ``history``, ``errors`` and
    ``flips`` (T + 1, lanes) receive positions, errors and reversal counts
    from step 1 on. ``outcome`` and ``stop_step`` receive the reason and the
    step at which each lane stopped. ``work`` (WORK_ROWS, lanes) with the
    int64 view ``bits_exponent`` of its row 1, ``flags`` (int64) and ``bits``
    with its float64 view ``bits_float`` are scratch.

    Stopped lanes move behind the running ones (``_compact_lanes``), so the
    lanes leave their columns: ``owner[c]`` receives the lane whose values
    and outputs end in column ``c``. Every argument indexed by lane is
    permuted that way, ``need`` and the scratch arrays excepted.

    Every loop over the lanes writes one array, because LLVM does not
    vectorize a loop that writes several: it would check too many pairs of
    arrays for overlap. The lane count is not a compile-time constant,
    because LLVM unrolls loops of constant length instead of vectorizing them.
    """
    columns = state.shape[1]
    n_terms = powers.shape[0] - 2
    n_true = true_points.shape[0]
    x = state[_X]
    w = state[_W]
    scale = state[_SCALE]
    centre = state[_CENTRE]
    mass = state[_MASS]
    eta_d = state[_ETA_D]
    eta_g = state[_ETA_G]
    a = state[_A]
    sigma = state[_SIGMA]
    inverse_sigma = state[_INVERSE_SIGMA]
    radius = state[_RADIUS]
    bound = state[_BOUND]
    target = state[_TARGET]
    gradient = work[0]
    exponent = work[1]
    kernel = work[2]
    gauss = work[3]
    fourth = work[4]
    derivative = work[5]
    offsets = work[6]
    add = work[7]

    for c in range(columns):
        outcome[c] = RUNNING if order[c] > 0 else FINISHED
        owner[c] = c
    lanes = _compact_lanes(
        columns, 1, outcome, owner, order, noise, streams, state, coefficients, powers, history, errors, flips,
        stop_step,
    )

    for k in range(steps):
        # Decay, folding the common factor into the coefficients when it
        # leaves [1e-100, 1e100], and (re)placing centres without mass.
        for c in range(lanes):
            w[c] = a[c] * w[c] + eta_d[c]
        count = 0
        for c in range(lanes):
            value = scale[c] * a[c]
            scale[c] = value
            inside = (abs(value) >= RESCALE_LOW) & (abs(value) <= RESCALE_HIGH)
            count += 0 if inside else 1
        if count > 0:
            for c in range(lanes):
                value = scale[c]
                if RESCALE_LOW <= abs(value) <= RESCALE_HIGH:
                    continue
                for t in range(n_terms):
                    folded = coefficients[t, c] * value
                    coefficients[t, c] = folded if abs(folded) >= floor else 0.0
                mass[c] *= abs(value)
                if mass[c] < floor:
                    mass[c] = 0.0
                    for t in range(n_terms):
                        coefficients[t, c] = 0.0
                scale[c] = 1.0
        # Every centre is placed at step 0, and again after a fold freed it.
        if k == 0 or count > 0:
            for c in range(lanes):
                if mass[c] != 0.0:
                    continue
                best = radius[c] * radius[c]
                centre[c] = x[c]
                for r in range(n_true):
                    distance = (x[c] - true_points[r, 0]) * inverse_sigma[c]
                    if distance * distance <= best:
                        centre[c] = true_points[r, 0]
                        best = distance * distance

        # A position outside the ball of a centre that kept mass after the
        # decay needs a second centre: the lane stops, and the caller runs it
        # again. A centre whose mass the decay freed was placed anew above.
        count = 0
        for c in range(lanes):
            offset = (x[c] - centre[c]) * inverse_sigma[c]
            outside = (mass[c] > 0.0) & (offset * offset > radius[c] * radius[c]) & (outcome[c] == RUNNING)
            flags[c] = 1 if outside else 0
            count += 1 if outside else 0
        if count > 0:
            running, lanes = _stop_flagged_lanes(
                k, LEFT_CENTRE, k + 1, lanes, flags, outcome, owner, order, noise, streams, state, coefficients,
                powers, history, errors, flips, stop_step,
            )
            if running == 0:
                break

        # The true points' term, w sum_i p_i grad_1 K(x, x_i).
        for i in range(n_true):
            point = true_points[i, 0]
            weight = true_weights[i]
            for c in range(lanes):
                diff = x[c] - point
                exponent[c] = -((diff * diff) / (2.0 * sigma[c] * sigma[c]))
            _exp_lanes(exponent, kernel, bits, bits_float, lanes)
            for c in range(lanes):
                diff = x[c] - point
                term = (-(w[c] * weight) * kernel[c] / (sigma[c] * sigma[c])) * diff
                gradient[c] = gradient[c] + term if i > 0 else term

        # exp(-u^2 / 2) and the power table of u = (x - centre) / sigma.
        # Inside the ball |u| <= r <= 1, so the argument lies in [-1/2, 0],
        # where the Taylor polynomial of degree 16 truncates exp by below 1e-19.
        for c in range(lanes):
            u = (x[c] - centre[c]) * inverse_sigma[c]
            gauss[c] = _exp_half_ball(-0.5 * (u * u))
        # The number of terms each lane needs at its |u|, at most its order,
        # looked up by the binary exponent of z = |u| r.
        for c in range(lanes):
            exponent[c] = abs((x[c] - centre[c]) * inverse_sigma[c]) * radius[c]
        terms = 1
        for c in range(lanes):
            binade = (bits_exponent[c] >> 52) & 2047
            p = min(need_table[min(binade, 1023)], order[c])
            need[c] = p
            terms = max(terms, p)
        first = powers[1]
        for c in range(lanes):
            u = (x[c] - centre[c]) * inverse_sigma[c]
            value = u if abs(u) >= NEGLIGIBLE_POWER else 0.0
            first[c] = value if need[c] > 1 else 0.0
        for n in range(2, min(4, terms)):
            earlier = powers[n - 1]
            current = powers[n]
            factor = factors[0, n]
            for c in range(lanes):
                value = earlier[c] * (first[c] * factor)
                current[c] = value if (abs(value) >= NEGLIGIBLE_POWER) & (n < need[c]) else 0.0
        for c in range(lanes):
            fourth[c] = (first[c] * first[c]) * (first[c] * first[c])
        for n in range(4, terms):
            earlier = powers[n - 4]
            current = powers[n]
            factor = factors[1, n]
            for c in range(lanes):
                value = earlier[c] * (fourth[c] * factor)
                current[c] = value if (abs(value) >= NEGLIGIBLE_POWER) & (n < need[c]) else 0.0

        # u S - S_1 with S = sum_t C_t Phi_t(u) and S_1 = sum_t sqrt(t + 1)
        # C_{t+1} Phi_t(u), over the older sources, in one pass:
        # sum_t C_t (u Phi_t - sqrt(t) Phi_{t-1}) for t <= terms, where
        # Phi_0 = 1 and the truncated Phi_terms counts as 0.
        for c in range(lanes):
            offsets[c] = (x[c] - centre[c]) * inverse_sigma[c]
        coefficient = coefficients[0]
        for c in range(lanes):
            derivative[c] = coefficient[c] * offsets[c]
        for t in range(1, terms):
            term = powers[t]
            previous = powers[t - 1]
            coefficient = coefficients[t]
            factor = raise_factor[t - 1]
            for c in range(lanes):
                derivative[c] += coefficient[c] * (offsets[c] * term[c] - factor * previous[c])
        previous = powers[terms - 1]
        coefficient = coefficients[terms]
        factor = raise_factor[terms - 1]
        for c in range(lanes):
            derivative[c] -= coefficient[c] * (factor * previous[c])

        for c in range(lanes):
            history_term = gauss[c] * scale[c] * derivative[c]
            gradient[c] += eta_d[c] * inverse_sigma[c] * history_term
        for c in range(lanes):
            add[c] = (q * gauss[c]) / scale[c]
        for c in range(lanes):
            mass[c] += q * abs(1.0 / scale[c])
        for t in range(terms):
            coefficient = coefficients[t]
            term = powers[t]
            for c in range(lanes):
                coefficient[c] += add[c] * term[c]

        # The generator step with its noise, error and reversal count.
        row = history[k + 1]
        for c in range(lanes):
            stepped = x[c] + (eta_g[c] * q) * gradient[c]
            stream = streams[c] * LCG_MUL + LCG_ADD
            sign = 1.0 if (stream >> np.uint64(63)) == np.uint64(1) else -1.0
            row[c] = stepped + noise[c] * abs(stepped) * sign if noise[c] > 0.0 else stepped
        for c in range(lanes):
            stream = streams[c] * LCG_MUL + LCG_ADD
            streams[c] = stream if noise[c] > 0.0 else streams[c]
        error_row = errors[k + 1]
        for c in range(lanes):
            diff = row[c] - target[c]
            error_row[c] = math.sqrt((q * (diff * diff)) / q)
        flip_row = flips[k + 1]
        previous = flips[k]
        for c in range(lanes):
            reversed_ = q * ((row[c] - target[c]) * (x[c] - target[c])) < 0.0
            flip_row[c] = previous[c] + (1 if reversed_ else 0)
        for c in range(lanes):
            x[c] = row[c]
        count = 0
        for c in range(lanes):
            blown = (~(error_row[c] <= bound[c])) & (outcome[c] == RUNNING)
            flags[c] = 1 if blown else 0
            count += 1 if blown else 0
        if count > 0:
            running, lanes = _stop_flagged_lanes(
                k + 1, BLOWN_UP, k + 2, lanes, flags, outcome, owner, order, noise, streams, state, coefficients,
                powers, history, errors, flips, stop_step,
            )
            if running == 0:
                break

    for c in range(columns):
        if outcome[c] == RUNNING:
            _stop_lane(c, steps, FINISHED, outcome, stop_step, state)
