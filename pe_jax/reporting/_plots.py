"""Figures of finished runs, for a report and for a paper: PNG (200 dpi) and PDF of each.

Figures are drawn on `matplotlib.figure.Figure` with an explicit Agg canvas, so importing this
module changes no global backend: it is safe in a notebook using another one.

What every figure says about itself: a line is the mean over an encoding's learned models (at
its chosen learning rate) and its band (or error bar) the seed-level 95% t interval, mean ±
t_{0.975, n-1} sd / sqrt(n), drawn only where n >= 2; an encoding that no model learned is one
faded line, and each panel's caption lists the models that are not learned. Baselines have a
legend of their own.
"""

from __future__ import annotations

import io
import math
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib  # for its colormap registry only; no backend is selected
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy import stats  # a dependency of JAX, hence always installed with pe_jax

from pe_jax.reporting._results import Run
from pe_jax.reporting._tables import BASELINES, METRIC_TITLES, group_by_task, task_metric
from pe_jax.reporting._verdicts import DEFAULT_RULES, Rules, RunVerdict, TaskVerdict, judge
from pe_jax.runfiles import write_bytes_atomic

PANEL_INCHES = (6.0, 4.4)  # width, height of one task's panel, its caption included
BASELINE_LEGEND_INCHES = 1.9  # width of the baselines' legend, right of the panels
LEGEND_ROW_INCHES = 0.3  # height of one row of the encodings' legend under the panels
LEGEND_TITLE_INCHES = 0.3
MAX_COLUMNS = 3  # panels per row
LEGEND_COLUMNS_PER_PANEL = 3  # legend entries per row, per panel column (long labels fit)
DPI = 200
VECTOR_SUFFIX = ".pdf"  # written beside every PNG
CONFIDENCE = 0.95
CAPTION_WIDTH = 80  # characters per caption line
RANDOMIZED_PREFIXES = ("randomized_", "shifted_")
# Baselines: one colour and one dash pattern each, none of them an encoding's style.
BASELINE_STYLES = {
    "uniform": dict(color="0.45", linestyle=(0, (1, 1.5)), lw=1.3),
    "majority": dict(color="#a6611a", linestyle=(0, (4, 2)), lw=1.3),
    "input_blind": dict(color="0.0", linestyle=(0, (7, 2, 1.5, 2, 1.5, 2)), lw=1.3),
}
BASELINE_LABELS = {
    "uniform": "uniform guessing",
    "majority": "input's majority symbol",
    "input_blind": "best input-blind rule",
}
TRAIN_LENGTH_STYLE = dict(color="0.6", linestyle="-", lw=0.8)
VARIANT_LINESTYLE = "-."
NOT_LEARNED_ALPHA = 0.3
BAND_NOTE = "band: 95% t interval over seeds"


def seed_interval(values_MN: np.ndarray, confidence: float = CONFIDENCE):
    """(mean, low, high) [N] over the first axis: mean ± t_{(1+c)/2, M-1} * sd / sqrt(M).

    Args:
      values_MN: float [M, N], M models (seeds), N points (lengths).
      confidence: the interval's level.

    Returns:
      Three float arrays [N]; low = high = mean when M < 2 (no interval).
    """
    values = np.asarray(values_MN, np.float64)
    mean = values.mean(0)
    if len(values) < 2:
        return mean, mean, mean
    half = stats.t.ppf((1 + confidence) / 2, len(values) - 1) * values.std(0, ddof=1)
    half /= math.sqrt(len(values))
    return mean, mean - half, mean + half


def figure_pixels(num_tasks: int, num_encodings: int, *, dpi: int = DPI) -> tuple[int, int]:
    """(height, width) in pixels of the PNGs below for that many tasks and encodings."""
    width, height = _figure_inches(num_tasks, num_encodings)
    return round(height * dpi), round(width * dpi)


def _legend_columns(num_tasks: int) -> int:
    return LEGEND_COLUMNS_PER_PANEL * min(num_tasks, MAX_COLUMNS)


def _figure_inches(num_tasks: int, num_encodings: int) -> tuple[float, float]:
    cols = min(num_tasks, MAX_COLUMNS)
    rows = math.ceil(num_tasks / MAX_COLUMNS)
    legend_rows = math.ceil(num_encodings / _legend_columns(num_tasks))
    height = rows * PANEL_INCHES[1] + legend_rows * LEGEND_ROW_INCHES + LEGEND_TITLE_INCHES
    return cols * PANEL_INCHES[0] + BASELINE_LEGEND_INCHES, height


def _styles(labels: Sequence[str]) -> dict[str, dict]:
    """A color per encoding; a randomized/shifted variant whose base label is also plotted
    shares its color with a dash-dotted line, so each pair reads together."""
    bases = [lb for lb in labels if not lb.startswith(RANDOMIZED_PREFIXES)]
    palette = "tab10" if len(labels) <= 10 else "tab20"
    cmap = matplotlib.colormaps[palette]
    color_of = {lb: cmap(i % cmap.N) for i, lb in enumerate(bases)}
    styles, extra = {}, len(bases)
    for lb in labels:
        base = lb
        for prefix in RANDOMIZED_PREFIXES:
            base = base.removeprefix(prefix)
        if lb in color_of:
            styles[lb] = dict(color=color_of[lb], linestyle="-")
        elif base in color_of:
            styles[lb] = dict(color=color_of[base], linestyle=VARIANT_LINESTYLE)
        else:
            styles[lb] = dict(color=cmap(extra % cmap.N), linestyle=VARIANT_LINESTYLE)
            extra += 1
    return styles


def _grid(num_tasks: int, num_encodings: int, dpi: int):
    width, height = _figure_inches(num_tasks, num_encodings)
    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    cols = min(num_tasks, MAX_COLUMNS)
    rows = math.ceil(num_tasks / MAX_COLUMNS)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[num_tasks:]:
        ax.set_visible(False)
    return fig, axes


def _figure_setup(runs, verdicts, rules, dpi):
    """(verdicts, runs grouped by task, a style per encoding, figure, axes) for a report plot."""
    if not runs:
        raise ValueError("runs must hold at least one finished run, got none.")
    verdicts = verdicts or judge(runs, rules)
    groups = group_by_task(runs)
    labels = list(dict.fromkeys(r.encoding for r in runs))
    fig, axes = _grid(len(groups), len(labels), dpi)
    return verdicts, groups, _styles(labels), fig, axes


def not_learned_caption(verdicts: Sequence[RunVerdict], *, marks: str = "lines and bands") -> str:
    """The caption's list of a task's models that are not learned (empty when none); `marks`
    names what they are left out of ("lines and bands", "points and bars")."""
    parts = []
    for v in verdicts:
        selected, counted = int(v.selected.sum()), int(v.counted.sum())
        if not v.any_learned:
            parts.append(f"{v.run.encoding}: all {selected} models (faded)")
        elif counted < selected:
            parts.append(f"{v.run.encoding}: {selected - counted} of {selected} models")
    if not parts:
        return ""
    if len(verdicts) > 1 and not any(v.any_learned for v in verdicts):
        return f"Not learned by any model of any encoding (all {marks} faded)."
    return f"Not learned (left out of {marks}): " + "; ".join(parts) + "."


def _caption(ax, first: str, notes: Sequence[str]) -> None:
    """The x label, then the panel's caption lines under it."""
    lines = [textwrap.fill(n, CAPTION_WIDTH) for n in notes if n]
    ax.set_xlabel("\n".join([first, *lines]), fontsize=9, loc="left" if lines else "center")


def _baselines(ax, tv: TaskVerdict, name: str, handles: dict) -> None:
    if not tv.baselines or name not in ("exact_match", "token_accuracy"):
        return
    for rule in BASELINES:
        (line,) = ax.plot(
            tv.baselines["lengths"], tv.baselines[rule][name], **BASELINE_STYLES[rule]
        )
        line.set_gid(f"baseline:{rule}")
        handles.setdefault(BASELINE_LABELS[rule], line)


def _legends(fig, handles: dict, baseline_handles: dict, num_tasks: int, title: str) -> None:
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="outside lower center",
        ncols=_legend_columns(num_tasks),
        frameon=False,
        title=title,
        title_fontsize=9,
    )
    if baseline_handles:
        fig.legend(
            list(baseline_handles.values()),
            list(baseline_handles),
            loc="outside right upper",
            frameon=False,
            title="baselines",
            title_fontsize=9,
            fontsize=8,
        )


def _finish_axis(ax, ylabel: str, metric: str) -> None:
    """The y label, the [0, 1] range of an accuracy (a loss keeps its own), the grid."""
    ax.set_ylabel(ylabel)
    if metric != "loss":
        ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)


def save_figure(fig: Figure, path: str | os.PathLike, *, dpi: int = DPI) -> Path:
    """Writes `fig` as the PNG `path` at `dpi` and as a PDF beside it (same name, .pdf), each
    atomically (`pe_jax.runfiles.write_bytes_atomic`): a killed report leaves the old file.

    Returns:
      The PNG's path.
    """
    path = Path(path)
    # No creation date in the PDF, so a rebuilt report's files are the same bytes.
    pdf = {"metadata": {"CreationDate": None}}
    for target, kind, kwargs in (
        (path, "png", {"dpi": dpi}),
        (path.with_suffix(VECTOR_SUFFIX), "pdf", pdf),
    ):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=kind, **kwargs)
        write_bytes_atomic(target, buffer.getvalue())
    return path


def accuracy_figure(
    runs: Sequence[Run],
    *,
    metric: str | None = None,
    dpi: int = DPI,
    verdicts: dict[str, TaskVerdict] | None = None,
    rules: Rules = DEFAULT_RULES,
) -> Figure:
    """The figure of `plot_accuracy_vs_length`, not yet saved (to inspect or save elsewhere).

    Every artist of data carries a gid: "model:<encoding>" (mean of its learned models),
    "band:<encoding>" (their 95% t interval), "not_learned:<encoding>" (one faded mean line for
    an encoding no model learned), "baseline:<rule>", "train_length".
    """
    verdicts, groups, styles, fig, axes = _figure_setup(runs, verdicts, rules, dpi)
    handles: dict[str, object] = {}
    baseline_handles: dict[str, object] = {}
    for ax, (task, task_runs) in zip(axes, groups.items(), strict=False):
        name = task_metric(task_runs, metric)
        tv = verdicts[task]
        for v in tv.runs:
            run = v.run
            values = run.metric(name)
            style = styles[run.encoding]
            if v.any_learned:
                mean, low, high = seed_interval(values[v.counted])
                (line,) = ax.plot(run.lengths, mean, label=run.encoding, lw=1.6, **style)
                line.set_gid(f"model:{run.encoding}")
                if v.counted.sum() >= 2:
                    if name != "loss":  # an accuracy's interval, clipped to [0, 1]
                        low, high = np.clip(low, 0, 1), np.clip(high, 0, 1)
                    band = ax.fill_between(run.lengths, low, high, color=style["color"],
                                           alpha=0.18, lw=0)  # fmt: skip
                    band.set_gid(f"band:{run.encoding}")
                handles.setdefault(run.encoding, line)
            else:
                (faded,) = ax.plot(run.lengths, values[v.selected].mean(0), lw=1.0,
                                   alpha=NOT_LEARNED_ALPHA, **style)  # fmt: skip
                faded.set_gid(f"not_learned:{run.encoding}")
                handles.setdefault(f"{run.encoding} (not learned)", faded)
        _baselines(ax, tv, name, baseline_handles)
        train = ax.axvline(task_runs[0].train_max_length, **TRAIN_LENGTH_STYLE)
        train.set_gid("train_length")
        baseline_handles.setdefault("longest training length", train)
        title = f"{task} ({task_runs[0].protocol})"
        if tv.learned_at_scale is False:
            title += ": not learned at this scale"
        ax.set_title(title)
        _caption(ax, "input length T", [not_learned_caption(tv.runs)])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        _finish_axis(ax, METRIC_TITLES.get(name, name), name)
    title = f"encoding: mean over learned seeds; {BAND_NOTE} (mean ± t·sd/√n, within [0, 1])"
    _legends(fig, handles, baseline_handles, len(groups), title)
    return fig


def plot_accuracy_vs_length(
    runs: Sequence[Run],
    path: str | os.PathLike,
    *,
    metric: str | None = None,
    dpi: int = DPI,
    verdicts: dict[str, TaskVerdict] | None = None,
    rules: Rules = DEFAULT_RULES,
) -> Path:
    """Metric vs. input length, one panel per task, one line per encoding, baselines apart.

    Each line is the mean over the encoding's learned models (at its chosen learning rate),
    its band the seed-level 95% t interval (`seed_interval`); an encoding no model learned is
    one faded line, and each panel's caption lists the models that are not learned; the
    task's uniform, majority and input-blind baselines have a colour and dash pattern each and
    their own legend; a thin gray line marks the longest training length; length ticks are
    integers. Size: `figure_pixels(num_tasks, num_encodings, dpi=dpi)`.

    Args:
      runs: finished runs (see `load_runs`).
      path: the PNG to write; a PDF of the same name is written beside it.
      metric: the plotted metric; None = per protocol (`default_metric`).
      dpi: dots per inch of the PNG.
      verdicts, rules: as `markdown_report`.

    Returns:
      The PNG's path.

    Raises:
      ValueError: no runs.
    """
    fig = accuracy_figure(runs, metric=metric, dpi=dpi, verdicts=verdicts, rules=rules)
    return save_figure(fig, path, dpi=dpi)


def cpu_seconds_per_step(run: Run) -> float | None:
    """The run's process CPU seconds per training step (results.json, schema 3), or None when
    absent or not positive (a run whose last session trained no step, e.g. one resumed after
    its last step, records 0)."""
    value = run.results.cpu_seconds_per_step
    if value is None or not math.isfinite(float(value)) or float(value) <= 0:
        return None
    return float(value)


def cost_figure(
    runs: Sequence[Run],
    *,
    metric: str | None = None,
    dpi: int = DPI,
    verdicts: dict[str, TaskVerdict] | None = None,
    rules: Rules = DEFAULT_RULES,
) -> Figure:
    """The figure of `plot_ood_vs_cost`, not yet saved. Points carry the gid
    "model:<encoding>" (learned) or "not_learned:<encoding>"."""
    verdicts, groups, styles, fig, axes = _figure_setup(runs, verdicts, rules, dpi)
    handles: dict[str, object] = {}
    baseline_handles: dict[str, object] = {}
    for ax, (task, task_runs) in zip(axes, groups.items(), strict=False):
        name = task_metric(task_runs, metric)
        tv = verdicts[task]
        timed = [v for v in tv.runs if cpu_seconds_per_step(v.run) is not None]
        untimed = [v.run.encoding for v in tv.runs if cpu_seconds_per_step(v.run) is None]
        nope = [v for v in timed if v.run.encoding_name == "none" and not v.run.encoding_options]
        if timed:
            reference = nope[0] if nope else min(timed, key=lambda v: cpu_seconds_per_step(v.run))
            ref_cpu = cpu_seconds_per_step(reference.run)
            ref_name = "NoPE" if nope else f"the cheapest ({reference.run.encoding})"
        # Neighbours in cost alternate their labels above and below, so labels do not collide.
        rank = {
            id(v): i
            for i, v in enumerate(sorted(timed, key=lambda v: v.run.results.cpu_seconds_per_step))
        }
        for v in timed:
            enc, color = v.run.encoding, styles[v.run.encoding]["color"]
            x = cpu_seconds_per_step(v.run) / ref_cpu
            ood = v.split_mean(name, "out")
            mean, low, high = (float(a[0]) for a in seed_interval(ood[:, None]))
            if name != "loss":
                low, high = max(low, 0.0), min(high, 1.0)
            marker = "o" if styles[enc]["linestyle"] == "-" else "s"
            points = ax.errorbar([x], [mean], yerr=[[mean - low], [high - mean]], fmt=marker,
                                 color=color, mfc=color if v.any_learned else "none", capsize=3,
                                 alpha=1.0 if v.any_learned else NOT_LEARNED_ALPHA)  # fmt: skip
            points[0].set_gid(f"{'model' if v.any_learned else 'not_learned'}:{enc}")
            label = enc if v.any_learned else f"{enc} (not learned)"
            offset = (4, 4) if rank[id(v)] % 2 == 0 else (4, -10)
            ax.annotate(enc, (x, mean), xytext=offset, textcoords="offset points", fontsize=7)
            handles.setdefault(label, points)
        if tv.baselines and name in ("exact_match", "token_accuracy"):
            bar = tv.baseline_mean("input_blind", name, "out")
            if not math.isnan(bar):
                base = ax.axhline(bar, **BASELINE_STYLES["input_blind"])
                base.set_gid("baseline:input_blind")
                baseline_handles.setdefault(BASELINE_LABELS["input_blind"], base)
        ax.set_title(f"{task} ({task_runs[0].protocol})")
        ax.margins(x=0.25)  # room for the labels of the extreme points
        if not timed:
            ax.set_xticks([])
            ax.text(0.5, 0.5, "no run of this task recorded its CPU time per step",
                    transform=ax.transAxes, ha="center", va="center", fontsize=9)  # fmt: skip
        first = f"CPU time per step relative to {ref_name}" if timed else "CPU time per step"
        notes = [not_learned_caption(timed, marks="points and bars")]
        if untimed:
            notes.append(
                f"Left out (no CPU time per step in results.json, written before it was "
                f"recorded): {', '.join(untimed)}."
            )
        _caption(ax, first, notes)
        _finish_axis(ax, f"OOD {METRIC_TITLES.get(name, name)}", name)
    title = "encoding: mean over learned seeds; bar: 95% t interval over seeds, within [0, 1]"
    _legends(fig, handles, baseline_handles, len(groups), title)
    return fig


def plot_ood_vs_cost(
    runs: Sequence[Run],
    path: str | os.PathLike,
    *,
    metric: str | None = None,
    dpi: int = DPI,
    verdicts: dict[str, TaskVerdict] | None = None,
    rules: Rules = DEFAULT_RULES,
) -> Path:
    """Out-of-distribution metric vs. CPU time per step: is an encoding worth its cost?

    One panel per task; a point per encoding at (its process CPU seconds per training step,
    `cpu_seconds_per_step` of results.json, relative to NoPE's or else the cheapest's; the
    OOD mean over its learned models) with the seed-level 95% t interval as its bar. CPU time,
    not wall time, so that other work on the machine does not move the points. An encoding
    that is not learned is a hollow, faded marker labelled so; runs without the CPU time
    (written before it was recorded) are left out and named in the panel's caption; the
    input-blind baseline is a line of the baselines' legend. Same size as
    `plot_accuracy_vs_length`.

    Args / Returns / Raises: as `plot_accuracy_vs_length`.
    """
    fig = cost_figure(runs, metric=metric, dpi=dpi, verdicts=verdicts, rules=rules)
    return save_figure(fig, path, dpi=dpi)
