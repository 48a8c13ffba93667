"""Fault injection for the reliability tests: kill processes at named points.

``GDASWEEP_FAULT=POINT[:N]`` sends SIGKILL when a process reaches ``POINT``
for the ``N``-th time (default 1). ``GDASWEEP_FAULT_TARGET`` chooses the
victim: ``group`` (default) kills the whole process group, as a batch
system kills a job, and ``self`` kills only the process that reached the
point, such as one Dask worker. With ``GDASWEEP_FAULT_ONCE=PATH`` the fault
fires only if it can create ``PATH``, so a restarted worker does not fire it
again. Nothing happens when ``GDASWEEP_FAULT`` is unset.

Points in the client: ``plan``, ``lock``, ``create`` (store written to its
temporary directory, not yet renamed), ``created``, ``submit`` and
``progress`` (a block reported complete). Points in the workers: ``write``
(part of a block's variables written), ``sync`` (block written and synced,
no completion mark yet) and ``mark`` (completion mark written).
"""

from __future__ import annotations

import collections
import os
import signal

_ENV = "GDASWEEP_FAULT"
_reached: collections.Counter = collections.Counter()


def maybe_fail(point: str) -> None:
    """Kill the process or its group if ``GDASWEEP_FAULT`` names this point and count."""
    spec = os.environ.get(_ENV)
    if not spec:
        return
    name, _, count = spec.partition(":")
    if name != point:
        return
    _reached[point] += 1
    if _reached[point] != int(count or 1):
        return
    marker = os.environ.get("GDASWEEP_FAULT_ONCE")
    if marker:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
    if os.environ.get("GDASWEEP_FAULT_TARGET", "group") == "self":
        os.kill(os.getpid(), signal.SIGKILL)
    else:
        os.killpg(os.getpgrp(), signal.SIGKILL)
