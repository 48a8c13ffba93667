import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import CONFIGS

from gdasweep.sweeps.cli import main
from gdasweep.sweeps.compute import predict

QUICKSTART = (CONFIGS / "quickstart.toml").read_text()


def _broken(old, new):
    assert old in QUICKSTART, old
    return QUICKSTART.replace(old, new, 1)


MALFORMED = {
    "misspelt key": (_broken("record_every = 5", "record_evry = 5"), ["record_evry", "record_every"]),
    "sigma not positive": (_broken("sigma = { logspace = [-1, 1, 5] }", "sigma = [0.5, 0.0]"), ["grid.sigma", "0.0"]),
    "negative learning rate": (_broken("eta_g = [0.3, 0.1, 0.01]", "eta_g = [0.3, -0.1]"), ["grid.eta_g", "-0.1"]),
    "nan": (_broken("lam = [3.0, 1.0, 0.1, 0.01, 0.0]", "lam = [nan, 1.0]"), ["grid.lam", "nan"]),
    "weight count": (_broken("generated_weights = [1.0]", "generated_weights = [1.0, 0.5]"),
                     ["model.generated_weights", "2", "1"]),
    "unknown kernel": (_broken("[model]", '[model]\nkernel = "laplace"'), ["model.kernel", "laplace", "gaussian"]),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_run_rejects_malformed_study(case, tmp_path, monkeypatch, capsys):
    text, fragments = MALFORMED[case]
    monkeypatch.chdir(tmp_path)
    study = tmp_path / "study.toml"
    study.write_text(text)

    status = main(["run", str(study)])

    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert status == 2
    assert "Traceback" not in message
    for fragment in fragments:
        assert fragment in message, message
    assert not (tmp_path / "quickstart.zarr").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["study.toml"]


def test_run_rejects_bad_workers_before_anything(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status = main(["run", str(CONFIGS / "quickstart.toml"), "--workers", "0"])
    assert status == 2
    assert "execution.workers" in capsys.readouterr().err
    assert not (tmp_path / "quickstart.zarr").exists()


def test_run_refuses_existing_store(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quickstart.zarr").mkdir()
    (tmp_path / "quickstart.zarr" / "data").write_text("keep")
    status = main(["run", str(CONFIGS / "quickstart.toml")])
    assert status == 2
    assert "not a readable gdasweep store" in capsys.readouterr().err
    assert (tmp_path / "quickstart.zarr" / "data").read_text() == "keep"


def test_theory_prints_prediction(capsys):
    status = main(["theory", "--eta-d", "0.1", "--eta-g", "0.1", "--lam", "0.1", "--sigma", "1.0", "--p-gen", "0.8"])
    out = capsys.readouterr().out
    expected = predict([1.0], [0.8], 0.1, 0.1, 0.1, 1.0)
    assert status == 0
    rho = float(re.search(r"rho_generator:\s+(\S+)", out).group(1))
    assert rho == pytest.approx(float(expected["rho_generator"][0]), rel=1e-11)
    assert "predicted phase:" in out


def test_theory_without_fixed_point(capsys):
    status = main(["theory", "--eta-d", "0.1", "--eta-g", "0.1", "--lam", "0", "--sigma", "1", "--p-gen", "0.8"])
    out = capsys.readouterr().out
    assert status == 0
    assert "no_fixed_point" in out
    assert not np.isnan(float(re.search(r"discriminator eigenvalue:\s+(\S+)", out).group(1)))


def test_theory_rejects_bad_sigma(capsys):
    status = main(["theory", "--eta-d", "0.1", "--eta-g", "0.1", "--lam", "0.1", "--sigma", "-1"])
    assert status == 2
    assert "sigma=-1.0" in capsys.readouterr().err


def test_console_script_runs_quickstart(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "gdasweep.sweeps.cli", "-q", "run", str(CONFIGS / "quickstart.toml"),
         "--store", str(tmp_path / "q.zarr"), "--workers", "2"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "225 configurations" in result.stdout
    assert "agreement:" in result.stdout
    assert (tmp_path / "q.zarr").is_dir()


def test_log_file_records_debug_lines(tmp_path, capsys):
    log = tmp_path / "run.log"
    status = main(["-q", "--log-file", str(log), "theory", "--eta-d", "0.1", "--eta-g", "0.1", "--lam", "0.1",
                   "--sigma", "1"])
    assert status == 0
    assert log.exists()
    assert capsys.readouterr().err == ""
