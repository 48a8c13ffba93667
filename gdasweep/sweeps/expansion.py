"""Choose, per configuration, how the GDA history term is computed.

The expansion of ``gdasweep.kernels.expansion`` truncates ``exp(u . v)`` at
total degree ``order`` for sources ``|v| <= r`` about a centre (units of
sigma). For one source of unit weight, the error this leaves in the term
``(u - v) K`` of the gradient is at most

    E(t, s) = exp(-(t - s)^2 / 2) (t P(order, t s) + s P(order - 1, t s)),

with ``t = |u|``, ``s = |v|`` and ``P`` the regularized lower incomplete gamma
function, so ``e^x P(n, x) = sum_{m >= n} x^m / m!`` is the tail of the
series. Targets farther than ``r + reach`` skip the centre, where every term is
below ``reach exp(-reach^2 / 2)``. ``truncation_order`` returns the smallest
order whose bound stays below the tolerance for ``t <= r + reach``.
"""

from __future__ import annotations

import functools
import math

import numpy as np

#: The smallest trust radius, in units of sigma.
MIN_RADIUS = 0.1
#: The largest trust radius per dimension, in units of sigma. The number of
#: terms grows as order^d, so higher dimensions use smaller balls and more centres.
MAX_RADIUS = {1: 1.0, 2: 0.5, 3: 0.5}
#: A configuration's radius is this times the largest initial distance of a
#: generated point from its nearest true point, so that overshoots up to 25%
#: stay in the first ball.
RADIUS_MARGIN = 1.25
#: Radii are rounded up to this geometric grid, whose orders are cached.
_RADIUS_GRID = np.geomspace(MIN_RADIUS, 1.0, 33)

# Sampling of the bound. The maximum over the samples must stay below half the
# tolerance, a margin for the maximum falling between two samples.
_TARGET_SAMPLES = 600
_SOURCE_SAMPLES = 60
_SAMPLING_MARGIN = 0.5
_MAX_ORDER = 200

#: Estimated cost of one expansion term per generated point and coordinate,
#: relative to one term of the direct sum. It is fitted to the two-point study
#: at T = 1000 on a 2-core AMD EPYC: about 110 us per configuration at order
#: 13 and 240 us at order 31, against 1.05 ms for the direct sum.
EXPANSION_TERM_COST = 1.3


@functools.lru_cache(maxsize=None)
def get_reach(tolerance: float) -> float:
    """Return the smallest ``D >= 1`` with ``D exp(-D^2 / 2) <= tolerance``."""
    low, high = 1.0, 1.0
    while high * math.exp(-0.5 * high * high) > tolerance:
        high *= 2.0
    for _ in range(60):
        middle = 0.5 * (low + high)
        if middle * math.exp(-0.5 * middle * middle) > tolerance:
            low = middle
        else:
            high = middle
    return high


def truncation_error_bound(order: int, radius: float, reach: float) -> float:
    """Return the sampled maximum of ``E(t, s)`` over ``t <= radius + reach`` and ``s <= radius``."""
    from scipy.special import gammainc

    t = np.linspace(0.0, radius + reach, _TARGET_SAMPLES)[:, None]
    s = np.linspace(0.0, radius, _SOURCE_SAMPLES)[None, :]
    x = t * s
    lower = gammainc(order - 1, x) if order > 1 else np.ones_like(x)
    bound = np.exp(-0.5 * (t - s) ** 2) * (t * gammainc(order, x) + s * lower)
    return float(bound.max())


@functools.lru_cache(maxsize=None)
def truncation_order(radius: float, tolerance: float) -> int:
    """Return the smallest order whose error bound is below ``tolerance`` at this radius."""
    reach = get_reach(tolerance)

    def meets(order: int) -> bool:
        return truncation_error_bound(order, radius, reach) <= _SAMPLING_MARGIN * tolerance

    if not meets(_MAX_ORDER):
        raise ValueError(f"no truncation order up to {_MAX_ORDER} reaches tolerance {tolerance!r} at radius {radius!r}")
    # The bound falls as the order grows, so a bisection finds the smallest order.
    low, high = 1, _MAX_ORDER
    while high - low > 1:
        middle = (low + high) // 2
        if meets(middle):
            high = middle
        else:
            low = middle
    return high


def count_terms(dim: int, order: int) -> int:
    """Return the number of multi-indices of ``dim`` entries with total degree below ``order``."""
    return math.comb(order - 1 + dim, dim)


def get_initial_spread(model) -> float:
    """Return the largest distance of a generated point from its nearest true point at step 0."""
    diff = model.generated_points[:, None, :] - model.true_points[None, :, :]
    return float(np.sqrt(np.min(np.sum(diff * diff, axis=-1), axis=1)).max())


def get_trust_radius(spread: float, sigma: float, dim: int) -> float:
    """Return the trust radius of one configuration, rounded up to the cached grid."""
    largest = MAX_RADIUS[dim]
    radius = min(max(RADIUS_MARGIN * spread / sigma, MIN_RADIUS), largest)
    index = int(np.searchsorted(_RADIUS_GRID, radius))
    if index < _RADIUS_GRID.shape[0] and _RADIUS_GRID[index] < largest:
        return float(_RADIUS_GRID[index])
    return largest


def estimate_expansion_cost(steps: int, n_generated: int, dim: int, order: int) -> float:
    """Return the estimated cost of a run with the expansion, in units of one direct kernel term."""
    return EXPANSION_TERM_COST * steps * n_generated * count_terms(dim, order) * (dim + 2)


def estimate_direct_cost(steps: int, n_generated: int, dim: int) -> float:
    """Return the estimated cost of a run with the direct sum, in units of one direct kernel term."""
    return 0.5 * steps * (steps + 1) * n_generated * n_generated * (dim + 1) / 2


def plan_methods(model, sigma) -> tuple[np.ndarray, np.ndarray]:
    """Return the truncation order and trust radius of every configuration.

    An order of 0 means the direct sum. ``model.method = "auto"`` takes the
    expansion where the points have at most three coordinates, no history
    tolerance is set and its estimated cost is below the direct sum's.
    """
    sigma = np.asarray(sigma, dtype=np.float64)
    order = np.zeros(sigma.shape, dtype=np.int64)
    radius = np.zeros(sigma.shape, dtype=np.float64)
    n_generated, dim = model.generated_points.shape
    if model.method == "direct":
        return order, radius
    if model.method == "auto" and (dim > max(MAX_RADIUS) or model.history_tolerance > 0.0):
        return order, radius

    spread = get_initial_spread(model)
    values, inverse = np.unique(sigma, return_inverse=True)
    plans = np.array([
        _plan_bandwidth(model.method, model.steps, n_generated, dim, spread, float(value), model.expansion_tolerance)
        for value in values
    ]).reshape(-1, 2)
    order[...] = plans[inverse.reshape(sigma.shape), 0]
    radius[...] = plans[inverse.reshape(sigma.shape), 1]
    return order, radius


@functools.lru_cache(maxsize=4096)
def _plan_bandwidth(method, steps, n_generated, dim, spread, sigma, tolerance) -> tuple[int, float]:
    """Return ``(order, radius)`` of the configurations with bandwidth ``sigma``, ``(0, 0.0)`` for the direct sum."""
    r = get_trust_radius(spread, sigma, dim)
    p = truncation_order(r, tolerance)
    if method == "auto" and estimate_expansion_cost(steps, n_generated, dim, p) >= estimate_direct_cost(
        steps, n_generated, dim
    ):
        return 0, 0.0
    return p, r
