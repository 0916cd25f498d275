"""Explorer figure 9: attention maps of trained runs at the training length and beyond it.

`plot_attention_maps` draws attention probabilities a caller computed; `attention_figures` loads
a run (or a sweep of runs) and computes them with `pe_jax.evaluation.sample_attention`, one
row per encoding. This is the one part of the explorer that reads trained models.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pe_jax.evaluation import offset_concentration, sample_attention
from pe_jax.explorer._common import DPI, heatmap, new_figure, save_figure
from pe_jax.explorer._figures import WrittenFigure
from pe_jax.reporting import load_runs
from pe_jax.training import load_run

ATTENTION_PANEL = (4.6, 4.0)  # inches of one attention map
ATTENTION_CAPTION = (
    "Attention of one trained head (the most position-locked one unless chosen) at the "
    "training length and at {factor}x it, per encoding: whether the learned positional "
    "pattern carries over to unseen lengths."
)


def attention_figure_size(num_rows: int, num_columns: int = 2) -> tuple[float, float]:
    """(width, height) inches of `plot_attention_maps` for that many rows and columns."""
    return ATTENTION_PANEL[0] * num_columns, ATTENTION_PANEL[1] * num_rows + 0.5


def plot_attention_maps(
    rows: Sequence[tuple[str, Sequence[tuple[str, np.ndarray | str]]]],
    path: str | os.PathLike,
    *,
    title: str,
    dpi: int = DPI,
) -> Path:
    """Figure 9: attention maps side by side, one row per encoding, one column per length.

    Args:
      rows: [(row label, [(panel title, probs [L, S] or a message why there is none)])];
        every row has the same number of panels.
      path: the PNG to write; size `attention_figure_size(len(rows), num_panels)` at `dpi`.
      title: the figure title.

    Returns:
      The path written.

    Raises:
      ValueError: no rows, or rows of different lengths.
    """
    if not rows:
        raise ValueError("rows must hold at least one row of attention maps, got none.")
    columns = {len(panels) for _, panels in rows}
    if len(columns) != 1 or 0 in columns:
        raise ValueError(f"rows must all have the same number (>= 1) of panels, got {columns}.")
    ncols = columns.pop()
    fig = new_figure(attention_figure_size(len(rows), ncols), dpi=dpi)
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    for (label, panels), row_axes in zip(rows, axes, strict=True):
        for (panel_title, probs), ax in zip(panels, row_axes, strict=True):
            if isinstance(probs, str):
                ax.text(0.5, 0.5, probs, ha="center", va="center", wrap=True, fontsize=9)
                ax.set_title(f"{label}: {panel_title}", fontsize=10)
                ax.set_xticks([])
                ax.set_yticks([])
                continue
            heatmap(
                ax,
                probs,
                title=f"{label}: {panel_title}",
                xlabel="key position",
                ylabel="query position",
                cmap="viridis",
                vmin=0.0,
            )
    return save_figure(fig, path, title=title, dpi=dpi)


def attention_panels(
    workdir: str | os.PathLike,
    *,
    layer: int = -1,
    head: int | None = None,
    seed_index: int = 0,
    factor: int = 4,
) -> list[tuple[str, np.ndarray | str]]:
    """One run's attention maps of one head at its training length T and at factor x T.

    Args:
      workdir: a run folder.
      layer: the block (negative counts from the last).
      head: the head; None = the most position-locked one at T (`offset_concentration`).
      seed_index: which seed's model.
      factor: the long length in training lengths.

    Returns:
      [(panel title, probs [W, W] or why there is none)] for T and factor x T.

    Raises:
      ValueError: a head out of range, or see `load_run` / `sample_attention`.
    """
    loaded = load_run(workdir)
    model, s = loaded.model(seed_index), loaded.settings
    if head is not None and not 0 <= head < s.model.num_heads:
        raise ValueError(f"head must be in [0, {s.model.num_heads}) or None, got {head}.")
    maps = []
    for length in (s.max_length, factor * s.max_length):
        try:
            maps.append(
                sample_attention(model, task=s.task, layout=s.protocol, length=length, layer=layer)
            )
        except ValueError as error:  # e.g. beyond a learned table's max_length
            maps.append(f"not computable:\n{error}")
    if head is None:
        head = int(np.argmax(offset_concentration(maps[0])))
    return [
        (f"T = {s.max_length} (train), head {head}", maps[0][head]),
        (
            f"T = {factor * s.max_length} ({factor}x), head {head}",
            maps[1] if isinstance(maps[1], str) else maps[1][head],
        ),
    ]


def attention_figures(
    run_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    tasks: list[str] | None = None,
    layer: int = -1,
    head: int | None = None,
    seed_index: int = 0,
    factor: int = 4,
    dpi: int = DPI,
) -> list[WrittenFigure]:
    """Figure 9: one PNG per task, a row per encoding (`attention_panels`), T and factor x T.

    Args:
      run_dir: a finished run's folder or a sweep folder (finished runs only are shown).
      out: the output folder.
      tasks: task labels to draw; None = the first task of the sweep.
      layer, head, seed_index, factor: see `attention_panels`.
      dpi: dots per inch.

    Returns:
      The figures written.

    Raises:
      ValueError: no finished run under `run_dir`, or an unknown task label.
    """
    runs = load_runs(run_dir)
    if not runs:
        raise ValueError(f"run {run_dir} holds no finished run (no results.json).")
    by_task: dict[str, list] = {}
    for run in runs:
        by_task.setdefault(run.task, []).append(run)
    chosen = tasks or [next(iter(by_task))]
    unknown = [t for t in chosen if t not in by_task]
    if unknown:
        raise ValueError(f"task must be among {list(by_task)}, got {unknown}.")
    written = []
    for task in chosen:
        rows = [
            (
                run.encoding,
                attention_panels(
                    run.path.parent, layer=layer, head=head, seed_index=seed_index, factor=factor
                ),
            )
            for run in by_task[task]
        ]
        name = "09_attention.png" if len(runs) == 1 else f"09_attention_{task}.png"
        which = "its most position-locked head" if head is None else f"head {head}"
        path = plot_attention_maps(
            rows,
            Path(out) / name,
            title=f"9. Attention of layer {layer}, {which}: {task} ({by_task[task][0].protocol})",
            dpi=dpi,
        )
        caption = ATTENTION_CAPTION.format(factor=factor)
        written.append(WrittenFigure(9, f"attention ({task})", path, caption))
    return written
