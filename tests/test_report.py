import dataclasses

import numpy as np
import pytest
from conftest import CONFIGS
from matplotlib.image import imread

from gdasweep.sweeps.cli import main
from gdasweep.sweeps.report import make_report
from gdasweep.sweeps.run import run_study
from gdasweep.sweeps.spec import load_study

FIGURES = ["phases.png", "disagreement.png", "rates.png", "rate_scatter.png", "trajectories.png"]


@pytest.fixture(scope="module")
def phase_store(tmp_path_factory, dask_client):
    """The phase diagram study on a 30 x 30 subgrid of its own axes."""
    study = load_study(CONFIGS / "phase_diagram.toml")
    grid = dict(study.grid, lam=study.grid["lam"][::10], sigma=study.grid["sigma"][::10])
    store = tmp_path_factory.mktemp("report") / "phase.zarr"
    small = dataclasses.replace(study, grid=grid, store=store)
    summary = run_study(small, client=dask_client, progress=False)
    return small, summary


def test_report_writes_nonblank_figures(phase_store, tmp_path):
    study, _ = phase_store
    paths = make_report(study.store, out=tmp_path / "report")
    assert sorted(p.name for p in paths) == sorted(FIGURES + ["summary.md"])
    for name in FIGURES:
        path = tmp_path / "report" / name
        assert path.stat().st_size > 10_000, name
        image = imread(path)
        assert image.shape[0] > 300, name
        assert image.shape[1] > 300, name
        assert float(np.std(image[..., :3])) > 0.05, f"{name} looks blank"


def test_report_summary_counts(phase_store, tmp_path):
    study, summary = phase_store
    make_report(study.store, out=tmp_path / "report")
    text = (tmp_path / "report" / "summary.md").read_text()
    for name, count in summary.observed().items():
        assert f"| {name} | {count} |" in text
    agreeing, comparable = summary.agreement()
    assert f"Agreement: {agreeing} of {comparable} comparable configurations" in text
    assert "Worst disagreements" in text
    for name in FIGURES:
        assert f"({name})" in text


def test_report_rejects_unknown_where(phase_store, capsys):
    study, _ = phase_store
    status = main(["report", str(study.store), "--where", "eta_d=0.5"])
    assert status == 2
    assert "eta_d has no value 0.5" in capsys.readouterr().err


def test_report_rejects_bad_axis(phase_store, capsys):
    study, _ = phase_store
    status = main(["report", str(study.store), "--x", "sigmaa"])
    assert status == 2
    assert "invalid --x 'sigmaa'" in capsys.readouterr().err
