"""Tests for gdasweep.sweeps.spec, the study file parser and validator."""

import json
import math
import pathlib
import re
import tomllib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gdasweep.sweeps.spec import (
    GRID_AXES,
    Execution,
    Kernel,
    Study,
    StudyError,
    load_study,
    parse_study,
    with_execution,
    with_store,
)

FULL_STUDY = """\
seed = 20230514

[model]
kernel = "gaussian"
steps = 1000
record_every = 10
history_tolerance = 0.001
save_positions = true
true_points = [[0.0, 0.0], [1.0, 0.5]]
true_weights = [1.0, 3.0]
generated_points = [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]
generated_weights = [0.5, 1.0, 2.0]

[grid]
eta_d = [1.0, 0.1, 0.01]
eta_g = [0.5, 2]
sigma = { logspace = [-1, 1, 3] }
lam = { linspace = [0.0, 1.0, 11] }

[execution]
workers = 4
threads_per_worker = 2
chunk_size = 128
scheduler = "tcp://127.0.0.1:8786"

[output]
store = "two_point.zarr"
"""

MINIMAL_STUDY = """\
seed = 0

[model]
steps = 5
true_points = [[0.0]]
generated_points = [[0.1], [0.2]]

[grid]
eta_d = [0.1]
eta_g = [0.1]
lam = [0.0]
sigma = [1.0]

[output]
store = "out.zarr"
"""


def write_study(tmp_path: pathlib.Path, text: str) -> pathlib.Path:
    path = tmp_path / "study.toml"
    path.write_text(text, encoding="utf-8")
    return path


def replace_once(text: str, old: str, new: str) -> str:
    """Return ``text`` with ``old`` replaced by ``new``, which must occur exactly once."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in the study text"
    return text.replace(old, new)


def message_pattern(*parts: str) -> str:
    """Return a regex that matches when every part appears in the message, in any order."""
    return "".join(f"(?=.*{re.escape(part)})" for part in parts)


# Valid files.


def test_full_study_fields(tmp_path):
    path = write_study(tmp_path, FULL_STUDY)
    study = load_study(path)

    assert study.seed == 20230514
    assert study.source == str(path)
    assert study.text == FULL_STUDY
    assert study.store == pathlib.Path("two_point.zarr")
    expected_execution = Execution(
        workers=4, threads_per_worker=2, chunk_size=128, scheduler="tcp://127.0.0.1:8786"
    )
    assert study.execution == expected_execution

    model = study.model
    assert model.kernel is Kernel.GAUSSIAN
    assert model.steps == 1000
    assert model.record_every == 10
    assert model.history_tolerance == 0.001
    assert model.save_positions is True
    np.testing.assert_array_equal(model.true_points, [[0.0, 0.0], [1.0, 0.5]])
    np.testing.assert_array_equal(model.true_weights, [1.0, 3.0])
    np.testing.assert_array_equal(model.generated_points, [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])
    np.testing.assert_array_equal(model.generated_weights, [0.5, 1.0, 2.0])


def test_model_array_layout(tmp_path):
    model = load_study(write_study(tmp_path, FULL_STUDY)).model
    expected_shapes = {
        "true_points": (2, 2),
        "true_weights": (2,),
        "generated_points": (3, 2),
        "generated_weights": (3,),
    }
    for name, shape in expected_shapes.items():
        array = getattr(model, name)
        assert array.shape == shape, name
        assert array.dtype == np.float64, name
        assert array.flags.c_contiguous, name


def test_minimal_study_defaults(tmp_path):
    study = load_study(write_study(tmp_path, MINIMAL_STUDY))

    assert study.model.kernel is Kernel.GAUSSIAN
    assert study.model.record_every == 1
    assert study.model.history_tolerance == 0.0
    assert study.model.save_positions is False
    np.testing.assert_array_equal(study.model.true_weights, [1.0])
    np.testing.assert_array_equal(study.model.generated_weights, [1.0, 1.0])
    assert study.model.true_weights.dtype == np.float64
    assert study.execution == Execution(workers=2, threads_per_worker=1, chunk_size="auto", scheduler=None)


def test_grid_expansion(tmp_path):
    grid = load_study(write_study(tmp_path, FULL_STUDY)).grid

    assert tuple(grid) == GRID_AXES
    for axis, values in grid.items():
        assert values.dtype == np.float64, axis
        assert values.ndim == 1, axis
    np.testing.assert_array_equal(grid["eta_d"], [1.0, 0.1, 0.01])
    np.testing.assert_array_equal(grid["eta_g"], [0.5, 2.0])
    np.testing.assert_array_equal(grid["lam"], np.linspace(0.0, 1.0, 11))
    np.testing.assert_array_equal(grid["sigma"], 10.0 ** np.linspace(-1.0, 1.0, 3))


def test_grid_single_point_spacing():
    text = replace_once(MINIMAL_STUDY, "sigma = [1.0]", "sigma = { linspace = [2.0, 2.0, 1] }")
    study = parse_study(text)
    np.testing.assert_array_equal(study.grid["sigma"], [2.0])


def test_shape_and_n_configs(tmp_path):
    study = load_study(write_study(tmp_path, FULL_STUDY))
    assert study.shape == (3, 2, 11, 3)
    assert study.n_configs == 3 * 2 * 11 * 3


def test_relative_store_stays_relative():
    study = parse_study(replace_once(MINIMAL_STUDY, '"out.zarr"', '"results/run.zarr"'))
    assert study.store == pathlib.Path("results/run.zarr")
    assert not study.store.is_absolute()


def test_parse_study_default_source():
    assert parse_study(MINIMAL_STUDY).source == "<string>"
    with pytest.raises(StudyError, match=r"^<string>: seed: invalid value -1"):
        parse_study(replace_once(MINIMAL_STUDY, "seed = 0", "seed = -1"))


# Hash.


def test_hash_is_sha256_hex():
    digest = parse_study(FULL_STUDY).hash
    assert re.fullmatch(r"[0-9a-f]{64}", digest)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param("seed = 20230514", "# the seed\nseed   =   20230514  # fixed", id="comments-whitespace"),
        pytest.param("[grid]\n", "\n\n[grid]   # axes\n\n", id="blank-lines"),
        pytest.param("workers = 4", "workers = 16", id="workers"),
        pytest.param("chunk_size = 128", "chunk_size = 1", id="chunk-size"),
        pytest.param('scheduler = "tcp://127.0.0.1:8786"\n', "", id="no-scheduler"),
        pytest.param('store = "two_point.zarr"', 'store = "/elsewhere/other.zarr"', id="store"),
        pytest.param("eta_g = [0.5, 2]", "eta_g = [0.5, 2.0]", id="int-written-as-float"),
        pytest.param("true_weights = [1.0, 3.0]", "true_weights = [1, 3]", id="int-weights"),
    ],
)
def test_hash_ignores_non_science_changes(old, new):
    original = parse_study(FULL_STUDY)
    changed = parse_study(replace_once(FULL_STUDY, old, new))
    assert changed.hash == original.hash


def test_hash_ignores_default_weights_written_out():
    points = "generated_points = [[0.1], [0.2]]"
    explicit = replace_once(MINIMAL_STUDY, points, points + "\ngenerated_weights = [1.0, 1.0]")
    assert parse_study(explicit).hash == parse_study(MINIMAL_STUDY).hash


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param("eta_d = [1.0, 0.1, 0.01]", "eta_d = [1.0, 0.1, 0.02]", id="grid-value"),
        pytest.param("logspace = [-1, 1, 3]", "logspace = [-1, 1, 4]", id="grid-spacing"),
        pytest.param("seed = 20230514", "seed = 20230515", id="seed"),
        pytest.param("steps = 1000", "steps = 999", id="steps"),
        pytest.param("true_weights = [1.0, 3.0]", "true_weights = [1.0, 2.0]", id="weights"),
        pytest.param("[1.0, 0.5]]", "[1.0, 0.25]]", id="true-points"),
        pytest.param("history_tolerance = 0.001", "history_tolerance = 0.0", id="tolerance"),
    ],
)
def test_hash_changes_with_science(old, new):
    original = parse_study(FULL_STUDY)
    changed = parse_study(replace_once(FULL_STUDY, old, new))
    assert changed.hash != original.hash


# Rejections. Each case edits FULL_STUDY once and names the key and the text
# that must appear in the one-line error message.

REJECTIONS = [
    # Unknown keys, with the closest valid key suggested.
    pytest.param("seed = 20230514", "seeds = 20230514",
                 "seeds", "did you mean 'seed'?", id="unknown-top-level"),
    pytest.param("steps = 1000", "stesp = 1000",
                 "model.stesp", "did you mean 'steps'?", id="unknown-model"),
    pytest.param("sigma = {", "sigam = {",
                 "grid.sigam", "did you mean 'sigma'?", id="unknown-grid"),
    pytest.param("workers = 4", "worker = 4",
                 "execution.worker", "did you mean 'workers'?", id="unknown-execution"),
    pytest.param('store = "', 'stor = "',
                 "output.stor", "did you mean 'store'?", id="unknown-output"),
    pytest.param("{ logspace", "{ logspce",
                 "grid.sigma.logspce", "did you mean 'logspace'?", id="unknown-axis-table"),
    pytest.param("seed = 20230514", "seed = 20230514\nzzz = 1",
                 "zzz", "Valid keys at the top level", id="unknown-no-match"),
    # Missing keys and tables.
    pytest.param("seed = 20230514\n", "",
                 "seed", "missing required key", id="missing-seed"),
    pytest.param("steps = 1000\n", "",
                 "model.steps", "missing required key", id="missing-steps"),
    pytest.param("true_points = [[0.0, 0.0], [1.0, 0.5]]\n", "",
                 "model.true_points", "missing", id="missing-points"),
    pytest.param("lam = { linspace = [0.0, 1.0, 11] }\n", "",
                 "grid.lam", "missing required key", id="missing-axis"),
    pytest.param('[output]\nstore = "two_point.zarr"\n', "",
                 "[output]", "missing required table", id="missing-output"),
    pytest.param('store = "two_point.zarr"\n', "",
                 "output.store", "missing required key", id="missing-store"),
    pytest.param("[model]", "[modle]",
                 "modle", "did you mean 'model'?", id="unknown-table"),
    # Grid values.
    pytest.param("sigma = { logspace = [-1, 1, 3] }", "sigma = [-0.5]",
                 "grid.sigma", "-0.5: must be > 0", id="sigma-negative"),
    pytest.param("sigma = { logspace = [-1, 1, 3] }", "sigma = [1.0, 0]",
                 "grid.sigma", "0.0: must be > 0", id="sigma-zero"),
    pytest.param("{ logspace = [-1, 1, 3] }", "{ linspace = [-1, 1, 3] }",
                 "grid.sigma", "-1.0: must be > 0", id="sigma-linspace-negative"),
    pytest.param("eta_d = [1.0, 0.1, 0.01]", "eta_d = [1.0, -0.1]",
                 "grid.eta_d", "-0.1: must be > 0", id="eta-d-negative"),
    pytest.param("eta_g = [0.5, 2]", "eta_g = [0.0]",
                 "grid.eta_g", "0.0: must be > 0", id="eta-g-zero"),
    pytest.param("linspace = [0.0, 1.0, 11]", "linspace = [-0.1, 1.0, 11]",
                 "grid.lam", "-0.1: must be >= 0", id="lam-negative"),
    pytest.param("eta_g = [0.5, 2]", "eta_g = [0.5, nan]",
                 "grid.eta_g[1]", "invalid value nan", id="grid-nan"),
    pytest.param("eta_g = [0.5, 2]", "eta_g = [inf]",
                 "grid.eta_g[0]", "invalid value inf", id="grid-inf"),
    pytest.param("eta_g = [0.5, 2]", "eta_g = [0.5, true]",
                 "grid.eta_g[1]", "invalid value true: must be a number", id="grid-bool"),
    pytest.param("eta_g = [0.5, 2]", 'eta_g = ["0.5"]',
                 "grid.eta_g[0]", 'invalid value "0.5": must be a number', id="grid-string"),
    pytest.param("eta_g = [0.5, 2]", "eta_g = []",
                 "grid.eta_g", "invalid value []", id="grid-empty"),
    pytest.param("eta_g = [0.5, 2]", "eta_g = 0.5",
                 "grid.eta_g", "invalid value 0.5: must be a non-empty list", id="grid-scalar"),
    pytest.param("eta_d = [1.0, 0.1, 0.01]", "eta_d = [0.1, 1.0, 0.1]",
                 "grid.eta_d", "0.1: appears more than once", id="grid-duplicate"),
    pytest.param("linspace = [0.0, 1.0, 11]", "linspace = [0.5, 0.5, 2]",
                 "grid.lam", "0.5: appears more than once", id="linspace-duplicate"),
    # Axis tables.
    pytest.param("{ logspace = [-1, 1, 3] }", "{ logspace = [-1, 1, 3], linspace = [1, 2, 3] }",
                 "grid.sigma", "exactly one of linspace, logspace", id="axis-table-both"),
    pytest.param("{ logspace = [-1, 1, 3] }", "{}",
                 "grid.sigma", "invalid value {}", id="axis-table-empty"),
    pytest.param("logspace = [-1, 1, 3]", "logspace = [-1, 1]",
                 "grid.sigma.logspace", "[-1, 1]: must be a list [start, stop, num]",
                 id="axis-table-two-items"),
    pytest.param("logspace = [-1, 1, 3]", "logspace = [-1, 1, 3, 4]",
                 "grid.sigma.logspace", "[-1, 1, 3, 4]", id="axis-table-four-items"),
    pytest.param("logspace = [-1, 1, 3]", "logspace = 3",
                 "grid.sigma.logspace", "invalid value 3", id="axis-table-scalar"),
    pytest.param("logspace = [-1, 1, 3]", "logspace = [-1, 1, 0]",
                 "grid.sigma.logspace[2]", "0: must be an integer from 1 to 1000000", id="axis-num-zero"),
    pytest.param("logspace = [-1, 1, 3]", "logspace = [-1, 1, 3.0]",
                 "grid.sigma.logspace[2]", "3.0: must be an integer", id="axis-num-float"),
    pytest.param("logspace = [-1, 1, 3]", "logspace = [-1, 1, 100000000000]",
                 "grid.sigma.logspace[2]", "100000000000", id="axis-num-huge"),
    pytest.param("logspace = [-1, 1, 3]", "logspace = [nan, 1, 3]",
                 "grid.sigma.logspace[0]", "nan", id="axis-start-nan"),
    pytest.param("logspace = [-1, 1, 3]", "logspace = [1, 400, 2]",
                 "grid.sigma.logspace", "non-finite value inf", id="logspace-overflow"),
    pytest.param("linspace = [0.0, 1.0, 11]", "linspace = [-1e308, 1e308, 3]",
                 "grid.lam.linspace", "non-finite", id="linspace-overflow"),
    # Points and weights.
    pytest.param("[[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]", "[[0.1], [0.3], [0.5]]",
                 "model.generated_points", "invalid dimension 1", id="dimension-mismatch"),
    pytest.param("[[0.0, 0.0], [1.0, 0.5]]", "[[0.0, 0.0], [1.0]]",
                 "model.true_points[1]", "[1.0]: must have 2 coordinates", id="ragged-points"),
    pytest.param("[[0.0, 0.0], [1.0, 0.5]]", "[]",
                 "model.true_points", "invalid value []", id="no-points"),
    pytest.param("[[0.0, 0.0], [1.0, 0.5]]", "[[]]",
                 "model.true_points[0]", "invalid value []", id="empty-point"),
    pytest.param("[[0.0, 0.0], [1.0, 0.5]]", "[0.0, 1.0]",
                 "model.true_points[0]", "invalid value 0.0", id="flat-points"),
    pytest.param("[[0.0, 0.0], [1.0, 0.5]]", "[[0.0, nan], [1.0, 0.5]]",
                 "model.true_points[0][1]", "nan", id="points-nan"),
    pytest.param("[[0.0, 0.0], [1.0, 0.5]]", "[[0.0, false], [1.0, 0.5]]",
                 "model.true_points[0][1]", "false", id="points-bool"),
    pytest.param("[[0.0, 0.0], [1.0, 0.5]]", "[[0.0, 1e400], [1.0, 0.5]]",
                 "model.true_points[0][1]", "inf", id="points-overflow"),
    pytest.param("true_weights = [1.0, 3.0]", "true_weights = [1.0, 3.0, 2.0]",
                 "model.true_weights", "invalid length 3", id="weight-count"),
    pytest.param("generated_weights = [0.5, 1.0, 2.0]", "generated_weights = [0.5]",
                 "model.generated_weights", "(3)", id="weight-count-shows-points"),
    pytest.param("true_weights = [1.0, 3.0]", "true_weights = [1.0, 0.0]",
                 "model.true_weights[1]", "0.0: must be > 0", id="weight-zero"),
    pytest.param("true_weights = [1.0, 3.0]", "true_weights = [-1.0, 3.0]",
                 "model.true_weights[0]", "-1.0: must be > 0", id="weight-negative"),
    pytest.param("true_weights = [1.0, 3.0]", "true_weights = [1.0, inf]",
                 "model.true_weights[1]", "inf", id="weight-inf"),
    pytest.param("true_weights = [1.0, 3.0]", "true_weights = 1.0",
                 "model.true_weights", "invalid value 1.0", id="weights-scalar"),
    # Other model keys.
    pytest.param('kernel = "gaussian"', 'kernel = "laplace"',
                 "model.kernel", '"laplace": must be one of: gaussian', id="kernel-unknown"),
    pytest.param('kernel = "gaussian"', "kernel = 1",
                 "model.kernel", "invalid value 1", id="kernel-number"),
    pytest.param("steps = 1000", "steps = 1000.0",
                 "model.steps", "1000.0: must be an integer", id="steps-float"),
    pytest.param("steps = 1000", "steps = true",
                 "model.steps", "true: must be an integer", id="steps-bool"),
    pytest.param("steps = 1000", "steps = 0",
                 "model.steps", "0: must be an integer >= 1", id="steps-zero"),
    pytest.param("steps = 1000", "steps = 99999999999999999999",
                 "model.steps", "99999999999999999999", id="steps-beyond-int64"),
    pytest.param("record_every = 10", "record_every = 0",
                 "model.record_every", "invalid value 0", id="record-every-zero"),
    pytest.param("record_every = 10", "record_every = 1001",
                 "model.record_every", "1001: must be <= model.steps (1000)", id="record-every-above-steps"),
    pytest.param("history_tolerance = 0.001", "history_tolerance = 1.0",
                 "model.history_tolerance", "1.0: must be >= 0 and < 1", id="tolerance-one"),
    pytest.param("history_tolerance = 0.001", "history_tolerance = -0.1",
                 "model.history_tolerance", "-0.1", id="tolerance-negative"),
    pytest.param("history_tolerance = 0.001", "history_tolerance = nan",
                 "model.history_tolerance", "invalid value nan", id="tolerance-nan"),
    pytest.param("history_tolerance = 0.001", "history_tolerance = true",
                 "model.history_tolerance", "true: must be a number", id="tolerance-bool"),
    pytest.param("save_positions = true", "save_positions = 1",
                 "model.save_positions", "1: must be true or false", id="save-positions-int"),
    # Seed, execution and output.
    pytest.param("seed = 20230514", "seed = -1",
                 "seed", "-1: must be an integer >= 0", id="seed-negative"),
    pytest.param("seed = 20230514", "seed = 1.0",
                 "seed", "1.0: must be an integer", id="seed-float"),
    pytest.param("workers = 4", "workers = 0",
                 "execution.workers", "0: must be an integer >= 1", id="workers-zero"),
    pytest.param("workers = 4", "workers = 2.0",
                 "execution.workers", "2.0: must be an integer", id="workers-float"),
    pytest.param("threads_per_worker = 2", "threads_per_worker = false",
                 "execution.threads_per_worker", "false", id="threads-bool"),
    pytest.param("chunk_size = 128", "chunk_size = -5",
                 "execution.chunk_size", "-5", id="chunk-size-negative"),
    pytest.param('scheduler = "tcp://127.0.0.1:8786"', "scheduler = 8786",
                 "execution.scheduler", "8786: must be a non-empty string", id="scheduler-number"),
    pytest.param('store = "two_point.zarr"', 'store = ""',
                 "output.store", 'invalid value ""', id="store-empty"),
    pytest.param('store = "two_point.zarr"', "store = 5",
                 "output.store", "invalid value 5", id="store-number"),
]


@pytest.mark.parametrize(("old", "new", "key", "shown"), REJECTIONS)
def test_rejects_invalid_study(tmp_path, old, new, key, shown):
    path = write_study(tmp_path, replace_once(FULL_STUDY, old, new))
    with pytest.raises(StudyError, match=message_pattern(str(path), key, shown)) as caught:
        load_study(path)

    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("old", "new", "key", "value"),
    [
        pytest.param("sigma = { logspace = [-1, 1, 3] }", "sigma = [-0.5]", "grid.sigma", -0.5, id="grid"),
        pytest.param("workers = 4", "workers = 0", "execution.workers", 0, id="execution"),
        pytest.param("[1.0, 0.5]]", "[1.0, nan]]", "model.true_points", math.nan, id="point"),
        pytest.param('kernel = "gaussian"', 'kernel = "laplace"', "model.kernel", "laplace", id="kernel"),
        pytest.param("sigma = {", "sigam = {", "grid.sigam", {"logspace": [-1, 1, 3]}, id="unknown-key"),
        pytest.param("steps = 1000\n", "", "model.steps", None, id="missing-key"),
    ],
)
def test_error_key_and_value_attributes(old, new, key, value):
    with pytest.raises(StudyError) as caught:
        parse_study(replace_once(FULL_STUDY, old, new))

    assert caught.value.key == key
    if isinstance(value, float) and math.isnan(value):
        assert math.isnan(caught.value.value)
    else:
        assert caught.value.value == value


@pytest.mark.parametrize("section", ["model", "grid", "execution", "output"])
def test_rejects_section_not_table(section):
    document = tomllib.loads(MINIMAL_STUDY)
    document[section] = 3
    pattern = message_pattern(f"{section}: invalid value 3", f"must be a table, written as [{section}]")
    with pytest.raises(StudyError, match=pattern):
        parse_study(to_toml(document))


def test_unknown_key_in_dotted_axis_table():
    # A dotted key writes the same axis table as an inline table does.
    dotted = "sigma.logspace = [-1, 1, 3]\nsigma.num = 3"
    text = replace_once(FULL_STUDY, "sigma = { logspace = [-1, 1, 3] }", dotted)
    pattern = message_pattern("grid.sigma.num", "Valid keys in [grid.sigma]: linspace, logspace")
    with pytest.raises(StudyError, match=pattern):
        parse_study(text)


def test_toml_syntax_error(tmp_path):
    path = write_study(tmp_path, replace_once(FULL_STUDY, "steps = 1000", "steps = "))
    with pytest.raises(StudyError, match=message_pattern(str(path), "invalid TOML", "line 5")) as caught:
        load_study(path)

    assert isinstance(caught.value.__cause__, tomllib.TOMLDecodeError)
    assert caught.value.key is None
    assert "\n" not in str(caught.value)


def test_missing_file(tmp_path):
    path = tmp_path / "absent.toml"
    with pytest.raises(StudyError, match=message_pattern(str(path), "failed to read study file")) as caught:
        load_study(path)
    assert isinstance(caught.value.__cause__, FileNotFoundError)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(StudyError, match=message_pattern(str(tmp_path), "failed to read study file")):
        load_study(tmp_path)


def test_file_not_utf8(tmp_path):
    path = tmp_path / "study.toml"
    path.write_bytes(FULL_STUDY.encode("utf-8") + b"# \xff\n")
    with pytest.raises(StudyError, match=message_pattern(str(path), "not UTF-8")):
        load_study(path)


def test_study_error_is_value_error():
    assert issubclass(StudyError, ValueError)
    error = StudyError("message", key="grid.sigma", value=-1.0)
    assert str(error) == "message"
    assert (error.key, error.value) == ("grid.sigma", -1.0)


# Copies with other execution settings or store.


def test_with_execution_replaces_fields():
    study = parse_study(FULL_STUDY)
    changed = with_execution(study, workers=8, chunk_size=16)

    expected_execution = Execution(
        workers=8, threads_per_worker=2, chunk_size=16, scheduler="tcp://127.0.0.1:8786"
    )
    assert changed.execution == expected_execution
    assert changed.hash == study.hash
    assert changed.grid is study.grid
    assert study.execution.workers == 4


def test_with_execution_ignores_none():
    study = parse_study(FULL_STUDY)
    changed = with_execution(study, workers=None, threads_per_worker=None, chunk_size=None, scheduler=None)
    assert changed.execution == study.execution


def test_with_execution_sets_scheduler():
    study = parse_study(MINIMAL_STUDY)
    changed = with_execution(study, scheduler="tcp://10.0.0.1:8786")
    assert changed.execution.scheduler == "tcp://10.0.0.1:8786"


@pytest.mark.parametrize(
    ("changes", "key", "shown"),
    [
        pytest.param({"workers": 0}, "execution.workers", "invalid value 0", id="workers-zero"),
        pytest.param({"threads_per_worker": -1}, "execution.threads_per_worker", "invalid value -1",
                     id="threads-negative"),
        pytest.param({"chunk_size": 2.5}, "execution.chunk_size", '2.5: must be "auto" or an integer',
                     id="chunk-size-float"),
        pytest.param({"chunk_size": "big"}, "execution.chunk_size", '"big": must be "auto" or an integer',
                     id="chunk-size-word"),
        pytest.param({"workers": True}, "execution.workers", "true", id="workers-bool"),
        pytest.param({"workers": "4"}, "execution.workers", '"4"', id="workers-string"),
        pytest.param({"scheduler": ""}, "execution.scheduler", 'invalid value ""', id="scheduler-empty"),
        pytest.param({"wrokers": 3}, "execution.wrokers", "did you mean 'workers'?", id="unknown-name"),
    ],
)
def test_with_execution_rejects(changes, key, shown):
    study = parse_study(FULL_STUDY)
    with pytest.raises(StudyError, match=message_pattern(key, shown)) as caught:
        with_execution(study, **changes)
    assert caught.value.key == key


def test_with_store_replaces_path(tmp_path):
    study = parse_study(FULL_STUDY)
    changed = with_store(study, tmp_path / "other.zarr")

    assert changed.store == tmp_path / "other.zarr"
    assert changed.hash == study.hash
    assert with_store(study, "relative.zarr").store == pathlib.Path("relative.zarr")


@pytest.mark.parametrize("store", ["", "   ", 5, None])
def test_with_store_rejects(store):
    with pytest.raises(StudyError, match=message_pattern("output.store", "must be a non-empty path")):
        with_store(parse_study(FULL_STUDY), store)


# Random documents: every input either parses or raises StudyError.

VALID_DOCUMENT = tomllib.loads(FULL_STUDY)

# Valid keys of each section, with None for the top level. Random edits pick
# them half of the time, so that they replace and delete existing keys too.
SECTION_KEYS = {
    None: ["seed", "model", "grid", "execution", "output"],
    "model": list(VALID_DOCUMENT["model"]),
    "grid": list(GRID_AXES),
    "execution": list(VALID_DOCUMENT["execution"]),
    "output": ["store"],
}

numbers = st.one_of(
    st.integers(min_value=-3, max_value=20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-320, 1e308, 2**63, 2**64]),
)
plausible_numbers = st.one_of(st.integers(1, 20), st.floats(min_value=0.01, max_value=10.0))
scalars = st.one_of(numbers, st.booleans(), st.text(max_size=8))
value_lists = st.lists(st.one_of(scalars, plausible_numbers), max_size=4)
spacing_tables = st.dictionaries(
    st.sampled_from(["linspace", "logspace", "linspce", "num"]),
    st.one_of(
        st.lists(numbers, min_size=3, max_size=3),
        st.lists(plausible_numbers, min_size=3, max_size=3),
        value_lists,
        scalars,
    ),
    max_size=2,
)
values = st.one_of(
    scalars,
    plausible_numbers,
    value_lists,
    st.lists(plausible_numbers, min_size=1, max_size=4, unique=True),
    st.lists(st.lists(numbers, max_size=3), max_size=3),
    st.lists(st.lists(plausible_numbers, min_size=2, max_size=2), min_size=1, max_size=3),
    spacing_tables,
)


def section_edits(section):
    """Return a strategy of (section, key, value) edits, where value None deletes the key."""
    valid_keys = SECTION_KEYS.get(section, ["seed"])
    keys = st.one_of(
        st.sampled_from(valid_keys),
        st.sampled_from(valid_keys),
        st.sampled_from(["sigam", "stesp", "worker", "stor", "seeds"]),
        st.text(min_size=1, max_size=6),
    )
    return st.tuples(st.just(section), keys, st.one_of(st.none(), values))


positive_axes = st.one_of(
    st.lists(st.floats(min_value=1e-3, max_value=1e3), min_size=1, max_size=4, unique=True),
    st.fixed_dictionaries({"logspace": st.tuples(st.integers(-3, 0), st.integers(1, 3), st.integers(1, 5))}),
)
# Edits that keep FULL_STUDY valid.
valid_edits = st.one_of(
    st.tuples(st.none(), st.just("seed"), st.integers(min_value=0, max_value=2**63 - 1)),
    st.tuples(st.just("model"), st.just("steps"), st.integers(min_value=10, max_value=10**6)),
    st.tuples(st.just("model"), st.just("record_every"), st.integers(min_value=1, max_value=10)),
    st.tuples(st.just("model"), st.just("history_tolerance"), st.floats(min_value=0.0, max_value=0.99)),
    st.tuples(st.just("model"), st.just("save_positions"), st.booleans()),
    st.tuples(st.just("grid"), st.sampled_from(["eta_d", "eta_g", "sigma"]), positive_axes),
    st.tuples(
        st.just("execution"),
        st.sampled_from(["workers", "threads_per_worker", "chunk_size"]),
        st.integers(1, 64),
    ),
    st.tuples(st.just("execution"), st.just("scheduler"), st.text(alphabet="abc:/.0123456789", min_size=1)),
    st.tuples(st.just("output"), st.just("store"), st.text(alphabet="abc/._-", min_size=1).filter(str.strip)),
)
any_edits = st.sampled_from([None, "model", "grid", "execution", "output", "extra"]).flatmap(section_edits)
# One edit in three keeps the study valid. In eight runs of 200 examples,
# between 62% and 78% of the documents parsed.
edits = st.one_of(valid_edits, any_edits, any_edits)


def apply_edits(document: dict, changes: list) -> dict:
    result = json.loads(json.dumps(document))
    for section, key, value in changes:
        if section is None:
            table = result
        else:
            table = result.setdefault(section, {})
            if not isinstance(table, dict):
                continue
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    return result


def to_toml(document: dict) -> str:
    """Serialize a document of scalars, lists and tables, with nested tables inline."""
    lines = []
    for key, value in document.items():
        if not isinstance(value, dict):
            lines.append(f"{toml_key(key)} = {toml_value(value)}")
    for key, table in document.items():
        if isinstance(table, dict):
            lines.append(f"[{toml_key(key)}]")
            lines.extend(f"{toml_key(name)} = {toml_value(value)}" for name, value in table.items())
    return "\n".join(lines) + "\n"


def toml_key(name: str) -> str:
    return json.dumps(name, ensure_ascii=False)


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return "{" + ", ".join(f"{toml_key(name)} = {toml_value(item)}" for name, item in value.items()) + "}"


def check_one_line_error(exc: StudyError) -> None:
    message = str(exc)
    assert message.startswith("<string>: ")
    assert "\n" not in message
    if exc.key is not None:
        # Keys with control characters are shown escaped.
        assert exc.key in message or repr(exc.key)[1:-1] in message


@settings(max_examples=400, deadline=None)
@given(changes=st.lists(edits, min_size=1, max_size=3))
def test_random_documents_raise_only_study_error(changes):
    text = to_toml(apply_edits(VALID_DOCUMENT, changes))
    try:
        study = parse_study(text)
    except StudyError as exc:
        check_one_line_error(exc)
        return

    assert isinstance(study, Study)
    assert study.shape == tuple(len(study.grid[axis]) for axis in GRID_AXES)
    assert re.fullmatch(r"[0-9a-f]{64}", study.hash)
    assert parse_study(text).hash == study.hash


VALID_TEXT = to_toml(VALID_DOCUMENT)


@st.composite
def mutated_texts(draw):
    """Valid study text with a slice replaced by random characters, or cut short."""
    start = draw(st.integers(0, len(VALID_TEXT)))
    stop = draw(st.integers(start, min(len(VALID_TEXT), start + 40)))
    filler = draw(st.text(alphabet=st.sampled_from(list("[]{}=\"',.#-+e0123456789 \nabcnaif_")), max_size=20))
    return VALID_TEXT[:start] + filler + VALID_TEXT[stop:]


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(mutated_texts(), st.text(max_size=200)))
def test_malformed_text_raises_only_study_error(text):
    try:
        parse_study(text)
    except StudyError as exc:
        check_one_line_error(exc)
