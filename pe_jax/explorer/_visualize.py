"""All the explorer's figures in one call: figures 1-8, figure 9 when a run is given, index.md.

`python -m experiments.visualize` is this function behind flags; a notebook calls it directly.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

from pe_jax.explorer._attention import attention_figures
from pe_jax.explorer._common import DPI
from pe_jax.explorer._figures import WrittenFigure, select_figures, write_explorer, write_index


def write_figures(
    out: str | os.PathLike,
    *,
    only: str | Iterable[str] | None = None,
    run: str | os.PathLike | None = None,
    tasks: str | Iterable[str] | None = None,
    layer: int = -1,
    head: int | None = None,
    seed_index: int = 0,
    factor: int = 4,
    dpi: int = DPI,
    log: Callable[[str], None] = print,
) -> list[WrittenFigure]:
    """Writes the selected figures as PNGs in `out` and their captions in `out`/index.md.

    Args:
      out: the folder (created).
      only: figure names or numbers 1-9 (see `select_figures`); None = all, where figure 9 is
        skipped (with a message to `log`) unless `run` is given.
      run: a run folder, or a sweep folder of runs, for figure 9.
      tasks: sweep task labels for figure 9 (comma-separated or a list); None = the first.
      layer, head, seed_index, factor: see `attention_figures`.
      dpi: dots per inch of every figure.
      log: receives the skip message and the one-line summary.

    Returns:
      The figures written, in order, with their captions.

    Raises:
      ValueError: `only` selects figure 9 but `run` is None, or see `select_figures` and
        `attention_figures`.
    """
    start = time.perf_counter()
    names = select_figures(only)
    written = write_explorer(out, only=names, dpi=dpi)
    if isinstance(tasks, str):
        tasks = tasks.split(",")
    if "attention" in names:
        if run:
            written += attention_figures(
                run,
                out,
                tasks=list(tasks) if tasks else None,
                layer=layer,
                head=head,
                seed_index=seed_index,
                factor=factor,
                dpi=dpi,
            )
        elif only is not None:
            raise ValueError(
                "run must be a run or sweep folder when only selects figure 9 (attention), "
                "got None."
            )
        else:
            log("figure 9 skipped: pass --run=<run or sweep folder> to draw attention maps.")
    index = write_index(out, written)
    log(f"wrote {len(written)} figures and {index} in {time.perf_counter() - start:.1f} s")
    return written
