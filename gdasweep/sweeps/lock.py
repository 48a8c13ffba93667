"""Exclusive access to a store: one ``gdasweep run`` at a time.

The lock is an advisory ``flock`` on ``STORE.lock`` beside the store, whose
content names the holder (host, process id, start time). The operating
system releases an ``flock`` when its process dies, however it dies, so a
lock left by a killed run is free: the next run takes it over and logs the
holder it replaces. On NFS, Linux emulates ``flock`` with POSIX record locks,
which the NFS lock manager honours across hosts.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import logging
import os
import socket
from pathlib import Path

logger = logging.getLogger(__name__)


class StoreBusyError(RuntimeError):
    """Another process holds the store's lock."""


def get_lock_path(store: str | os.PathLike) -> Path:
    """Return the path of the lock file of ``store``."""
    store = Path(store)
    return store.with_name(store.name + ".lock")


def _describe(holder: dict) -> str:
    return (f"host {holder.get('host', '?')}, process {holder.get('pid', '?')}, "
            f"started {holder.get('started', '?')}")


def _read_holder(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 4096)
    try:
        holder = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        holder = {"host": "unreadable lock file"}
    return holder if isinstance(holder, dict) else {}


class StoreLock:
    """Context manager holding the lock of one store.

    Raises
    ------
    StoreBusyError
        On entry, if another process holds the lock; the message names it.
    """

    def __init__(self, store: str | os.PathLike):
        self.store = Path(store)
        self.path = get_lock_path(self.store)
        self._fd: int | None = None

    def __enter__(self) -> StoreLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise StoreBusyError(
                    f"store {str(self.store)!r} is in use by {_describe(holder)}; wait for that run to "
                    f"finish or stop it (lock file {self.path})"
                ) from None
            raise

        previous = _read_holder(fd)
        if previous:
            logger.warning("taking over the lock of %s, left by %s, which no longer holds it", self.store,
                           _describe(previous))
        holder = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode("utf-8"), 0)
        os.fsync(fd)
        self._fd = fd
        logger.debug("locked %s", self.path)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
        logger.debug("unlocked %s", self.path)
