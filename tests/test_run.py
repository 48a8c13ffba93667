import csv
import dataclasses

import numpy as np
import psutil
import pytest
import xarray as xr
import zarr
from conftest import CONFIGS, DATA
from distributed import Client, LocalCluster

from gdasweep.sweeps import schema
from gdasweep.sweeps.compute import predict, simulate
from gdasweep.sweeps.run import _start_cluster, run_study
from gdasweep.sweeps.spec import load_study, with_execution, with_store
from gdasweep.sweeps.grid import get_chunk_shape
from gdasweep.sweeps.store import StoreMismatchError


@pytest.fixture(scope="module")
def two_point_store(tmp_path_factory, dask_client):
    study = with_store(load_study(CONFIGS / "two_point.toml"), tmp_path_factory.mktemp("run") / "two_point.zarr")
    summary = run_study(study, client=dask_client, progress=False)
    return study, summary, xr.open_zarr(study.store)


def test_two_point_matches_reference(two_point_store):
    _, _, ds = two_point_store
    with open(DATA / "two_point_exact.csv") as f:
        rows = [row for row in csv.DictReader(f) if row["reproducible_1e-9_rel"] == "True"]
    assert len(rows) >= 20
    for row in rows:
        point = {name: float(row[name]) for name in schema.GRID_DIMS}
        got = float(ds.final_position.sel(point).isel(generated_point=0, space_axis=0))
        expected = float(row["final_x_signed"])
        assert got == pytest.approx(expected, rel=1e-9), point


def test_store_layout(two_point_store):
    study, _, ds = two_point_store
    assert ds.error.dims == (*schema.GRID_DIMS, schema.STEP_DIM)
    assert dict(ds.sizes)["step"] == 101
    expected = set(schema.get_result_variables(save_positions=True))
    assert expected <= set(ds.data_vars)
    for name in ds.variables:
        assert ds[name].attrs.get("long_name"), name
    for name, meanings in (("observed_phase", schema.OBSERVED_PHASES), ("predicted_phase", schema.PREDICTED_PHASES)):
        attrs = ds[name].attrs
        assert list(attrs["flag_values"]) == [schema.NOT_COMPUTED, *meanings]
        assert attrs["flag_meanings"].split() == ["not_computed", *meanings.values()]
    assert ds.attrs["study_hash"] == study.hash
    assert ds.attrs["study_text"] == study.text
    assert ds.attrs["seed"] == study.seed
    for library in ("gdasweep", "numpy", "numba", "dask", "xarray", "zarr"):
        assert ds.attrs[f"{library}_version"]


def test_store_equals_direct_computation(two_point_store):
    study, _, ds = two_point_store
    grid = np.meshgrid(*(study.grid[name] for name in schema.GRID_DIMS), indexing="ij")
    flat = [g.ravel() for g in grid]
    direct = simulate(study.model, *flat, seed=study.seed)
    theory = predict(study.model.true_weights, study.model.generated_weights, *flat)
    for name, values in {**direct, **theory}.items():
        stored = ds[name].values.reshape(values.shape)
        np.testing.assert_array_equal(stored, values, err_msg=name)


def test_summary_counts_every_configuration(two_point_store):
    study, summary, ds = two_point_store
    assert summary.total == study.n_configs
    observed = ds.observed_phase.values.ravel()
    for code, name in schema.OBSERVED_PHASES.items():
        assert summary.observed()[name] == np.count_nonzero(observed == code)
    agreeing, comparable = summary.agreement()
    chaotic = summary.observed()["chaotic"]
    assert chaotic == 2
    assert 0 < agreeing <= comparable == study.n_configs - chaotic


def test_existing_store_is_not_touched(tmp_path, dask_client):
    store = tmp_path / "taken.zarr"
    store.mkdir()
    (store / "keep.txt").write_text("earlier results")
    study = with_store(load_study(CONFIGS / "quickstart.toml"), store)
    with pytest.raises(StoreMismatchError, match="taken.zarr.*not a readable gdasweep store"):
        run_study(study, client=dask_client, progress=False)
    assert [p.name for p in store.iterdir()] == ["keep.txt"]
    assert (store / "keep.txt").read_text() == "earlier results"


def _store_arrays(path):
    group = zarr.open_group(str(path), mode="r")
    return {name: array[...] for name, array in group.arrays()}


def test_stores_identical_across_workers_and_chunks(tmp_path):
    base = load_study(CONFIGS / "quickstart.toml")
    runs = [(1, 7, "one_worker.zarr"), (2, 40, "two_workers.zarr")]
    assert get_chunk_shape(base.shape, 7) != get_chunk_shape(base.shape, 40)
    stores = []
    for workers, chunk_size, name in runs:
        study = with_store(with_execution(base, workers=workers, chunk_size=chunk_size), tmp_path / name)
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0") as cluster:
            with Client(cluster) as client:
                assert len(client.scheduler_info()["workers"]) == workers
                run_study(study, client=client, progress=False)
        stores.append(study.store)

    first, second = (_store_arrays(path) for path in stores)
    assert first.keys() == second.keys()
    for name in first:
        assert first[name].dtype == second[name].dtype, name
        assert first[name].tobytes() == second[name].tobytes(), name
    attrs = [dict(xr.open_zarr(path).attrs) for path in stores]
    assert attrs[0] == attrs[1]


def test_configs_run_shrunken(tmp_path, dask_client):
    paths = sorted(CONFIGS.glob("*.toml"))
    assert {p.name for p in paths} >= {"two_point.toml", "quickstart.toml", "phase_diagram.toml", "ring.toml"}
    for path in paths:
        study = load_study(path)
        model = dataclasses.replace(study.model, steps=20, record_every=min(study.model.record_every, 20))
        grid = {name: values[:2] for name, values in study.grid.items()}
        small = dataclasses.replace(study, model=model, grid=grid, store=tmp_path / f"{path.stem}.zarr")
        summary = run_study(small, client=dask_client, progress=False)
        assert summary.total == small.n_configs, path.name
        ds = xr.open_zarr(small.store)
        assert (ds.observed_phase.values != schema.NOT_COMPUTED).all(), path.name
        assert (ds.predicted_phase.values != schema.NOT_COMPUTED).all(), path.name


def test_run_on_existing_scheduler(tmp_path, dask_client):
    address = dask_client.scheduler.address
    study = with_store(with_execution(load_study(CONFIGS / "two_point.toml"), scheduler=address), tmp_path / "s.zarr")
    summary = run_study(study, progress=False)
    assert summary.total == study.n_configs
    assert len(dask_client.scheduler_info()["workers"]) == 2
    ds = xr.open_zarr(study.store)
    assert (ds.observed_phase.values != schema.NOT_COMPUTED).all()


def test_local_cluster_listens_on_loopback(tmp_path):
    study = with_store(load_study(CONFIGS / "two_point.toml"), tmp_path / "s.zarr")
    client, cluster = _start_cluster(study)
    try:
        processes = [psutil.Process(), *psutil.Process().children(recursive=True)]
        listening = [
            connection.laddr
            for process in processes
            for connection in process.net_connections(kind="inet")
            if connection.status == psutil.CONN_LISTEN
        ]
        assert len(listening) >= 3  # scheduler, dashboard and at least one worker
        for address in listening:
            assert address.ip in ("127.0.0.1", "::1"), address
        assert cluster.dashboard_link.startswith("http://127.0.0.1:")
    finally:
        client.close()
        cluster.close()


def test_status_reports_progress_and_provenance(two_point_store):
    from gdasweep.sweeps.status import format_status

    study, summary, _ = two_point_store
    text = format_status(study.store)
    assert "blocks complete:  6 of 6" in text
    assert f"configurations:   {study.n_configs} done" in text
    observed = ", ".join(f"{name} {count}" for name, count in summary.observed().items())
    assert f"observed phase:   {observed}" in text
    assert f"study_hash:       {study.hash}" in text
    assert "runs started:     1, finished: 1" in text
