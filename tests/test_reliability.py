"""Kills, concurrent runs, damaged chunks and storage errors, with real processes.

Each run is a ``gdasweep`` command in a new process group on a local Dask
cluster of two worker processes. ``GDASWEEP_FAULT`` makes the client or a
worker send SIGKILL at a named point (see ``gdasweep.sweeps.faults``).
"""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from gdasweep.sweeps.lock import StoreLock, get_lock_path
from gdasweep.sweeps.marks import MARKS_DIR

STUDY = """\
seed = 7

[model]
steps = 60
record_every = 5
save_positions = true
true_points = [[0.0]]
generated_points = [[0.1]]
generated_weights = [0.8]

[grid]
eta_d = [0.3, 0.1]
eta_g = [0.1]
lam = [1.0, 0.3, 0.1, 0.03, 0.0]
sigma = [0.1, 0.3, 1.0, 3.0, 10.0, 30.0]

[execution]
workers = 2
chunk_size = 4

[output]
store = "study.zarr"
"""
BLOCKS = 20  # 2 x 1 x 5 x 2 blocks of shape (1, 1, 1, 4)


def run_gdasweep(directory: Path, *args, env=None, preexec_fn=None, study="study.toml"):
    """Run ``gdasweep ARGS`` in ``directory`` in a new process group; return the completed process."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("GDASWEEP_FAULT")}
    environment.update(env or {})
    command = [sys.executable, "-m", "gdasweep.sweeps.cli", *args]
    if "run" in args:
        command += [study, "--no-progress"]
    return subprocess.run(command, cwd=directory, env=environment, capture_output=True, text=True,
                          timeout=300, start_new_session=True, preexec_fn=preexec_fn)


def store_arrays(path: Path) -> dict[str, bytes]:
    group = zarr.open_group(str(path), mode="r")
    return {name: array[...].tobytes() for name, array in group.arrays()}


def count_marks(store: Path) -> int:
    return len(list((store / MARKS_DIR).glob("*.json"))) if (store / MARKS_DIR).is_dir() else 0


def new_study_directory(tmp_path: Path, text: str = STUDY) -> Path:
    (tmp_path / "study.toml").write_text(text)
    return tmp_path


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    directory = new_study_directory(tmp_path_factory.mktemp("reference"))
    result = run_gdasweep(directory, "-q", "run")
    assert result.returncode == 0, result.stderr
    return store_arrays(directory / "study.zarr")


def assert_same_data(store: Path, reference: dict[str, bytes]) -> None:
    arrays = store_arrays(store)
    assert arrays.keys() == reference.keys()
    for name in reference:
        assert arrays[name] == reference[name], f"array {name!r} differs from the uninterrupted run"


def tasks_run(output: str) -> int:
    """Return how many blocks a run computed, from its printed output."""
    for line in output.splitlines():
        if " tasks, kernel time" in line:
            return int(line.split(" tasks,")[0].rsplit(" ", 1)[-1])
        if "is complete: nothing to compute" in line:
            return 0
    raise AssertionError(f"no task count in output:\n{output}")


KILL_POINTS = [
    "plan", "lock", "create", "created", "submit", "progress:1", "progress:7",
    "write:1", "write:4", "sync:2", "mark:1", "mark:5",
]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_killed_run_resumes_to_same_data(point, tmp_path, reference):
    directory = new_study_directory(tmp_path)
    store = directory / "study.zarr"

    killed = run_gdasweep(directory, "-q", "run", env={"GDASWEEP_FAULT": point})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    done_before = count_marks(store)
    if store.exists():
        check = run_gdasweep(directory, "verify", "study.zarr", "--no-repair")
        assert "0 marked complete but damaged" in check.stdout, check.stdout

    rerun = run_gdasweep(directory, "-q", "run")

    assert rerun.returncode == 0, rerun.stderr
    assert tasks_run(rerun.stdout) == BLOCKS - done_before
    assert count_marks(store) == BLOCKS
    assert_same_data(store, reference)
    assert not list(directory.glob("study.zarr.creating-*"))
    assert get_lock_path(store).read_text() == ""


def test_worker_killed_mid_chunk_is_retried(tmp_path, reference):
    directory = new_study_directory(tmp_path)
    marker = tmp_path / "fault-fired"
    env = {"GDASWEEP_FAULT": "write:2", "GDASWEEP_FAULT_TARGET": "self", "GDASWEEP_FAULT_ONCE": str(marker)}

    result = run_gdasweep(directory, "-q", "run", env=env)

    assert result.returncode == 0, result.stderr
    assert marker.exists()
    assert count_marks(directory / "study.zarr") == BLOCKS
    assert_same_data(directory / "study.zarr", reference)


def test_run_rejects_store_in_use(tmp_path):
    directory = new_study_directory(tmp_path)
    with StoreLock(directory / "study.zarr"):
        result = run_gdasweep(directory, "-q", "run")
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]
    assert f"host {socket.gethostname()}" in message
    assert f"process {os.getpid()}" in message
    assert "started 20" in message
    assert not (directory / "study.zarr").exists()


def test_two_concurrent_runs_one_proceeds(tmp_path, reference):
    directory = new_study_directory(tmp_path)
    environment = {key: value for key, value in os.environ.items() if not key.startswith("GDASWEEP_FAULT")}
    command = [sys.executable, "-m", "gdasweep.sweeps.cli", "-q", "run", "study.toml", "--no-progress"]
    processes = [subprocess.Popen(command, cwd=directory, env=environment, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in processes]

    statuses = sorted(status for status, _, _ in results)
    busy = [err for status, _, err in results if status == 1]
    computing = [tasks_run(out) for status, out, _ in results if status == 0]
    # Either the second run met the lock, or it started after the first had finished
    # and found every block complete. No block is ever computed by both.
    assert statuses in ([0, 1], [0, 0])
    assert all("is in use by host" in err for err in busy)
    assert sorted(computing) in ([BLOCKS], [0, BLOCKS])
    assert_same_data(directory / "study.zarr", reference)


def test_stale_lock_is_taken_over(tmp_path, reference):
    directory = new_study_directory(tmp_path)
    lock = get_lock_path(directory / "study.zarr")
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": 999999, "started": "2026-01-01T00:00:00"}))

    result = run_gdasweep(directory, "run")

    assert result.returncode == 0, result.stderr
    assert "taking over the lock" in result.stderr
    assert "process 999999" in result.stderr
    assert_same_data(directory / "study.zarr", reference)


def test_verify_finds_damaged_chunks_and_run_repairs(tmp_path, reference):
    directory = new_study_directory(tmp_path)
    store = directory / "study.zarr"
    assert run_gdasweep(directory, "-q", "run").returncode == 0
    truncated = store / "error" / "c" / "0" / "0" / "1" / "0" / "0"
    deleted = store / "rho_generator" / "c" / "1" / "0" / "3" / "1"
    truncated.write_bytes(truncated.read_bytes()[:7])
    deleted.unlink()

    check = run_gdasweep(directory, "verify", "study.zarr")

    assert check.returncode == 1
    assert "2 marked complete but damaged" in check.stdout
    assert "error/c/0/0/1/0/0 cannot be decoded" in check.stdout
    assert "rho_generator/c/1/0/3/1 is missing" in check.stdout
    assert count_marks(store) == BLOCKS - 2

    rerun = run_gdasweep(directory, "-q", "run")
    assert rerun.returncode == 0, rerun.stderr
    assert tasks_run(rerun.stdout) == 2
    assert_same_data(store, reference)
    assert run_gdasweep(directory, "verify", "study.zarr").returncode == 0


def test_verify_reports_unfinished_store(tmp_path):
    directory = new_study_directory(tmp_path)
    killed = run_gdasweep(directory, "-q", "run", env={"GDASWEEP_FAULT": "mark:2"})
    assert killed.returncode == -signal.SIGKILL

    check = run_gdasweep(directory, "verify", "study.zarr")

    assert check.returncode == 1
    assert "not computed" in check.stdout
    assert "0 marked complete but damaged" in check.stdout


def file_digest(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


def test_different_study_is_rejected_without_overwrite(tmp_path):
    directory = new_study_directory(tmp_path)
    store = directory / "study.zarr"
    assert run_gdasweep(directory, "-q", "run").returncode == 0
    before = file_digest(store)
    (directory / "other.toml").write_text(STUDY.replace("sigma = [0.1, 0.3,", "sigma = [0.2, 0.3,"))

    rejected = run_gdasweep(directory, "-q", "run", study="other.toml")

    assert rejected.returncode == 2
    message = rejected.stderr.strip().splitlines()[-1]
    assert "made by a different study" in message
    assert "grid.sigma: [0.1, 0.3" in message
    assert "--overwrite" in message
    assert file_digest(store) == before

    replaced = run_gdasweep(directory, "-q", "run", "--overwrite", study="other.toml")
    assert replaced.returncode == 0, replaced.stderr
    assert float(zarr.open_group(str(store), mode="r")["sigma"][0]) == 0.2


def test_store_path_that_is_a_file(tmp_path):
    directory = new_study_directory(tmp_path)
    (directory / "study.zarr").write_text("not a store")
    result = run_gdasweep(directory, "-q", "run")
    assert result.returncode == 2
    assert "exists but is not a directory" in result.stderr
    assert (directory / "study.zarr").read_text() == "not a store"


def test_store_without_permission(tmp_path):
    # Tests run as root here, which ignores permission bits; an immutable
    # directory refuses new entries even to root.
    directory = new_study_directory(tmp_path)
    locked = directory / "locked"
    locked.mkdir()
    if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available on this filesystem")
    try:
        result = run_gdasweep(directory, "-q", "run", "--store", "locked/study.zarr")
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=True)
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]
    assert "storage failed" in message
    assert "Operation not permitted" in message
    assert list(locked.iterdir()) == []


def test_full_disk_leaves_marks_consistent(tmp_path, reference):
    directory = new_study_directory(tmp_path)
    disk = directory / "disk"
    disk.mkdir()
    # Room for the store's metadata but not for all its chunk files (4 KiB pages each).
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        failed = run_gdasweep(directory, "-q", "run", "--store", "disk/study.zarr")
        check = run_gdasweep(directory, "verify", "disk/study.zarr", "--no-repair")
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        rerun = run_gdasweep(directory, "-q", "run", "--store", "disk/study.zarr")
        final = store_arrays(disk / "study.zarr")
    finally:
        subprocess.run(["umount", str(disk)], check=True)

    assert failed.returncode == 1
    assert "No space left on device" in failed.stderr.strip().splitlines()[-1]
    assert "0 marked complete but damaged" in check.stdout
    assert rerun.returncode == 0, rerun.stderr
    assert final == reference
