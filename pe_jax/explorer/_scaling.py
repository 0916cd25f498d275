"""Explorer figures 6-7: what the RoPE base and the context-extension rescalings change.

After the blog post's derivation of RoPE, the questions its readers ask next: how fast the
score decays with distance for each base (Su et al. 2021, sec. 3.4.3), and which rotary pairs
never complete a rotation inside the training length, the pairs that position interpolation,
NTK / dynamic scaling, YaRN and Llama 3 rescale and that p-RoPE removes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from pe_jax._validate import check_positive, check_positive_int
from pe_jax.encodings import apply_rope, rope_inv_freq
from pe_jax.explorer._common import DPI, new_figure, note, save_figure

DECAY_SIZE = (13.0, 4.8)
SPECTRUM_SIZE = (13.0, 4.8)

# Context-extension settings shown in figures 6 and 7, in HF rope_scaling vocabulary.
SCALINGS = ("linear", "dynamic", "yarn", "llama3")


def scaling_configs(*, factor: float, original_length: int) -> dict[str, dict]:
    """HF rope_scaling dicts of `SCALINGS` at `factor` for pre-training length `original_length`."""
    common = {"factor": float(factor), "original_max_position_embeddings": int(original_length)}
    return {
        "linear": {"rope_type": "linear", "factor": float(factor)},
        "dynamic": {"rope_type": "dynamic", **common},
        "yarn": {"rope_type": "yarn", **common},
        "llama3": {
            "rope_type": "llama3",
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            **common,
        },
    }


def rope_decay(
    inv_freq,
    distances: Sequence[int],
    *,
    attention_scale: float = 1.0,
    samples: int = 256,
    seed: int = 0,
) -> np.ndarray:
    """Mean |<R(d) q, k>| over random q, k with i.i.d. U(0, 1) entries, per distance d.

    Positive entries give q and k a shared direction, so the score is large at d = 0 and the
    rotation spreads it out: the long-term decay of Su et al. 2021 (sec. 3.4.3). q is rotated
    by `apply_rope` at position d and k at position 0, both scaled by `attention_scale`.

    Args:
      inv_freq: float [K/2] rotary frequencies (the head dim is K = 2 len(inv_freq)).
      distances: non-negative ints [n].

    Returns:
      float64 numpy [n].
    """
    inv_freq = jnp.asarray(inv_freq, jnp.float32)
    # NumPy draws: the inputs are data, and a JAX sampler would add to the compiled program.
    q, k = np.random.default_rng(seed).random((2, samples, 2 * inv_freq.shape[0]), np.float32)
    scores = _decay(q, k, inv_freq, jnp.asarray(distances, jnp.int32), jnp.float32(attention_scale))
    return np.asarray(scores, np.float64)


@jax.jit
def _decay(q, k, inv_freq, distances, attention_scale):
    samples, dim = q.shape
    q = jnp.broadcast_to(q[:, None, None, :], (samples, distances.shape[0], 1, dim))
    q = apply_rope(q, distances, inv_freq=inv_freq, attention_scale=attention_scale)[:, :, 0]
    return jnp.abs(jnp.einsum("snk,sk->sn", q, attention_scale * k)).mean(0)


def plot_decay(
    path: str | os.PathLike,
    *,
    head_dim: int = 64,
    bases: Sequence[float] = (1e2, 1e3, 1e4, 1e5, 1e6),
    factor: float = 4.0,
    original_length: int = 1024,
    dpi: int = DPI,
) -> dict:
    """Figure 6: long-term decay of mean |q.k| with distance, per RoPE base and per rescaling.

    Left: `rope_decay` for each base. Right: base 1e4 unscaled and with each of `SCALINGS` at
    `factor` for a model pre-trained at `original_length` (dynamic evaluated at the extended
    length factor * original_length; yarn with its attention factor). Size: DECAY_SIZE.

    Returns:
      {"bases": {base: [n]}, "scalings": {name: [n]}, "distances": [n]}.

    Raises:
      ValueError: a non-positive head_dim, factor or original_length, or what `rope_inv_freq`
        raises (e.g. an odd head_dim).
    """
    head_dim = check_positive_int("head_dim", head_dim)
    factor = check_positive("factor", factor)
    original_length = check_positive_int("original_length", original_length)
    longest = 16 * original_length
    distances = np.unique(np.round(np.geomspace(1, longest, 160)).astype(int))
    fig = new_figure(DECAY_SIZE, dpi=dpi)
    left, right = fig.subplots(1, 2, sharey=True)
    by_base = {}
    for i, base in enumerate(bases):
        inv_freq, _ = rope_inv_freq(head_dim, base=base)
        by_base[base] = rope_decay(inv_freq, distances)
        left.plot(distances, by_base[base], color=f"C{i}", lw=1.1, label=f"base {base:.0e}")
    left.set_title(f"RoPE base (head dim {head_dim})", fontsize=10)
    curves = {"default": rope_inv_freq(head_dim)}
    for name, scaling in scaling_configs(factor=factor, original_length=original_length).items():
        curves[name] = rope_inv_freq(
            head_dim, scaling=scaling, seq_len=int(factor * original_length)
        )
    by_scaling = {}
    for i, (name, (inv_freq, scale)) in enumerate(curves.items()):
        by_scaling[name] = rope_decay(inv_freq, distances, attention_scale=scale)
        right.plot(distances, by_scaling[name], color=f"C{i}", lw=1.1, label=name)
    for x, text in ((original_length, "L0"), (factor * original_length, f"{factor:g} L0")):
        right.axvline(x, color="0.3", ls=":", lw=1.2)
        right.text(x, 0.98, f" {text}", transform=right.get_xaxis_transform(), fontsize=8, va="top")
    right.set_title(f"rope_scaling at factor {factor:g}, L0 = {original_length}", fontsize=10)
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlabel("relative distance m - n")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    left.set_ylabel("mean |q.k|, q, k ~ U(0, 1)^K")
    save_figure(fig, path, title="6. Long-term decay of the RoPE score with distance", dpi=dpi)
    return {
        "bases": {b: v.tolist() for b, v in by_base.items()},
        "scalings": {n: v.tolist() for n, v in by_scaling.items()},
        "distances": distances.tolist(),
    }


def wavelengths(inv_freq) -> np.ndarray:
    """2 pi / theta_i per rotary pair (inf where theta_i = 0, e.g. pairs p-RoPE removed)."""
    theta = np.asarray(inv_freq, np.float64)
    with np.errstate(divide="ignore"):
        return np.where(theta > 0, 2 * np.pi / np.where(theta > 0, theta, 1.0), np.inf)


def plot_spectrum(
    path: str | os.PathLike,
    *,
    head_dim: int = 128,
    base: float = 10000.0,
    train_length: int = 2048,
    factor: float = 4.0,
    proportion: float = 0.75,
    dpi: int = DPI,
) -> dict:
    """Figure 7: the wavelength of every rotary pair against the training length.

    Left: 2 pi / theta_i for the pairs of `rope_inv_freq(head_dim, base=base)`; pairs whose
    wavelength exceeds `train_length` never complete a rotation during training (their angles
    at longer lengths were never seen) and are marked. Right: the same after each of
    `SCALINGS` at `factor` (pre-training length `train_length`) and after p-RoPE with
    `proportion`, which removes the lowest frequencies (drawn at the top). Size: SPECTRUM_SIZE.

    Returns:
      {"incomplete_pairs": int, "num_pairs": int, "first_incomplete": int or None,
      "wavelengths": {name: [K/2]}}.

    Raises:
      ValueError: a non-positive train_length, or what `rope_inv_freq` raises (an odd
        head_dim, a proportion outside (0, 1], ...).
    """
    train_length = check_positive_int("train_length", train_length)
    inv_freq, _ = rope_inv_freq(head_dim, base=base)
    lam = wavelengths(inv_freq)
    pairs = np.arange(lam.size)
    slow = lam > train_length
    fig = new_figure(SPECTRUM_SIZE, dpi=dpi)
    left, right = fig.subplots(1, 2, sharey=True)
    left.semilogy(pairs[~slow], lam[~slow], "o", ms=3, color="tab:blue", label="completes a turn")
    left.semilogy(
        pairs[slow],
        lam[slow],
        "o",
        ms=4,
        mfc="none",
        color="tab:red",
        label="never completes a turn in L",
    )
    left.axhline(
        train_length, color="0.2", ls=":", lw=1.2, label=f"training length L = {train_length}"
    )
    left.set_title(f"base {base:g}, head dim {head_dim}", fontsize=10)
    first = int(pairs[slow][0]) if slow.any() else None
    note(
        left, f"{int(slow.sum())} of {lam.size} pairs never complete a rotation", loc="lower right"
    )
    spectra: dict[str, np.ndarray] = {"default": lam}
    for name, scaling in scaling_configs(factor=factor, original_length=train_length).items():
        spectra[name] = wavelengths(
            rope_inv_freq(head_dim, base=base, scaling=scaling, seq_len=int(factor * train_length))[
                0
            ]
        )
    spectra[f"p-RoPE {proportion:g}"] = wavelengths(
        rope_inv_freq(head_dim, base=base, proportion=proportion)[0]
    )
    top = 4 * max(float(np.max(v[np.isfinite(v)])) for v in spectra.values())
    for i, (name, lam_s) in enumerate(spectra.items()):
        finite = np.isfinite(lam_s)
        style = "--" if name.startswith("p-RoPE") else "-"
        right.semilogy(pairs[finite], lam_s[finite], style, color=f"C{i}", lw=1.5, label=name)
        if (~finite).any():
            right.semilogy(
                pairs[~finite],
                np.full((~finite).sum(), top),
                "^",
                color=f"C{i}",
                ms=4,
                label=f"{name}: removed (theta = 0)",
            )
    right.axhline(train_length, color="0.2", ls=":", lw=1.2)
    right.axhline(factor * train_length, color="0.2", ls="--", lw=1.0)
    right.set_title(f"rescaled for {factor:g} x L (dotted L, dashed {factor:g} L)", fontsize=10)
    for ax in (left, right):
        ax.set_xlabel("rotary pair i (high to low frequency)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="upper left")
    left.set_ylabel("wavelength 2 pi / theta_i (positions)")
    save_figure(
        fig,
        path,
        title="7. Frequency spectrum: which pairs never turn inside the training length",
        dpi=dpi,
    )
    return {
        "incomplete_pairs": int(slow.sum()),
        "num_pairs": int(lam.size),
        "first_incomplete": first,
        "wavelengths": {n: v.tolist() for n, v in spectra.items()},
    }
