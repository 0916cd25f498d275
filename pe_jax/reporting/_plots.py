"""PNG plots of finished runs with matplotlib's Agg canvas (no display, no pyplot state).

Figures are drawn on `matplotlib.figure.Figure` with an explicit Agg canvas, so importing this
module changes no global backend: it is safe in a notebook using another one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib  # for its colormap registry only; no backend is selected
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pe_jax.reporting._results import Run
from pe_jax.reporting._tables import (
    BASELINES,
    METRIC_TITLES,
    group_by_task,
    summarize_task,
    task_metric,
)
from pe_jax.reporting._verdicts import DEFAULT_RULES, Rules, TaskVerdict, judge

PANEL_INCHES = (6.0, 4.0)  # width, height of one task's panel
LEGEND_ROW_INCHES = 0.3  # height of one row of the shared legend under the panels
MAX_COLUMNS = 3  # panels per row
LEGEND_COLUMNS_PER_PANEL = 3  # legend entries per row, per panel column (long labels fit)
DPI = 100
RANDOMIZED_PREFIXES = ("randomized_", "shifted_")
# Dashed lines are the baselines'; a randomized variant is dash-dotted, a model that is not
# learned dotted.
BASELINE_STYLES = {
    "uniform": dict(color="0.55", linestyle="--", lw=1.0),
    "majority": dict(color="0.35", linestyle="--", lw=1.0),
    "input_blind": dict(color="0.0", linestyle="--", lw=1.0),
}
VARIANT_LINESTYLE = "-."
NOT_LEARNED_LINESTYLE = ":"


def figure_pixels(num_tasks: int, num_encodings: int, *, dpi: int = DPI) -> tuple[int, int]:
    """(height, width) in pixels of the figures below for that many tasks and encodings."""
    width, height = _figure_inches(num_tasks, num_encodings)
    return round(height * dpi), round(width * dpi)


def _legend_columns(num_tasks: int) -> int:
    return LEGEND_COLUMNS_PER_PANEL * min(num_tasks, MAX_COLUMNS)


def _figure_inches(num_tasks: int, num_encodings: int) -> tuple[float, float]:
    cols = min(num_tasks, MAX_COLUMNS)
    rows = math.ceil(num_tasks / MAX_COLUMNS)
    # + the train-length line, the three baselines and the not-learned mark.
    legend_rows = math.ceil((num_encodings + 5) / _legend_columns(num_tasks))
    return cols * PANEL_INCHES[0], rows * PANEL_INCHES[1] + legend_rows * LEGEND_ROW_INCHES


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


def _labels_in_order(runs: Sequence[Run]) -> list[str]:
    return list(dict.fromkeys(r.encoding for r in runs))


def _figure_setup(runs, verdicts, rules, dpi):
    """(verdicts, runs grouped by task, a style per encoding, figure, axes) for a report plot."""
    if not runs:
        raise ValueError("runs must hold at least one finished run, got none.")
    verdicts = verdicts or judge(runs, rules)
    groups = group_by_task(runs)
    labels = _labels_in_order(runs)
    fig, axes = _grid(len(groups), len(labels), dpi)
    return verdicts, groups, _styles(labels), fig, axes


def accuracy_figure(
    runs: Sequence[Run],
    *,
    metric: str | None = None,
    dpi: int = DPI,
    verdicts: dict[str, TaskVerdict] | None = None,
    rules: Rules = DEFAULT_RULES,
) -> Figure:
    """The figure of `plot_accuracy_vs_length`, not yet saved (to inspect or save elsewhere).

    Every line carries a gid: "model:<encoding>" (mean of its learned models),
    "not_learned:<encoding>" (one per model that is not learned, dotted),
    "baseline:<rule>" (dashed), "train_length".
    """
    verdicts, groups, styles, fig, axes = _figure_setup(runs, verdicts, rules, dpi)
    handles: dict[str, object] = {}
    for ax, (task, task_runs) in zip(axes, groups.items(), strict=False):
        name = task_metric(task_runs, metric)
        tv = verdicts[task]
        for v in tv.runs:
            run = v.run
            values = run.metric(name)
            style = styles[run.encoding]
            if v.any_learned:
                learned = values[v.counted]
                (line,) = ax.plot(run.lengths, learned.mean(0), label=run.encoding, lw=1.6, **style)
                line.set_gid(f"model:{run.encoding}")
                ax.fill_between(
                    run.lengths, learned.min(0), learned.max(0), color=style["color"], alpha=0.15,
                    lw=0,
                )  # fmt: skip
                handles.setdefault(run.encoding, line)
            for row in values[v.selected & ~v.learned]:
                (faint,) = ax.plot(
                    run.lengths, row, color=style["color"], linestyle=NOT_LEARNED_LINESTYLE,
                    lw=1.0, alpha=0.6,
                )  # fmt: skip
                faint.set_gid(f"not_learned:{run.encoding}")
                handles.setdefault(run.encoding, faint)
                handles.setdefault("not learned (dotted)", faint)
        if tv.baselines and name in ("exact_match", "token_accuracy"):
            for rule in BASELINES:
                (base,) = ax.plot(
                    tv.baselines["lengths"], tv.baselines[rule][name], **BASELINE_STYLES[rule]
                )
                base.set_gid(f"baseline:{rule}")
                handles.setdefault(f"baseline: {rule.replace('_', '-')}", base)
        train = ax.axvline(task_runs[0].train_max_length, color="0.3", ls=":", lw=1.2)
        train.set_gid("train_length")
        handles.setdefault("train length", train)
        title = f"{task} ({task_runs[0].protocol})"
        if tv.learned_at_scale is False:
            title += ": not learned at this scale"
        ax.set_title(title)
        ax.set_xlabel("input length T")
        ax.set_ylabel(METRIC_TITLES.get(name, name))
        if name != "loss":
            ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="outside lower center",
        ncols=_legend_columns(len(groups)),
        frameon=False,
    )
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
    """Metric vs. input length, one panel per task, one line per encoding, dashed baselines.

    Each line is the mean over the encoding's learned models (at its chosen learning rate)
    with a min–max band; each model that is not learned is a thin dotted line; the task's
    uniform, majority and input-blind baselines are dashed gray/black lines; a dotted
    vertical line marks the longest training length. Size: `figure_pixels(num_tasks,
    num_encodings, dpi=dpi)`.

    Args:
      runs: finished runs (see `load_runs`).
      path: the PNG to write.
      metric: the plotted metric; None = per protocol (`default_metric`).
      dpi: dots per inch.
      verdicts, rules: as `markdown_report`.

    Returns:
      The path written.

    Raises:
      ValueError: no runs.
    """
    fig = accuracy_figure(runs, metric=metric, dpi=dpi, verdicts=verdicts, rules=rules)
    fig.savefig(path, dpi=dpi)
    return Path(path)


def plot_ood_vs_cost(
    runs: Sequence[Run],
    path: str | os.PathLike,
    *,
    metric: str | None = None,
    dpi: int = DPI,
    verdicts: dict[str, TaskVerdict] | None = None,
    rules: Rules = DEFAULT_RULES,
) -> Path:
    """Out-of-distribution metric vs. relative step time: is an encoding worth its cost?

    One panel per task; a point per encoding at (step time relative to NoPE or the fastest,
    OOD mean over its learned models) with a min–max bar; an encoding that is not learned is a
    hollow gray-edged marker labelled so; the input-blind baseline is a dashed line. Same size
    as `plot_accuracy_vs_length`.

    Args / Returns / Raises: as `plot_accuracy_vs_length`.
    """
    verdicts, groups, styles, fig, axes = _figure_setup(runs, verdicts, rules, dpi)
    handles: dict[str, object] = {}
    for ax, (task, task_runs) in zip(axes, groups.items(), strict=False):
        name = task_metric(task_runs, metric)
        tv = verdicts[task]
        rows = summarize_task(task_runs, verdict=tv, rules=rules)
        for v, row in zip(tv.runs, rows, strict=False):
            ood = v.split_mean(name, "out")
            mean = ood.mean()
            marker = "o" if styles[row.encoding]["linestyle"] == "-" else "s"
            color = styles[row.encoding]["color"]
            points = ax.errorbar(
                [row.relative_step_time],
                [mean],
                yerr=[[mean - ood.min()], [ood.max() - mean]],
                fmt=marker,
                color=color,
                mfc=color if v.any_learned else "none",
                capsize=3,
                label=row.encoding,
            )
            ax.annotate(
                row.encoding if v.any_learned else f"{row.encoding} (not learned)",
                (row.relative_step_time, mean),
                xytext=(4, 4),
                textcoords="offset points",
                fontsize=7,
            )
            handles.setdefault(row.encoding, points)
        if tv.baselines and name in ("exact_match", "token_accuracy"):
            bar = tv.baseline_mean("input_blind", name, "out")
            if not math.isnan(bar):
                base = ax.axhline(bar, **BASELINE_STYLES["input_blind"])
                base.set_gid("baseline:input_blind")
                handles.setdefault("baseline: input-blind", base)
        ax.set_title(f"{task} ({task_runs[0].protocol})")
        ax.margins(x=0.25)  # room for the labels of the extreme points
        ax.set_xlabel("step time relative to NoPE (or the fastest)")
        ax.set_ylabel(f"OOD {METRIC_TITLES.get(name, name)}")
        if name != "loss":
            ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="outside lower center",
        ncols=_legend_columns(len(groups)),
        frameon=False,
    )
    fig.savefig(path, dpi=dpi)
    return Path(path)
