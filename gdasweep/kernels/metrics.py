"""Per-run metrics computed from the generator error ``e_k`` at every step.

The decay rate is fitted only after the curvature transient has decayed,
``|1 - eta_d lam|^k < TRANSIENT_LEVEL``, because the curvature approaches its
fixed point like that power from ``c^0 = 0``. The fit also stops where
``e_k`` falls below ``FLOOR_LEVEL * e_0``. History terms of size ``e_0 a^m``
put the float64 rounding floor near ``1e-16 e_0``, and a fit that ran into it
would measure the floor instead of the dynamics.

When the error oscillates (a complex or negative dominant eigenvalue), the
least-squares slope of ``log e_k`` is pulled down by the steps where ``e_k``
passes near zero. With at least two local maxima of ``e_k`` in the window the
fit uses only those, which follow the envelope ``|z|^k``. A window shorter
than one oscillation has no such maxima, and a log-slope fit there measured
rates off by 2e-3. Such a window is fitted instead with an order-2 linear recurrence of
the signed displacement, which is exact for the two modes of the mean-mode
block. Only when that fit is degenerate (a single real mode) does the plain
log-slope fit remain. ``tests/test_metrics.py`` pins the accuracy on a grid.
"""

import math

from numba import boolean, float64, int8, int32, int64, njit

from .._compile_options import CACHE, FASTMATH
from . import phases

_JIT = dict(nogil=True, cache=CACHE, fastmath=FASTMATH)

from .phases import (  # noqa: E402  (thresholds compiled in as constants)
    ESCAPE_RADIUS,
    FLOOR_LEVEL,
    MIN_ENVELOPE_POINTS,
    MIN_FIT_STEPS,
    SINGULAR_LEVEL,
    TRANSIENT_LEVEL,
)


@njit(int64(float64), **_JIT)
def transient_end(a):
    """Return the first step ``k`` with ``|a|^k < TRANSIENT_LEVEL``, or -1 if ``|a| >= 1``."""
    magnitude = abs(a)
    if magnitude >= 1.0 or math.isnan(magnitude):
        return -1
    if magnitude == 0.0:
        return 1
    return int(math.floor(math.log(TRANSIENT_LEVEL) / math.log(magnitude))) + 1


@njit(int64(float64[::1], int64, int64), **_JIT)
def fit_window_end(errors, start, stop):
    """Return the last step of ``[start, stop]`` before ``e_k`` first drops below the floor."""
    floor = FLOOR_LEVEL * errors[0]
    for k in range(start, stop + 1):
        if not (errors[k] > floor):
            return k - 1
    return stop


@njit(boolean(float64[::1], int64), **_JIT)
def _is_local_max(errors, k):
    return errors[k] >= errors[k - 1] and errors[k] > errors[k + 1]


@njit(float64(float64[::1], int64, int64), **_JIT)
def _envelope_slope(errors, start, end):
    """Return the least-squares slope of ``log e_k`` over the local maxima in ``(start, end)``."""
    count = 0.0
    sum_k = 0.0
    sum_y = 0.0
    sum_kk = 0.0
    sum_ky = 0.0
    for k in range(start + 1, end):
        if not _is_local_max(errors, k):
            continue
        y = math.log(errors[k])
        count += 1.0
        sum_k += k
        sum_y += y
        sum_kk += k * k
        sum_ky += k * y
    return (count * sum_ky - sum_k * sum_y) / (count * sum_kk - sum_k * sum_k)


@njit(float64(float64[::1], int64, int64), **_JIT)
def _log_slope(errors, start, end):
    """Return the least-squares slope of ``log e_k`` over ``[start, end]``."""
    count = 0.0
    sum_k = 0.0
    sum_y = 0.0
    sum_kk = 0.0
    sum_ky = 0.0
    for k in range(start, end + 1):
        y = math.log(errors[k])
        count += 1.0
        sum_k += k
        sum_y += y
        sum_kk += k * k
        sum_ky += k * y
    return (count * sum_ky - sum_k * sum_y) / (count * sum_kk - sum_k * sum_k)


@njit(float64(float64[::1], int64, int64), **_JIT)
def _two_mode_rate(projection, start, end):
    """Return the larger root modulus of the order-2 recurrence fitted to ``projection``.

    Least squares for ``s_{k+1} = alpha s_k + beta s_{k-1}`` over the window;
    exact when two modes dominate, as in the mean-mode block. Returns NaN
    when the fit is degenerate (one mode alone makes the normal matrix
    singular).
    """
    s11 = 0.0
    s12 = 0.0
    s22 = 0.0
    r1 = 0.0
    r2 = 0.0
    for k in range(start + 1, end):
        s11 += projection[k] * projection[k]
        s12 += projection[k] * projection[k - 1]
        s22 += projection[k - 1] * projection[k - 1]
        r1 += projection[k + 1] * projection[k]
        r2 += projection[k + 1] * projection[k - 1]
    determinant = s11 * s22 - s12 * s12
    if not determinant > SINGULAR_LEVEL * s11 * s22:
        return math.nan
    alpha = (r1 * s22 - r2 * s12) / determinant
    beta = (r2 * s11 - r1 * s12) / determinant
    discriminant = alpha * alpha + 4.0 * beta
    if discriminant < 0.0:
        return math.sqrt(-beta)
    root = math.sqrt(discriminant)
    return max(abs(0.5 * (alpha + root)), abs(0.5 * (alpha - root)))


@njit(float64(float64[::1], float64[::1], int64, int64), **_JIT)
def fit_decay_rate(errors, projection, start, stop):
    """Return the empirical per-step decay rate of the generator error.

    ``start`` is the end of the curvature transient (-1 if it never decays),
    ``stop`` the last step simulated and ``projection[k]`` the weighted
    overlap of the displacement at step ``k`` with that at ``start``.
    Returns NaN when the window after the transient and above the floor is
    shorter than ``MIN_FIT_STEPS``.
    """
    if start < 0 or errors[0] == 0.0:
        return math.nan
    end = fit_window_end(errors, start, stop)
    if end - start + 1 < MIN_FIT_STEPS:
        return math.nan

    maxima = 0
    for k in range(start + 1, end):
        if _is_local_max(errors, k):
            maxima += 1
    if maxima >= MIN_ENVELOPE_POINTS:
        return math.exp(_envelope_slope(errors, start, end))
    rate = _two_mode_rate(projection, start, end)
    if math.isnan(rate):
        rate = math.exp(_log_slope(errors, start, end))
    return rate


@njit(int8(float64[::1], int32[::1], int64, int64, int64, float64, float64), **_JIT)
def classify_run(errors, flips, start, stop, blowup, rate, sigma):
    """Return the observed phase code of one run (see ``phases``).

    Diverged: the state stopped being finite or the error grew past the bound.
    Escaped: the final error exceeds both ``e_0`` and ``ESCAPE_RADIUS * sigma``.
    Converged or oscillating: the fitted rate is below 1 and ``e_T < e_0``, or
    ``e_T`` reached the floor. It is oscillating when the displacement
    reversed inside the fit window, or, without a fitted rate, anywhere
    before ``e_k`` reached the floor.
    Everything else has not converged within the steps simulated.
    """
    if blowup >= 0:
        return phases.DIVERGED
    steps = errors.shape[0] - 1
    initial = errors[0]
    final = errors[steps]
    if initial == 0.0:
        return phases.CONVERGED
    if final > initial and final > ESCAPE_RADIUS * sigma:
        return phases.ESCAPED

    converging = (rate < 1.0 and final < initial) or final <= FLOOR_LEVEL * initial
    if not converging:
        return phases.NOT_CONVERGED

    if math.isnan(rate):
        start = 0
    end = fit_window_end(errors, start, stop)
    reversals = flips[max(end, start)] - flips[start]
    return phases.OSCILLATING if reversals > 0 else phases.CONVERGED
