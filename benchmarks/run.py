"""Measure gdasweep side by side and print a table of times and ratios.

Usage (from the repository root, with the package and its test extra installed)::

    python benchmarks/run.py            # the full set, about 15 minutes on 2 cores
    python benchmarks/run.py --quick    # smaller studies, about 2 minutes

Every comparison runs in this one invocation, so the ratios compare
measurements taken on the same machine under the same load. Kernel
comparisons run on one core; studies run through the ``gdasweep`` command
on a local Dask cluster.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import gda_numpy  # noqa: E402  (the tests' plain NumPy implementation)
from baseline import plain_gda  # noqa: E402

from gdasweep.kernels.gda import run_gda  # noqa: E402
from gdasweep.sweeps.compute import DIVERGENCE_FACTOR, nearest_true_points, predict, simulate  # noqa: E402
from gdasweep.sweeps.grid import get_block_parameters  # noqa: E402
from gdasweep.sweeps.spec import load_study  # noqa: E402

MEMORY_DRIVER = """
import resource, sys
from distributed import Client, LocalCluster
from gdasweep.sweeps.run import run_study
from gdasweep.sweeps.spec import load_study, with_store

def peak_kib():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

study = with_store(load_study(sys.argv[1]), sys.argv[2])
with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
    with Client(cluster) as client:
        run_study(study, client=client, progress=False)
        workers = client.run(peak_kib)
print(f"peak-rss-kib {peak_kib()} {max(workers.values())}")
"""


def describe_machine() -> list[str]:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return [
        f"date: {datetime.date.today().isoformat()}",
        f"machine: {model}, {os.cpu_count()} cores, {memory:.0f} GiB, {platform.platform()}",
        f"software: Python {platform.python_version()}, NumPy {np.__version__}, Numba {numba.__version__}",
    ]


def best_of(repeats: int, function) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def grid_parameters(study):
    return get_block_parameters(study, tuple(slice(None) for _ in study.shape))


def reproducible_indices(config: str, params) -> list[int]:
    """Return the configurations whose trajectories no rounding difference can move.

    For the two-point study those are the rows that the reference table marks
    reproducible, because the others sit at rounding noise or are chaotic. The
    ring study's three configurations all are.
    """
    if config != "two_point.toml":
        return list(range(params[0].size))
    with open(ROOT / "tests" / "data" / "two_point_exact.csv") as f:
        keep = {
            tuple(float(row[k]) for k in ("eta_d", "eta_g", "lam", "sigma"))
            for row in csv.DictReader(f)
            if row["reproducible_1e-9_rel"] == "True"
        }
    return [c for c, values in enumerate(zip(*params)) if tuple(float(v) for v in values) in keep]


def kernel_history(model, eta_d, eta_g, lam, sigma) -> np.ndarray:
    """Return every position from ``run_gda``, the loop inside the batched kernel."""
    shape = (model.steps + 1,) + model.generated_points.shape
    history = np.empty(shape)
    history[0] = model.generated_points
    run_gda(
        model.true_points, model.true_weights, model.generated_weights, eta_d, eta_g, lam, sigma,
        model.history_tolerance, DIVERGENCE_FACTOR, nearest_true_points(model.true_points, model.generated_points),
        history, np.empty(shape[0]), np.empty(shape[0], dtype=np.int32), np.empty(shape[1:]),
    )
    return history


def relative_difference(history, reference) -> float:
    """Return the largest difference over the trajectory divided by its largest coordinate."""
    return float(np.abs(history - reference).max() / np.abs(reference).max())


def compare_kernels(config: str, numpy_configs: int, rows: list[list[str]], notes: list[str]) -> None:
    study = load_study(ROOT / "configs" / config)
    # The plain loop and NumPy run no chaos check and sum the history directly,
    # so the kernel here does the same.
    model = dataclasses.replace(study.model, chaos_check=False, method="direct")
    params = grid_parameters(study)
    n = params[0].size
    numba.set_num_threads(1)
    checked = reproducible_indices(config, params)
    on_numpy = checked[:numpy_configs]

    simulate(model, *(p[:1] for p in params))
    batched_seconds = best_of(3, lambda: simulate(model, *params))

    points = (model.true_points, model.true_weights, model.generated_points, model.generated_weights)
    plain_gda(*points, 0.1, 0.1, 0.1, 1.0, 2)
    plain_histories = {}
    start = time.perf_counter()
    for c in range(n):
        plain_histories[c] = plain_gda(*points, *(float(p[c]) for p in params), model.steps)
    plain_seconds = time.perf_counter() - start

    numpy_histories = {}
    start = time.perf_counter()
    for c in on_numpy:
        numpy_histories[c] = gda_numpy.simulate(*points, *(float(p[c]) for p in params), model.steps)
    numpy_seconds = time.perf_counter() - start

    per_batched = batched_seconds / n
    per_plain = plain_seconds / n
    per_numpy = numpy_seconds / len(on_numpy)
    rows.append([f"exact kernel (direct sum), {config}, one core", f"{per_batched * 1e3:.3f} ms/config",
                 f"{per_numpy / per_batched:.0f}x NumPy ({per_numpy:.2f} s/config, {len(on_numpy)} configs)",
                 f"{per_plain / per_batched:.2f}x plain Numba loop ({per_plain * 1e3:.3f} ms/config)"])

    plain_worst = numpy_worst = final_worst = 0.0
    for c in checked:
        history = kernel_history(model, *(float(p[c]) for p in params))
        plain_worst = max(plain_worst, relative_difference(history, plain_histories[c]))
        final = plain_histories[c][-1]
        final_worst = max(final_worst, float(np.abs(history[-1] - final).max() / np.abs(final).max()))
        if c in numpy_histories:
            numpy_worst = max(numpy_worst, relative_difference(history, numpy_histories[c]))
    note = (
        f"{config}, {len(checked)} reproducible configurations: whole trajectories differ by at most "
        f"{plain_worst:.1e} of their largest coordinate from the plain loop and {numpy_worst:.1e} from NumPy"
    )
    if config == "two_point.toml":
        # The reference table judges these rows by their final value, some of which
        # decayed to 1e-30: there the order of additions shows at the 1e-12 level.
        note += f"; final positions differ by at most {final_worst:.1e} of their own size"
    notes.append(note)


def compare_methods(quick: bool, rows: list[list[str]], notes: list[str]) -> None:
    """Time the expansion against the direct sum on the two-point study, and at ten times the steps."""
    study = load_study(ROOT / "configs" / "two_point.toml")
    params = grid_parameters(study)
    n = params[0].size
    numba.set_num_threads(1)
    base = dataclasses.replace(study.model, chaos_check=False)

    def per_config(method: str, steps: int, repeats: int) -> tuple[float, dict]:
        model = dataclasses.replace(base, method=method, steps=steps, record_every=steps // 100)
        simulate(model, *(p[:1] for p in params))
        out = simulate(model, *params)
        return best_of(repeats, lambda: simulate(model, *params)) / n, out

    # The minimum of repeated timings is the one least disturbed by other
    # load. A batch of the expansion takes about 2 ms, so it repeats more.
    direct, direct_out = per_config("direct", 1000, 5)
    expanded, expanded_out = per_config("expansion", 1000, 20)
    rows.append(["expansion kernel, two_point.toml (T = 1000), one core", f"{expanded * 1e6:.1f} us/config",
                 f"{direct / expanded:.1f}x direct sum ({direct * 1e3:.3f} ms/config)", ""])
    long_steps = 3000 if quick else 10000
    expanded_long, long_out = per_config("expansion", long_steps, 3)
    rows.append([f"expansion kernel, two_point.toml, T = {long_steps} against T = 1000",
                 f"{expanded_long * 1e6:.1f} against {expanded * 1e6:.1f} us/config",
                 f"{expanded_long / expanded:.2f}x for {long_steps // 1000}x the steps", ""])
    if not quick:
        direct_long, _ = per_config("direct", long_steps, 1)
        rows.append([f"direct sum, two_point.toml, T = {long_steps} against T = 1000",
                     f"{direct_long * 1e3:.1f} against {direct * 1e3:.3f} ms/config",
                     f"{direct_long / direct:.1f}x for {long_steps // 1000}x the steps",
                     f"expansion {direct_long / expanded_long:.0f}x faster at T = {long_steps}"])

    finite = np.isfinite(direct_out["error"]) & np.isfinite(expanded_out["error"])
    gap = np.where(finite, np.abs(direct_out["error"] - expanded_out["error"]), 0.0).max() / 0.1
    switched = int((expanded_out["switch_step"] >= 0).sum())
    notes.append(
        f"two_point.toml, expansion against direct sum at T = 1000: recorded errors differ by at most "
        f"{gap:.1e} of e_0; {switched} of {n} configurations left their centres and finished with the "
        f"direct sum; T = {long_steps}: {int((long_out['switch_step'] >= 0).sum())} did"
    )


def run_command(command: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed with status {result.returncode}:\n{result.stderr}")
    return elapsed, result.stdout


def run_cli(args: list[str], cwd: Path) -> tuple[float, str]:
    """Run ``gdasweep run`` in a new process; return its wall time and output."""
    return run_command([sys.executable, "-m", "gdasweep.sweeps.cli", "-q", "run", *args, "--no-progress"], cwd)


def kernel_seconds(output: str) -> float:
    return float(re.search(r"kernel time summed over tasks ([0-9.]+) s", output).group(1))


def peak_rss_mib(output: str) -> tuple[float, float]:
    own, children = re.search(r"peak-rss-kib (\d+) (\d+)", output).groups()
    return int(own) / 1024, int(children) / 1024


def store_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def write_study(path: Path, *, lam_count: int, sigma_count: int, steps: int, store: str, method="auto") -> None:
    path.write_text(f"""seed = 4
[model]
method = "{method}"
steps = {steps}
record_every = 10
true_points = [[0.0]]
generated_points = [[0.1]]
generated_weights = [0.8]
[grid]
eta_d = [0.1]
eta_g = [0.1]
lam = {{ logspace = [-3, 1, {lam_count}] }}
sigma = {{ logspace = [-1.5, 1, {sigma_count}] }}
[output]
store = "{store}"
""")


def compare_workers(work: Path, quick: bool, rows: list[list[str]]) -> None:
    if quick:
        study = work / "phase_small.toml"
        write_study(study, lam_count=60, sigma_count=60, steps=1000, store="unused.zarr", method="direct")
        label, configs = "phase diagram 60 x 60, direct sum", 3600
    else:
        # The direct sum keeps the job long enough that the fixed cost of
        # starting the cluster does not hide the scaling.
        study = work / "phase_diagram_direct.toml"
        text = (ROOT / "configs" / "phase_diagram.toml").read_text()
        study.write_text(text.replace("[model]\n", '[model]\nmethod = "direct"\n', 1))
        label, configs = "configs/phase_diagram.toml with method = \"direct\"", load_study(study).n_configs
    one, out_one = run_cli([str(study), "--workers", "1", "--store", "pd1.zarr"], work)
    two, out_two = run_cli([str(study), "--workers", "2", "--store", "pd2.zarr"], work)
    rows.append([f"{label}, 2 workers against 1", f"{two:.1f} s against {one:.1f} s", f"{one / two:.2f}x", ""])
    ideal = kernel_seconds(out_two) / 2
    rows.append([f"{label}, gdasweep run against kernel time / workers", f"{two:.1f} s against {ideal:.1f} s",
                 f"{two / ideal - 1:+.1%} overhead", ""])
    rows.append([f"{label}, store size", f"{store_bytes(work / 'pd2.zarr') / configs:.0f} bytes/config", "", ""])


def run_million(work: Path, quick: bool, rows: list[list[str]]) -> None:
    if quick:
        study = work / "million_small.toml"
        write_study(study, lam_count=100, sigma_count=100, steps=1000, store="unused.zarr")
        label, configs = "10^4 configurations, T = 1000", 10**4
    else:
        study = ROOT / "configs" / "million.toml"
        label, configs = "configs/million.toml", 10**6
    wall, output = run_cli([str(study), "--store", "million.zarr"], work)
    ideal = kernel_seconds(output) / 2
    rows.append([f"{label}, gdasweep run (2 workers)", f"{wall:.1f} s", f"{configs / wall:.0f} configs/s", ""])
    rows.append([f"{label}, gdasweep run against kernel time / workers", f"{wall:.1f} s against {ideal:.1f} s",
                 f"{wall / ideal - 1:+.1%} overhead", ""])
    rows.append([f"{label}, store size", f"{store_bytes(work / 'million.zarr') / configs:.0f} bytes/config", "", ""])


def measure_theory(quick: bool, rows: list[list[str]]) -> None:
    n = 10**5 if quick else 10**6
    rng = np.random.default_rng(0)
    eta_d, eta_g = rng.uniform(0.001, 1.0, n), rng.uniform(0.001, 1.0, n)
    lam, sigma = rng.uniform(0.0, 2.0, n), 10 ** rng.uniform(-2, 1, n)
    predict([1.0], [0.8], eta_d[:10], eta_g[:10], lam[:10], sigma[:10])
    seconds = best_of(3, lambda: predict([1.0], [0.8], eta_d, eta_g, lam, sigma))
    rows.append([f"theory for {n:.0e} configurations, one core", f"{seconds:.2f} s",
                 f"{seconds / n * 1e9:.0f} ns/config", ""])


def measure_memory(work: Path, quick: bool, rows: list[list[str]]) -> None:
    sizes = [(100, 100), (300, 300)] if quick else [(100, 100), (1000, 1000)]
    peaks = []
    for lam_count, sigma_count in sizes:
        study = work / f"memory_{lam_count}.toml"
        write_study(study, lam_count=lam_count, sigma_count=sigma_count, steps=30, store="unused.zarr")
        _, output = run_command([sys.executable, "-c", MEMORY_DRIVER, str(study), f"memory_{lam_count}.zarr"], work)
        peaks.append(peak_rss_mib(output))
    (small_client, small_worker), (large_client, large_worker) = peaks
    small_n, large_n = (a * b for a, b in sizes)
    rows.append([f"client peak memory, {large_n:.0e} against {small_n:.0e} configurations (T = 30)",
                 f"{large_client:.0f} MiB against {small_client:.0f} MiB", f"{large_client / small_client:.2f}x", ""])
    rows.append([f"worker peak memory, {large_n:.0e} against {small_n:.0e} configurations (T = 30)",
                 f"{large_worker:.0f} MiB against {small_worker:.0f} MiB", f"{large_worker / small_worker:.2f}x", ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller studies, for a quick check")
    parser.add_argument("--output", type=Path, help="also write the table to this Markdown file")
    args = parser.parse_args()

    rows: list[list[str]] = []
    notes: list[str] = []
    compare_kernels("two_point.toml", 1 if args.quick else 3, rows, notes)
    compare_kernels("ring.toml", 1, rows, notes)
    compare_methods(args.quick, rows, notes)
    measure_theory(args.quick, rows)
    with tempfile.TemporaryDirectory(prefix="gdasweep-bench-") as directory:
        work = Path(directory)
        compare_workers(work, args.quick, rows)
        run_million(work, args.quick, rows)
        measure_memory(work, args.quick, rows)

    lines = describe_machine()
    lines.append("")
    lines.append("| measurement | time or size | ratio | baseline |")
    lines.append("|---|---|---|---|")
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    lines.append("")
    lines.extend(f"- {note}" for note in notes)
    text = "\n".join(lines)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
