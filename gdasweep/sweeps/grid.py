"""Planning a study's grid: configuration cost, chunk size and blocks.

The configuration space is never materialized per configuration: a block is
a hyperrectangle of the grid found by index arithmetic, and its parameter
arrays come from one ``numpy.meshgrid`` over the axis slices.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from . import schema
from .spec import AUTO, Model, Study

logger = logging.getLogger(__name__)

#: Wall time a task should take when the chunk size is chosen automatically.
TARGET_TASK_SECONDS = 2.0
#: Largest automatic chunk, which bounds a task's memory.
MAX_AUTO_CHUNK = 65536
#: Each Dask thread should get at least this many tasks, so they finish together.
TASKS_PER_THREAD = 4
# Estimated cost of one kernel evaluation in the history sum, in seconds:
# SECONDS_PER_PAIR + SECONDS_PER_PAIR_AXIS * d, fitted to the two-point study
# (d = 1: 2.9 ns) and the ring study (d = 10: 6.5 ns) on a 2-core AMD EPYC.
SECONDS_PER_PAIR = 2.5e-9
SECONDS_PER_PAIR_AXIS = 0.4e-9
SECONDS_PER_STEP = 5e-8
# Estimated cost of one expansion term per generated point, coordinate and
# step, in seconds, and the order assumed: about 110 us per two-point
# configuration at order 13 and 240 us at order 31 (T = 1000, same machine).
SECONDS_PER_EXPANSION_TERM = 2.7e-9
ASSUMED_ORDER = {1: 31, 2: 22, 3: 22}


def get_record_steps(steps: int, record_every: int) -> np.ndarray:
    """Return the recorded steps ``0, r, 2r, ...``, always ending with ``steps``."""
    recorded = np.arange(0, steps + 1, record_every, dtype=np.int64)
    if recorded[-1] != steps:
        recorded = np.append(recorded, np.int64(steps))
    return recorded


def estimate_seconds_per_config(model: Model) -> float:
    """Return a rough estimate of one configuration's kernel time on one core.

    The direct history sum of step ``k`` evaluates ``N_g^2 (k + 1)`` kernel
    values, so a run costs about ``N_g^2 T^2 / 2`` of them plus a per-step
    overhead. The expansion costs about its number of terms per generated
    point and step, and ``"auto"`` takes the cheaper of the two estimates.
    """
    n_generated, dim = model.generated_points.shape
    pairs = n_generated * n_generated * model.steps * (model.steps + 1) / 2
    direct = pairs * (SECONDS_PER_PAIR + SECONDS_PER_PAIR_AXIS * dim) + model.steps * SECONDS_PER_STEP
    if model.method == "direct" or dim not in ASSUMED_ORDER or model.history_tolerance > 0.0:
        return direct
    terms = math.comb(ASSUMED_ORDER[dim] - 1 + dim, dim)
    expansion = model.steps * n_generated * terms * (dim + 2) * SECONDS_PER_EXPANSION_TERM
    return expansion if model.method == "expansion" else min(direct, expansion)


def resolve_chunk_size(study: Study) -> int:
    """Return the configurations per task: the study's value, or an estimate for ``"auto"``.

    The automatic size aims at ``TARGET_TASK_SECONDS`` per task, gives every
    Dask thread at least ``TASKS_PER_THREAD`` tasks when the study is large
    enough, and stays at or below ``MAX_AUTO_CHUNK``.
    """
    execution = study.execution
    if execution.chunk_size != AUTO:
        return int(execution.chunk_size)
    by_time = int(TARGET_TASK_SECONDS / estimate_seconds_per_config(study.model))
    threads = execution.workers * execution.threads_per_worker
    by_balance = math.ceil(study.n_configs / (TASKS_PER_THREAD * threads))
    size = max(1, min(by_time, by_balance, MAX_AUTO_CHUNK))
    logger.debug("automatic chunk size %d (time %d, balance %d)", size, by_time, by_balance)
    return size


def get_chunk_shape(shape: tuple[int, ...], chunk_size: int) -> tuple[int, ...]:
    """Return a chunk shape over the grid with at most ``chunk_size`` configurations.

    Chunks fill the last axes first, so a chunk is a contiguous run of
    configurations whenever it spans whole trailing axes.

    Examples
    --------
    >>> get_chunk_shape((3, 2, 200, 200), 4096)
    (1, 1, 20, 200)
    >>> get_chunk_shape((3, 2, 3, 3), 10)
    (1, 1, 3, 3)
    """
    chunks = []
    remaining = max(1, chunk_size)
    for length in reversed(shape):
        size = max(1, min(length, remaining))
        chunks.append(size)
        remaining //= size
    return tuple(reversed(chunks))


def get_block_count(shape: tuple[int, ...], chunks: tuple[int, ...]) -> tuple[int, ...]:
    """Return the number of chunks along each grid axis."""
    return tuple(math.ceil(n / c) for n, c in zip(shape, chunks))


def get_block_slices(shape, chunks, index: int) -> tuple[slice, ...]:
    """Return the grid slices of block ``index`` (C order over the chunk grid)."""
    position = np.unravel_index(index, get_block_count(shape, chunks))
    return tuple(
        slice(int(p) * c, min((int(p) + 1) * c, n)) for p, c, n in zip(position, chunks, shape)
    )


def get_block_parameters(study: Study, slices) -> list[np.ndarray]:
    """Return flat ``eta_d, eta_g, lam, sigma`` arrays of a block, in C order."""
    axes = [study.grid[name][sl] for name, sl in zip(schema.GRID_DIMS, slices)]
    return [np.ascontiguousarray(m.ravel()) for m in np.meshgrid(*axes, indexing="ij")]


def get_block_indices(shape, slices) -> np.ndarray:
    """Return the flat C-order indices in the whole grid of a block's configurations."""
    ranges = [np.arange(s.start, s.stop) for s in slices]
    return np.ravel_multi_index(np.meshgrid(*ranges, indexing="ij"), shape).ravel().astype(np.int64)
