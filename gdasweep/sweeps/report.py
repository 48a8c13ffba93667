"""``gdasweep report``: figures and a Markdown summary of a study's store."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from . import schema

logger = logging.getLogger(__name__)

OBSERVED_COLORS = ["#1b9e77", "#7570b3", "#a6a6a6", "#d95f02", "#e7298a", "#000000"]
PREDICTED_COLORS = ["#1b9e77", "#7570b3", "#a6a6a6", "#d95f02", "#e6ab02"]
WORST_SHOWN = 10
SCATTER_MAX_RHO = 1.2


def _parse_where(items: list[str] | None, dataset) -> dict[str, float]:
    fixed = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or name not in schema.GRID_DIMS:
            raise ValueError(f"invalid --where {item!r}: expected AXIS=VALUE with AXIS one of "
                             f"{', '.join(schema.GRID_DIMS)}")
        try:
            fixed[name] = float(value)
        except ValueError:
            raise ValueError(f"invalid --where {item!r}: {value!r} is not a number") from None
        values = dataset[name].values
        if not np.isclose(values, fixed[name], rtol=1e-9, atol=0.0).any():
            raise ValueError(f"invalid --where {item!r}: {name} has no value {value}; values: "
                             f"{np.round(values[:10], 12).tolist()}{' ...' if values.size > 10 else ''}")
    return fixed


def select_plane(dataset, x: str, y: str, where: dict[str, float]):
    """Return the plane over ``x`` and ``y``, with every other grid axis fixed.

    Axes not in ``where`` are fixed at their first value.
    """
    for name, axis in (("x", x), ("y", y)):
        if axis not in schema.GRID_DIMS:
            raise ValueError(f"invalid --{name} {axis!r}: expected one of {', '.join(schema.GRID_DIMS)}")
    if x == y:
        raise ValueError(f"--x and --y must differ, both are {x!r}")
    fixed = {}
    for axis in schema.GRID_DIMS:
        if axis in (x, y):
            if axis in where:
                raise ValueError(f"--where fixes {axis!r}, which is a plotted axis")
            continue
        fixed[axis] = where.get(axis, float(dataset[axis].values[0]))
    plane = dataset.sel({axis: value for axis, value in fixed.items()}, method="nearest")
    return plane.transpose(y, x, ...), fixed


def _axis_scale(values: np.ndarray) -> str:
    positive = values[values > 0]
    if positive.size == values.size and values.size > 2 and positive.max() / positive.min() > 20:
        return "log"
    return "linear"


def _edges(values: np.ndarray) -> np.ndarray:
    """Return cell edges around sorted coordinate values, midway in the axis' own scale."""
    values = np.asarray(values, dtype=float)
    log = _axis_scale(values) == "log"
    points = np.log10(values) if log else values
    if points.size == 1:
        edges = np.array([points[0] - 0.5, points[0] + 0.5])
    else:
        middle = (points[1:] + points[:-1]) / 2
        edges = np.concatenate([[2 * points[0] - middle[0]], middle, [2 * points[-1] - middle[-1]]])
    return 10.0**edges if log else edges


def _mesh(ax, plane, x: str, y: str, values, **kwargs):
    return ax.pcolormesh(_edges(plane[x].values), _edges(plane[y].values), values, shading="flat", **kwargs)


def _decorate(ax, plane, x: str, y: str) -> None:
    ax.set_xscale(_axis_scale(plane[x].values))
    ax.set_yscale(_axis_scale(plane[y].values))
    ax.set_xlabel(f"{x} ({plane[x].attrs.get('long_name', x)})")
    ax.set_ylabel(f"{y} ({plane[y].attrs.get('long_name', y)})")


def _phase_map(ax, plane, name, meanings, colors, x, y):
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    codes = np.asarray(plane[name].values, dtype=float)
    codes[codes < 0] = np.nan
    cmap = ListedColormap(colors[: len(meanings)])
    norm = BoundaryNorm(np.arange(len(meanings) + 1) - 0.5, cmap.N)
    _mesh(ax, plane, x, y, codes, cmap=cmap, norm=norm)
    present = sorted({int(c) for c in codes[np.isfinite(codes)].ravel()})
    ax.legend(handles=[Patch(color=colors[c], label=meanings[c]) for c in present], fontsize=7, loc="best")
    _decorate(ax, plane, x, y)


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    logger.info("wrote %s", path)
    return path


def _figures(plane, x, y, title, out: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    paths = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
    _phase_map(axes[0], plane, "observed_phase", list(schema.OBSERVED_PHASES.values()), OBSERVED_COLORS, x, y)
    axes[0].set_title("observed phase")
    _phase_map(axes[1], plane, "predicted_phase", list(schema.PREDICTED_PHASES.values()), PREDICTED_COLORS, x, y)
    axes[1].set_title("predicted phase")
    fig.suptitle(title)
    paths.append(_save(fig, out / "phases.png"))

    fig, ax = plt.subplots(figsize=(6, 4.5), constrained_layout=True)
    agreement = np.asarray(plane.gda.agreement.values, dtype=float)
    from matplotlib.colors import ListedColormap

    _mesh(ax, plane, x, y, agreement, cmap=ListedColormap(["#d7301f", "#74c476"]), vmin=0, vmax=1)
    lines = plane.gda.boundary(x=x, y=y)
    for line in lines:
        ax.plot(line[:, 0], line[:, 1], color="black", linewidth=1.2)
    if lines:
        ax.plot([], [], color="black", label="predicted boundary rho_generator = 1")
    ax.plot([], [], "s", color="#d7301f", label="disagree")
    ax.plot([], [], "s", color="#74c476", label="agree")
    ax.legend(fontsize=7, loc="best")
    ax.set_title("observed against predicted phase")
    _decorate(ax, plane, x, y)
    paths.append(_save(fig, out / "disagreement.png"))

    rho = np.asarray(plane["rho_generator"].values, dtype=float)
    rate = np.asarray(plane["decay_rate"].values, dtype=float)
    # The shared scale spans the empirical rates and 1; predicted factors far
    # above 1 (thousands, for strongly unstable settings) saturate the colour.
    finite = rate[np.isfinite(rate)]
    if finite.size == 0:
        finite = rho[np.isfinite(rho)]
    low, high = np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0)
    low, high = min(low, 1.0), max(high, 1.0)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
    for ax, values, label in ((axes[0], rho, "predicted rho_generator"), (axes[1], rate, "empirical decay rate")):
        mesh = _mesh(ax, plane, x, y, values, vmin=low, vmax=high, cmap="viridis")
        ax.set_title(label)
        _decorate(ax, plane, x, y)
    fig.colorbar(mesh, ax=axes, extend="both", label="per-step factor (same scale in both panels)")
    paths.append(_save(fig, out / "rates.png"))

    fig, ax = plt.subplots(figsize=(5.5, 5), constrained_layout=True)
    fitted = np.isfinite(rho) & np.isfinite(rate)
    # Strongly unstable predictions (rho far above 1) end escaped with a rate near 1
    # and would squeeze the rest of the plot into a corner.
    both = fitted & (rho <= SCATTER_MAX_RHO)
    ax.scatter(rho[both], rate[both], s=6, alpha=0.6)
    if both.any():
        span = [min(rho[both].min(), rate[both].min()), max(rho[both].max(), rate[both].max())]
        ax.plot(span, span, color="black", linewidth=1, label="empirical = predicted")
        ax.legend(fontsize=8)
    ax.set_xlabel("predicted rho_generator")
    ax.set_ylabel("empirical decay rate")
    hidden = int(fitted.sum() - both.sum())
    ax.set_title(f"{int(both.sum())} configurations with a fitted rate"
                 + (f"\n({hidden} with rho_generator > {SCATTER_MAX_RHO} not shown)" if hidden else ""))
    paths.append(_save(fig, out / "rate_scatter.png"))

    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    observed = np.asarray(plane["observed_phase"].values)
    for code, meaning in schema.OBSERVED_PHASES.items():
        rows, cols = np.nonzero(observed == code)
        for k in np.linspace(0, rows.size - 1, min(3, rows.size)).astype(int) if rows.size else []:
            error = plane["error"].isel({y: rows[k], x: cols[k]}).values
            ax.plot(plane["step"].values, error, color=OBSERVED_COLORS[code], linewidth=1,
                    label=meaning if k == 0 else None)
    ax.set_yscale("log")
    ax.set_xlabel("step k")
    ax.set_ylabel("generator error e_k")
    ax.legend(fontsize=7)
    ax.set_title("error trajectories, up to three per observed phase")
    paths.append(_save(fig, out / "trajectories.png"))
    return paths


def _worst_disagreements(dataset) -> list[str]:
    """Return Markdown lines listing the disagreements whose prediction is farthest from marginal."""
    worst = dataset.gda.disagreements()
    if not worst.sizes.get("config", 0):
        return []
    confidence = np.abs(worst["rho_generator"].values - 1.0)
    order = np.argsort(-np.nan_to_num(confidence, nan=-1.0))[:WORST_SHOWN]
    lines = [
        f"Worst disagreements (prediction farthest from marginal, {WORST_SHOWN} at most):",
        "",
        "| eta_d | eta_g | lam | sigma | observed | predicted | rho_generator | decay_rate |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i in order:
        row = worst.isel(config=int(i))
        lines.append(
            f"| {float(row.eta_d):.6g} | {float(row.eta_g):.6g} | {float(row.lam):.6g} | {float(row.sigma):.6g} "
            f"| {schema.OBSERVED_PHASES.get(int(row.observed_phase), '?')} "
            f"| {schema.PREDICTED_PHASES.get(int(row.predicted_phase), '?')} "
            f"| {float(row.rho_generator):.6f} | {float(row.decay_rate):.6f} |"
        )
    lines.append("")
    return lines


def _summary(dataset, fixed, x, y, out: Path, figures: list[Path]) -> Path:
    observed = dataset["observed_phase"].values.ravel()
    predicted = dataset["predicted_phase"].values.ravel()
    agreement = dataset.gda.agreement.values.ravel()
    comparable = int(np.isfinite(agreement).sum())
    agreeing = int(np.nansum(agreement))

    lines = [
        f"# gdasweep report: {dataset.attrs.get('study_source', '')}",
        "",
        f"Study hash `{dataset.attrs.get('study_hash', '?')}`, {observed.size} configurations, "
        f"{int((observed != schema.NOT_COMPUTED).sum())} computed.",
        "",
        "| observed phase | configurations |", "|---|---|",
        *(f"| {name} | {int((observed == code).sum())} |" for code, name in schema.OBSERVED_PHASES.items()),
        "",
        "| predicted phase | configurations |", "|---|---|",
        *(f"| {name} | {int((predicted == code).sum())} |" for code, name in schema.PREDICTED_PHASES.items()),
        "",
        f"Agreement: {agreeing} of {comparable} comparable configurations"
        + (f" ({100.0 * agreeing / comparable:.1f}%)." if comparable else "."),
        "Chaotic runs and predictions without a fixed point are not compared.",
        "",
    ]
    lines += _worst_disagreements(dataset)

    fixed_text = ", ".join(f"{axis} = {value:.6g}" for axis, value in fixed.items())
    lines += [f"Figures over {x} and {y}" + (f" at {fixed_text}" if fixed_text else "") + ":", ""]
    lines += [f"![{path.stem}]({path.name})" for path in figures]
    path = out / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def make_report(store: str | os.PathLike, *, x: str = "sigma", y: str = "lam", where: list[str] | None = None,
                out: str | os.PathLike | None = None) -> list[Path]:
    """Write the report's figures and ``summary.md``; return their paths.

    Parameters
    ----------
    store : path-like
        A store written by ``gdasweep run``.
    x, y : str
        Grid axes of the maps, default ``sigma`` and ``lam``.
    where : list of str, optional
        ``AXIS=VALUE`` items fixing the other grid axes; an axis not given
        is fixed at its first value.
    out : path-like, optional
        Output directory, default ``STORE_report`` beside the store.
    """
    import matplotlib

    matplotlib.use("Agg")
    from .. import open_study

    dataset = open_study(store)
    fixed_request = _parse_where(where, dataset)
    plane, fixed = select_plane(dataset, x, y, fixed_request)
    plane = plane.load()
    out = Path(out) if out is not None else Path(str(store).rstrip("/") + "_report")
    out.mkdir(parents=True, exist_ok=True)
    title = ", ".join(f"{axis} = {value:.4g}" for axis, value in fixed.items())
    figures = _figures(plane, x, y, title, out)
    return figures + [_summary(dataset, fixed, x, y, out, figures)]
