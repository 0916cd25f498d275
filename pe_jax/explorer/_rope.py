"""Explorer figures 4-5: rotations on the query/key place, drawn from pe_jax.encodings.

The second half of the blog post's argument: rotate q and k instead of adding a vector to
the input (a unit complex number per pair), and q.k depends on the offset only: the score
matrix is Toeplitz, which it is not with absolute sinusoids added to the inputs.
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import matplotlib  # colormap registry only; no backend is selected
import numpy as np

from pe_jax._validate import check_positive_int
from pe_jax.encodings import apply_rope, apply_rope_complex, rope_inv_freq, sinusoidal
from pe_jax.explorer._common import DPI, heatmap, new_figure, note, save_figure

CIRCLE_SIZE = (13.0, 4.8)
RELATIVE_SIZE = (14.0, 4.6)


def rotate_pair(vector, positions, *, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """One 2-D pair rotated to each position by `apply_rope` and by `apply_rope_complex`.

    Returns:
      (real form, complex form), float32 numpy [len(positions), 2] each: x e^{i m theta}.
    """
    real, cplx = _rotate_pair(
        jnp.asarray(vector, jnp.float32),
        jnp.asarray(positions, jnp.int32),
        jnp.asarray([theta], jnp.float32),
    )
    return np.asarray(real), np.asarray(cplx)


@jax.jit
def _rotate_pair(vector, positions, inv_freq):
    # Jitted: eager JAX would compile each primitive on its own, slow on a loaded CPU.
    x = jnp.broadcast_to(vector, (positions.shape[0], 1, 2))
    real = apply_rope(x, positions, inv_freq=inv_freq)[:, 0]
    return real, apply_rope_complex(x, positions, inv_freq=inv_freq)[:, 0]


def _circle(ax, title: str) -> None:
    t = np.linspace(0, 2 * np.pi, 200)
    ax.plot(np.cos(t), np.sin(t), color="0.8", lw=1)
    ax.axhline(0, color="0.9", lw=0.8)
    ax.axvline(0, color="0.9", lw=0.8)
    ax.set_aspect("equal")
    ax.set_xlim(-1.3, 1.3)
    ax.set_ylim(-1.3, 1.3)
    ax.set_xlabel("x1 (real part)")
    ax.set_ylabel("x2 (imaginary part)")
    ax.set_title(title, fontsize=10)


def _arrow(ax, point, color, label=None) -> None:
    ax.annotate("", xy=point, xytext=(0, 0), arrowprops=dict(arrowstyle="->", color=color, lw=1.5))
    if label:
        ax.text(*(1.13 * np.asarray(point)), label, fontsize=8, ha="center", va="center")


def plot_rope_circle(path: str | os.PathLike, *, positions: int = 8, dpi: int = DPI) -> dict:
    """Figure 4: RoPE on the unit circle, the complex-number view.

    Left and middle: the pair x = (1, 0) rotated to m = 0..positions-1 at a fast (theta = 1)
    and a slow (theta = 0.25) frequency, by `apply_rope` (arrows) and `apply_rope_complex`
    (crosses), which agree. Right: q at m and k at n = m - 2 for three m: the angle between
    them is the same, (m - n) theta + angle(q, k), so q.k depends on m - n only.
    Size: CIRCLE_SIZE.

    Returns:
      {"max_real_vs_complex": float}: largest gap between the two forms.

    Raises:
      ValueError: positions outside [3, 16].
    """
    positions = check_positive_int("positions", positions)
    if not 3 <= positions <= 16:
        raise ValueError(f"positions must be in [3, 16], got {positions}.")
    fig = new_figure(CIRCLE_SIZE, dpi=dpi)
    axes = fig.subplots(1, 3)
    cmap = matplotlib.colormaps["viridis"]
    gap = 0.0
    for ax, theta in zip(axes[:2], (1.0, 0.25), strict=True):
        real, cplx = rotate_pair([1.0, 0.0], np.arange(positions), theta=theta)
        gap = max(gap, float(np.abs(real - cplx).max()))
        _circle(ax, f"x e^(i m theta), theta = {theta}: m = 0..{positions - 1}")
        for m in range(positions):
            _arrow(ax, real[m], cmap(m / (positions - 1)), f"m={m}")
        ax.plot(cplx[:, 0], cplx[:, 1], "x", color="k", ms=6, label="complex form")
        ax.legend(fontsize=8, loc="lower left")
    theta, ax = 0.6, axes[2]
    _circle(ax, f"q at m, k at n = m - 2 (theta = {theta})")
    q = [1.0, 0.0]
    k = [np.cos(0.5), np.sin(0.5)]
    ms = np.array([2, 5, 8] + [0] * (positions - 3))  # padded: the shape of the panels above
    rq, _ = rotate_pair(q, ms, theta=theta)
    rk, _ = rotate_pair(k, np.maximum(ms - 2, 0), theta=theta)
    angles = []
    for i, color in enumerate(("tab:blue", "tab:orange", "tab:green")):
        _arrow(ax, 0.95 * rq[i], color, f"q@{ms[i]}")
        _arrow(ax, 0.75 * rk[i], color, f"k@{ms[i] - 2}")
        angles.append(float(np.dot(rq[i], rk[i])))
    note(
        ax,
        "q.k = " + ", ".join(f"{a:.4f}" for a in angles) + "\n(same for every m)",
        loc="upper left",
    )
    save_figure(
        fig, path, title="4. RoPE: rotate each pair by m * theta, a unit complex number", dpi=dpi
    )
    return {"max_real_vs_complex": gap, "scores": angles}


def relative_invariance_scores(
    *, length: int = 32, dim: int = 32, seed: int = 0, base: float = 10000.0
) -> tuple[np.ndarray, np.ndarray]:
    """q.k over query position m and key position n for one fixed (query, key) token pair.

    Token vectors x_q, x_k ~ N(0, I_D) and projections W_q, W_k ~ N(0, 1/D) are drawn once
    (NumPy, `seed`).
    RoPE: S[m, n] = <R(m) W_q x_q, R(n) W_k x_k> (`apply_rope`, base `base`), a function of
    m - n only (Su et al. 2021). Absolute: S[m, n] = <W_q (x_q + PE(m)), W_k (x_k + PE(n))>
    with PE = `sinusoidal` (Vaswani et al. 2017), which also depends on m and n separately.

    Returns:
      (rope, absolute): float64 numpy [length, length], rows m, columns n.

    Raises:
      ValueError: length < 2, dim odd or < 2.
    """
    length = check_positive_int("length", length)
    dim = check_positive_int("dim", dim)
    if length < 2 or dim % 2:
        raise ValueError(f"length must be >= 2 and dim even, got length={length}, dim={dim}.")
    inv_freq, _ = rope_inv_freq(dim, base=base)
    # NumPy draws: the inputs are data, and a JAX sampler would add to the compiled program.
    rng = np.random.default_rng(seed)
    x_q, x_k = rng.standard_normal((2, dim), np.float32)
    w_q, w_k = rng.standard_normal((2, dim, dim), np.float32) / np.sqrt(dim, dtype=np.float32)
    rope, absolute = _scores(x_q, x_k, w_q, w_k, inv_freq, length)
    return np.asarray(rope, np.float64), np.asarray(absolute, np.float64)


@functools.partial(jax.jit, static_argnums=5)
def _scores(x_q, x_k, w_q, w_k, inv_freq, length):
    dim = x_q.shape[0]
    pos = jnp.arange(length, dtype=jnp.int32)

    def rotated(v):
        return apply_rope(jnp.broadcast_to(v, (length, 1, dim)), pos, inv_freq=inv_freq)[:, 0]

    rope = rotated(w_q @ x_q) @ rotated(w_k @ x_k).T
    pe = sinusoidal(pos, dim)
    absolute = ((x_q + pe) @ w_q.T) @ ((x_k + pe) @ w_k.T).T
    return rope, absolute


def toeplitz_deviation(matrix) -> float:
    """How far a square matrix is from Toeplitz: max over diagonals of (max - min) / max |S|.

    0 for a matrix constant along every diagonal (a function of m - n only).
    """
    m = np.asarray(matrix, np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"matrix must be square 2-D, got shape {m.shape}.")
    spread = max(np.ptp(np.diagonal(m, d)) for d in range(-m.shape[0] + 1, m.shape[0]))
    return float(spread / max(np.abs(m).max(), 1e-30))


def plot_relative_invariance(
    path: str | os.PathLike, *, length: int = 32, dim: int = 32, dpi: int = DPI
) -> dict:
    """Figure 5: the q.k score matrix is Toeplitz with RoPE and not with absolute sinusoids.

    Left: `relative_invariance_scores` with RoPE; middle: with sinusoids added to the inputs;
    right: S[n + d, n] along three diagonals d, flat for RoPE only. The Toeplitz deviations
    (`toeplitz_deviation`) are printed. Size: RELATIVE_SIZE.

    Returns:
      {"rope_deviation": float, "absolute_deviation": float}.

    Raises:
      ValueError: as `relative_invariance_scores`.
    """
    rope, absolute = relative_invariance_scores(length=length, dim=dim)
    dev_rope, dev_abs = toeplitz_deviation(rope), toeplitz_deviation(absolute)
    fig = new_figure(RELATIVE_SIZE, dpi=dpi)
    axes = fig.subplots(1, 3)
    for ax, values, name, dev in (
        (axes[0], rope, "RoPE: <R(m) q, R(n) k>", dev_rope),
        (axes[1], absolute, "absolute: <W_q(x+PE(m)), W_k(x+PE(n))>", dev_abs),
    ):
        bound = np.abs(values).max()
        heatmap(
            ax,
            values,
            title=name,
            xlabel="key position n",
            ylabel="query position m",
            cmap="RdBu_r",
            vmin=-bound,
            vmax=bound,
        )
        note(ax, f"Toeplitz deviation {dev:.1e}")
    ax = axes[2]
    for i, d in enumerate((0, 4, 8)):
        color = f"C{i}"
        n = np.arange(length - d)
        ax.plot(n, rope[n + d, n], "-", color=color, lw=1.8, label=f"RoPE, m - n = {d}")
        ax.plot(n, absolute[n + d, n], "--", color=color, lw=1.2, label=f"absolute, m - n = {d}")
    ax.set_xlabel("key position n")
    ax.set_ylabel("score S[n + d, n]")
    ax.set_title("along a diagonal: constant only for RoPE", fontsize=10)
    ax.legend(fontsize=7, ncols=2)
    ax.grid(alpha=0.3)
    save_figure(
        fig, path, title="5. Relative invariance: q.k depends on m - n only with RoPE", dpi=dpi
    )
    return {"rope_deviation": dev_rope, "absolute_deviation": dev_abs}
