"""Rotary embeddings for N-D positions (image rows/cols, video t/h/w): axial and RoPE-Mixed.

Both rotate pair i of head h by an angle linear in the position vector p = (p_0, .., p_{d-1}):

    angle[h, i] = sum_a p_a * freqs[a, h, i],

so, as for 1-D RoPE, <R(p) q, R(p') k> depends only on p - p'. Axial RoPE fixes freqs to be
block-diagonal (each axis owns its own K/d features); RoPE-Mixed learns all of them.
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
from pe_jax.encodings._rope import (
    LAYOUTS,
    _check_positions_shape,
    _cos_sin,
    _rotate,
    _split_float32,
)


def _check_nd_args(x, positions):
    """Validates x [..., L, H, K] and positions int [..., L, ndim]; returns positions int32."""
    check_rank("x", x, min_ndim=3)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"x must be a floating array, got dtype {x.dtype}.")
    positions = check_int_positions("positions", positions, min_ndim=2, max_ndim=3)
    if positions.shape[-1] < 1:
        raise ValueError(f"positions must have ndim >= 1 in its last axis, got {positions.shape}.")
    _check_positions_shape("positions", positions.shape[:-1], "x", x.shape[:-2])
    return positions


def apply_axial_rope(
    x: jax.Array,
    positions: jax.Array,
    *,
    base: float = 10000.0,
    layout: str = "half",
) -> jax.Array:
    """Axial N-D RoPE: the head dim is split over the position axes, each rotated by its own.

    Used for images by EVA-02 (Fang et al. 2023) and as RoPE-Axial by Heo et al. 2024
    ("Rotary Position Embedding for Vision Transformer"), and for video over (t, h, w). With
    d = positions.shape[-1] axes and C = K / d, features [a C, (a + 1) C) form chunk a, which
    is rotated as `apply_rope` would rotate a C-dim head at position p_a:

        theta_j = base ** (-2j / C),  j = 0 .. C/2 - 1,   angle = p_a * theta_j,

    pairing within the chunk by `layout`. With d = 1 this is `apply_rope` with the default
    inv_freq = base ** (-2j / K). All chunks are rotated in one fused pass.

    Args:
      x: float array [..., L, H, K]; K divisible by 2 * d.
      positions: int array [L, d] or [B, L, d] (any [..., L, d] broadcasting against x's
        [..., L] dims), typically d in 1..3 (row/col, or t/h/w).
      base: positive float, the RoPE base of every axis.
      layout: "half" or "interleaved" within each chunk (see `apply_rope`).

    Returns:
      Array like x.

    Raises:
      ValueError: if x is not a floating array of rank >= 3, positions is not an int array
        [..., L, d] matching x, K is not divisible by 2 * d, base is not positive, or layout
        is unknown.
    """
    positions = _check_nd_args(x, positions)
    check_choice("layout", layout, LAYOUTS)
    base = check_positive("base", base)
    ndim, head_dim = positions.shape[-1], x.shape[-1]
    if head_dim % (2 * ndim):
        raise ValueError(
            f"x has head dim K={head_dim}, which must be divisible by 2 * ndim = {2 * ndim} "
            f"(ndim = positions.shape[-1] = {ndim}) so each axis gets an even chunk."
        )
    chunk = head_dim // ndim
    inv_freq = jnp.asarray(base ** (-np.arange(0, chunk, 2) / chunk), jnp.float32)
    cos, sin = _cos_sin(positions, inv_freq)  # [..., L, d, C/2]
    # Head axis before the chunk axis: x [..., L, H, K] -> [..., L, H, d, C].
    x_chunks = x.reshape(*x.shape[:-1], ndim, chunk)
    y = _rotate(x_chunks, cos[..., None, :, :], sin[..., None, :, :], layout)
    return y.reshape(x.shape)


def init_rope_mixed_freqs(
    key: jax.Array,
    *,
    num_heads: int,
    head_dim: int,
    ndim: int,
    theta: float = 10.0,
) -> jax.Array:
    """Initial learnable frequencies of RoPE-Mixed (Heo et al. 2024), float32 [ndim, H, K//2].

    The paper (2-D) gives every head a random rotation angle phi ~ U[0, 2 pi): the first K/4
    pairs rotate along direction (cos phi, sin phi) and the last K/4 along the orthogonal
    direction phi + pi/2, with magnitudes theta ** (-4j / K). For d = ndim axes the same idea
    reads: draw a uniformly random rotation U_h in SO(d) per head (for d = 2 exactly the
    paper's random angle; for d = 1 the identity), split the K/2 pairs into d groups of
    G = K / (2d), and set

        freqs[a, h, g G + j] = theta ** (-2 d j / K) * U_h[a, g],  j = 0 .. G - 1,

    so group g rotates along the g-th column of U_h. Pairs are ordered as in the paper's
    complex view, i.e. for layout="interleaved" in `apply_rope_mixed`.

    Args:
      key: PRNG key.
      num_heads: H >= 1.
      head_dim: K >= 1, divisible by 2 * ndim.
      ndim: number of position axes d >= 1.
      theta: positive float; the paper uses 10 for ViTs (100 for RoPE-Axial).

    Returns:
      float32 [ndim, num_heads, head_dim // 2].

    Raises:
      ValueError: for non-positive num_heads / head_dim / ndim / theta, or head_dim not
        divisible by 2 * ndim.
    """
    num_heads = check_positive_int("num_heads", num_heads)
    head_dim = check_positive_int("head_dim", head_dim)
    ndim = check_positive_int("ndim", ndim)
    theta = check_positive("theta", theta)
    if head_dim % (2 * ndim):
        raise ValueError(f"head_dim must be divisible by 2 * ndim = {2 * ndim}, got {head_dim}.")
    group = head_dim // (2 * ndim)
    magnitude = jnp.asarray(theta ** (-2.0 * ndim * np.arange(group) / head_dim), jnp.float32)
    # Haar O(d) sample; flipping the first column when det = -1 gives Haar on SO(d).
    rotation = jax.random.orthogonal(key, ndim, shape=(num_heads,), dtype=jnp.float32)
    det_sign = jnp.sign(jnp.linalg.det(rotation))
    rotation = rotation.at[..., 0].multiply(det_sign[:, None])  # [H, d (axis a), d (group g)]
    freqs = rotation.transpose(1, 0, 2)[..., None] * magnitude  # [d, H, d, G]
    return freqs.reshape(ndim, num_heads, ndim * group)


def apply_rope_mixed(
    x: jax.Array,
    positions: jax.Array,
    *,
    freqs: jax.Array,
    layout: str = "interleaved",
) -> jax.Array:
    """RoPE-Mixed (Heo et al. 2024): rotation by learned mixtures of the position axes.

        angle[..., l, h, i] = sum_a positions[..., l, a] * freqs[a, h, i],

    then pair i of head h is rotated by that angle as in `apply_rope`. The angle is linear in
    the position vector, so q.k depends only on the position difference; unlike axial RoPE a
    pair can rotate along a diagonal direction. With block-diagonal freqs (axis a's standard
    frequencies on its own K/d pairs, zero elsewhere) and layout="interleaved" this equals
    `apply_axial_rope(..., layout="interleaved")`.

    Angles are float32 sums of products, rounded once per sum: accurate to an ulp of the
    angle, ample for the patch-grid coordinates the method targets (hundreds); for very large
    coordinates `apply_axial_rope` forms its angles exactly.

    Args:
      x: float array [..., L, H, K].
      positions: int array [L, d] or [B, L, d] (any [..., L, d] broadcasting against x).
      freqs: float array [d, H, R/2] (H may be 1 to share across heads) with R <= K, e.g.
        from `init_rope_mixed_freqs`; may be a learned parameter (differentiable).
      layout: "interleaved" (default, the paper's pairing (2i, 2i + 1)) or "half".

    Returns:
      Array like x.

    Raises:
      ValueError: if x or positions are malformed (see `apply_axial_rope`), freqs is not
        [d, H or 1, R/2] with 2 * R/2 <= K, or layout is unknown.
    """
    positions = _check_nd_args(x, positions)
    check_choice("layout", layout, LAYOUTS)
    freqs = jnp.asarray(freqs)
    check_rank("freqs", freqs, min_ndim=3, max_ndim=3)
    ndim, num_heads = positions.shape[-1], x.shape[-2]
    if (
        freqs.shape[0] != ndim
        or freqs.shape[1] not in (1, num_heads)
        or not 1 <= 2 * freqs.shape[2] <= x.shape[-1]
    ):
        raise ValueError(
            f"freqs must have shape [ndim={ndim}, H={num_heads} or 1, R/2] with "
            f"1 <= R <= K={x.shape[-1]}, got {freqs.shape}."
        )
    p = positions.astype(jnp.float32)[..., None, None]  # [..., L, d, 1, 1]
    f_hi, f_lo = _split_float32(freqs.astype(jnp.float32))
    # An elementwise sum over the few axes, not a matmul (which may run in TF32/bf16 on
    # accelerators). With 12-bit halves of freqs, every product is exact for |positions| <
    # 2**12, so the angle is the same whether or not XLA fuses a product and a sum into an
    # FMA: jit, eager and vmap agree. Only the final sums round.
    angle_hi = sum(p[..., a, :, :] * f_hi[a] for a in range(ndim))  # [..., L, H, R/2]
    angle_lo = sum(p[..., a, :, :] * f_lo[a] for a in range(ndim))
    angle = angle_hi + angle_lo
    return _rotate(x, jnp.cos(angle), jnp.sin(angle), layout)
