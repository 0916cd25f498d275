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
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pe_jax.reporting._results import Run
from pe_jax.reporting._tables import METRIC_TITLES, group_by_task, summarize_task, task_metric

PANEL_INCHES = (6.0, 4.0)  # width, height of one task's panel
LEGEND_ROW_INCHES = 0.3  # height of one row of the shared legend under the panels
MAX_COLUMNS = 3  # panels per row
LEGEND_COLUMNS_PER_PANEL = 3  # legend entries per row, per panel column (long labels fit)
DPI = 100
RANDOMIZED_PREFIXES = ("randomized_", "shifted_")


def figure_pixels(num_tasks: int, num_encodings: int, *, dpi: int = DPI) -> tuple[int, int]:
    """(height, width) in pixels of the figures below for that many tasks and encodings."""
    width, height = _figure_inches(num_tasks, num_encodings)
    return round(height * dpi), round(width * dpi)


def _legend_columns(num_tasks: int) -> int:
    return LEGEND_COLUMNS_PER_PANEL * min(num_tasks, MAX_COLUMNS)


def _figure_inches(num_tasks: int, num_encodings: int) -> tuple[float, float]:
    cols = min(num_tasks, MAX_COLUMNS)
    rows = math.ceil(num_tasks / MAX_COLUMNS)
    # +1 entry: the train-length line.
    legend_rows = math.ceil((num_encodings + 1) / _legend_columns(num_tasks))
    return cols * PANEL_INCHES[0], rows * PANEL_INCHES[1] + legend_rows * LEGEND_ROW_INCHES


def _styles(labels: Sequence[str]) -> dict[str, dict]:
    """A color per encoding; a randomized/shifted variant whose base label is also plotted
    shares its color with a dashed line, so each pair reads together."""
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
            styles[lb] = dict(color=color_of[base], linestyle="--")
        else:
            styles[lb] = dict(color=cmap(extra % cmap.N), linestyle="--")
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


def plot_accuracy_vs_length(
    runs: Sequence[Run],
    path: str | os.PathLike,
    *,
    metric: str | None = None,
    dpi: int = DPI,
) -> Path:
    """Metric vs. input length, one panel per task, one line per encoding.

    Each line is the mean over seeds with a min–max band; a dotted vertical line marks the
    longest training length. Size: `figure_pixels(num_tasks, num_encodings, dpi=dpi)`.

    Args:
      runs: finished runs (see `load_runs`).
      path: the PNG to write.
      metric: the plotted metric; None = per protocol (`default_metric`).
      dpi: dots per inch.

    Returns:
      The path written.

    Raises:
      ValueError: no runs.
    """
    if not runs:
        raise ValueError("runs must hold at least one finished run, got none.")
    groups = group_by_task(runs)
    labels = _labels_in_order(runs)
    styles = _styles(labels)
    fig, axes = _grid(len(groups), len(labels), dpi)
    handles: dict[str, object] = {}
    for ax, (task, task_runs) in zip(axes, groups.items(), strict=False):
        name = task_metric(task_runs, metric)
        for run in task_runs:
            values = run.metric(name)
            (line,) = ax.plot(
                run.lengths, values.mean(0), label=run.encoding, lw=1.6, **styles[run.encoding]
            )
            ax.fill_between(
                run.lengths, values.min(0), values.max(0), color=line.get_color(), alpha=0.15, lw=0
            )
            handles.setdefault(run.encoding, line)
        train = ax.axvline(task_runs[0].train_max_length, color="0.3", ls=":", lw=1.2)
        handles.setdefault("train length", train)
        ax.set_title(f"{task} ({task_runs[0].protocol})")
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
    fig.savefig(path, dpi=dpi)
    return Path(path)


def plot_ood_vs_cost(
    runs: Sequence[Run],
    path: str | os.PathLike,
    *,
    metric: str | None = None,
    dpi: int = DPI,
) -> Path:
    """Out-of-distribution metric vs. relative step time: is an encoding worth its cost?

    One panel per task; a point per encoding at (step time relative to NoPE or the fastest,
    OOD mean over seeds) with a min–max bar over seeds. Same size as `plot_accuracy_vs_length`.

    Args / Returns / Raises: as `plot_accuracy_vs_length`.
    """
    if not runs:
        raise ValueError("runs must hold at least one finished run, got none.")
    groups = group_by_task(runs)
    labels = _labels_in_order(runs)
    styles = _styles(labels)
    fig, axes = _grid(len(groups), len(labels), dpi)
    handles: dict[str, object] = {}
    for ax, (task, task_runs) in zip(axes, groups.items(), strict=False):
        name = task_metric(task_runs, metric)
        for row in summarize_task(task_runs, metric=name):
            ood = np.asarray(row.ood_per_seed)
            mean = ood.mean()
            marker = "o" if styles[row.encoding]["linestyle"] == "-" else "s"
            points = ax.errorbar(
                [row.relative_step_time],
                [mean],
                yerr=[[mean - ood.min()], [ood.max() - mean]],
                fmt=marker,
                color=styles[row.encoding]["color"],
                capsize=3,
                label=row.encoding,
            )
            ax.annotate(
                row.encoding,
                (row.relative_step_time, mean),
                xytext=(4, 4),
                textcoords="offset points",
                fontsize=7,
            )
            handles.setdefault(row.encoding, points)
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
