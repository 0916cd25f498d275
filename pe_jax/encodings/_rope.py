"""Rotary position embeddings (RoPE) and xPos, as pure functions on [..., L, H, K] activations.

RoPE (Su et al. 2021, "RoFormer: Enhanced Transformer with Rotary Position Embedding",
arXiv:2104.09864) rotates each pair of query/key features (x1, x2) by the angle m * theta_i,
where m is the token's position and theta_i = inv_freq[i]:

    y1 = x1 cos(m theta_i) - x2 sin(m theta_i)
    y2 = x1 sin(m theta_i) + x2 cos(m theta_i)

Written with complex numbers, z = x1 + i x2 becomes z * exp(i m theta_i). Because rotations
compose, <R(m) q, R(n) k> = Re sum_i q_i conj(k_i) exp(i (m - n) theta_i): the attention score
depends on positions only through m - n.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from pe_jax._validate import (
    check_choice,
    check_int_positions,
    check_positive,
    check_positive_int,
    check_rank,
)

LAYOUTS = ("half", "interleaved")


def _split_float32(v: jax.Array) -> tuple[jax.Array, jax.Array]:
    """v = hi + lo exactly, where hi keeps the top 12 significand bits and lo has <= 12 bits."""
    bits = jax.lax.bitcast_convert_type(v, jnp.uint32)
    hi = jax.lax.bitcast_convert_type(bits & jnp.uint32(0xFFFFF000), jnp.float32)
    return hi, v - hi


def _angles(positions: jax.Array, inv_freq: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Returns float32 (hi, lo), [*positions.shape, R/2], with hi + lo == positions * inv_freq.

    A plain float32 product at position 1e6 is off by up to half an ulp of 1e6, 0.03 rad, which
    is several times the rounding error of a bf16 activation. Dekker's exact product recovers
    the rounding error as `lo` (|lo| <= 0.03), so cos/sin can be evaluated by the angle-sum
    formulas to float32 accuracy. The product is exact while |positions| < 2**24.
    """
    p = positions.astype(jnp.float32)[..., None]
    f = inv_freq.astype(jnp.float32)
    hi = p * f
    p_hi, p_lo = _split_float32(p)
    f_hi, f_lo = _split_float32(f)
    # Each partial product of two 12-bit halves is exact in float32; so are the partial sums.
    lo = ((p_hi * f_hi - hi) + p_hi * f_lo + p_lo * f_hi) + p_lo * f_lo
    return hi, lo


def _cos_sin(positions: jax.Array, inv_freq: jax.Array) -> tuple[jax.Array, jax.Array]:
    """float32 cos and sin of positions * inv_freq, [*positions.shape, R/2]."""
    hi, lo = _angles(positions, inv_freq)
    cos_hi, sin_hi, cos_lo, sin_lo = jnp.cos(hi), jnp.sin(hi), jnp.cos(lo), jnp.sin(lo)
    return cos_hi * cos_lo - sin_hi * sin_lo, sin_hi * cos_lo + cos_hi * sin_lo


def _pairs(x: jax.Array, layout: str) -> tuple[jax.Array, jax.Array]:
    """Splits x [..., R] into the pair members (x1, x2), each [..., R/2]."""
    half = x.shape[-1] // 2
    if layout == "half":
        return x[..., :half], x[..., half:]
    pairs = x.reshape(*x.shape[:-1], half, 2)
    return pairs[..., 0], pairs[..., 1]


def _unpairs(y1: jax.Array, y2: jax.Array, layout: str) -> jax.Array:
    """Inverse of `_pairs`."""
    if layout == "half":
        return jnp.concatenate([y1, y2], axis=-1)
    return jnp.stack([y1, y2], axis=-1).reshape(*y1.shape[:-1], 2 * y1.shape[-1])


def _in_memory(cos: jax.Array, sin: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Returns cos and sin bit for bit, but computed once into memory by XLA.

    XLA classes real cos/sin as cheap and fuses them into every consumer, so a [L, R/2] table
    broadcast over x [B, L, H, R/2] had its cos/sin (four per entry, see `_cos_sin`) evaluated
    again for every element of x: apply_rope ran at 0.3 of the copy floor on CPU. XLA never
    duplicates an expensive op (a division) into a consumer that reuses its elements, so
    dividing by a 1 it cannot fold (1 + 0 * t is not folded: 0 * inf is NaN) puts the table in
    memory once, and the rotation becomes a pass over x at ~0.8 of the copy floor.
    """
    one = 1.0 + 0.0 * cos
    return cos / one, sin / one


def _rotate(x: jax.Array, cos: jax.Array, sin: jax.Array, layout: str) -> jax.Array:
    """Rotates the first R = 2 * cos.shape[-1] features of x; the rest pass through untouched.

    cos, sin broadcast against x[..., :R/2]. Slices, elementwise ops and one concatenate, so
    under jit XLA emits a single fused loop with no gather, reading cos and sin from memory.
    """
    cos, sin = _in_memory(cos, sin)
    rotary = 2 * cos.shape[-1]
    x1, x2 = _pairs(x[..., :rotary].astype(jnp.float32), layout)
    y = _unpairs(x1 * cos - x2 * sin, x1 * sin + x2 * cos, layout).astype(x.dtype)
    if rotary == x.shape[-1]:
        return y
    return jnp.concatenate([y, x[..., rotary:]], axis=-1)


def _check_rope_args(x, positions, inv_freq, layout, *, x_name="x", positions_name="positions"):
    """Validates the shared RoPE arguments; returns (positions int32, inv_freq float32)."""
    check_rank(x_name, x, min_ndim=3)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"{x_name} must be a floating array, got dtype {x.dtype}.")
    check_choice("layout", layout, LAYOUTS)
    inv_freq = jnp.asarray(inv_freq, jnp.float32)
    if inv_freq.ndim != 1 or inv_freq.shape[0] < 1:
        raise ValueError(f"inv_freq must be a non-empty 1-D array, got shape {inv_freq.shape}.")
    if 2 * inv_freq.shape[0] > x.shape[-1]:
        raise ValueError(
            f"inv_freq has {inv_freq.shape[0]} frequencies, so the rotary dim is "
            f"{2 * inv_freq.shape[0]}, more than the head dim {x.shape[-1]} of {x_name}; "
            "allowed: 2 * len(inv_freq) <= K."
        )
    positions = check_int_positions(positions_name, positions)
    _check_positions_shape(positions_name, positions.shape, x_name, x.shape[:-2])
    return positions, inv_freq


def _check_positions_shape(name: str, shape: tuple, x_name: str, lead: tuple) -> None:
    """Raises unless positions of `shape` ([..., L]) broadcast against x's [..., L] dims `lead`."""
    try:
        ok = shape[-1] == lead[-1] and np.broadcast_shapes(shape, lead) == tuple(lead)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"{name} of shape {shape} does not match {x_name}'s leading dims {tuple(lead)} "
            "([..., L]); allowed: [L] or a shape broadcastable to them, e.g. [B, L]."
        )


def apply_rope(
    x: jax.Array,
    positions: jax.Array,
    *,
    inv_freq: jax.Array,
    layout: str = "half",
    attention_scale: float = 1.0,
) -> jax.Array:
    """Applies rotary position embeddings (Su et al. 2021, RoFormer) to queries or keys.

    For pair i of the first R = 2 * len(inv_freq) features and a token at position m:

        [y1, y2] = attention_scale * [[cos(m theta_i), -sin(m theta_i)],
                                      [sin(m theta_i),  cos(m theta_i)]] @ [x1, x2],
        theta_i = inv_freq[i].

    For any inv_freq, <R(m) q, R(n) k> depends only on m - n; the usual choice is
    inv_freq = base ** (-2i / R) (`rope_inv_freq` adds the HF scaling variants).
    Features R..K pass through bit-identical (partial rotary, as in GPT-NeoX / p-RoPE).
    `attention_scale` multiplies cos and sin, as HF's `attention_factor` does for YaRN/LongRoPE.

    Angles are formed in float32 from the int positions (never in x's dtype) with an exact
    product (see `_angles`), so they stay accurate at positions up to 2**24; the rotation runs
    in float32 and the result is cast back to x.dtype.

    Args:
      x: float array [..., L, H, K], any float dtype.
      positions: int array [L] (shared by all leading dims) or [B, L] (any shape that
        broadcasts against x's [..., L] dims).
      inv_freq: float array [R/2], the angular frequencies theta_i; 2 * len(inv_freq) <= K.
      layout: "half" pairs (i, i + R/2) (GPT-NeoX, HF `rotate_half`); "interleaved" pairs
        (2i, 2i + 1) (GPT-J, Meta LLaMA).
      attention_scale: scalar multiplying the rotated features.

    Returns:
      Array like x (same shape and dtype).

    Raises:
      ValueError: if x is not a floating array of rank >= 3; inv_freq is not 1-D or
        2 * len(inv_freq) > K; layout is unknown; positions is not an integer array or does not
        match x's [..., L] dims.
    """
    positions, inv_freq = _check_rope_args(x, positions, inv_freq, layout)
    cos, sin = _cos_sin(positions, inv_freq)
    # Head axis: [..., L, R/2] -> [..., L, 1, R/2].
    cos = (cos * attention_scale)[..., None, :]
    sin = (sin * attention_scale)[..., None, :]
    return _rotate(x, cos, sin, layout)


def apply_rope_complex(
    x: jax.Array,
    positions: jax.Array,
    *,
    inv_freq: jax.Array,
    layout: str = "half",
    attention_scale: float = 1.0,
) -> jax.Array:
    """RoPE written as multiplication on the unit circle: z -> z * exp(i m theta_i).

    The readable reference for `apply_rope` (same arguments, same result up to float32
    rounding). Each pair (x1, x2) is the complex number z = x1 + i x2; moving a token to
    position m multiplies z by the unit phasor exp(i m theta_i), so for a query at m and a key
    at n, q_i conj(k_i) picks up exp(i (m - n) theta_i): only the offset survives (Su et al.
    2021, sec. 3.4.1). The phasor is built as exp(i hi) * exp(i lo) from the exact split
    m theta_i = hi + lo (rotating by hi, then by lo), which keeps it accurate at large m.

    Args:
      x: float array [..., L, H, K].
      positions: int array [L] or [B, L].
      inv_freq: float array [R/2]; 2 * len(inv_freq) <= K.
      layout: "half" or "interleaved" (see `apply_rope`).
      attention_scale: scalar multiplying the rotated features.

    Returns:
      Array like x.

    Raises:
      ValueError: as `apply_rope`.
    """
    positions, inv_freq = _check_rope_args(x, positions, inv_freq, layout)
    hi, lo = _angles(positions, inv_freq)
    phasor = attention_scale * jnp.exp(1j * hi) * jnp.exp(1j * lo)
    rotary = 2 * inv_freq.shape[0]
    x1, x2 = _pairs(x[..., :rotary].astype(jnp.float32), layout)
    z = jax.lax.complex(x1, x2) * phasor[..., None, :]
    y = _unpairs(jnp.real(z), jnp.imag(z), layout).astype(x.dtype)
    return jnp.concatenate([y, x[..., rotary:]], axis=-1)


def _xpos_power(positions, rotary_dim, scale_base, gamma, sign):
    """float32 zeta_i ** (sign * n / scale_base), [..., L, rotary_dim // 2]."""
    zeta = (np.arange(0, rotary_dim, 2) / rotary_dim + gamma) / (1.0 + gamma)
    exponent = sign * positions.astype(jnp.float32)[..., None] / jnp.float32(scale_base)
    return jnp.power(jnp.asarray(zeta, jnp.float32), exponent)


def _check_xpos_args(rotary_dim, scale_base, gamma):
    rotary_dim = check_positive_int("rotary_dim", rotary_dim)
    if rotary_dim % 2:
        raise ValueError(f"rotary_dim must be even, got {rotary_dim}.")
    return rotary_dim, check_positive("scale_base", scale_base), check_positive("gamma", gamma)


def xpos_scale(
    positions: jax.Array,
    rotary_dim: int,
    *,
    scale_base: float = 512.0,
    gamma: float = 0.4,
) -> jax.Array:
    """The xPos per-pair scale zeta_i ** (n / scale_base) (Sun et al. 2022, arXiv:2212.10554).

        zeta_i = (2i / R + gamma) / (1 + gamma),  i = 0 .. R/2 - 1,  R = rotary_dim.

    zeta_i < 1, smallest (gamma / (1 + gamma)) for the fastest-rotating pair, so queries scaled
    by zeta ** (m / scale_base) and keys by zeta ** (-n / scale_base) give a score weighted by
    zeta ** ((m - n) / scale_base): a decay with distance on top of RoPE's rotation.

    Positions are used as given. zeta_0 ** (n / scale_base) leaves the float32 range once
    |n| / scale_base * |log zeta_0| > ~88, i.e. |n| > ~36,000 with the defaults (the query
    scale underflows to 0 and the key scale overflows to inf). Since xPos scores depend only
    on m - n, callers with long sequences should subtract a common offset from query and key
    positions (the official implementation centres them on the window's midpoint); no
    choice of offset helps once |m - n| itself is that large.

    Args:
      positions: int array [L] or [B, L].
      rotary_dim: even int R, the number of rotated features.
      scale_base: positive float; larger means slower decay.
      gamma: positive float.

    Returns:
      float32 [..., L, rotary_dim // 2]; 1 at position 0.

    Raises:
      ValueError: if positions is not an integer array of rank 1 or 2, rotary_dim is not a
        positive even int, or scale_base / gamma are not positive.
    """
    positions = check_int_positions("positions", positions)
    rotary_dim, scale_base, gamma = _check_xpos_args(rotary_dim, scale_base, gamma)
    return _xpos_power(positions, rotary_dim, scale_base, gamma, 1.0)


def apply_xpos(
    q: jax.Array,
    k: jax.Array,
    q_positions: jax.Array,
    k_positions: jax.Array,
    *,
    inv_freq: jax.Array,
    scale_base: float = 512.0,
    gamma: float = 0.4,
    layout: str = "half",
) -> tuple[jax.Array, jax.Array]:
    """Applies xPos (Sun et al. 2022, "A Length-Extrapolatable Transformer") to q and k.

        q'_m = zeta ** (m / scale_base) * R(m) q_m,   k'_n = zeta ** (-n / scale_base) * R(n) k_n,

    with R the RoPE rotation of `apply_rope` and zeta from `xpos_scale`, applied per pair to
    the first R = 2 * len(inv_freq) features (the rest pass through). Then
    q'_m . k'_n = sum_i zeta_i ** ((m - n) / scale_base) (R(m - n) q)_i . k_i (per pair): a function
    of m - n only. The scale multiplies cos and sin, so it costs no extra pass over q or k.
    See `xpos_scale` for the float32 range of the scales and why positions may need centring.

    Args:
      q: float array [..., L, H, K].
      k: float array [..., S, H, K].
      q_positions: int array [L] or [B, L].
      k_positions: int array [S] or [B, S].
      inv_freq: float array [R/2]; 2 * len(inv_freq) <= K.
      scale_base: positive float.
      gamma: positive float.
      layout: "half" or "interleaved" (see `apply_rope`).

    Returns:
      (q', k'), like q and k.

    Raises:
      ValueError: as `apply_rope` (naming q/k and q_positions/k_positions), or for a
        non-positive scale_base or gamma.
    """
    q_positions, inv_freq = _check_rope_args(
        q, q_positions, inv_freq, layout, x_name="q", positions_name="q_positions"
    )
    k_positions, _ = _check_rope_args(
        k, k_positions, inv_freq, layout, x_name="k", positions_name="k_positions"
    )
    rotary_dim, scale_base, gamma = _check_xpos_args(2 * inv_freq.shape[0], scale_base, gamma)

    def rotate_scaled(x, positions, sign):
        cos, sin = _cos_sin(positions, inv_freq)
        scale = _xpos_power(positions, rotary_dim, scale_base, gamma, sign)
        return _rotate(x, (cos * scale)[..., None, :], (sin * scale)[..., None, :], layout)

    return rotate_scaled(q, q_positions, 1.0), rotate_scaled(k, k_positions, -1.0)
