"""Parse and validate study files, the TOML input of a gdasweep parameter study.

A study file sets the kernel GAN model, a grid over the GDA hyperparameters
``eta_d``, ``eta_g``, ``lam`` and ``sigma``, the Dask execution settings and
the output store. ``parse_study`` checks the whole file before any computation
starts. Every problem raises ``StudyError`` with a one-line message that names
the file, the TOML key, the offending value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import enum
import hashlib
import json
import math
import os
import pathlib
import re
import tomllib
from dataclasses import dataclass

import numpy as np

GRID_AXES = ("eta_d", "eta_g", "lam", "sigma")

#: ``chunk_size`` value that sizes chunks from the estimated cost of a configuration.
AUTO = "auto"

# Axes whose values must be > 0. The remaining axis, lam, must be >= 0.
_POSITIVE_AXES = ("eta_d", "eta_g", "sigma")

_TOP_LEVEL_KEYS = ("seed", "model", "grid", "execution", "output")
_MODEL_KEYS = (
    "kernel",
    "steps",
    "record_every",
    "history_tolerance",
    "save_positions",
    "chaos_check",
    "chaos_noise",
    "method",
    "expansion_tolerance",
    "true_points",
    "true_weights",
    "generated_points",
    "generated_weights",
)
_EXECUTION_KEYS = ("workers", "threads_per_worker", "chunk_size", "scheduler")
_OUTPUT_KEYS = ("store",)
_SPACING_KEYS = ("linspace", "logspace")

# Largest accepted integer, so that every integer in a study fits in an int64.
_MAX_INTEGER = 2**63 - 1

# Largest accepted `num` of a linspace or logspace axis. It stops a typo such
# as an extra zero from allocating gigabytes while the file is parsed.
_MAX_AXIS_LENGTH = 1_000_000

# Maximum length in characters of a value shown in an error message. Longer
# values are cut and end in "...".
_MAX_SHOWN_CHARS = 60

# Keys that TOML allows without quotes.
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")

# Marks a key without a default, so that a missing entry is an error.
_REQUIRED = object()


class StudyError(ValueError):
    """Invalid study file or value.

    Parameters
    ----------
    message : str
        One-line description of the problem.
    key : str or None
        Dotted TOML key of the offending entry, such as ``"grid.sigma"``, or
        None when the problem is not tied to one key.
    value : object
        The offending value as read from the file, or None.
    """

    def __init__(self, message: str, key: str | None = None, value: object = None):
        super().__init__(message)
        self.key = key
        self.value = value


#: Values of ``model.method``: how the history term of the GDA step is computed.
METHODS = ("auto", "direct", "expansion")

#: Largest dimension of the points for which ``method = "expansion"`` is allowed.
MAX_EXPANSION_DIMENSION = 3


class Kernel(enum.Enum):
    """Kernel of the discriminator."""

    GAUSSIAN = "gaussian"


@dataclass(frozen=True, eq=False)
class Model:
    """Kernel GAN model and GDA run settings shared by every grid point.

    ``eq=False`` because the fields contain arrays, so objects compare by
    identity. Compare ``Study.hash`` to compare the science content.
    """

    true_points: np.ndarray
    true_weights: np.ndarray
    generated_points: np.ndarray
    generated_weights: np.ndarray
    kernel: Kernel
    steps: int
    record_every: int
    history_tolerance: float
    save_positions: bool
    chaos_check: bool = False      # run a twin with per-step noise and flag chaotic runs
    chaos_noise: float = 1e-12     # relative noise added to every coordinate of the twin, per step
    method: str = "auto"           # "direct", "expansion" or "auto" (expansion where cheaper)
    expansion_tolerance: float = 1e-16  # bound on the expansion's error per kernel gradient term


@dataclass(frozen=True)
class Execution:
    """Dask settings for running a study."""

    workers: int = 2
    threads_per_worker: int = 1
    chunk_size: int | str = AUTO
    scheduler: str | None = None


@dataclass(frozen=True, eq=False)
class Study:
    """Validated study file.

    ``text`` is the original file text, so after ``with_execution`` or
    ``with_store`` it no longer states the execution settings or store.
    ``hash`` is the SHA-256 hex digest of the seed, the model and the expanded
    grid, and it ignores the execution settings, the store and formatting.
    """

    model: Model
    grid: dict[str, np.ndarray]
    execution: Execution
    store: pathlib.Path
    seed: int
    text: str
    source: str
    hash: str

    @property
    def shape(self) -> tuple[int, ...]:
        """Grid lengths in ``GRID_AXES`` order."""
        return tuple(len(self.grid[axis]) for axis in GRID_AXES)

    @property
    def n_configs(self) -> int:
        """Number of grid points, the product of ``shape``."""
        return math.prod(self.shape)


def parse_study(text: str, source: str = "<string>") -> Study:
    """Parse and validate the text of a study file.

    Parameters
    ----------
    text : str
        TOML text of the study file.
    source : str
        File name that error messages start with.

    Returns
    -------
    Study
        The validated study, with the grid axes expanded to arrays.

    Raises
    ------
    StudyError
        If the text is not valid TOML or any key or value is invalid.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(f"{source}: invalid TOML: {exc}") from exc

    try:
        return _build_study(document, text, source)
    except StudyError as exc:
        raise StudyError(f"{source}: {exc}", exc.key, exc.value) from None


def load_study(path: str | os.PathLike) -> Study:
    """Read a study file and parse it with ``parse_study``.

    Parameters
    ----------
    path : str or os.PathLike
        Path of the UTF-8 encoded TOML study file.

    Returns
    -------
    Study
        The validated study, with ``source`` set to ``path`` as given.

    Raises
    ------
    StudyError
        If the file cannot be read, is not UTF-8, or fails validation.
    """
    source = os.fspath(path)
    try:
        text = pathlib.Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise StudyError(f"{source}: failed to read study file: {reason}", value=source) from exc
    except UnicodeDecodeError as exc:
        message = f"{source}: invalid study file: not UTF-8 text ({exc.reason})"
        raise StudyError(message, value=source) from exc
    return parse_study(text, source)


def with_execution(study: Study, **changes) -> Study:
    """Return a copy of ``study`` with some execution settings replaced.

    Parameters
    ----------
    study : Study
        The study to copy.
    **changes
        New values for ``workers``, ``threads_per_worker``, ``chunk_size`` or
        ``scheduler``. Values that are None are ignored, so a command line
        option that was not given keeps the setting from the file.

    Returns
    -------
    Study
        The copy, with the same ``hash``.

    Raises
    ------
    StudyError
        If a name is not an execution setting or a value is invalid. The
        message names the key, such as ``execution.workers``, but no file.
    """
    settings = {name: value for name, value in dataclasses.asdict(study.execution).items() if value is not None}
    settings.update((name, value) for name, value in changes.items() if value is not None)
    return dataclasses.replace(study, execution=_check_execution(settings))


def with_store(study: Study, store: str | os.PathLike) -> Study:
    """Return a copy of ``study`` that writes to another store path.

    Raises
    ------
    StudyError
        If ``store`` is not a non-empty path. The message names ``output.store``.
    """
    return dataclasses.replace(study, store=_check_store(store, "output.store"))


def _build_study(document: dict, text: str, source: str) -> Study:
    _check_keys(document, _TOP_LEVEL_KEYS, "")
    seed = _check_integer(_get(document, "seed", ""), "seed", minimum=0)
    model = _check_model(_get_table(document, "model"))
    grid = _check_grid(_get_table(document, "grid"))
    execution = _check_execution(_get_table(document, "execution", required=False))
    output = _get_table(document, "output")
    _check_keys(output, _OUTPUT_KEYS, "output")
    store = _check_store(_get(output, "store", "output"), "output.store")
    return Study(
        model=model,
        grid=grid,
        execution=execution,
        store=store,
        seed=seed,
        text=text,
        source=source,
        hash=_hash_science(seed, model, grid),
    )


def _check_model(table: dict) -> Model:
    _check_keys(table, _MODEL_KEYS, "model")

    steps = _check_integer(_get(table, "steps", "model"), "model.steps", minimum=1)
    record_every = _check_integer(_get(table, "record_every", "model", 1), "model.record_every", minimum=1)
    if record_every > steps:
        raise _invalid("model.record_every", record_every, f"must be <= model.steps ({steps})")

    true_points = _check_points(_get(table, "true_points", "model"), "model.true_points")
    generated_points = _check_points(_get(table, "generated_points", "model"), "model.generated_points")
    _check_same_dimension(true_points, generated_points)

    true_weights = _check_weights(table, "true_weights", "true_points", len(true_points))
    generated_weights = _check_weights(table, "generated_weights", "generated_points", len(generated_points))

    kernel = _check_kernel(_get(table, "kernel", "model", Kernel.GAUSSIAN.value), "model.kernel")
    tolerance = _check_tolerance(_get(table, "history_tolerance", "model", 0.0), "model.history_tolerance")
    save_positions = _check_bool(_get(table, "save_positions", "model", False), "model.save_positions")
    chaos_check = _check_bool(_get(table, "chaos_check", "model", False), "model.chaos_check")
    chaos_noise = _check_number(_get(table, "chaos_noise", "model", 1e-12), "model.chaos_noise")
    if not 0.0 < chaos_noise <= 1e-3:
        raise _invalid("model.chaos_noise", chaos_noise, "must be > 0 and <= 1e-3")
    method = _check_method(_get(table, "method", "model", "auto"), true_points.shape[1], tolerance)
    expansion_tolerance = _check_number(_get(table, "expansion_tolerance", "model", 1e-16), "model.expansion_tolerance")
    if not 1e-20 <= expansion_tolerance <= 1e-6:
        raise _invalid("model.expansion_tolerance", expansion_tolerance, "must be >= 1e-20 and <= 1e-6")

    return Model(
        true_points=true_points,
        true_weights=true_weights,
        generated_points=generated_points,
        generated_weights=generated_weights,
        kernel=kernel,
        steps=steps,
        record_every=record_every,
        history_tolerance=tolerance,
        save_positions=save_positions,
        chaos_check=chaos_check,
        chaos_noise=chaos_noise,
        method=method,
        expansion_tolerance=expansion_tolerance,
    )


def _check_grid(table: dict) -> dict[str, np.ndarray]:
    _check_keys(table, GRID_AXES, "grid")
    return {axis: _check_axis(_get(table, axis, "grid"), axis) for axis in GRID_AXES}


def _check_execution(table: dict) -> Execution:
    _check_keys(table, _EXECUTION_KEYS, "execution")
    defaults = dataclasses.asdict(Execution())
    settings = {}
    for name in ("workers", "threads_per_worker", "chunk_size"):
        value = table.get(name, defaults[name])
        if name == "chunk_size":
            settings[name] = _check_chunk_size(value)
            continue
        settings[name] = _check_integer(value, f"execution.{name}", minimum=1)

    scheduler = table.get("scheduler", defaults["scheduler"])
    if scheduler is not None:
        scheduler = _check_string(scheduler, "execution.scheduler")
    return Execution(**settings, scheduler=scheduler)


def _hash_science(seed: int, model: Model, grid: dict[str, np.ndarray]) -> str:
    """Return the SHA-256 hex digest of the seed, the model fields and the grid axes."""
    model_content = {}
    for field in dataclasses.fields(model):
        value = getattr(model, field.name)
        if isinstance(value, np.ndarray):
            value = value.tolist()
        elif isinstance(value, Kernel):
            value = value.value
        model_content[field.name] = value

    content = {
        "seed": seed,
        "model": model_content,
        "grid": {axis: values.tolist() for axis, values in grid.items()},
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# Lookup of keys and tables.


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _get(table: dict, name: str, prefix: str, default: object = _REQUIRED) -> object:
    if name in table:
        return table[name]
    if default is _REQUIRED:
        key = _join(prefix, name)
        raise StudyError(f"missing required key {key!r}", key)
    return default


def _get_table(document: dict, name: str, required: bool = True) -> dict:
    if name not in document:
        if required:
            raise StudyError(f"missing required table [{name}]", name)
        return {}
    table = document[name]
    if not isinstance(table, dict):
        raise _invalid(name, table, f"must be a table, written as [{name}]")
    return table


def _check_keys(table: dict, valid: tuple[str, ...], prefix: str) -> None:
    """Raise StudyError for the first key of ``table`` that is not in ``valid``."""
    for name in table:
        if name in valid:
            continue
        key = _join(prefix, name)
        suggestions = difflib.get_close_matches(name, valid, n=1)
        hint = f"; did you mean {suggestions[0]!r}?" if suggestions else "."
        where = f"in [{prefix}]" if prefix else "at the top level"
        raise StudyError(
            f"unknown key {key!r}{hint} Valid keys {where}: {', '.join(sorted(valid))}",
            key,
            table[name],
        )


# Scalar values.


def _check_integer(
    value: object, key: str, *, minimum: int, maximum: int = _MAX_INTEGER, index: tuple[int, ...] = ()
) -> int:
    if maximum == _MAX_INTEGER:
        rule = f"must be an integer >= {minimum}"
    else:
        rule = f"must be an integer from {minimum} to {maximum}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(key, value, rule, index)
    if not minimum <= value <= maximum:
        raise _invalid(key, value, rule, index)
    return value


def _check_chunk_size(value: object) -> int | str:
    if value == AUTO:
        return AUTO
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_INTEGER:
        raise _invalid("execution.chunk_size", value, f'must be "{AUTO}" or an integer >= 1')
    return value


def _check_number(value: object, key: str, index: tuple[int, ...] = ()) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _invalid(key, value, "must be a number", index)
    try:
        number = float(value)
    except OverflowError:
        raise _invalid(key, value, "must be a finite number", index) from None
    if not math.isfinite(number):
        raise _invalid(key, value, "must be a finite number", index)
    return number


def _check_bool(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise _invalid(key, value, "must be true or false")
    return value


def _check_string(value: object, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _invalid(key, value, "must be a non-empty string")
    return value


def _check_kernel(value: object, key: str) -> Kernel:
    names = [kernel.value for kernel in Kernel]
    if not isinstance(value, str) or value not in names:
        raise _invalid(key, value, f"must be one of: {', '.join(names)}")
    return Kernel(value)


def _check_method(value: object, dimension: int, history_tolerance: float) -> str:
    key = "model.method"
    if not isinstance(value, str) or value not in METHODS:
        raise _invalid(key, value, f"must be one of: {', '.join(METHODS)}")
    if value == "expansion" and dimension > MAX_EXPANSION_DIMENSION:
        raise _invalid(
            key, value,
            f"the expansion supports points of dimension <= {MAX_EXPANSION_DIMENSION}, but the model's points "
            f"have {dimension}; use \"direct\" or \"auto\"",
        )
    if value == "expansion" and history_tolerance > 0.0:
        raise _invalid(
            key, value,
            f"the expansion keeps every history term, so model.history_tolerance must be 0, "
            f"not {history_tolerance!r}; use \"direct\" or \"auto\"",
        )
    return value


def _check_tolerance(value: object, key: str) -> float:
    tolerance = _check_number(value, key)
    if not 0.0 <= tolerance < 1.0:
        raise _invalid(key, value, "must be >= 0 and < 1, where 0 keeps every history term")
    return tolerance


def _check_store(value: object, key: str) -> pathlib.Path:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        raise _invalid(key, value, "must be a non-empty path without NUL characters")
    return pathlib.Path(value)


# Points and weights of the model.


def _check_points(value: object, key: str) -> np.ndarray:
    """Return the points as a C-contiguous (N, d) float64 array."""
    rule = "must be a non-empty list of points, each a non-empty list of numbers"
    if not isinstance(value, list) or not value:
        raise _invalid(key, value, rule)

    rows = []
    for i, point in enumerate(value):
        if not isinstance(point, list) or not point:
            raise _invalid(key, point, rule, (i,))
        rows.append([_check_number(coordinate, key, (i, j)) for j, coordinate in enumerate(point)])

    dimension = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != dimension:
            raise _invalid(key, value[i], f"must have {dimension} coordinates, like {key}[0]", (i,))
    return np.array(rows, dtype=np.float64)


def _check_same_dimension(true_points: np.ndarray, generated_points: np.ndarray) -> None:
    true_dimension = true_points.shape[1]
    generated_dimension = generated_points.shape[1]
    if generated_dimension != true_dimension:
        raise StudyError(
            f"model.generated_points: invalid dimension {generated_dimension}: "
            f"must equal the dimension of model.true_points ({true_dimension})",
            "model.generated_points",
            generated_dimension,
        )


def _check_weights(table: dict, name: str, points_name: str, count: int) -> np.ndarray:
    """Return the weights of ``count`` points, all 1.0 when the key is absent."""
    key = f"model.{name}"
    value = _get(table, name, "model", None)
    if value is None:
        return np.ones(count, dtype=np.float64)

    if not isinstance(value, list):
        raise _invalid(key, value, "must be a list of numbers > 0")
    if len(value) != count:
        rule = f"must equal the number of points in model.{points_name} ({count})"
        raise StudyError(f"{key}: invalid length {len(value)}: {rule}", key, value)

    weights = np.array([_check_number(weight, key, (i,)) for i, weight in enumerate(value)], dtype=np.float64)
    for i, weight in enumerate(weights):
        if weight <= 0.0:
            raise _invalid(key, value[i], "must be > 0", (i,))
    return weights


# Grid axes.


def _check_axis(value: object, axis: str) -> np.ndarray:
    """Return the values of one grid axis as a 1-D float64 array, in file order."""
    key = f"grid.{axis}"
    if isinstance(value, dict):
        values = _expand_spacing(value, key)
    elif isinstance(value, list) and value:
        values = np.array([_check_number(item, key, (i,)) for i, item in enumerate(value)], dtype=np.float64)
    else:
        rule = "must be a non-empty list of numbers, or a table with linspace or logspace"
        raise _invalid(key, value, rule)

    _check_axis_bounds(values, axis, key)
    _check_distinct(values, key)
    return values


def _expand_spacing(table: dict, key: str) -> np.ndarray:
    """Expand ``{ linspace = [start, stop, num] }`` or ``{ logspace = [...] }``."""
    _check_keys(table, _SPACING_KEYS, key)
    if len(table) != 1:
        raise _invalid(key, table, "must contain exactly one of linspace, logspace")

    (kind, spacing), = table.items()
    spacing_key = f"{key}.{kind}"
    if not isinstance(spacing, list) or len(spacing) != 3:
        raise _invalid(spacing_key, spacing, "must be a list [start, stop, num]")

    start = _check_number(spacing[0], spacing_key, (0,))
    stop = _check_number(spacing[1], spacing_key, (1,))
    num = _check_integer(spacing[2], spacing_key, minimum=1, maximum=_MAX_AXIS_LENGTH, index=(2,))

    # Huge finite bounds can overflow to inf or nan, which the check below rejects.
    with np.errstate(over="ignore", invalid="ignore"):
        if kind == "linspace":
            values = np.linspace(start, stop, num, dtype=np.float64)
        else:
            values = np.logspace(start, stop, num, dtype=np.float64)

    non_finite = values[~np.isfinite(values)]
    if non_finite.size:
        raise _invalid(spacing_key, spacing, f"expands to the non-finite value {non_finite[0]}")
    return values


def _check_axis_bounds(values: np.ndarray, axis: str, key: str) -> None:
    if axis in _POSITIVE_AXES:
        invalid, rule = values[values <= 0.0], "must be > 0"
    else:
        invalid, rule = values[values < 0.0], "must be >= 0"
    if invalid.size:
        raise _invalid(key, float(invalid[0]), rule)


def _check_distinct(values: np.ndarray, key: str) -> None:
    unique, counts = np.unique(values, return_counts=True)
    repeated = unique[counts > 1]
    if repeated.size:
        raise _invalid(key, float(repeated[0]), "appears more than once, but axis values must be distinct")


# Error messages.


def _invalid(key: str, value: object, rule: str, index: tuple[int, ...] = ()) -> StudyError:
    """Build the error for an invalid value. ``index`` locates the value inside nested TOML arrays."""
    location = key + "".join(f"[{i}]" for i in index)
    return StudyError(f"{location}: invalid value {_format_value(value)}: {rule}", key, value)


def _format_value(value: object) -> str:
    """Render ``value`` as TOML on one line, cut to ``_MAX_SHOWN_CHARS``."""
    text = _to_toml(value)
    if len(text) > _MAX_SHOWN_CHARS:
        text = text[: _MAX_SHOWN_CHARS - 3] + "..."
    return text


def _to_toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _float_to_toml(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_to_toml(item) for item in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_key_to_toml(name)} = {_to_toml(item)}" for name, item in value.items())
        return "{ " + items + " }" if items else "{}"
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    # Values passed to with_execution or with_store can be any object, and
    # their repr can span lines.
    return " ".join(repr(value).split())


def _key_to_toml(name: str) -> str:
    if _BARE_KEY.fullmatch(name):
        return name
    return json.dumps(name, ensure_ascii=False)


def _float_to_toml(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(value)
