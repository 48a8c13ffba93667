"""Tests for gdasweep.kernels.gaussian against direct NumPy formulas."""

import numpy as np
import pytest

from gdasweep.kernels.gaussian import (
    add_gaussian_gradient,
    add_weighted_gradient_sum,
    gaussian,
    gaussian_matrix,
    squared_distance,
)

DIMENSIONS = (1, 2, 5)
SIGMAS = (0.3, 1.0, 4.0)
# The kernels and NumPy sum in different orders, so results are compared to
# a relative tolerance rather than bit for bit.
RTOL = 1e-13


def make_points(seed, count, dim):
    """Return ``count`` C-contiguous float64 points of dimension ``dim`` with coordinates of scale 1.5."""
    rng = np.random.default_rng(seed)
    return np.ascontiguousarray(rng.normal(scale=1.5, size=(count, dim)))


def expected_gaussian(x, z, sigma):
    return np.exp(-np.sum((x - z) ** 2, axis=-1) / (2.0 * sigma**2))


def expected_gradient(x, z, sigma):
    """Return grad_1 K(x, z) = -(x - z) / sigma^2 K(x, z), broadcast over leading axes."""
    return -(x - z) / sigma**2 * expected_gaussian(x, z, sigma)[..., None]


@pytest.mark.parametrize("dim", DIMENSIONS)
@pytest.mark.parametrize("sigma", SIGMAS)
def test_squared_distance_matches_formula(dim, sigma):
    x_points = make_points(1, 20, dim)
    z_points = make_points(2, 20, dim)

    for x, z in zip(x_points, z_points):
        expected = np.sum((x - z) ** 2) / (2.0 * sigma**2)
        assert squared_distance(x, z, sigma) == pytest.approx(expected, rel=RTOL, abs=0.0)


@pytest.mark.parametrize("dim", DIMENSIONS)
@pytest.mark.parametrize("sigma", SIGMAS)
def test_gaussian_matches_formula(dim, sigma):
    x_points = make_points(3, 20, dim)
    z_points = make_points(4, 20, dim)

    for x, z in zip(x_points, z_points):
        expected = expected_gaussian(x, z, sigma)
        assert gaussian(x, z, sigma) == pytest.approx(expected, rel=RTOL, abs=0.0)


@pytest.mark.parametrize("dim", DIMENSIONS)
def test_gaussian_same_point_is_one(dim):
    x = make_points(5, 1, dim)[0]

    assert gaussian(x, x.copy(), 0.7) == 1.0


@pytest.mark.parametrize("dim", DIMENSIONS)
def test_gaussian_far_point_underflows_to_zero(dim):
    x = np.zeros(dim)
    z = np.full(dim, 1e3)

    assert gaussian(x, z, 1.0) == 0.0


@pytest.mark.parametrize("dim", DIMENSIONS)
@pytest.mark.parametrize("sigma", SIGMAS)
def test_add_gaussian_gradient_adds_to_output(dim, sigma):
    x_points = make_points(6, 20, dim)
    z_points = make_points(7, 20, dim)
    start = make_points(8, 20, dim)
    weights = np.random.default_rng(9).uniform(-2.0, 2.0, size=20)

    for x, z, initial, weight in zip(x_points, z_points, start, weights):
        out = initial.copy()
        add_gaussian_gradient(x, z, sigma, weight, out)

        expected = initial + weight * expected_gradient(x, z, sigma)
        np.testing.assert_allclose(out, expected, rtol=RTOL, atol=RTOL * np.abs(initial).max())


@pytest.mark.parametrize("dim", DIMENSIONS)
def test_add_gaussian_gradient_same_point_adds_zero(dim):
    x = make_points(10, 1, dim)[0]
    initial = make_points(11, 1, dim)[0]
    out = initial.copy()

    add_gaussian_gradient(x, x.copy(), 0.5, 3.0, out)

    np.testing.assert_array_equal(out, initial)


@pytest.mark.parametrize("dim", DIMENSIONS)
@pytest.mark.parametrize("sigma", SIGMAS)
def test_gaussian_matrix_matches_formula(dim, sigma):
    x_points = make_points(12, 7, dim)
    z_points = make_points(13, 4, dim)
    out = np.full((7, 4), np.nan)

    gaussian_matrix(x_points, z_points, sigma, out)

    expected = expected_gaussian(x_points[:, None, :], z_points[None, :, :], sigma)
    np.testing.assert_allclose(out, expected, rtol=RTOL, atol=0.0)


@pytest.mark.parametrize("dim", DIMENSIONS)
@pytest.mark.parametrize("sigma", SIGMAS)
def test_add_weighted_gradient_sum_adds_to_output(dim, sigma):
    x_points = make_points(14, 6, dim)
    z_points = make_points(15, 9, dim)
    weights = np.random.default_rng(16).uniform(0.1, 2.0, size=9)
    initial = make_points(17, 6, dim)
    scale = -0.37
    out = initial.copy()

    add_weighted_gradient_sum(x_points, z_points, weights, sigma, scale, out)

    gradients = expected_gradient(x_points[:, None, :], z_points[None, :, :], sigma)
    expected = initial + scale * np.einsum("j,ijd->id", weights, gradients)
    np.testing.assert_allclose(out, expected, rtol=RTOL, atol=RTOL * np.abs(initial).max())


def test_add_weighted_gradient_sum_zero_scale_keeps_output():
    x_points = make_points(18, 3, 2)
    z_points = make_points(19, 5, 2)
    initial = make_points(20, 3, 2)
    out = initial.copy()

    add_weighted_gradient_sum(x_points, z_points, np.ones(5), 1.0, 0.0, out)

    np.testing.assert_array_equal(out, initial)


# Numba's dispatcher raises TypeError("No matching definition ...") for an
# array that does not fit the compiled signature.
def test_gaussian_rejects_strided_points():
    points = make_points(21, 4, 2)

    with pytest.raises(TypeError, match="No matching definition"):
        gaussian(points[:, 0], points[:, 1], 1.0)


def test_gaussian_matrix_rejects_float32_points():
    points = make_points(22, 3, 2)
    out = np.empty((3, 3))

    with pytest.raises(TypeError, match="No matching definition"):
        gaussian_matrix(points.astype(np.float32), points, 1.0, out)
