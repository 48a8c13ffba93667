"""The direct history sum without the history beyond a reach, for runs that left their expansion centres.

Every term of the direct sum whose source lies more than ``reach * sigma``
from the target is below ``reach exp(-reach^2 / 2)`` times its prefactor, the
same bound the expansion uses for the centres it skips. The history is cut
into blocks of ``BLOCK`` steps, blocks into nodes of ``FANOUT`` blocks, those
into nodes of ``FANOUT`` nodes and so on: a tree whose nodes each store the
bounding box of their positions. The sum walks the finished nodes in step
order from the coarsest level down and skips a node whose box lies beyond
the reach. A run that moved away from its history thus checks
``O(FANOUT log T)`` boxes per step and sums only the blocks near it. The
steps of the block in progress, which has no box yet, are always summed.
"""

import numpy as np
from numba import njit

from .._compile_options import CACHE, FASTMATH
from . import step

_JIT = dict(nogil=True, cache=CACHE, fastmath=FASTMATH)

#: Steps per block, the finest level of the box tree, as a power of 2.
BLOCK_SHIFT = 3
BLOCK = 1 << BLOCK_SHIFT
#: Children per node of the box tree, as a power of 2.
FANOUT_SHIFT = 3
FANOUT = 1 << FANOUT_SHIFT


@njit(**_JIT)
def build_tree(trace, start):
    """Return ``(shifts, offsets, box_low, box_high)``, the box tree of ``trace`` with every node up to step ``start``.

    A node at level ``level`` spans ``2^shifts[level]`` steps, and
    ``offsets[level]`` is the index of the level's first node on the last
    axis of the boxes ``box_low`` and ``box_high`` (N_g, d, nodes). Levels go
    up while a node fits in the ``T + 1`` steps of ``trace`` (N_g, d, T + 1).
    Node sizes are powers of 2 so that the walk divides by shifts: integer
    division by a value from an array takes tens of cycles.
    """
    n_generated, dim, length = trace.shape
    levels = 0
    shift = BLOCK_SHIFT
    while (1 << shift) <= length:
        levels += 1
        shift += FANOUT_SHIFT
    shifts = np.empty(levels, dtype=np.int64)
    offsets = np.empty(levels + 1, dtype=np.int64)
    shift = BLOCK_SHIFT
    offsets[0] = 0
    for level in range(levels):
        shifts[level] = shift
        offsets[level + 1] = offsets[level] + (length >> shift)
        shift += FANOUT_SHIFT
    box_low = np.empty((n_generated, dim, offsets[levels]))
    box_high = np.empty((n_generated, dim, offsets[levels]))
    for s in range(start + 1):
        close_boxes(trace, s, shifts, offsets, box_low, box_high)
    return shifts, offsets, box_low, box_high


@njit(inline="always", **_JIT)
def close_boxes(trace, s, shifts, offsets, box_low, box_high):
    """Store the bounding box of every node of the tree whose last step is ``s``."""
    if (s + 1) & (BLOCK - 1) != 0 or shifts.shape[0] == 0:
        return
    n_generated, dim = trace.shape[0], trace.shape[1]
    first = s + 1 - BLOCK
    box = offsets[0] + (s >> BLOCK_SHIFT)
    for l in range(n_generated):
        for axis in range(dim):
            low = trace[l, axis, first]
            high = low
            for i in range(first + 1, s + 1):
                low = min(low, trace[l, axis, i])
                high = max(high, trace[l, axis, i])
            box_low[l, axis, box] = low
            box_high[l, axis, box] = high

    for level in range(1, shifts.shape[0]):
        if (s + 1) & ((1 << shifts[level]) - 1) != 0:
            break
        box = offsets[level] + (s >> shifts[level])
        first_child = offsets[level - 1] + (box - offsets[level]) * FANOUT
        for l in range(n_generated):
            for axis in range(dim):
                low = box_low[l, axis, first_child]
                high = box_high[l, axis, first_child]
                for child in range(first_child + 1, first_child + FANOUT):
                    low = min(low, box_low[l, axis, child])
                    high = max(high, box_high[l, axis, child])
                box_low[l, axis, box] = low
                box_high[l, axis, box] = high


@njit(inline="always", **_JIT)
def _box_gap(current, j, box_low, box_high, l, box):
    """Return the squared distance of ``current[j]`` from the bounding box ``box`` of source ``l``."""
    gap = 0.0
    for axis in range(current.shape[1]):
        x = current[j, axis]
        below = box_low[l, axis, box] - x
        above = x - box_high[l, axis, box]
        outside = max(below, above, 0.0)
        gap += outside * outside
    return gap


@njit(inline="always", **_JIT)
def _coarsest_level(position, finished, shifts):
    """Return the coarsest level with a node that starts at step ``position`` and ends before ``finished``."""
    for level in range(shifts.shape[0] - 1, 0, -1):
        size = 1 << shifts[level]
        if position & (size - 1) == 0 and position + size <= finished:
            return level
    return 0


@njit(inline="always", **_JIT)
def add_pruned_history_sum(
    current, trace, k, decay, weights, sigma, eta_d, reach, shifts, offsets, box_low, box_high,
    gradient, squared, values, scratch,
):
    """Add the history term of step ``k`` by the direct sum, skipping the nodes beyond ``reach``.

    Consecutive blocks that are not skipped are summed in one pass, and the
    steps of the block in progress with them.
    """
    n_generated = trace.shape[0]
    limit = (reach * sigma) ** 2
    finished = (k + 1) & ~(BLOCK - 1)
    for j in range(n_generated):
        for l in range(n_generated):
            start = -1
            position = 0
            level = _coarsest_level(position, finished, shifts)
            while position < finished:
                box = offsets[level] + (position >> shifts[level])
                if _box_gap(current, j, box_low, box_high, l, box) > limit:
                    if start >= 0:
                        step.add_pair_history_sum(
                            current, j, trace, l, start, position, k, decay, weights[l], sigma, eta_d,
                            gradient, squared, values, scratch,
                        )
                        start = -1
                elif level > 0:
                    level -= 1
                    continue
                elif start < 0:
                    start = position
                position += 1 << shifts[level]
                level = _coarsest_level(position, finished, shifts)
            if start < 0:
                start = finished
            # Earlier steps round the length up to a multiple of BLOCK, so the
            # vector loops of the sum end without scalar iterations. Those
            # cost more than the extra terms: 13 steps took 90 ns and 16 took
            # 50 ns on a 2-core AMD EPYC. Extra terms only make the sum more
            # complete.
            start = max(0, start - (BLOCK - (k + 1 - start) % BLOCK) % BLOCK)
            step.add_pair_history_sum(
                current, j, trace, l, start, k + 1, k, decay, weights[l], sigma, eta_d,
                gradient, squared, values, scratch,
            )


# Without reference counting for the same reason as
# ``expansion._expansion_loop``: the slices of the pruned sum cost two atomic
# updates each otherwise.
@njit(_nrt=False, error_model="numpy", **_JIT)
def run_pruned_steps(
    start, w, state, true_points, true_weights, weights, eta_d, eta_g, a, sigma, bound, nearest,
    history, errors, flips, gradient, trace, noise, decay, reach, shifts, offsets, box_low, box_high,
    squared, values, scratch,
):
    """Run GDA steps from ``start`` with the direct sum pruned by ``add_pruned_history_sum``.

    ``w`` is the discriminator's weight of the true points at ``start`` and
    ``state`` the noise stream. The other arguments are those of
    ``gda.run_gda_perturbed``, its work arrays and the box tree of
    ``build_tree`` up to ``start``. Returns ``(blowup, state)``: the blow-up
    step or -1.
    """
    steps = history.shape[0] - 1
    n_generated, dim = history.shape[1], history.shape[2]
    blowup = -1
    for k in range(start, steps):
        w = a * w + eta_d
        for j in range(n_generated):
            for axis in range(dim):
                gradient[j, axis] = 0.0
        step.add_true_gradient(history, k, true_points, true_weights, sigma, w, gradient)
        add_pruned_history_sum(
            history[k], trace, k, decay, weights, sigma, eta_d, reach, shifts, offsets, box_low, box_high,
            gradient, squared, values, scratch,
        )
        state, blown = step.advance(
            history, k, gradient, weights, eta_g, noise, state, trace, errors, flips, true_points, nearest, bound,
        )
        close_boxes(trace, k + 1, shifts, offsets, box_low, box_high)
        if blown:
            blowup = k + 1
            break
    return blowup, state
