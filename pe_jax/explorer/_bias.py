"""Explorer figure 8: the logits place, b(i, j) added to the attention logits, at initialisation.

Each bias comes from its pure function in pe_jax.encodings with the parameters a model starts
from (ALiBi's fixed slopes, a T5 table drawn like a fresh embedding, Kerple's and FIRE's initial
parameters, Sandwich's fixed construction), in the bidirectional (encoder) form so the whole
matrix is visible; a causal model masks j > i.
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from pe_jax._validate import check_positive_int
from pe_jax.encodings import (
    alibi_bias,
    alibi_slopes,
    fire_bias,
    init_fire_params,
    init_kerple_params,
    kerple_log_bias,
    sandwich_bias,
    t5_bias,
)
from pe_jax.explorer._common import DPI, heatmap, new_figure, save_figure

BIAS_SIZE = (16.0, 10.5)
ALIBI_HEADS_SHOWN = 4


def initial_biases(*, length: int = 64, num_heads: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """Every logit bias of figure 8 at initialisation, float32 numpy [H, L, L] each.

    Keys: "alibi", "t5" (table [32, H] ~ N(0, 1), buckets of Raffel et al. 2020 with
    max_distance 128), "kerple_log", "sandwich" (d-bar 128), "fire" (init_fire_params).

    Raises:
      ValueError: length < 2 or num_heads < 1.
    """
    length = check_positive_int("length", length)
    num_heads = check_positive_int("num_heads", num_heads)
    if length < 2:
        raise ValueError(f"length must be >= 2, got {length}.")
    biases = _biases(jax.random.key(seed), length, num_heads)
    return {name: np.asarray(b[0]) for name, b in biases.items()}


@functools.partial(jax.jit, static_argnums=(1, 2))
def _biases(key, length: int, num_heads: int) -> dict[str, jax.Array]:
    # One compiled program: eager JAX would compile each primitive separately.
    pos = jnp.arange(length, dtype=jnp.int32)
    k_t5, k_kerple, k_fire = jax.random.split(key, 3)
    kerple = init_kerple_params(k_kerple, num_heads, kind="log")
    return {
        "alibi": alibi_bias(pos, pos, slopes=alibi_slopes(num_heads), bidirectional=True),
        "t5": t5_bias(pos, pos, table=jax.random.normal(k_t5, (32, num_heads)), bidirectional=True),
        "kerple_log": kerple_log_bias(pos, pos, r1=kerple["r1"], r2=kerple["r2"]),
        "sandwich": sandwich_bias(pos, pos, num_heads=num_heads),
        "fire": fire_bias(pos, pos, params=init_fire_params(k_fire, num_heads)),
    }


def plot_biases(
    path: str | os.PathLike, *, length: int = 64, num_heads: int = 8, dpi: int = DPI
) -> dict:
    """Figure 8: ALiBi per head, T5 buckets, Kerple, Sandwich and FIRE as [i, j] heatmaps.

    Row 1: ALiBi for 4 heads spread over the H (their slopes in the titles). Row 2: head 0 of
    T5, Kerple-log, Sandwich and FIRE. Row 3: the row of the middle query, b(L/2, j) against
    j - i, every bias scaled to max |b| = 1, so their shapes compare. Size: BIAS_SIZE.

    Returns:
      {"slopes": [H], "ranges": {name: (min, max)}}.
    """
    biases = initial_biases(length=length, num_heads=num_heads)
    slopes = np.asarray(alibi_slopes(num_heads))
    fig = new_figure(BIAS_SIZE, dpi=dpi)
    grid = fig.add_gridspec(3, 4, height_ratios=(1.0, 1.0, 0.8))
    heads = np.unique(np.linspace(0, num_heads - 1, ALIBI_HEADS_SHOWN).round().astype(int))
    labels = dict(xlabel="key position j", ylabel="query position i", cmap="magma")
    for col, h in enumerate(heads):
        heatmap(
            fig.add_subplot(grid[0, col]),
            biases["alibi"][h],
            title=f"ALiBi head {h} (slope {slopes[h]:.3g})",
            **labels,
        )
    titles = {
        "t5": "T5 buckets, random N(0, 1) table",
        "kerple_log": "Kerple log, -r1 log(1 + r2 |i-j|)",
        "sandwich": "Sandwich, sum cos((i-j) w_k) - d/2",
        "fire": "FIRE at init, MLP(psi(i-j) / psi(max(i, L)))",
    }
    for col, (name, title) in enumerate(titles.items()):
        heatmap(fig.add_subplot(grid[1, col]), biases[name][0], title=f"{title} [h0]", **labels)
    ax = fig.add_subplot(grid[2, :3])
    mid = length // 2
    offsets = np.arange(length) - mid
    for name in ("alibi", "t5", "kerple_log", "sandwich", "fire"):
        row = biases[name][0, mid]
        scale = max(float(np.abs(row).max()), 1e-12)
        ax.plot(offsets, row / scale, lw=1.6, label=f"{name} (max |b| = {scale:.3g})")
    ax.set_xlabel("relative position j - i (query i = L/2, head 0)")
    ax.set_ylabel("b(i, j) / max |b|")
    ax.set_title("one query's row: how each bias falls off with distance", fontsize=10)
    key = fig.add_subplot(grid[2, 3])  # the legend's own cell keeps the heatmaps aligned
    key.axis("off")
    key.legend(*ax.get_legend_handles_labels(), fontsize=9, loc="center left", frameon=False)
    ax.grid(alpha=0.3)
    save_figure(
        fig,
        path,
        title=f"8. Logit biases b(i, j) at initialisation (L={length}, H={num_heads})",
        dpi=dpi,
    )
    return {
        "slopes": slopes.tolist(),
        "ranges": {n: (float(v.min()), float(v.max())) for n, v in biases.items()},
    }
