"""Explorer figures 1-3: the input-place ladder of the blog post, drawn from pe_jax.encodings.

The argument of "You could have designed state of the art positional encoding" (Fleetwood,
2024) starts here: a raw integer position blows up, a normalised one changes meaning with the
length, binary digits are bounded but jumpy, and sinusoids are their smooth version, with the
bonus that a shift by k positions is a rotation R(k) that does not depend on the position.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from pe_jax._validate import check_positive, check_positive_int
from pe_jax.encodings import (
    binary_positions,
    integer_positions,
    normalized_positions,
    sinusoidal,
)
from pe_jax.explorer._common import DPI, heatmap, new_figure, note, save_figure

LADDER_SIZE = (14.0, 7.0)
RUNGS = ("integer", "normalized", "binary", "sinusoidal")
BITS_SIZE = (9.0, 7.0)
LINEARITY_SIZE = (12.0, 4.8)


def _even(name: str, value) -> int:
    value = check_positive_int(name, value)
    if value % 2:
        raise ValueError(f"{name} must be even (sin/cos pairs), got {value}.")
    return value


def ladder_encodings(positions, dim: int, *, length: int) -> dict[str, jax.Array]:
    """The four rungs at `positions`: {"integer", "normalized", "binary", "sinusoidal"}.

    Args:
      positions: int [L].
      dim: width D (even for the sinusoidal rung, <= 31 for the binary one).
      length: normaliser of `normalized_positions` (the training length).

    Returns:
      float32 arrays [L, D], keys in the order of the ladder (`RUNGS`).
    """
    return {
        "integer": integer_positions(positions, dim),
        "normalized": normalized_positions(positions, dim, length=length),
        "binary": binary_positions(positions, dim),
        "sinusoidal": sinusoidal(positions, dim),
    }


# Eager JAX compiles every primitive separately; one program per figure keeps it fast on CPU.
_ladder_jit = jax.jit(ladder_encodings, static_argnums=1, static_argnames="length")


def token_embedding_norms(vocab_size: int, dim: int, *, seed: int = 0) -> np.ndarray:
    """L2 norms [V] of token embeddings at Flax's default `Embed` initialisation.

    That init is variance_scaling(1, "fan_in", "normal", out_axis=0): entries N(0, 1 / D), so
    each embedding has norm close to 1 whatever D is.
    """
    init = jax.nn.initializers.variance_scaling(1.0, "fan_in", "normal", out_axis=0)
    table = jax.jit(init, static_argnums=(1, 2))(
        jax.random.key(seed), (vocab_size, dim), jnp.float32
    )
    return np.linalg.norm(np.asarray(table), axis=-1)


def plot_ladder(
    path: str | os.PathLike, *, length: int = 64, dim: int = 16, dpi: int = DPI
) -> dict:
    """Figure 1: the ladder as position x dimension heatmaps, and each rung's magnitude.

    Top: integer, normalized, binary and sinusoidal encodings of positions 0..length-1 at
    width `dim`. Bottom: ||PE(p)||_2 for p up to 4 * length (the normaliser stays `length`,
    as it would after training at that length) against the norm of token embeddings at
    initialisation. Size: LADDER_SIZE inches at `dpi`.

    Args:
      path: the PNG to write.
      length: the (training) length L >= 2.
      dim: even width D in [2, 30].
      dpi: dots per inch.

    Returns:
      {"max_norm": {rung: float}, "integer_norm": float, "token_norm": float}: largest norm
      of each rung up to 4L (and of the integer rung alone), the mean token-embedding norm.

    Raises:
      ValueError: length < 2, dim odd or outside [2, 30].
    """
    length = check_positive_int("length", length)
    dim = _even("dim", dim)
    if length < 2 or dim > 30:
        raise ValueError(f"length must be >= 2 and dim <= 30, got length={length}, dim={dim}.")
    # One compiled program at 4L; the heatmaps show its first L rows (the normaliser is L).
    far = np.arange(4 * length)
    extended = _ladder_jit(jnp.asarray(far, jnp.int32), dim, length=length)
    tokens = token_embedding_norms(256, dim)
    fig = new_figure(LADDER_SIZE, dpi=dpi)
    grid = fig.add_gridspec(2, 4, height_ratios=(1.2, 1.0))
    for col, name in enumerate(RUNGS):  # jit returns dicts in key order: use the ladder's
        heatmap(
            fig.add_subplot(grid[0, col]),
            np.asarray(extended[name])[:length],
            title=name,
            xlabel="dimension i",
            ylabel="position p",
            cmap="RdBu_r" if name == "sinusoidal" else "viridis",
        )
    ax = fig.add_subplot(grid[1, :])
    norms = {}
    for name in RUNGS:
        norm = np.linalg.norm(np.asarray(extended[name]), axis=-1)
        norms[name] = float(norm.max())
        # From p = 1: at p = 0 three rungs are the zero vector, off a log axis.
        ax.plot(far[1:], norm[1:], lw=1.6, label=f"{name} ||PE(p)||")
    ax.axhspan(tokens.min(), tokens.max(), color="0.5", alpha=0.25, label="token embeddings")
    ax.axvline(length - 1, color="0.2", ls=":", lw=1.2, label=f"training length L = {length}")
    ax.set_yscale("log")
    ax.set_xlabel("position p (1 .. 4L - 1)")
    ax.set_ylabel("L2 norm")
    ax.set_title("magnitude against the token embeddings it is added to", fontsize=10)
    ax.legend(fontsize=8, ncols=3, loc="upper left")
    ax.grid(alpha=0.3)
    save_figure(
        fig, path, title=f"1. The ladder of absolute encodings (L={length}, D={dim})", dpi=dpi
    )
    return {"max_norm": norms, "integer_norm": norms["integer"], "token_norm": float(tokens.mean())}


def smooth_bit(positions, bit: int) -> np.ndarray:
    """The sinusoid of bit `bit`'s period 2^(bit+1), in phase with it, with values in [0, 1].

    Bit k of p is 1 on p mod T in [T/2, T) (T = 2^(k+1)); the cosine peaking at the middle of
    that half, 1/2 + 1/2 cos(2 pi (p - 3T/4 + 1/2) / T), equals the bit at every integer
    when k = 0 and smooths its jumps for larger k.
    """
    period = 2.0 ** (bit + 1)
    p = np.asarray(positions, np.float64)
    return 0.5 + 0.5 * np.cos(2 * np.pi * (p - 0.75 * period + 0.5) / period)


def plot_binary_vs_sinusoid(
    path: str | os.PathLike, *, length: int = 32, bits: int = 4, dpi: int = DPI
) -> dict:
    """Figure 2: sinusoids as a smooth binary counter.

    One panel per bit k < `bits`: bit k of p (`binary_positions`, a square wave of period
    2^(k+1)) against the sinusoid of the same period (`smooth_bit`). Size: BITS_SIZE.

    Returns:
      {"mean_abs_gap": [bits]}: mean |bit - sinusoid| at the integers, per bit.

    Raises:
      ValueError: length < 2 or bits outside [1, 8].
    """
    length = check_positive_int("length", length)
    bits = check_positive_int("bits", bits)
    if length < 2 or bits > 8:
        raise ValueError(f"length must be >= 2 and bits in [1, 8], got {length}, {bits}.")
    p = np.arange(length)
    code = np.asarray(binary_positions(jnp.asarray(p, jnp.int32), bits))
    fine = np.linspace(0, length - 1, 40 * length)
    fig = new_figure(BITS_SIZE, dpi=dpi)
    axes = fig.subplots(bits, 1, sharex=True, squeeze=False)[:, 0]
    gaps = []
    for k, ax in enumerate(axes):
        ax.step(p, code[:, k], where="mid", lw=1.8, color="tab:blue", label=f"bit {k} of p")
        ax.plot(fine, smooth_bit(fine, k), lw=1.4, color="tab:orange", label="same-period sinusoid")
        ax.plot(p, smooth_bit(p, k), "o", ms=3, color="tab:orange")
        gaps.append(float(np.abs(code[:, k] - smooth_bit(p, k)).mean()))
        ax.set_ylabel(f"bit {k}\n(period {2 ** (k + 1)})")
        ax.set_ylim(-0.15, 1.15)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper right", ncols=2)
    axes[-1].set_xlabel("position p")
    save_figure(fig, path, title="2. Sinusoids are a smooth binary counter", dpi=dpi)
    return {"mean_abs_gap": gaps}


def shift_rotation(offset: int, dim: int, *, max_wavelength: float = 10000.0) -> np.ndarray:
    """The block-diagonal rotation R(k) [D, D] with sinusoidal(p + k) = R(k) sinusoidal(p).

    For pair i (dims 2i = sin, 2i + 1 = cos, frequency w_i = max_wavelength^(-2i/D)):
    sin((p+k) w) = sin(pw) cos(kw) + cos(pw) sin(kw), cos((p+k) w) = cos(pw) cos(kw) -
    sin(pw) sin(kw) (Vaswani et al. 2017, sec. 3.5: "PE(p+k) is a linear function of PE(p)").
    Computed in float64.
    """
    dim = _even("dim", dim)
    freqs = max_wavelength ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)
    rot = np.zeros((dim, dim))
    for i, w in enumerate(freqs):
        c, s = np.cos(offset * w), np.sin(offset * w)
        rot[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = [[c, s], [-s, c]]
    return rot


def sinusoid_shift_error(
    *, length: int, dim: int, max_offset: int, max_wavelength: float = 10000.0
) -> np.ndarray:
    """max over p < length and dims of |sinusoidal(p + k) - R(k) sinusoidal(p)|, k = 1..max_offset.

    Both sides come from `pe_jax.encodings.sinusoidal` (float32); R(k) from `shift_rotation`.

    Returns:
      float64 [max_offset]: the identity's error per offset k (float32 rounding only).

    Raises:
      ValueError: non-positive sizes, odd dim, max_wavelength <= 0.
    """
    length = check_positive_int("length", length)
    dim = _even("dim", dim)
    max_offset = check_positive_int("max_offset", max_offset)
    max_wavelength = check_positive("max_wavelength", max_wavelength)
    table = _sinusoid_jit(jnp.arange(length + max_offset, dtype=jnp.int32), dim, max_wavelength)
    return _shift_errors(np.asarray(table, np.float64), length, max_offset, max_wavelength)


_sinusoid_jit = jax.jit(
    lambda p, dim, w: sinusoidal(p, dim, max_wavelength=w), static_argnums=(1, 2)
)


def _shift_errors(table: np.ndarray, length: int, max_offset: int, max_wavelength: float):
    dim = table.shape[-1]
    errors = np.empty(max_offset)
    for k in range(1, max_offset + 1):
        rotated = table[:length] @ shift_rotation(k, dim, max_wavelength=max_wavelength).T
        errors[k - 1] = np.abs(table[k : k + length] - rotated).max()
    return errors


def plot_linearity(
    path: str | os.PathLike,
    *,
    length: int = 256,
    dim: int = 16,
    pair: int = 2,
    offset: int = 5,
    max_offset: int = 64,
    dpi: int = DPI,
) -> dict:
    """Figure 3: PE(p + k) = R(k) PE(p) for the sinusoidal encoding, with its measured error.

    Left: the (sin, cos) values of frequency pair `pair` for p < min(32, length) on the unit
    circle, and
    the rotation by k * w_i (k = `offset`) that takes PE(p) to PE(p + k) for a few p. Right:
    the identity's max error over p < `length` and all D dims for k = 1..`max_offset`, with the
    overall maximum printed. Size: LINEARITY_SIZE.

    Returns:
      {"max_error": float, "errors": [max_offset]}.

    Raises:
      ValueError: bad sizes, or `pair` outside [0, D/2).
    """
    length = check_positive_int("length", length)
    dim = _even("dim", dim)
    max_offset = check_positive_int("max_offset", max_offset)
    if not 0 <= pair < dim // 2:
        raise ValueError(f"pair must be in [0, {dim // 2}) for dim={dim}, got {pair}.")
    if not 1 <= offset <= max_offset:
        raise ValueError(f"offset must be in [1, max_offset={max_offset}], got {offset}.")
    table = _sinusoid_jit(jnp.arange(length + max_offset, dtype=jnp.int32), dim, 10000.0)
    pe = np.asarray(table, np.float64)
    errors = _shift_errors(pe, length, max_offset, 10000.0)
    shown = min(32, length)
    s, c = pe[:, 2 * pair], pe[:, 2 * pair + 1]
    rot = shift_rotation(offset, dim)[2 * pair : 2 * pair + 2, 2 * pair : 2 * pair + 2]
    fig = new_figure(LINEARITY_SIZE, dpi=dpi)
    left, right = fig.subplots(1, 2, width_ratios=(1.0, 1.4))
    circle = np.linspace(0, 2 * np.pi, 200)
    left.plot(np.cos(circle), np.sin(circle), color="0.8", lw=1)
    points = left.scatter(s[:shown], c[:shown], c=np.arange(shown), cmap="viridis", s=18, zorder=3)
    fig.colorbar(points, ax=left, label="position p", fraction=0.046)
    for p in range(0, shown, max(shown // 3, 1))[:3]:
        target = rot @ np.array([s[p], c[p]])
        left.annotate(
            "",
            xy=target,
            xytext=(s[p], c[p]),
            arrowprops=dict(arrowstyle="->", color="tab:red", lw=1.4),
        )
        left.plot(*target, "x", color="tab:red", ms=7, label=f"R({offset}) PE(p)")
        left.plot(
            s[p + offset], c[p + offset], "o", mfc="none", mec="k", ms=9, label=f"PE(p + {offset})"
        )
    handles, labels = left.get_legend_handles_labels()
    left.legend(handles[:2], labels[:2], fontsize=8, loc="lower left")
    freq = 10000.0 ** (-2 * pair / dim)
    left.set_title(
        f"pair {pair} (w = {freq:.3g}): R({offset}) turns every p by {offset}w", fontsize=10
    )
    left.set_xlabel(f"PE[p, {2 * pair}] = sin(p w)")
    left.set_ylabel(f"PE[p, {2 * pair + 1}] = cos(p w)")
    left.set_aspect("equal")
    right.semilogy(np.arange(1, max_offset + 1), np.maximum(errors, 1e-12), "o-", ms=3)
    right.set_xlabel("offset k")
    right.set_ylabel("max |PE(p+k) - R(k) PE(p)|")
    right.set_title(f"error of the identity over p < {length}, all {dim} dims", fontsize=10)
    right.set_ylim(1e-9, 2.0)  # against the scale of the values themselves, |PE| <= 1
    right.grid(alpha=0.3, which="both")
    note(right, f"max error = {errors.max():.2e} (float32 rounding)", loc="lower right")
    save_figure(fig, path, title="3. A shift is a rotation: PE(p + k) = R(k) PE(p)", dpi=dpi)
    return {"max_error": float(errors.max()), "errors": errors.tolist()}
