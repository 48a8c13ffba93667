"""The Zarr store of a study: created once by the client, filled block by block.

The client writes the metadata, the coordinates and the model description;
each task then writes its own block of every result variable with Zarr
directly. Blocks are exactly the Zarr chunks, so no two tasks ever write the
same chunk and no lock is needed, on a local disk or a shared filesystem.
A store that several clients fill at once is not supported.
"""

from __future__ import annotations

import logging
import os
import platform
import warnings
from pathlib import Path

import numpy as np

from . import schema
from .spec import Study

logger = logging.getLogger(__name__)


class StoreExistsError(FileExistsError):
    """The output store already exists and would be overwritten."""


def _versions() -> dict[str, str]:
    import dask
    import numba
    import xarray
    import zarr

    from .. import __version__

    return {
        "gdasweep_version": __version__,
        "numpy_version": np.__version__,
        "numba_version": numba.__version__,
        "dask_version": dask.__version__,
        "xarray_version": xarray.__version__,
        "zarr_version": zarr.__version__,
        "python_version": platform.python_version(),
    }


def _build_template(study: Study, chunks: tuple[int, ...]):
    import dask.array as da
    import xarray as xr

    from ..kernels import phases
    from .grid import get_record_steps

    model = study.model
    steps = get_record_steps(model.steps, model.record_every)
    extra_sizes = {
        schema.STEP_DIM: steps.shape[0],
        schema.GENERATED_DIM: model.generated_points.shape[0],
        schema.SPACE_DIM: model.generated_points.shape[1],
    }
    data_vars = {}
    encoding = {}
    for name, (extra_dims, dtype, attrs) in schema.get_result_variables(model.save_positions).items():
        dims = schema.GRID_DIMS + extra_dims
        shape = study.shape + tuple(extra_sizes[d] for d in extra_dims)
        chunk_shape = chunks + tuple(extra_sizes[d] for d in extra_dims)
        fill = schema.get_fill_value(name, dtype)
        data_vars[name] = (dims, da.full(shape, fill, dtype=dtype, chunks=chunk_shape), attrs)
        encoding[name] = {"chunks": chunk_shape, "_FillValue": None, "fill_value": fill}

    data_vars["true_points"] = ((schema.TRUE_DIM, schema.SPACE_DIM), model.true_points,
                                {"long_name": "true point positions"})
    data_vars["true_weights"] = ((schema.TRUE_DIM,), model.true_weights,
                                 {"long_name": "true point weights p_i"})
    data_vars["generated_initial"] = ((schema.GENERATED_DIM, schema.SPACE_DIM), model.generated_points,
                                      {"long_name": "generated point positions at step 0"})
    data_vars["generated_weights"] = ((schema.GENERATED_DIM,), model.generated_weights,
                                      {"long_name": "generated point weights"})

    coords = {name: (name, study.grid[name], schema.COORD_ATTRS[name]) for name in schema.GRID_DIMS}
    coords[schema.STEP_DIM] = (schema.STEP_DIM, steps, schema.COORD_ATTRS[schema.STEP_DIM])
    attrs = {
        "title": "gdasweep study: exact GDA simulation beside the linearized theory",
        "study_source": study.source,
        "study_text": study.text,
        "study_hash": study.hash,
        "seed": study.seed,
        "kernel": model.kernel.value,
        "steps": model.steps,
        "record_every": model.record_every,
        "history_tolerance": model.history_tolerance,
        "divergence_factor": phases.DIVERGENCE_FACTOR,
        "transient_level": phases.TRANSIENT_LEVEL,
        "floor_level": phases.FLOOR_LEVEL,
        "escape_radius": phases.ESCAPE_RADIUS,
        "marginal_tolerance": phases.MARGINAL_TOLERANCE,
        **_versions(),
    }
    return xr.Dataset(data_vars, coords=coords, attrs=attrs), encoding


def check_store_absent(path: str | os.PathLike) -> None:
    """Raise ``StoreExistsError`` if anything exists at ``path``."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        raise StoreExistsError(
            f"output store {str(path)!r} already exists: remove it, or choose another path "
            "with --store or the study file's [output] store"
        )


def create_store(study: Study, chunks: tuple[int, ...]) -> Path:
    """Create the study's store with every result variable still unwritten.

    Raises
    ------
    StoreExistsError
        If anything exists at the store path; it is left untouched.
    """
    path = Path(study.store)
    check_store_absent(path)
    dataset, encoding = _build_template(study, chunks)
    logger.debug("creating store %s with chunks %s", path, chunks)
    with warnings.catch_warnings():
        # Zarr 3 notes that consolidated metadata is not in its specification
        # yet; xarray reads it, and it spares readers a listing of the store.
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        dataset.to_zarr(path, mode="w-", compute=False, encoding=encoding, zarr_format=3, consolidated=True)
    return path


def write_block(path: str | os.PathLike, slices, outputs: dict[str, np.ndarray], block_shape) -> None:
    """Write one block of every result variable; ``outputs`` have the batch axis first."""
    import zarr

    group = zarr.open_group(str(path), mode="r+")
    for name, values in outputs.items():
        array = group[name]
        extra = values.shape[1:]
        array[slices] = values.reshape(tuple(block_shape) + extra)
