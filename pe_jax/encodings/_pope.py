"""PoPE: polar-coordinate positional embeddings, magnitudes from content, phases from position.

Gopalakrishnan, Csordas, Schmidhuber and Mozer 2025, "Decoupling the 'What' and 'Where' With
Polar Coordinate Positional Embeddings" (arXiv:2509.10534). Each of the K features c of a query
(key) becomes a complex number whose magnitude is content only and whose phase is position only:

    q~_c = softplus(q_c) exp(i m theta_c),      k~_c = softplus(k_c) exp(i (n theta_c + delta_hc)),
    theta_c = base ** (-c / K),  c = 0 .. K - 1  (K frequencies, one per feature, not K/2 pairs),

and the score is the real part of their Hermitian product,

    s(m, n) = sum_c softplus(q_c) softplus(k_c) cos((m - n) theta_c - delta_hc),

with delta [H, K] a learned phase bias on the keys, kept in [-2 pi, 0] (x-transformers'
`PolarEmbedding` clamps it there; zero init). With delta = 0 the score depends on the positions
only through m - n, and the non-negative magnitudes keep content ("what") out of the phase
("where").
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from pe_jax._validate import check_int_positions, check_positive, check_positive_int, check_rank
from pe_jax.encodings._rope import _check_positions_shape, _cos_sin


def pope_inv_freq(head_dim: int, *, base: float = 10000.0) -> jax.Array:
    """PoPE's K frequencies theta_c = base ** (-c / K), c = 0 .. K - 1: float32 [K]."""
    head_dim = check_positive_int("head_dim", head_dim)
    base = check_positive("base", base)
    return jnp.asarray(base ** (-np.arange(head_dim, dtype=np.float64) / head_dim), jnp.float32)


def clamp_phase_bias(phase_bias: jax.Array) -> jax.Array:
    """delta clipped to [-2 pi, 0], the range x-transformers keeps PoPE's key phase bias in."""
    return jnp.clip(phase_bias, -2.0 * math.pi, 0.0)


def apply_pope(
    x: jax.Array,
    positions: jax.Array,
    *,
    inv_freq: jax.Array,
    phase_bias: jax.Array | None = None,
) -> jax.Array:
    """PoPE's Cartesian form [softplus(x) cos(phi), softplus(x) sin(phi)], phi = p theta + delta.

    The dot product of apply_pope(q, m) with apply_pope(k, n, phase_bias=delta) is the PoPE
    score s(m, n) of the module docstring. Angles are formed in float32 with RoPE's exact
    position-frequency product; the result is cast back to x.dtype.

    Args:
      x: float [..., L, H, K].
      positions: int [L] or [B, L].
      inv_freq: float [K] (see `pope_inv_freq`).
      phase_bias: float [H, K] added to the phase (keys), or None (queries). Used as given:
        clamp it with `clamp_phase_bias` first to follow the paper's range.

    Returns:
      [..., L, H, 2K] in x.dtype.

    Raises:
      ValueError: x not floating of rank >= 3; inv_freq not [K]; phase_bias not [H, K];
        positions not int or not matching x's [..., L] dims.
    """
    check_rank("x", x, min_ndim=3)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"x must be a floating array, got dtype {x.dtype}.")
    inv_freq = jnp.asarray(inv_freq, jnp.float32)
    if inv_freq.shape != (x.shape[-1],):
        raise ValueError(f"inv_freq must have shape [{x.shape[-1]}] (K), got {inv_freq.shape}.")
    positions = check_int_positions("positions", positions)
    _check_positions_shape("positions", positions.shape, "x", x.shape[:-2])
    cos, sin = _cos_sin(positions, inv_freq)  # [..., L, K]
    cos, sin = cos[..., None, :], sin[..., None, :]  # head axis
    if phase_bias is not None:
        phase_bias = jnp.asarray(phase_bias, jnp.float32)
        if phase_bias.shape != x.shape[-2:]:
            raise ValueError(
                f"phase_bias must have shape [H, K] = {list(x.shape[-2:])}, got {phase_bias.shape}."
            )
        cos_b, sin_b = jnp.cos(phase_bias), jnp.sin(phase_bias)
        cos, sin = cos * cos_b - sin * sin_b, sin * cos_b + cos * sin_b
    magnitude = jax.nn.softplus(x.astype(jnp.float32))
    return jnp.concatenate([magnitude * cos, magnitude * sin], axis=-1).astype(x.dtype)


def pope_scores(
    q: jax.Array,
    k: jax.Array,
    q_positions: jax.Array,
    k_positions: jax.Array,
    *,
    inv_freq: jax.Array,
    phase_bias: jax.Array | None = None,
) -> jax.Array:
    """PoPE scores s(m, n) = sum_c softplus(q_c) softplus(k_c) cos((m - n) theta_c - delta_hc).

    Unscaled (divide by sqrt(K) as for q.k). Float32 accumulation.

    Args:
      q: float [B, L, H, K]; k: float [B, S, H, K].
      q_positions: int [L] or [B, L]; k_positions: int [S] or [B, S].
      inv_freq: float [K]; phase_bias: float [H, K] or None (zero).

    Returns:
      float32 [B, H, L, S].
    """
    q2 = apply_pope(q, q_positions, inv_freq=inv_freq)
    k2 = apply_pope(k, k_positions, inv_freq=inv_freq, phase_bias=phase_bias)
    return jnp.einsum("blhk,bshk->bhls", q2, k2, preferred_element_type=jnp.float32)
