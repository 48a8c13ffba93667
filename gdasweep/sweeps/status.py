"""The state of a store: completed blocks, phases so far and provenance."""

from __future__ import annotations

import os

import numpy as np

from . import schema
from .grid import get_block_count
from .marks import read_marks, read_run_records
from .store import open_existing

_PROVENANCE = ("study_hash", "seed", "gdasweep_version", "numpy_version", "numba_version", "dask_version",
               "xarray_version", "zarr_version", "python_version")


def format_status(path: str | os.PathLike) -> str:
    """Return a report of a store: blocks complete, phase counts so far, provenance and runs.

    It reads only metadata, completion marks and the run log, never the data.
    """
    import zarr

    attrs, chunks = open_existing(path)
    group = zarr.open_group(str(path), mode="r")
    shape = tuple(group[name].shape[0] for name in schema.GRID_DIMS)
    blocks = int(np.prod(get_block_count(shape, chunks)))
    marks, unreadable = read_marks(path)

    counts = np.zeros((len(schema.OBSERVED_PHASES), len(schema.PREDICTED_PHASES)), dtype=np.int64)
    for mark in marks.values():
        counts += np.asarray(mark["counts"], dtype=np.int64)
    observed = dict(zip(schema.OBSERVED_PHASES.values(), counts.sum(axis=1)))
    predicted = dict(zip(schema.PREDICTED_PHASES.values(), counts.sum(axis=0)))

    lines = [
        f"store:            {path}",
        f"study:            {attrs.get('study_source', '?')}, {int(np.prod(shape))} configurations, "
        f"grid {' x '.join(str(n) for n in shape)} over {', '.join(schema.GRID_DIMS)}",
        f"blocks complete:  {len(marks)} of {blocks}" + (f" ({len(unreadable)} unreadable marks)" if unreadable else ""),
        f"configurations:   {int(counts.sum())} done",
        "observed phase:   " + ", ".join(f"{k} {v}" for k, v in observed.items()),
        "predicted phase:  " + ", ".join(f"{k} {v}" for k, v in predicted.items()),
    ]
    lines += [f"{key + ':':<17} {attrs[key]}" for key in _PROVENANCE if key in attrs]
    runs = read_run_records(path)
    starts = [r for r in runs if r.get("event") == "start"]
    ends = [r for r in runs if r.get("event") == "end"]
    if starts:
        lines.append(f"first started:    {starts[0]['time']} on {starts[0].get('host', '?')}")
        lines.append(f"runs started:     {len(starts)}, finished: {len(ends)}")
    if ends:
        lines.append(f"last finished:    {ends[-1]['time']}")
    return "\n".join(lines)
