"""Shared pieces of the explorer figures: an Agg figure of a fixed pixel size, and saving it.

Figures are `matplotlib.figure.Figure` objects with their own Agg canvas (no pyplot, no global
backend), laid out with "constrained" layout and saved without `bbox_inches="tight"`, so every
PNG has exactly `round(inches * dpi)` pixels: the size tests can check.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100


def new_figure(size: tuple[float, float], *, dpi: int = DPI) -> Figure:
    """An empty figure of `size` = (width, height) inches on an Agg canvas."""
    fig = Figure(figsize=size, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike, *, title: str, dpi: int = DPI) -> Path:
    """Adds the figure title, writes the PNG (creating its folder) and returns its path."""
    fig.suptitle(title, fontsize=12)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def pixels(size: tuple[float, float], *, dpi: int = DPI) -> tuple[int, int]:
    """(height, width) in pixels of a figure of `size` = (width, height) inches."""
    return round(size[1] * dpi), round(size[0] * dpi)


def heatmap(ax, values, *, title: str, xlabel: str, ylabel: str, cmap: str = "viridis", **kw):
    """`imshow` of a 2-D array with a colorbar, origin top-left, labelled axes."""
    image = ax.imshow(np.asarray(values), aspect="auto", interpolation="nearest", cmap=cmap, **kw)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
    return image


def note(ax, text: str, *, loc: str = "lower right") -> None:
    """A small boxed text in a corner of `ax` (numbers the figure claims, e.g. an error)."""
    x = 0.98 if "right" in loc else 0.02
    y = 0.04 if "lower" in loc else 0.96
    ax.text(
        x,
        y,
        text,
        transform=ax.transAxes,
        ha="right" if "right" in loc else "left",
        va="bottom" if "lower" in loc else "top",
        fontsize=8,
        bbox=dict(boxstyle="round", facecolor="white", alpha=0.85, edgecolor="0.6"),
    )
