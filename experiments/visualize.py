"""The visual explorer: the blog post's derivation as PNG figures, plus a trained run's attention.

  python -m experiments.visualize --out=figures/
  python -m experiments.visualize --out=figures/ --only=ladder,relative
  python -m experiments.visualize --out=figures/ --run=runs/copy_rope
  python -m experiments.visualize --out=figures/ --only=attention --run=runs/quick --task=copy

Figures 1-8 come from pe_jax.encodings alone; figure 9 (`--run`, a run folder written by
train_and_evaluate or a sweep folder of them) shows one head's attention at the training length
and at `--factor` times it, one row per encoding. Captions go to <out>/index.md; docs/explorer.md
walks through the figures.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from absl import app, flags, logging

from pe_jax.evaluation._attention_maps import offset_concentration, sample_attention
from pe_jax.reporting import load_runs
from pe_jax.reporting._explorer import (
    ATTENTION_CAPTION,
    WrittenFigure,
    plot_attention_maps,
    select_figures,
    write_explorer,
    write_index,
)
from pe_jax.training._load import load_run

_OUT = flags.DEFINE_string("out", "figures", "Folder for the PNGs and index.md.")
_ONLY = flags.DEFINE_string(
    "only", None, "Comma-separated figure names or numbers 1-9 (default: all)."
)
_RUN = flags.DEFINE_string("run", None, "A run folder, or a sweep folder of runs (figure 9).")
_TASK = flags.DEFINE_string("task", None, "Sweep task label(s) for figure 9; default the first.")
_LAYER = flags.DEFINE_integer("layer", -1, "Block whose attention figure 9 shows (-1: last).")
_HEAD = flags.DEFINE_integer("head", -1, "Head figure 9 shows (-1: most position-locked).")
_SEED_INDEX = flags.DEFINE_integer("seed_index", 0, "Which of the run's seeds (0-based).")
_FACTOR = flags.DEFINE_integer("factor", 4, "Figure 9's long length, in training lengths.")
_DPI = flags.DEFINE_integer("dpi", 100, "Dots per inch.")


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
    dpi: int = 100,
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


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # Orbax logs every restore at INFO
    start = time.perf_counter()
    names = select_figures(_ONLY.value)
    written = write_explorer(_OUT.value, only=names, dpi=_DPI.value)
    if "attention" in names:
        if _RUN.value:
            written += attention_figures(
                _RUN.value,
                _OUT.value,
                tasks=_TASK.value.split(",") if _TASK.value else None,
                layer=_LAYER.value,
                head=None if _HEAD.value < 0 else _HEAD.value,
                seed_index=_SEED_INDEX.value,
                factor=_FACTOR.value,
                dpi=_DPI.value,
            )
        elif _ONLY.value:
            raise app.UsageError("figure 9 (attention) needs --run=<run or sweep folder>.")
        else:
            print("figure 9 skipped: pass --run=<run or sweep folder> to draw attention maps.")
    index = write_index(_OUT.value, written)
    print(f"wrote {len(written)} figures and {index} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    app.run(main)
