"""The explorer's figures 1-8: the blog post's derivation drawn by pe_jax.encodings' functions.

`FIGURES` lists them with their captions; `write_explorer(out)` writes those selected and
returns their filled-in captions; `write_index` writes index.md with one caption per figure
(figure 9, a trained run's attention, is in `_attention`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from pe_jax._names import did_you_mean
from pe_jax.explorer._bias import BIAS_SIZE, plot_biases
from pe_jax.explorer._common import DPI
from pe_jax.explorer._ladder import (
    BITS_SIZE,
    LADDER_SIZE,
    LINEARITY_SIZE,
    plot_binary_vs_sinusoid,
    plot_ladder,
    plot_linearity,
)
from pe_jax.explorer._rope import (
    CIRCLE_SIZE,
    RELATIVE_SIZE,
    plot_relative_invariance,
    plot_rope_circle,
)
from pe_jax.explorer._scaling import (
    DECAY_SIZE,
    SPECTRUM_SIZE,
    plot_decay,
    plot_spectrum,
)

INDEX = "index.md"


@dataclasses.dataclass(frozen=True)
class ExplorerFigure:
    """One figure of the explorer: its `--only` name, file, drawing function and caption.

    `draw(path, dpi=...)` writes the PNG (size `size` inches) and returns facts that fill the
    `caption` template (e.g. {max_error}).
    """

    number: int
    name: str
    filename: str
    size: tuple[float, float]
    draw: Callable[..., dict]
    caption: str


@dataclasses.dataclass(frozen=True)
class WrittenFigure:
    """A PNG written by the explorer and its one-sentence caption (a line of index.md)."""

    number: int
    name: str
    path: Path
    caption: str


FIGURES: tuple[ExplorerFigure, ...] = (
    ExplorerFigure(
        number=1,
        name="ladder",
        filename="01_ladder.png",
        size=LADDER_SIZE,
        draw=plot_ladder,
        caption=(
            "Integer positions grow without bound (norm {integer_norm:.0f} at 4L against token "
            "embeddings of norm ~{token_norm:.1f}), normalized ones change meaning with the "
            "length, and binary and sinusoidal codes stay bounded."
        ),
    ),
    ExplorerFigure(
        number=2,
        name="binary",
        filename="02_binary_vs_sinusoid.png",
        size=BITS_SIZE,
        draw=plot_binary_vs_sinusoid,
        caption=(
            "Each binary bit is a square wave of period 2^(k+1); the sinusoid of the same period "
            "is its smooth version, so a sinusoidal encoding is a continuous binary counter."
        ),
    ),
    ExplorerFigure(
        number=3,
        name="linearity",
        filename="03_linearity.png",
        size=LINEARITY_SIZE,
        draw=plot_linearity,
        caption=(
            "Shifting a position by k rotates every sin/cos pair of the sinusoidal encoding by an "
            "angle that depends on k only, PE(p+k) = R(k) PE(p), up to a max error of "
            "{max_error:.1e} in float32."
        ),
    ),
    ExplorerFigure(
        number=4,
        name="circle",
        filename="04_rope_circle.png",
        size=CIRCLE_SIZE,
        draw=plot_rope_circle,
        caption=(
            "RoPE multiplies each pair of q and k by the unit complex number e^(i m theta) "
            "(real and complex forms agree to {max_real_vs_complex:.1e}), so the angle between "
            "q at m and k at n depends on m - n only."
        ),
    ),
    ExplorerFigure(
        number=5,
        name="relative",
        filename="05_relative_invariance.png",
        size=RELATIVE_SIZE,
        draw=plot_relative_invariance,
        caption=(
            "With RoPE the score matrix of one query/key pair is Toeplitz (deviation "
            "{rope_deviation:.0e}), while sinusoids added to the inputs give scores that depend on "
            "both positions (deviation {absolute_deviation:.2f})."
        ),
    ),
    ExplorerFigure(
        number=6,
        name="decay",
        filename="06_long_term_decay.png",
        size=DECAY_SIZE,
        draw=plot_decay,
        caption=(
            "The mean |q.k| of RoPE decays with distance, later for larger bases, and the "
            "context-extension rescalings stretch the decay towards the longer target length."
        ),
    ),
    ExplorerFigure(
        number=7,
        name="spectrum",
        filename="07_frequency_spectrum.png",
        size=SPECTRUM_SIZE,
        draw=plot_spectrum,
        caption=(
            "{incomplete_pairs} of the {num_pairs} rotary pairs never complete a rotation within "
            "the training length, which is why PI, NTK, YaRN and llama3 rescale mostly those low "
            "frequencies and p-RoPE removes them."
        ),
    ),
    ExplorerFigure(
        number=8,
        name="biases",
        filename="08_logit_biases.png",
        size=BIAS_SIZE,
        draw=plot_biases,
        caption=(
            "Logit-place encodings at initialisation: ALiBi's fixed per-head slopes, T5's "
            "log-spaced buckets, Kerple's logarithmic decay, Sandwich's sinusoid-product decay "
            "and FIRE's learned function of normalised distance."
        ),
    ),
)
NAMES = tuple(f.name for f in FIGURES) + ("attention",)


def select_figures(only: str | Iterable[str] | None) -> list[str]:
    """Names of the figures `only` selects (names or numbers 1-9, comma-separated); None = all.

    Raises:
      ValueError: an unknown name or number, listing the valid ones.
    """
    if only is None:
        return list(NAMES)
    items = only.split(",") if isinstance(only, str) else list(only)
    chosen = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        name = NAMES[int(item) - 1] if item.isdigit() and 1 <= int(item) <= len(NAMES) else item
        if name not in NAMES:
            raise ValueError(
                f"only: unknown figure {item!r}.{did_you_mean(item, NAMES)} Figures: "
                f"{', '.join(NAMES)} (or 1-{len(NAMES)})."
            )
        chosen.append(name)
    return list(dict.fromkeys(chosen))


def explorer_pixels(name: str, *, dpi: int = DPI) -> tuple[int, int]:
    """(height, width) in pixels of explorer figure `name` (figures 1-8) at `dpi`."""
    for figure in FIGURES:
        if figure.name == name:
            return round(figure.size[1] * dpi), round(figure.size[0] * dpi)
    raise ValueError(f"name must be one of {[f.name for f in FIGURES]}, got {name!r}.")


def write_explorer(
    out: str | os.PathLike,
    *,
    only: str | Iterable[str] | None = None,
    dpi: int = DPI,
    options: dict[str, dict] | None = None,
) -> list[WrittenFigure]:
    """Writes figures 1-8 (those `only` selects) as PNGs in `out`.

    Args:
      out: the folder (created).
      only: see `select_figures`; "attention" is skipped here (it needs a run).
      dpi: dots per inch of every figure.
      options: per-figure keyword arguments of its plot function, e.g.
        {"ladder": {"length": 32}} (small sizes for tests).

    Returns:
      The figures written, in order, with their captions.
    """
    names = set(select_figures(only))
    options = options or {}
    written = []
    for figure in FIGURES:
        if figure.name not in names:
            continue
        path = Path(out) / figure.filename
        facts = figure.draw(path, dpi=dpi, **options.get(figure.name, {}))
        written.append(
            WrittenFigure(figure.number, figure.name, path, figure.caption.format(**facts))
        )
    return written


def write_index(out: str | os.PathLike, figures: Sequence[WrittenFigure]) -> Path:
    """Writes `out`/index.md: each figure's image and its caption, in figure order."""
    lines = ["# pe_jax explorer figures", ""]
    lines.append("Generated by `python -m experiments.visualize`; see docs/explorer.md.")
    lines.append("")
    for figure in sorted(figures, key=lambda f: (f.number, f.name, str(f.path))):
        rel = os.path.relpath(figure.path, out)
        lines += [f"## {figure.number}. {figure.name}", "", f"![{figure.name}]({rel})", ""]
        lines += [figure.caption, ""]
    path = Path(out) / INDEX
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path
