"""Linearized theory of GDA near the equilibrium, vectorized over configurations.

Each true point with weight ``p`` and the generated points assigned to it
(weights ``q_j``, total ``Q``, mass mismatch ``delta = p - Q``) form a
cluster. Near ``y_j = x`` the discriminator's gradient is ``b + c (y - x)``.
The curvature ``c`` relaxes with factor ``a = 1 - eta_d lam`` to
``c* = -delta / (lam sigma^2)``, and linearizing at ``c*`` gives the generator
block, the ``(n + 1) x (n + 1)`` matrix of the recursion of ``(b, y_1..y_n)``:

    M[0, 0] = a                  M[0, 1 + l] = -eta_d q_l / sigma^2
    M[1 + j, 0] = eta_g q_j a    M[1 + j, 1 + l] = [j == l] (1 + eta_g q_j c*)
                                                   - eta_g eta_d q_j q_l / sigma^2

With equal weights ``q`` the block splits into ``n - 1`` spread modes with
eigenvalue ``1 + eta_g q c*`` and the 2 x 2 mean-mode block
``[[a, -eta_d Q / sigma^2], [eta_g q a, 1 + eta_g q c* - eta_g eta_d q Q / sigma^2]]``,
whose determinant is ``a (1 + eta_g q c*)``. Both are solved in closed form.
Unequal weights go through LAPACK's general eigenvalue solver.
"""

import math

import numpy as np
from numba import complex128, float64, int8, int64, njit, void

from .._compile_options import CACHE, FASTMATH
from . import phases

_JIT = dict(nogil=True, cache=CACHE, fastmath=FASTMATH)

from .phases import MARGINAL_TOLERANCE, REAL_TOLERANCE  # noqa: E402


@njit(complex128(float64, float64, float64, float64), **_JIT)
def dominant_root(trace, determinant, fallback_re, fallback_im):
    """Return the root of ``z^2 - trace z + determinant`` with the larger modulus."""
    discriminant = trace * trace - 4.0 * determinant
    if discriminant >= 0.0:
        root = math.sqrt(discriminant)
        larger = 0.5 * (trace + root) if trace >= 0.0 else 0.5 * (trace - root)
        return complex(larger, 0.0)
    if math.isnan(discriminant):
        return complex(fallback_re, fallback_im)
    return complex(0.5 * trace, 0.5 * math.sqrt(-discriminant))


@njit(complex128(float64[::1], float64, float64, float64, float64, float64), **_JIT)
def generator_eigenvalue(weights, a, curvature, eta_d, eta_g, sigma):
    """Return the dominant eigenvalue of one cluster's generator block.

    A complex pair is returned with a non-negative imaginary part.
    """
    n = weights.shape[0]
    inv_var = 1.0 / (sigma * sigma)
    equal = True
    for j in range(1, n):
        if weights[j] != weights[0]:
            equal = False
    if equal:
        q = weights[0]
        total = q * n
        spread = 1.0 + eta_g * q * curvature
        trace = a + spread - eta_g * eta_d * q * total * inv_var
        best = dominant_root(trace, a * spread, math.nan, math.nan)
        if n > 1 and abs(spread) > abs(best):
            best = complex(spread, 0.0)
        return best

    block = np.zeros((n + 1, n + 1), dtype=np.complex128)
    block[0, 0] = a
    for j in range(n):
        block[0, 1 + j] = -eta_d * weights[j] * inv_var
        block[1 + j, 0] = eta_g * weights[j] * a
        for l in range(n):
            block[1 + j, 1 + l] = -eta_g * eta_d * weights[j] * weights[l] * inv_var
        block[1 + j, 1 + j] += 1.0 + eta_g * weights[j] * curvature
    for value in block.ravel():
        if not np.isfinite(value):
            return complex(math.nan, math.nan)
    eigenvalues = np.linalg.eigvals(block)
    best = eigenvalues[0]
    for value in eigenvalues[1:]:
        if abs(value) > abs(best):
            best = value
    return complex(best.real, abs(best.imag))


@njit(float64(float64[::1], float64, float64, float64, float64, float64, float64), **_JIT)
def continuous_rate(weights, p, curvature, eta_d, eta_g, lam, sigma):
    """Return the small-step estimate ``max |1 + eta_d s|`` of one cluster's generator modes.

    With ``mu = eta_g / eta_d`` and the effective weight ``q = sum q_j^2 / Q``
    (the common weight when all are equal), the mean mode has
    ``s = -m +- sqrt(m^2 - mu q p / sigma^2)`` with ``m = (lam - mu q c*) / 2``,
    and each spread mode ``1 + eta_g q_j c*``.
    """
    total = 0.0
    squares = 0.0
    largest = 0.0
    for j in range(weights.shape[0]):
        total += weights[j]
        squares += weights[j] * weights[j]
        largest = max(largest, weights[j])
    q = squares / total
    mu = eta_g / eta_d
    m = 0.5 * (lam - mu * q * curvature)
    discriminant = m * m - mu * q * p / (sigma * sigma)
    if discriminant >= 0.0:
        root = math.sqrt(discriminant)
        rate = max(abs(1.0 + eta_d * (-m + root)), abs(1.0 + eta_d * (-m - root)))
    else:
        rate = math.hypot(1.0 - eta_d * m, eta_d * math.sqrt(-discriminant))
    if weights.shape[0] > 1:
        rate = max(rate, abs(1.0 + eta_g * largest * curvature))
    return rate


@njit(int8(float64, float64), **_JIT)
def predicted_phase(re, im):
    """Return the predicted phase code of a dominant eigenvalue ``re + i im``."""
    if math.isnan(re):
        return phases.NO_FIXED_POINT
    modulus = math.hypot(re, im)
    if abs(modulus - 1.0) <= MARGINAL_TOLERANCE:
        return phases.MARGINAL
    if modulus > 1.0:
        return phases.DIVERGES
    if im == 0.0 and re >= 0.0:
        # z = 0 (a generator block that vanishes) reaches the fixed point without any sign change.
        return phases.CONVERGES_MONOTONE
    return phases.CONVERGES_OSCILLATING


@njit(
    void(
        float64[::1], int64[::1], float64[::1], float64[::1], float64[::1], float64[::1],
        float64[::1], float64[::1], float64[::1], float64[::1], float64[::1], float64[::1],
        float64[::1], float64[::1], float64[::1], int8[::1],
    ),
    **_JIT,
)
def predict_batch(
    cluster_mass, cluster_offsets, cluster_weights, eta_d, eta_g, lam, sigma,
    rho_generator, dominant_real, dominant_imag, rho_total, discriminator_eigenvalue,
    curvature_fixed_point, rho_continuous, lam_opt_continuous, phase,
):
    """Fill the theory's outputs for every configuration (batch axis first).

    Clusters: true weight ``cluster_mass[c]`` with generated weights
    ``cluster_weights[cluster_offsets[c]:cluster_offsets[c + 1]]``. The
    dominant cluster is the one with the largest ``|z|``. ``lam = 0`` with a
    mass mismatch has no fixed point (the curvature grows linearly): every
    output but the discriminator eigenvalue is NaN and the phase is
    ``NO_FIXED_POINT``.
    """
    for c in range(eta_d.shape[0]):
        a = 1.0 - eta_d[c] * lam[c]
        discriminator_eigenvalue[c] = a
        best = complex(-1.0, 0.0)
        best_modulus = -1.0
        best_curvature = math.nan
        best_rate = math.nan
        best_lam = math.nan
        fixed_point = True
        for k in range(cluster_mass.shape[0]):
            weights = cluster_weights[cluster_offsets[k]:cluster_offsets[k + 1]]
            mismatch = cluster_mass[k] - weights.sum()
            if mismatch == 0.0:
                curvature = 0.0
            elif lam[c] == 0.0:
                fixed_point = False
                break
            else:
                curvature = -mismatch / (lam[c] * sigma[c] * sigma[c])
            z = generator_eigenvalue(weights, a, curvature, eta_d[c], eta_g[c], sigma[c])
            if not abs(z) <= best_modulus:
                best = z
                best_modulus = abs(z)
                best_curvature = curvature
                best_rate = continuous_rate(
                    weights, cluster_mass[k], curvature, eta_d[c], eta_g[c], lam[c], sigma[c]
                )
                q = (weights * weights).sum() / weights.sum()
                best_lam = math.sqrt(eta_g[c] / eta_d[c] * q * mismatch) / sigma[c] if mismatch >= 0.0 else math.nan

        if not fixed_point:
            rho_generator[c] = math.nan
            dominant_real[c] = math.nan
            dominant_imag[c] = math.nan
            rho_total[c] = math.nan
            curvature_fixed_point[c] = math.nan
            rho_continuous[c] = math.nan
            lam_opt_continuous[c] = math.nan
            phase[c] = phases.NO_FIXED_POINT
            continue

        im = best.imag if best.imag > REAL_TOLERANCE * best_modulus else 0.0
        rho_generator[c] = best_modulus
        dominant_real[c] = best.real
        dominant_imag[c] = im
        rho_total[c] = max(best_modulus, abs(a))
        curvature_fixed_point[c] = best_curvature
        rho_continuous[c] = best_rate
        lam_opt_continuous[c] = best_lam
        phase[c] = predicted_phase(best.real, im)
