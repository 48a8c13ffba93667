"""Plain NumPy float64 implementation of the exact GDA dynamics, for tests.

It follows the unrolled update literally: the gradient of the discriminator
at step ``k`` is the true points' term weighted by ``w_{k+1}`` minus the
history of generated positions weighted by ``eta_d * a**(k - s)``.
"""

import numpy as np


def gaussian_grad(x, z, sigma):
    """Gradient in ``x`` of ``exp(-|x - z|^2 / (2 sigma^2))``; x (n, d), z (m, d) -> (n, m, d)."""
    diff = x[:, None, :] - z[None, :, :]
    k = np.exp(-np.sum(diff**2, axis=-1) / (2.0 * sigma**2))
    return -diff / sigma**2 * k[..., None]


def simulate(true_points, p, generated, p_gen, eta_d, eta_g, lam, sigma, steps):
    """Return the generated positions at every step, shape (steps + 1, n_gen, d)."""
    true_points = np.asarray(true_points, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    p_gen = np.asarray(p_gen, dtype=np.float64)
    a = 1.0 - eta_d * lam
    history = np.empty((steps + 1,) + np.shape(generated))
    history[0] = generated
    for k in range(steps):
        w = eta_d * (k + 1) if lam == 0.0 else (1.0 - a ** (k + 1)) / lam
        x = history[k]
        grad = w * np.einsum("i,jid->jd", p, gaussian_grad(x, true_points, sigma))
        for s in range(k + 1):
            g = np.einsum("l,jld->jd", p_gen, gaussian_grad(x, history[s], sigma))
            grad -= eta_d * a ** (k - s) * g
        history[k + 1] = x + eta_g * p_gen[:, None] * grad
    return history
