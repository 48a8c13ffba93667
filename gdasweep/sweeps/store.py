"""The Zarr store of a study: created once by the client, filled block by block.

The client writes the metadata, the coordinates and the model description;
each task then writes its own block of every result variable with Zarr
directly. Blocks are exactly the Zarr chunks, so no two tasks ever write the
same chunk and no lock is needed, on a local disk or a shared filesystem.
A store that several clients fill at once is not supported.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import shutil
import warnings
from pathlib import Path

import numpy as np

from . import schema
from .marks import sync_files
from .spec import Study

logger = logging.getLogger(__name__)


class StoreExistsError(FileExistsError):
    """The output store already exists and would be overwritten."""


class StoreMismatchError(ValueError):
    """The output store exists but belongs to another study, or is not a gdasweep store."""


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
    from .expansion import get_reach
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
    for name, (extra_dims, dtype, attrs) in schema.get_result_variables(model.save_positions, model.chaos_check).items():
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
        "method": model.method,
        "expansion_tolerance": model.expansion_tolerance,
        "expansion_reach": get_reach(model.expansion_tolerance),
        "divergence_factor": phases.DIVERGENCE_FACTOR,
        "transient_level": phases.TRANSIENT_LEVEL,
        "floor_level": phases.FLOOR_LEVEL,
        "escape_radius": phases.ESCAPE_RADIUS,
        "marginal_tolerance": phases.MARGINAL_TOLERANCE,
        "chaos_check": int(model.chaos_check),
        "chaos_noise": model.chaos_noise,
        "chaos_level": phases.CHAOS_LEVEL,
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


def _temporary_sibling(path: Path, kind: str) -> Path:
    return path.with_name(f"{path.name}.{kind}-{os.getpid()}")


def remove_leftovers(path: str | os.PathLike) -> None:
    """Remove temporary directories that killed runs left beside the store.

    Only the holder of the store's lock may call this: the directories belong
    to runs of the same store that no longer exist.
    """
    path = Path(path)
    for pattern in (f"{path.name}.creating-*", f"{path.name}.deleting-*"):
        for leftover in path.parent.glob(pattern):
            logger.warning("removing %s, left by an interrupted run", leftover)
            shutil.rmtree(leftover, ignore_errors=True)


def create_store(study: Study, chunks: tuple[int, ...]) -> Path:
    """Create the study's store with every result variable still unwritten.

    The store is written to a temporary directory beside its path and renamed
    into place, so a run killed during creation leaves either no store or a
    complete one.

    Raises
    ------
    StoreExistsError
        If anything exists at the store path; it is left untouched.
    """
    from .faults import maybe_fail

    path = Path(study.store)
    check_store_absent(path)
    dataset, encoding = _build_template(study, chunks)
    temporary = _temporary_sibling(path, "creating")
    logger.debug("creating store %s with chunks %s", path, chunks)
    with warnings.catch_warnings():
        # Zarr 3 notes that consolidated metadata is not in its specification
        # yet; xarray reads it, and it spares readers a listing of the store.
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        dataset.to_zarr(temporary, mode="w-", compute=False, encoding=encoding, zarr_format=3, consolidated=True)
    files = [p for p in temporary.rglob("*") if p.is_file()]
    sync_files(temporary, files)
    maybe_fail("create")
    os.rename(temporary, path)
    sync_files(path.parent, [])
    return path


def remove_store(path: str | os.PathLike) -> None:
    """Delete a store: rename it aside first, so that a kill leaves no half-deleted store."""
    path = Path(path)
    doomed = _temporary_sibling(path, "deleting")
    os.rename(path, doomed)
    shutil.rmtree(doomed)


def open_existing(path: str | os.PathLike) -> tuple[dict, tuple[int, ...]]:
    """Return the attributes and the grid chunk shape of an existing gdasweep store.

    Raises
    ------
    StoreMismatchError
        If ``path`` is not a directory holding a gdasweep store.
    """
    import zarr

    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        raise StoreMismatchError(f"store {str(path)!r} does not exist")
    if not path.is_dir():
        raise StoreMismatchError(f"output store path {str(path)!r} exists but is not a directory")
    try:
        group = zarr.open_group(str(path), mode="r")
        attrs = dict(group.attrs)
        chunks = tuple(group["observed_phase"].chunks)
    except Exception as exc:  # zarr raises several types for a directory that is not a store
        raise StoreMismatchError(
            f"output store path {str(path)!r} exists but is not a readable gdasweep store ({exc}); "
            "remove it or choose another path"
        ) from exc
    if "study_hash" not in attrs:
        raise StoreMismatchError(f"output store {str(path)!r} has no study_hash attribute: not a gdasweep store")
    return attrs, chunks


def describe_difference(stored_text: str, study: Study) -> str:
    """Return which science settings of ``study`` differ from the stored study file."""
    from .spec import parse_study

    try:
        stored = parse_study(stored_text, "<stored study>")
    except ValueError as exc:
        return f"the stored study file no longer parses ({exc})"
    differences = []
    if stored.seed != study.seed:
        differences.append(f"seed: {stored.seed} -> {study.seed}")
    for field in dataclasses.fields(study.model):
        old, new = getattr(stored.model, field.name), getattr(study.model, field.name)
        if isinstance(old, np.ndarray):
            same = old.shape == new.shape and np.array_equal(old, new)
            old, new = old.tolist(), new.tolist()
        else:
            same = old == new
        if not same:
            differences.append(f"model.{field.name}: {_short(old)} -> {_short(new)}")
    for axis in schema.GRID_DIMS:
        old, new = stored.grid[axis], study.grid[axis]
        if old.shape != new.shape or not np.array_equal(old, new):
            differences.append(f"grid.{axis}: {_short(old.tolist())} -> {_short(new.tolist())}")
    return "; ".join(differences) if differences else "the study hashes differ"


def _short(value, limit: int = 60) -> str:
    text = repr(value.value if hasattr(value, "value") else value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def get_chunk_files(path: str | os.PathLike, chunks, slices, names) -> list[Path]:
    """Return the chunk files that hold one block of the variables ``names``."""
    import zarr

    group = zarr.open_group(str(path), mode="r")
    position = tuple(s.start // c for s, c in zip(slices, chunks))
    files = []
    for name in names:
        array = group[name]
        coords = position + (0,) * (array.ndim - len(position))
        files.append(Path(path) / name / array.metadata.encode_chunk_key(coords))
    return files


def write_block(path: str | os.PathLike, slices, outputs: dict[str, np.ndarray], block_shape, chunks) -> None:
    """Write one block of every result variable and sync it to disk.

    ``outputs`` have the batch axis first. When this returns, every chunk
    file of the block is on disk, so the caller may mark the block complete.
    """
    import zarr

    from .faults import maybe_fail

    # Every chunk is written even when it equals the fill value (all NaN decay
    # rates, say), so a missing chunk file always means lost data.
    with zarr.config.set({"array.write_empty_chunks": True}):
        group = zarr.open_group(str(path), mode="r+")
        for position, (name, values) in enumerate(outputs.items()):
            array = group[name]
            extra = values.shape[1:]
            array[slices] = values.reshape(tuple(block_shape) + extra)
            if position == len(outputs) // 2:
                maybe_fail("write")
    sync_files(Path(path), get_chunk_files(path, chunks, slices, outputs))
    maybe_fail("sync")
