"""The history sum of the GDA loop as truncated Taylor expansions (fast Gauss transform).

With ``u = (x - c) / sigma`` and ``v = (z - c) / sigma`` about a centre ``c``,

    K(x, z) = exp(-|u|^2 / 2) exp(-|v|^2 / 2) sum_alpha Phi_alpha(u) Phi_alpha(v),
    Phi_alpha(u) = u^alpha / sqrt(alpha!),

the multivariate Taylor form of C. Yang, R. Duraiswami and N. A. Gumerov,
"Improved fast Gauss transform", with ``1 / alpha!`` split evenly between the
two factors. A history source ``z`` of weight ``w`` adds ``w exp(-|v|^2/2) Phi(v)``
to the coefficients ``C`` of its centre, and one GDA step multiplies every
coefficient by ``a = 1 - eta_d lam``. The term the direct sum computes,
``sum w (u - v) K``, is ``-grad_u`` of ``exp(-|u|^2/2) sum C_alpha Phi_alpha(u)``:

    exp(-|u|^2/2) (u_i S - S_i),   S = sum_alpha C_alpha Phi_alpha(u),
    S_i = sum_alpha sqrt(alpha_i + 1) C_{alpha + e_i} Phi_alpha(u).

So a step costs O(number of terms) per generated point instead of O(k).
Multi-indices are truncated at total degree ``|alpha| < order``.

A source must lie within ``radius`` (in units of sigma) of its centre. Targets
farther than ``radius + reach`` from a centre skip it: every source there is
more than ``reach`` away, so each term of the gradient is below
``reach exp(-reach^2 / 2)``. ``gdasweep.sweeps.expansion`` chooses ``order``
and ``reach`` from the error bound for a tolerance and the radius per
configuration. Each run keeps at most ``MAX_CENTRES`` centres. When a new
position fits no centre and none is free, the run switches to the direct sum
without the history beyond the same reach (``gdasweep.kernels.pruned``).

Power tables stop at entries below ``NEGLIGIBLE_POWER`` and coefficients
below ``NEGLIGIBLE_COEFFICIENT`` times the generated mass are set to 0, so no
product lands in the subnormal range, where arithmetic can be 100 times slower.
"""

import math

import numpy as np
from numba import njit

from .._compile_options import CACHE, FASTMATH
from . import step

_JIT = dict(nogil=True, cache=CACHE, fastmath=FASTMATH)

#: Largest number of expansion centres of one run.
MAX_CENTRES = 8
#: Power-table entries below this are 0; a product of three stays above 1e-150.
NEGLIGIBLE_POWER = 1e-50
#: Coefficients below this times the generated mass are 0.
NEGLIGIBLE_COEFFICIENT = 1e-150
#: The common factor of a run's coefficients is folded into them outside this range.
RESCALE_LOW = 1e-100
RESCALE_HIGH = 1e100


@njit(**_JIT)
def count_terms(dim, order):
    """Return the number of multi-indices of ``dim`` entries with total degree below ``order``."""
    count = 1
    for i in range(1, dim + 1):
        count = count * (order - 1 + i) // i
    return count


@njit(**_JIT)
def build_terms(dim, order):
    """Return the multi-index tables of an expansion, in order of total degree.

    ``exponents`` (terms, dim) lists each ``alpha``. ``raised[i, t]`` is the
    index of ``alpha_t + e_i``, or ``terms`` (a column that the callers keep
    0) when its degree reaches ``order``, and
    ``raise_factor[i, t] = sqrt(alpha_t[i] + 1)``.
    """
    n_terms = count_terms(dim, order)
    exponents = np.zeros((n_terms, dim), dtype=np.int64)
    cells = order**dim
    index = np.full(cells, -1, dtype=np.int64)
    t = 0
    for degree in range(order):
        for code in range(cells):
            rest = code
            total = 0
            for axis in range(dim):
                total += rest % order
                rest //= order
            if total != degree:
                continue
            rest = code
            for axis in range(dim):
                exponents[t, axis] = rest % order
                rest //= order
            index[code] = t
            t += 1

    raised = np.full((dim, n_terms), n_terms, dtype=np.int64)
    raise_factor = np.zeros((dim, n_terms))
    for t in range(n_terms):
        code = 0
        stride = 1
        degree = 0
        for axis in range(dim):
            code += exponents[t, axis] * stride
            stride *= order
            degree += exponents[t, axis]
        stride = 1
        for axis in range(dim):
            raise_factor[axis, t] = math.sqrt(exponents[t, axis] + 1.0)
            if degree + 1 < order:
                raised[axis, t] = index[code + stride]
            stride *= order
    return exponents, raised, raise_factor


@njit(**_JIT)
def build_power_factors(order):
    """Return the factors of the power series ``u^n / sqrt(n!)`` and the smallest safe ``|u|``.

    ``factors[0, n] = 1 / sqrt(n)`` steps the series one degree and
    ``factors[1, n] = 1 / sqrt(n (n-1) (n-2) (n-3))`` four degrees. For
    ``|u|`` at least the returned value every entry is above
    ``NEGLIGIBLE_POWER``, so four independent products can fill the series.
    """
    factors = np.zeros((2, order))
    for n in range(1, order):
        factors[0, n] = 1.0 / math.sqrt(n)
    for n in range(4, order):
        factors[1, n] = 1.0 / math.sqrt(n * (n - 1.0) * (n - 2.0) * (n - 3.0))
    smallest = 0.0
    if order > 1:
        log_factorial = math.lgamma(order)
        # The factor keeps the last entry above the limit despite rounding.
        smallest = 1.000001 * math.exp((math.log(NEGLIGIBLE_POWER) + 0.5 * log_factorial) / (order - 1))
    return factors, smallest


@njit(inline="always", **_JIT)
def fill_terms(u, exponents, factors, smallest, powers, terms, row):
    """Write ``Phi_alpha(u)`` for every multi-index to ``terms[row]``.

    ``factors`` and ``smallest`` come from ``build_power_factors`` and
    ``powers`` (dim, order) is scratch. Entries below ``NEGLIGIBLE_POWER``
    are 0. For ``|u|`` of at least ``smallest`` four interleaved products
    fill the series, a quarter of the latency of one chain. Below it one
    chain stops at the first negligible entry, which for the small ``|u|``
    of a converged run comes after a few degrees.
    Rows are indexed rather than sliced here and below: every array view
    costs two atomic reference-count updates, which would dominate a step.
    """
    dim, order = powers.shape
    for axis in range(dim):
        x = u[axis]
        powers[axis, 0] = 1.0
        n = 1
        if abs(x) >= smallest and order >= 4:
            powers[axis, 1] = x
            powers[axis, 2] = x * (x * factors[0, 2])
            powers[axis, 3] = powers[axis, 2] * (x * factors[0, 3])
            x4 = (x * x) * (x * x)
            for n in range(4, order):
                powers[axis, n] = powers[axis, n - 4] * (x4 * factors[1, n])
            continue
        value = 1.0
        if abs(x) >= NEGLIGIBLE_POWER:
            while n < order:
                value = value * (x * factors[0, n])
                if abs(value) < NEGLIGIBLE_POWER:
                    break
                powers[axis, n] = value
                n += 1
        while n < order:
            powers[axis, n] = 0.0
            n += 1
    if dim == 1:
        for t in range(order):
            terms[row, t] = powers[0, t]
        return
    for t in range(exponents.shape[0]):
        value = powers[0, exponents[t, 0]]
        for axis in range(1, dim):
            value *= powers[axis, exponents[t, axis]]
        terms[row, t] = value


@njit(inline="always", **_JIT)
def _dot(first, first_row, second, second_row, n):
    """Return ``sum_t first[first_row, t] second[second_row, t]`` over ``t < n``.

    Four fixed-order partial sums shorten the chain of additions without
    letting LLVM reassociate them, so the result does not depend on the CPU.
    """
    s0 = s1 = s2 = s3 = 0.0
    t = 0
    while t + 4 <= n:
        s0 += first[first_row, t] * second[second_row, t]
        s1 += first[first_row, t + 1] * second[second_row, t + 1]
        s2 += first[first_row, t + 2] * second[second_row, t + 2]
        s3 += first[first_row, t + 3] * second[second_row, t + 3]
        t += 4
    while t < n:
        s0 += first[first_row, t] * second[second_row, t]
        t += 1
    return (s0 + s1) + (s2 + s3)


@njit(inline="always", **_JIT)
def _raised_dot(first, first_row, second, second_row, raised, raise_factor, axis, n):
    """Return ``sum_t sqrt(alpha_t[axis] + 1) first[first_row, up(t)] second[second_row, t]``.

    ``up(t) = raised[axis, t]`` is the index of ``alpha_t + e_axis``, or the
    zero column ``n`` where that degree is truncated.
    """
    s0 = s1 = s2 = s3 = 0.0
    t = 0
    while t + 4 <= n:
        s0 += raise_factor[axis, t] * first[first_row, raised[axis, t]] * second[second_row, t]
        s1 += raise_factor[axis, t + 1] * first[first_row, raised[axis, t + 1]] * second[second_row, t + 1]
        s2 += raise_factor[axis, t + 2] * first[first_row, raised[axis, t + 2]] * second[second_row, t + 2]
        s3 += raise_factor[axis, t + 3] * first[first_row, raised[axis, t + 3]] * second[second_row, t + 3]
        t += 4
    while t < n:
        s0 += raise_factor[axis, t] * first[first_row, raised[axis, t]] * second[second_row, t]
        t += 1
    return (s0 + s1) + (s2 + s3)


@njit(inline="always", **_JIT)
def _offset_squared(history, k, i, centres, m, inverse_sigma, u):
    """Write ``u = (history[k, i] - centres[m]) / sigma`` and return ``|u|^2``."""
    total = 0.0
    for axis in range(history.shape[2]):
        u[axis] = (history[k, i, axis] - centres[m, axis]) * inverse_sigma
        total += u[axis] * u[axis]
    return total


@njit(inline="always", **_JIT)
def _decay(scale, floor, centre_mass, n_centres, coefficients, n_terms):
    """Return the common factor of the coefficients, folding it into them outside [1e-100, 1e100].

    Folding sets coefficients below ``floor`` to 0 and frees the centres
    whose mass fell below it.
    """
    if RESCALE_LOW <= abs(scale) <= RESCALE_HIGH:
        return scale
    for m in range(n_centres[0]):
        for t in range(n_terms):
            value = coefficients[m, t] * scale
            coefficients[m, t] = value if abs(value) >= floor else 0.0
        centre_mass[m] *= abs(scale)
        if centre_mass[m] < floor:
            centre_mass[m] = 0.0
            for t in range(n_terms):
                coefficients[m, t] = 0.0
    return 1.0


@njit(inline="always", **_JIT)
def add_expansion_sum(
    history, k, a, scale, weights, floor, sigma, eta_d, true_points, radius, reach,
    exponents, raised, raise_factor, factors, smallest,
    centres, centre_mass, n_centres, coefficients,
    own_centre, own_terms, own_gauss, powers, terms, u, gradient,
):
    """Add the history term of step ``k`` to ``gradient`` through the expansions.

    Evaluates ``eta_d / sigma^2 sum_{s<=k} a^{k-s} sum_l q_l (y_j - y_l^s) K(y_j, y_l^s)``
    at every ``y_j = history[k, j]``, then adds the positions of step ``k``
    as sources. The true coefficients of a centre are ``scale`` times
    ``coefficients``, so one step multiplies ``scale`` by ``a`` instead of
    every coefficient. When ``scale`` leaves [1e-100, 1e100] it is folded
    into the coefficients, those below ``floor`` become 0, and centres whose
    mass ``centre_mass * |scale|``, the sum of ``q |a|^(k-s)`` over their
    sources, fell below ``floor`` are freed.
    The terms of the step's own sources are summed apart from the older
    coefficients, so the exponential of a new source is not on the path from
    one position to the next. Arrays have one more column than terms, which
    stays 0. Returns ``(fitted, scale)``; ``fitted`` is False when a position
    fits no centre and none is free, and ``gradient`` is then invalid.
    """
    n_generated, dim = history.shape[1], history.shape[2]
    n_terms = exponents.shape[0]
    inverse_sigma = 1.0 / sigma

    scale = _decay(scale * a, floor, centre_mass, n_centres, coefficients, n_terms)

    # A point that fits no centre goes to centre 0 and the caller discards
    # the result, so the function has a single exit.
    fitted = True
    for l in range(n_generated):
        # The first centre whose ball contains the point. A centre is in use
        # when it has mass or took a point of this step.
        m = -1
        for c in range(n_centres[0]):
            in_use = centre_mass[c] > 0.0
            for previous in range(l):
                in_use = in_use or own_centre[previous] == c
            squared = 0.0
            for axis in range(dim):
                offset = (history[k, l, axis] - centres[c, axis]) * inverse_sigma
                squared += offset * offset
            if in_use and squared <= radius * radius:
                m = c
                break

        # Otherwise open one in the first free slot. It sits at the nearest
        # true point when that is within the radius, since runs converge
        # there, and else at the point.
        if m < 0:
            for c in range(n_centres[0]):
                in_use = centre_mass[c] > 0.0
                for previous in range(l):
                    in_use = in_use or own_centre[previous] == c
                if not in_use:
                    m = c
                    break
            if m < 0 and n_centres[0] < centres.shape[0]:
                m = n_centres[0]
                n_centres[0] += 1
            if m >= 0:
                best = -1
                best_distance = radius * radius
                for r in range(true_points.shape[0]):
                    squared = 0.0
                    for axis in range(dim):
                        offset = (history[k, l, axis] - true_points[r, axis]) * inverse_sigma
                        squared += offset * offset
                    if squared <= best_distance:
                        best = r
                        best_distance = squared
                for axis in range(dim):
                    if best >= 0:
                        centres[m, axis] = true_points[best, axis]
                    else:
                        centres[m, axis] = history[k, l, axis]
        if m < 0:
            fitted = False
            m = 0
        own_centre[l] = m
        squared = _offset_squared(history, k, l, centres, m, inverse_sigma, u)
        fill_terms(u, exponents, factors, smallest, powers, own_terms, l)
        own_gauss[l] = math.exp(-0.5 * squared)

    # Targets: the older sources through the scaled coefficients, this
    # step's sources (all in a centre that is about to be used) directly.
    limit = (radius + reach) * (radius + reach)
    factor = eta_d / sigma
    for j in range(n_generated):
        for m in range(n_centres[0]):
            fresh = False
            for l in range(n_generated):
                fresh = fresh or own_centre[l] == m
            if centre_mass[m] == 0.0 and not fresh:
                continue
            squared = _offset_squared(history, k, j, centres, m, inverse_sigma, u)
            if squared > limit:
                continue
            if m == own_centre[j]:
                values = own_terms
                row = j
                gauss = own_gauss[j]
            else:
                fill_terms(u, exponents, factors, smallest, powers, terms, 0)
                values = terms
                row = 0
                gauss = math.exp(-0.5 * squared)
            total = scale * _dot(coefficients, m, values, row, n_terms)
            for l in range(n_generated):
                if own_centre[l] == m:
                    total += weights[l] * own_gauss[l] * _dot(own_terms, l, values, row, n_terms)
            for axis in range(dim):
                shifted = scale * _raised_dot(coefficients, m, values, row, raised, raise_factor, axis, n_terms)
                for l in range(n_generated):
                    if own_centre[l] == m:
                        shifted += weights[l] * own_gauss[l] * _raised_dot(
                            own_terms, l, values, row, raised, raise_factor, axis, n_terms
                        )
                gradient[j, axis] += factor * gauss * (u[axis] * total - shifted)

    inverse_scale = 1.0 / scale
    for l in range(n_generated):
        m = own_centre[l]
        source = weights[l] * own_gauss[l] * inverse_scale
        for t in range(n_terms):
            coefficients[m, t] += source * own_terms[l, t]
        centre_mass[m] += weights[l] * abs(inverse_scale)
    return fitted, scale


@njit(inline="always", **_JIT)
def add_expansion_sum_point(
    history, k, a, scale, weights, floor, sigma, eta_d, true_points, radius, reach,
    exponents, factors, smallest, raise_factor, centres, centre_mass, n_centres, coefficients,
    powers, own_terms, terms, offset, gradient,
):
    """Add the history term of step ``k`` for one generated point in one dimension.

    The same computation as ``add_expansion_sum``, with its loops over
    generated points, axes and multi-indices taken out: those cost twice the
    arithmetic of a step of the two-point model. Returns ``(fitted, scale)``.
    """
    n_terms = raise_factor.shape[1]
    inverse_sigma = 1.0 / sigma
    x = history[k, 0, 0]
    q = weights[0]

    scale = _decay(scale * a, floor, centre_mass, n_centres, coefficients, n_terms)

    own = -1
    for c in range(n_centres[0]):
        distance = (x - centres[c, 0]) * inverse_sigma
        if centre_mass[c] > 0.0 and distance * distance <= radius * radius:
            own = c
            break
    if own < 0:
        for c in range(n_centres[0]):
            if centre_mass[c] == 0.0:
                own = c
                break
        if own < 0 and n_centres[0] < centres.shape[0]:
            own = n_centres[0]
            n_centres[0] += 1
        if own >= 0:
            centres[own, 0] = x
            best_distance = radius * radius
            for r in range(true_points.shape[0]):
                distance = (x - true_points[r, 0]) * inverse_sigma
                if distance * distance <= best_distance:
                    centres[own, 0] = true_points[r, 0]
                    best_distance = distance * distance
    fitted = own >= 0
    if not fitted:
        own = 0

    # The own centre: older sources through the scaled coefficients, and
    # the new source (the point itself) through sum_t Phi_t^2 and its raised
    # form, so that its exponential is not on the path of the dot products.
    u = (x - centres[own, 0]) * inverse_sigma
    offset[0] = u
    fill_terms(offset, exponents, factors, smallest, powers, own_terms, 0)
    gauss = math.exp(-0.5 * (u * u))
    source = q * gauss
    # Two partial sums per dot product halve the chain of additions, and the
    # zero column ends the raised products.
    old_even = old_odd = raised_even = raised_odd = 0.0
    new_even = new_odd = fresh_even = fresh_odd = 0.0
    t = 0
    while t + 2 <= n_terms:
        term = own_terms[0, t]
        following = own_terms[0, t + 1]
        old_even += coefficients[own, t] * term
        old_odd += coefficients[own, t + 1] * following
        raised_even += raise_factor[0, t] * coefficients[own, t + 1] * term
        raised_odd += raise_factor[0, t + 1] * coefficients[own, t + 2] * following
        new_even += term * term
        new_odd += following * following
        fresh_even += raise_factor[0, t] * following * term
        fresh_odd += raise_factor[0, t + 1] * own_terms[0, t + 2] * following
        t += 2
    if t < n_terms:
        term = own_terms[0, t]
        old_even += coefficients[own, t] * term
        raised_even += raise_factor[0, t] * coefficients[own, t + 1] * term
        new_even += term * term
        fresh_even += raise_factor[0, t] * own_terms[0, t + 1] * term
    total = scale * (old_even + old_odd) + source * (new_even + new_odd)
    shifted = scale * (raised_even + raised_odd) + source * (fresh_even + fresh_odd)
    history_term = gauss * (u * total - shifted)

    limit = (radius + reach) * (radius + reach)
    for m in range(n_centres[0]):
        if m == own or centre_mass[m] == 0.0:
            continue
        v = (x - centres[m, 0]) * inverse_sigma
        if v * v > limit:
            continue
        offset[0] = v
        fill_terms(offset, exponents, factors, smallest, powers, terms, 0)
        far = 0.0
        far_raised = 0.0
        for t in range(n_terms):
            far += coefficients[m, t] * terms[0, t]
            far_raised += raise_factor[0, t] * coefficients[m, t + 1] * terms[0, t]
        history_term += math.exp(-0.5 * (v * v)) * scale * (v * far - far_raised)
    gradient[0, 0] += eta_d * inverse_sigma * history_term

    add = source / scale
    for t in range(n_terms):
        coefficients[own, t] += add * own_terms[0, t]
    centre_mass[own] += q * abs(1.0 / scale)
    return fitted, scale


@njit(**_JIT)
def run_expansion_steps(
    true_points, true_weights, weights, eta_d, eta_g, lam, sigma, bound, nearest,
    history, errors, flips, gradient, trace, noise, state, order, radius, reach,
):
    """Run GDA steps from ``history[0]`` with the history term from expansions.

    The arguments and outputs are those of ``gda.run_gda_perturbed``, and
    ``bound`` is the error past which a run has blown up. Returns
    ``(stop, w, state, blowup)``: the first step not computed (T when all
    were), the discriminator's weight ``w`` of the true points at that step,
    the noise stream state, and the blow-up step or -1. A run stops early
    when a position fits no centre, so that the caller continues it with the
    direct sum from ``stop``.
    """
    n_generated, dim = history.shape[1], history.shape[2]
    exponents, raised, raise_factor = build_terms(dim, order)
    n_terms = exponents.shape[0]
    factors, smallest = build_power_factors(order)
    return _expansion_loop(
        true_points, true_weights, weights, eta_d, eta_g, sigma, bound, nearest,
        history, errors, flips, gradient, trace, noise, state, radius, reach,
        1.0 - eta_d * lam, NEGLIGIBLE_COEFFICIENT * weights.sum(),
        exponents, raised, raise_factor, factors, smallest,
        np.zeros((MAX_CENTRES, dim)), np.zeros(MAX_CENTRES), np.zeros(1, dtype=np.int64),
        np.zeros((MAX_CENTRES, n_terms + 1)), np.zeros(n_generated, dtype=np.int64),
        np.zeros((n_generated, n_terms + 1)), np.zeros(n_generated), np.zeros((dim, order)),
        np.zeros((1, n_terms + 1)), np.zeros(dim),
    )


# Compiled without Numba's reference counting (``_nrt=False``, an option that
# Numba's own tests use, checked here with Numba 0.68.1), so the loop cannot
# allocate: the caller passes every array. With reference counting on,
# the inlined helpers made Numba increment and decrement the counts of their
# array arguments in every step, atomic operations that took half its time.
# NumPy's error model divides by zero to inf or NaN instead of raising, so a
# degenerate configuration ends as diverged instead of stopping its batch.
@njit(_nrt=False, error_model="numpy", **_JIT)
def _expansion_loop(
    true_points, true_weights, weights, eta_d, eta_g, sigma, bound, nearest,
    history, errors, flips, gradient, trace, noise, state, radius, reach, a, floor,
    exponents, raised, raise_factor, factors, smallest,
    centres, centre_mass, n_centres, coefficients,
    own_centre, own_terms, own_gauss, powers, terms, offset,
):
    """Run the steps of ``run_expansion_steps`` on its preallocated arrays."""
    # TODO: a step takes about 85 ns at order 13 on a 2-core AMD EPYC, bound by
    # the latency from one position to the next. Only runs of one point in one
    # dimension with one centre step together (``lanes.run_lanes``), so runs
    # with more points, dimensions or centres still wait here.
    steps = history.shape[0] - 1
    n_generated, dim = history.shape[1], history.shape[2]
    single = n_generated == 1 and dim == 1
    w = 0.0
    scale = 1.0
    stop = steps
    blowup = -1

    for k in range(steps):
        w_next = a * w + eta_d
        for j in range(n_generated):
            for axis in range(dim):
                gradient[j, axis] = 0.0
        step.add_true_gradient(history, k, true_points, true_weights, sigma, w_next, gradient)

        if single:
            fitted, scale = add_expansion_sum_point(
                history, k, a, scale, weights, floor, sigma, eta_d, true_points, radius, reach,
                exponents, factors, smallest, raise_factor, centres, centre_mass, n_centres, coefficients,
                powers, own_terms, terms, offset, gradient,
            )
        else:
            fitted, scale = add_expansion_sum(
                history, k, a, scale, weights, floor, sigma, eta_d, true_points, radius, reach,
                exponents, raised, raise_factor, factors, smallest,
                centres, centre_mass, n_centres, coefficients,
                own_centre, own_terms, own_gauss, powers, terms, offset, gradient,
            )
        if not fitted:
            stop = k
            break

        w = w_next
        state, blown = step.advance(
            history, k, gradient, weights, eta_g, noise, state, trace, errors, flips, true_points, nearest, bound,
        )
        if blown:
            blowup = k + 1
            stop = k + 1
            break
    return stop, w, state, blowup
