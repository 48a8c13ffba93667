import csv

import numpy as np
import pytest
from conftest import CONFIGS, DATA

from gdasweep.kernels import phases
from gdasweep.sweeps.compute import simulate
from gdasweep.sweeps.spec import StudyError, load_study, parse_study

CHAOTIC = [(1.0, 0.1, 0.1, 0.1), (1.0, 0.1, 0.01, 0.1)]


@pytest.fixture(scope="module")
def two_point():
    study = load_study(CONFIGS / "two_point.toml")
    assert study.model.chaos_check
    grid = np.meshgrid(*(study.grid[name] for name in ("eta_d", "eta_g", "lam", "sigma")), indexing="ij")
    params = [g.ravel() for g in grid]
    return study, params, simulate(study.model, *params, seed=study.seed, parallel=True)


def find(params, point):
    matches = np.flatnonzero(np.all(np.column_stack(params) == point, axis=1))
    assert matches.size == 1, point
    return int(matches[0])


@pytest.mark.parametrize("point", CHAOTIC)
def test_chaotic_two_point_runs_flagged(two_point, point):
    _, params, out = two_point
    c = find(params, point)
    assert out["observed_phase"][c] == phases.CHAOTIC
    assert out["chaos_separation"][c] > 1.0
    assert np.isnan(out["final_error"][c])
    assert np.isnan(out["decay_rate"][c])
    assert np.isnan(out["final_position"][c]).all()


def test_reproducible_two_point_runs_not_flagged(two_point):
    _, params, out = two_point
    with open(DATA / "two_point_exact.csv") as f:
        rows = [row for row in csv.DictReader(f) if row["reproducible_1e-9_rel"] == "True"]
    assert len(rows) == 22
    for row in rows:
        c = find(params, tuple(float(row[k]) for k in ("eta_d", "eta_g", "lam", "sigma")))
        assert out["observed_phase"][c] != phases.CHAOTIC, row
        assert out["chaos_separation"][c] < 1e-9, row


def test_only_chaotic_points_flagged(two_point):
    _, params, out = two_point
    flagged = {tuple(float(p[c]) for p in params) for c in np.flatnonzero(out["observed_phase"] == phases.CHAOTIC)}
    assert flagged == set(CHAOTIC)


def test_twin_noise_independent_of_batch(two_point):
    study, params, out = two_point
    c = find(params, CHAOTIC[0])
    alone = simulate(study.model, *(p[c:c + 1] for p in params), seed=study.seed, config_index=[c])
    assert alone["chaos_separation"][0] == out["chaos_separation"][c]
    other_seed = simulate(study.model, *(p[c:c + 1] for p in params), seed=study.seed + 1, config_index=[c])
    assert other_seed["chaos_separation"][0] != out["chaos_separation"][c]


def test_chaos_check_off_by_default(two_point):
    study, params, _ = two_point
    text = study.text.replace("chaos_check = true\n", "")
    out = simulate(parse_study(text).model, *(p[:3] for p in params))
    assert np.isnan(out["chaos_separation"]).all()


@pytest.mark.parametrize("value", ["0.0", "-1e-12", "0.01", "nan", "true"])
def test_chaos_noise_rejects(value):
    text = (CONFIGS / "two_point.toml").read_text().replace("chaos_check = true", f"chaos_check = true\nchaos_noise = {value}")
    with pytest.raises(StudyError, match="model.chaos_noise"):
        parse_study(text)
