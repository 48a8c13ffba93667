"""Check a store chunk by chunk against its completion marks."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import schema
from .grid import get_block_count, get_block_slices
from .marks import clear_marks, read_marks
from .store import get_chunk_files, open_existing

logger = logging.getLogger(__name__)


@dataclass
class VerifyReport:
    """Blocks of a store by state; ``problems`` lists one line per damaged chunk or mark."""

    blocks: int = 0
    complete: list[int] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)
    partial: list[int] = field(default_factory=list)
    damaged: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    cleared: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return len(self.complete) == self.blocks and not self.problems

    def format(self) -> str:
        """Return the report as lines of text."""
        lines = [
            f"{self.blocks} blocks: {len(self.complete)} complete, {len(self.missing)} not computed, "
            f"{len(self.partial)} partly written without a completion mark, {len(self.damaged)} marked "
            "complete but damaged"
        ]
        lines.extend(self.problems)
        if self.cleared:
            lines.append(f"removed the completion marks of {len(self.cleared)} damaged blocks "
                         f"({_ranges(self.cleared)}): the next run computes them again")
        if not self.ok:
            lines.append("run the study again with the same command to compute the blocks not complete")
        return "\n".join(lines)


def _ranges(indices: list[int]) -> str:
    return ", ".join(str(i) for i in sorted(indices)[:20]) + (" ..." if len(indices) > 20 else "")


def _check_block(group, path: Path, chunks, slices, names) -> tuple[list[str], int]:
    """Return the problems of one block's chunks and how many chunk files exist."""
    problems = []
    present = 0
    for name, file in zip(names, get_chunk_files(path, chunks, slices, names)):
        if not file.is_file():
            problems.append(f"chunk {file.relative_to(path)} is missing")
            continue
        present += 1
        try:
            values = group[name][slices]
        except Exception as exc:  # a damaged chunk fails in the codec, with its own exception type
            problems.append(f"chunk {file.relative_to(path)} cannot be decoded: {type(exc).__name__}: {exc}")
            continue
        if name in ("observed_phase", "predicted_phase") and np.any(values == schema.NOT_COMPUTED):
            problems.append(f"chunk {file.relative_to(path)} holds configurations marked not computed")
    return problems, present


def verify_store(path: str | os.PathLike, *, repair: bool = True) -> VerifyReport:
    """Read every chunk of a store and compare it with the completion marks.

    Parameters
    ----------
    path : path-like
        The store.
    repair : bool
        Remove the completion marks of damaged blocks, so that the next run
        of the study computes them again.

    Returns
    -------
    VerifyReport
    """
    import zarr

    path = Path(path)
    attrs, chunks = open_existing(path)
    group = zarr.open_group(str(path), mode="r")
    shape = tuple(group[name].shape[0] for name in schema.GRID_DIMS)
    names = [name for name in group.array_keys() if group[name].ndim >= len(shape)
             and tuple(group[name].shape[: len(shape)]) == shape and name not in schema.GRID_DIMS]
    marks, unreadable = read_marks(path)

    report = VerifyReport(blocks=int(np.prod(get_block_count(shape, chunks))))
    for mark_path in unreadable:
        report.problems.append(f"completion mark {mark_path.relative_to(path)} cannot be read")
    for index in range(report.blocks):
        slices = get_block_slices(shape, chunks, index)
        problems, present = _check_block(group, path, chunks, slices, names)
        if index in marks and not problems:
            report.complete.append(index)
        elif index in marks:
            report.damaged.append(index)
            report.problems.extend(f"block {index}: {problem}" for problem in problems)
        elif present:
            report.partial.append(index)
        else:
            report.missing.append(index)

    if repair and (report.damaged or unreadable):
        clear_marks(path, report.damaged)
        for mark_path in unreadable:
            mark_path.unlink(missing_ok=True)
        report.cleared = list(report.damaged)
        logger.info("removed %d completion marks of damaged blocks", len(report.damaged))
    return report
