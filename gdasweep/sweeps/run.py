"""Run a study on Dask: one task per Zarr chunk, each writing its own block.

The client plans the blocks by index arithmetic over the grid, creates the
store, submits one task per block and counts the tasks as they finish.
Results never travel back through the client: a task returns only a small
table of (observed, predicted) phase counts for the summary.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import schema
from .faults import maybe_fail
from .grid import get_block_count, get_block_indices, get_block_parameters, get_block_slices, get_chunk_shape, resolve_chunk_size
from .lock import StoreLock
from .marks import append_run_record, read_marks, write_mark
from .store import (
    StoreMismatchError,
    create_store,
    describe_difference,
    open_existing,
    remove_leftovers,
    remove_store,
    write_block,
)
from .spec import Study

logger = logging.getLogger(__name__)

_OBSERVED_CODES = np.array(sorted(schema.OBSERVED_PHASES), dtype=np.int64)
_PREDICTED_CODES = np.array(sorted(schema.PREDICTED_PHASES), dtype=np.int64)


@dataclass
class Summary:
    """Counts of configurations by observed phase (rows) and predicted phase (columns).

    ``kernel_seconds`` is the compiled simulation and theory time summed over
    the tasks of this run, ``tasks`` the number of blocks this run computed and
    ``resumed`` the number found already complete in the store.
    """

    counts: np.ndarray = field(
        default_factory=lambda: np.zeros((len(_OBSERVED_CODES), len(_PREDICTED_CODES)), dtype=np.int64)
    )
    kernel_seconds: float = 0.0
    tasks: int = 0
    resumed: int = 0

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def observed(self) -> dict[str, int]:
        """Return configurations per observed phase."""
        return {schema.OBSERVED_PHASES[c]: int(n) for c, n in zip(_OBSERVED_CODES, self.counts.sum(axis=1))}

    def predicted(self) -> dict[str, int]:
        """Return configurations per predicted phase."""
        return {schema.PREDICTED_PHASES[c]: int(n) for c, n in zip(_PREDICTED_CODES, self.counts.sum(axis=0))}

    def agreement(self) -> tuple[int, int]:
        """Return (agreeing, comparable).

        Comparable excludes predictions without a fixed point and chaotic
        runs, which the linearized theory does not describe.
        """
        predicted_index = {int(c): i for i, c in enumerate(_PREDICTED_CODES)}
        comparable = self.counts.copy()
        comparable[:, predicted_index[schema.phases.NO_FIXED_POINT]] = 0
        agreeing = 0
        for i, code in enumerate(_OBSERVED_CODES):
            expected = schema.AGREEING_PREDICTION.get(int(code))
            if expected is None:
                comparable[i, :] = 0
            else:
                agreeing += int(comparable[i, predicted_index[expected]])
        return agreeing, int(comparable.sum())

    def format(self) -> str:
        """Return the summary as lines of text for a terminal."""
        lines = [f"{self.total} configurations"]
        if self.resumed:
            lines[0] += f" ({self.resumed} blocks were already complete, {self.tasks} computed now)"
        lines.append("observed phase:   " + ", ".join(f"{k} {v}" for k, v in self.observed().items()))
        lines.append("predicted phase:  " + ", ".join(f"{k} {v}" for k, v in self.predicted().items()))
        agreeing, comparable = self.agreement()
        share = f"{100.0 * agreeing / comparable:.1f}%" if comparable else "n/a"
        lines.append(
            f"agreement:        {agreeing} of {comparable} ({share}); "
            "chaotic runs and predictions without a fixed point are not compared"
        )
        return "\n".join(lines)


def run_block(study: Study, chunks: tuple[int, ...], index: int) -> tuple[np.ndarray, float]:
    """Simulate and predict block ``index``, write it durably and mark it complete.

    Returns the block's phase counts and the seconds spent in the compiled
    simulation and theory. Running a block twice writes the same bytes, so
    a task that Dask retries after losing its worker is harmless.
    """
    from .compute import THEORY_OUTPUTS, nearest_true_points, predict, simulate

    slices = get_block_slices(study.shape, chunks, index)
    block_shape = tuple(s.stop - s.start for s in slices)
    eta_d, eta_g, lam, sigma = get_block_parameters(study, slices)
    model = study.model
    nearest = nearest_true_points(model.true_points, model.generated_points)

    start = time.perf_counter()
    indices = get_block_indices(study.shape, slices)
    outputs = simulate(model, eta_d, eta_g, lam, sigma, seed=study.seed, config_index=indices)
    theory = predict(model.true_weights, model.generated_weights, eta_d, eta_g, lam, sigma, nearest)
    kernel_seconds = time.perf_counter() - start

    if not model.save_positions:
        del outputs["final_position"]
    if not model.chaos_check:
        del outputs["chaos_separation"]
    outputs.update({name: theory[name] for name in THEORY_OUTPUTS})
    write_block(study.store, slices, outputs, block_shape, chunks)

    counts = np.zeros((len(_OBSERVED_CODES), len(_PREDICTED_CODES)), dtype=np.int64)
    np.add.at(counts, (outputs["observed_phase"].astype(np.int64), outputs["predicted_phase"].astype(np.int64)), 1)
    write_mark(study.store, index, counts, kernel_seconds)
    maybe_fail("mark")
    return counts, kernel_seconds


def _start_cluster(study: Study):
    from distributed import Client, LocalCluster

    execution = study.execution
    if execution.scheduler:
        logger.info("connecting to the Dask scheduler at %s", execution.scheduler)
        return Client(execution.scheduler), None
    logger.info(
        "starting a local Dask cluster; after a new installation its workers first compile the kernels, "
        "which takes about two minutes on 2 cores"
    )
    cluster = LocalCluster(
        n_workers=execution.workers,
        threads_per_worker=execution.threads_per_worker,
        processes=True,
        # distributed 2026.8.0 binds a dashboard address without a host to
        # every interface (0.0.0.0).
        dashboard_address="127.0.0.1:0",
        # Workers import the kernels while they start, not in their first task.
        preload=["gdasweep.sweeps.compute"],
    )
    logger.info(
        "started a local Dask cluster: %d workers x %d threads, dashboard %s",
        execution.workers, execution.threads_per_worker, cluster.dashboard_link,
    )
    return Client(cluster), cluster


def _plan_store(study: Study, overwrite: bool) -> tuple[tuple[int, ...], set[int], bool]:
    """Return the chunk shape, the blocks already complete and whether the store must be created.

    An existing store of the same study is resumed with its own chunk shape.
    One made by another study is rejected, or deleted with ``overwrite``.
    """
    path = Path(study.store)
    if not (path.exists() or path.is_symlink()):
        return get_chunk_shape(study.shape, resolve_chunk_size(study)), set(), True

    attrs, chunks = open_existing(path)
    if attrs["study_hash"] != study.hash:
        if not overwrite:
            raise StoreMismatchError(
                f"output store {str(path)!r} was made by a different study "
                f"({describe_difference(attrs.get('study_text', ''), study)}); "
                "pass --overwrite to replace it, or choose another store path"
            )
        logger.warning("deleting store %s, made by a different study (--overwrite)", path)
        remove_store(path)
        return get_chunk_shape(study.shape, resolve_chunk_size(study)), set(), True

    marks, _ = read_marks(path)
    logger.info("resuming store %s: %d blocks already complete", path, len(marks))
    return chunks, set(marks), False


def run_study(study: Study, *, client=None, progress: bool | None = None, overwrite: bool = False) -> Summary:
    """Run every configuration of ``study`` that its store does not hold yet.

    Parameters
    ----------
    study : Study
        A validated study (``load_study``).
    client : distributed.Client, optional
        Run on this client's cluster. By default a client connects to
        ``study.execution.scheduler`` if set, else to a new local cluster of
        worker processes that is closed at the end.
    progress : bool, optional
        Show a progress bar of finished blocks on standard error; by default
        only when standard error is a terminal.
    overwrite : bool
        Replace a store that a different study made. Without it such a store
        is left untouched and ``StoreMismatchError`` is raised.

    Returns
    -------
    Summary
        Phase counts of all configurations in the store.

    Raises
    ------
    StoreBusyError
        If another run holds the store's lock.
    StoreMismatchError
        If the store belongs to another study or is not a gdasweep store.

    Notes
    -----
    A store of the same study is resumed: only blocks without a completion
    mark are computed, so a run killed at any point can be started again
    with the same command. Every task writes whole Zarr chunks of its own,
    so the results do not depend on the number of workers or on the order in
    which tasks finish.
    """
    maybe_fail("plan")
    with StoreLock(study.store):
        maybe_fail("lock")
        remove_leftovers(study.store)
        chunks, done, create = _plan_store(study, overwrite)
        summary = _run_locked(study, chunks, done, create, client, progress)
    return summary


def _run_locked(study, chunks, done, create, client, progress) -> Summary:
    n_blocks = int(np.prod(get_block_count(study.shape, chunks)))
    todo = [index for index in range(n_blocks) if index not in done]
    logger.info("study %s: %d configurations in %d blocks of up to %d, %d to compute", study.source,
                study.n_configs, n_blocks, int(np.prod(chunks)), len(todo))

    own_client = client is None and bool(todo)
    own_cluster = None
    if own_client:
        # The store is created while the cluster starts; both take about a second.
        with ThreadPoolExecutor(max_workers=1) as pool:
            creation = pool.submit(create_store, study, chunks) if create else None
            try:
                client, own_cluster = _start_cluster(study)
            finally:
                _close_on_error(creation, client, own_cluster)
    elif create:
        create_store(study, chunks)
    if create:
        logger.info("created store %s", study.store)
        maybe_fail("created")
    append_run_record(study.store, {
        "event": "start", "time": _now(), "host": socket.gethostname(), "pid": os.getpid(),
        "blocks_to_compute": len(todo), "workers": study.execution.workers,
        "threads_per_worker": study.execution.threads_per_worker, "scheduler": study.execution.scheduler,
    })

    summary = Summary(resumed=len(done))
    try:
        if todo:
            _compute_blocks(client, study, chunks, todo, summary, progress)
    finally:
        if own_client:
            client.close()
        if own_cluster is not None:
            own_cluster.close()
            logger.debug("closed the local cluster")

    marks, _ = read_marks(study.store)
    for mark in marks.values():
        summary.counts += np.asarray(mark["counts"], dtype=np.int64)
    append_run_record(study.store, {
        "event": "end", "time": _now(), "pid": os.getpid(), "blocks_computed": summary.tasks,
        "blocks_complete": len(marks), "blocks": n_blocks, "kernel_seconds": round(summary.kernel_seconds, 3),
    })
    return summary


def _compute_blocks(client, study, chunks, todo, summary, progress) -> None:
    """Run the blocks ``todo`` on ``client`` and add their task counts and kernel time to ``summary``."""
    from distributed import as_completed
    from tqdm import tqdm

    shared_study = client.scatter(study, broadcast=True)
    futures = client.map(run_block, [shared_study] * len(todo), [chunks] * len(todo), todo)
    maybe_fail("submit")
    show = sys.stderr.isatty() if progress is None else progress
    try:
        with tqdm(total=len(todo), unit="chunk", disable=not show, file=sys.stderr) as bar:
            for future in as_completed(futures):
                _, kernel_seconds = future.result()
                summary.kernel_seconds += kernel_seconds
                summary.tasks += 1
                future.release()
                bar.update(1)
                maybe_fail("progress")
    except BaseException:
        client.cancel(futures)
        raise
    logger.debug("all %d blocks finished", len(todo))


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _close_on_error(creation, client, cluster) -> None:
    """Wait for the store creation; close what was started if it failed."""
    if creation is None:
        return
    try:
        creation.result()
    except BaseException:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
        raise
