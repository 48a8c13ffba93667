"""Completion marks: which blocks of a store are durably written.

A block's mark is ``STORE/.gdasweep/done/INDEX.json``, holding the block's
phase counts and kernel time. It is written only after every chunk file of
the block has been synced to disk, so a mark never exists for data that
could still be lost. The mark goes through a temporary file that is synced
and renamed, so a half-written mark is never read as complete.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

MARKS_DIR = Path(".gdasweep") / "done"


def _sync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_files(root: Path, files: list[Path]) -> None:
    """Flush ``files`` and every directory from each file up to ``root`` to disk."""
    directories = set()
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        parent = path.parent
        while parent != root and root in parent.parents:
            directories.add(parent)
            parent = parent.parent
    directories.add(root)
    for directory in sorted(directories, key=lambda p: len(p.parts), reverse=True):
        _sync_directory(directory)


def write_mark(store: str | os.PathLike, index: int, counts: np.ndarray, kernel_seconds: float) -> None:
    """Durably record block ``index`` as complete."""
    directory = Path(store) / MARKS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{index}.json"
    temporary = directory / f".{index}.json.{os.getpid()}.tmp"
    content = {"block": index, "counts": counts.tolist(), "kernel_seconds": kernel_seconds}
    with open(temporary, "w") as file:
        json.dump(content, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, final)
    _sync_directory(directory)


def read_marks(store: str | os.PathLike) -> tuple[dict[int, dict], list[Path]]:
    """Return the readable marks by block index, and the paths of unreadable ones."""
    directory = Path(store) / MARKS_DIR
    marks: dict[int, dict] = {}
    unreadable: list[Path] = []
    if not directory.is_dir():
        return marks, unreadable
    for path in directory.glob("*.json"):
        try:
            content = json.loads(path.read_text())
            index = int(path.stem)
            if content.get("block") != index or not isinstance(content.get("counts"), list):
                raise ValueError("content does not match the file name")
        except (OSError, ValueError) as exc:
            logger.debug("unreadable completion mark %s: %s", path, exc)
            unreadable.append(path)
            continue
        marks[index] = content
    return marks, unreadable


def clear_marks(store: str | os.PathLike, indices) -> None:
    """Remove the marks of ``indices`` so that the next run computes those blocks again."""
    directory = Path(store) / MARKS_DIR
    for index in indices:
        (directory / f"{index}.json").unlink(missing_ok=True)
    if directory.is_dir():
        _sync_directory(directory)


RUNS_FILE = Path(".gdasweep") / "runs.jsonl"


def append_run_record(store: str | os.PathLike, record: dict) -> None:
    """Append one line about a run (its start or its end) to the store's run log."""
    path = Path(store) / RUNS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as file:
        file.write(json.dumps(record) + "\n")
        file.flush()
        os.fsync(file.fileno())


def read_run_records(store: str | os.PathLike) -> list[dict]:
    """Return the run log's records, skipping a last line cut short by a kill."""
    path = Path(store) / RUNS_FILE
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
