"""Study files, grid planning, Dask execution, the Zarr store and the command line."""

from .compute import predict, simulate
from .run import Summary, run_study
from .spec import Execution, Kernel, Model, Study, StudyError, load_study, parse_study
from .store import StoreExistsError, create_store

__all__ = [
    "predict",
    "simulate",
    "Summary",
    "run_study",
    "Execution",
    "Kernel",
    "Model",
    "Study",
    "StudyError",
    "load_study",
    "parse_study",
    "StoreExistsError",
    "create_store",
]
