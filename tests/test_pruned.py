"""Tests for the box tree and the pruned direct sum of runs that left their expansion centres."""

import math

import numpy as np
import pytest
from numba import njit

from gdasweep.kernels import pruned, step
from gdasweep.sweeps import expansion as planner

REACH = planner.get_reach(1e-16)


@njit
def pruned_and_full_sums(history, trace, k, decay, weights, sigma, eta_d, reach, shifts, offsets, box_low, box_high):
    """Return the history term at step ``k`` by the pruned sum and by the full direct sum."""
    n_generated, dim = history.shape[1], history.shape[2]
    length = trace.shape[2]
    squared = np.empty(length)
    values = np.empty(length)
    scratch = np.empty(length, dtype=np.int64)
    pruned_term = np.zeros((n_generated, dim))
    pruned.add_pruned_history_sum(
        history[k], trace, k, decay, weights, sigma, eta_d, reach, shifts, offsets, box_low, box_high,
        pruned_term, squared, values, scratch,
    )
    full_term = np.zeros((n_generated, dim))
    for j in range(n_generated):
        for l in range(n_generated):
            step.add_pair_history_sum(
                history[k], j, trace, l, 0, k + 1, k, decay, weights[l], sigma, eta_d,
                full_term, squared, values, scratch,
            )
    return pruned_term, full_term


def random_walk(rng, steps, n_generated, dim, drift):
    """Return a history (T + 1, N_g, d) that wanders and then drifts away from where it started."""
    moves = rng.normal(scale=0.3, size=(steps + 1, n_generated, dim))
    moves[steps // 2 :] += drift
    history = np.cumsum(moves, axis=0)
    return np.ascontiguousarray(history)


def as_trace(history):
    return np.ascontiguousarray(history.transpose(1, 2, 0))


@pytest.mark.parametrize("steps", [3, 7, 8, 63, 64, 65, 600])
def test_tree_boxes_are_node_bounds(steps):
    rng = np.random.default_rng(steps)
    trace = as_trace(random_walk(rng, steps, 2, 3, 0.5))
    shifts, offsets, box_low, box_high = pruned.build_tree(trace, steps)
    length = steps + 1
    assert shifts.shape[0] == sum(1 for level in range(10) if pruned.BLOCK * pruned.FANOUT**level <= length)
    for level in range(shifts.shape[0]):
        size = 1 << shifts[level]
        assert size == pruned.BLOCK * pruned.FANOUT**level
        assert offsets[level + 1] - offsets[level] == length // size
        for node in range(length // size):
            span = trace[:, :, node * size : (node + 1) * size]
            box = offsets[level] + node
            np.testing.assert_array_equal(box_low[:, :, box], span.min(axis=2))
            np.testing.assert_array_equal(box_high[:, :, box], span.max(axis=2))


def test_tree_closes_nodes_step_by_step():
    rng = np.random.default_rng(1)
    steps = 200
    trace = as_trace(random_walk(rng, steps, 1, 2, 0.2))
    shifts, offsets, expected_low, expected_high = pruned.build_tree(trace, steps)
    _, _, box_low, box_high = pruned.build_tree(trace, 70)
    for s in range(71, steps + 1):
        close_boxes(trace, s, shifts, offsets, box_low, box_high)
    np.testing.assert_array_equal(box_low, expected_low)
    np.testing.assert_array_equal(box_high, expected_high)


@njit
def close_boxes(trace, s, shifts, offsets, box_low, box_high):
    pruned.close_boxes(trace, s, shifts, offsets, box_low, box_high)


@pytest.mark.parametrize(("n_generated", "dim", "a"), [(1, 1, 0.99), (2, 2, 0.9), (3, 3, 1.0), (1, 1, -0.999)])
def test_pruned_sum_is_within_the_reach_bound(n_generated, dim, a):
    rng = np.random.default_rng(n_generated * 10 + dim)
    steps = 700
    sigma = 0.5
    eta_d = 0.1
    history = random_walk(rng, steps, n_generated, dim, 0.4)
    trace = as_trace(history)
    weights = rng.uniform(0.5, 1.5, size=n_generated)
    decay = a ** np.arange(steps, -1, -1, dtype=np.float64)
    tolerance = REACH * math.exp(-0.5 * REACH * REACH)
    shifts, offsets, box_low, box_high = pruned.build_tree(trace, steps)
    for k in (0, 5, 8, 9, 100, 351, 512, 640, 700):
        pruned_term, full_term = pruned_and_full_sums(
            history, trace, k, decay, weights, sigma, eta_d, REACH, shifts, offsets, box_low, box_high,
        )
        # Every left-out term is below eta_d / sigma * q_l |a|^(k-s) * tolerance.
        bound = eta_d / sigma * weights.sum() * np.abs(decay[steps - k :]).sum() * tolerance
        rounding = 1e-14 * max(np.abs(full_term).max(), np.abs(pruned_term).max(), 1e-300)
        assert np.abs(pruned_term - full_term).max() <= bound + rounding, k


def test_pruned_sum_skips_far_history():
    rng = np.random.default_rng(7)
    steps = 700
    sigma = 0.5
    history = random_walk(rng, steps, 2, 2, 1.0)
    trace = as_trace(history)
    decay = 0.99 ** np.arange(steps, -1, -1, dtype=np.float64)
    weights = np.ones(2)
    shifts, offsets, box_low, box_high = pruned.build_tree(trace, steps)
    before, _ = pruned_and_full_sums(
        history, trace, steps, decay, weights, sigma, 0.1, REACH, shifts, offsets, box_low, box_high,
    )
    # The last point is more than 300 bandwidths from the first 512 steps,
    # so a sum that read them would turn NaN.
    early = history[:512].reshape(-1, 2)
    assert np.linalg.norm(history[steps][:, None, :] - early[None], axis=-1).min() > 300 * sigma
    trace[:, :, :512] = np.nan
    after, _ = pruned_and_full_sums(
        history, trace, steps, decay, weights, sigma, 0.1, REACH, shifts, offsets, box_low, box_high,
    )
    np.testing.assert_array_equal(after, before)
