"""Numba compile options, read once from ``GDASWEEP_*`` environment variables.

``GDASWEEP_NUMBA_CACHE`` (default ``1``) stores compiled kernels in
``__pycache__`` beside the sources. Every Dask worker process after the first
then loads them instead of compiling again. Set it to ``0`` where the package
directory is read-only or shared between incompatible CPUs. Numba checks a
cached kernel against its own source file only, so after editing a kernel
that another file's kernel calls, delete the ``*.nbi``/``*.nbc`` files.
``GDASWEEP_FASTMATH`` (default ``0``) lets LLVM reorder floating-point
operations. Results then depend on the CPU and no longer reproduce bit for
bit, so enabling it emits a ``UserWarning``.
"""

import os
import warnings

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _read_flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(
        f"environment variable {name}={raw!r} is invalid: expected one of "
        f"{sorted(_TRUE | _FALSE - {''})}"
    )


CACHE = _read_flag("GDASWEEP_NUMBA_CACHE", True)
FASTMATH = _read_flag("GDASWEEP_FASTMATH", False)

if FASTMATH:
    warnings.warn(
        "GDASWEEP_FASTMATH is enabled: kernels may reorder floating-point operations, "
        "so results depend on the CPU and studies no longer reproduce bit for bit",
        UserWarning,
        stacklevel=2,
    )
