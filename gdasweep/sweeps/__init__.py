"""Study files, grid planning, Dask execution, the Zarr store and the command line.

Names are imported on first use, so that the command line and the Dask
client start without loading the compiled kernels, which only the workers
run.
"""

import importlib

_EXPORTS = {
    "predict": "compute",
    "simulate": "compute",
    "Summary": "run",
    "run_study": "run",
    "Execution": "spec",
    "Kernel": "spec",
    "Model": "spec",
    "Study": "spec",
    "StudyError": "spec",
    "load_study": "spec",
    "parse_study": "spec",
    "StoreExistsError": "store",
    "create_store": "store",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
