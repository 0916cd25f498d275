"""HoPE: RoPE keeping only its high-frequency components, the rest position-independent.

Chen et al. 2024, "HoPE: A Novel Positional Encoding Without Long-Term Decay for Enhanced
Context Awareness and Extrapolation" (arXiv:2410.21216, ACL 2025). The paper finds that RoPE's
low-frequency components, whose angle never completes a turn within the training length, are
the ones that learn the U-shaped "long-term decay" attention and hurt extrapolation; HoPE
replaces them by position-independent components and keeps only the high-frequency ones.

With theta_i = base ** (-2i / R) and training length L:

    theta'_i = theta_i   if theta_i * L >= 2 pi   (at least one full period within L)
    theta'_i = 0         otherwise                 (pair i is not rotated: position-independent)

so q.k = sum over kept pairs of rotated terms + sum over the other pairs of plain dot products.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from pe_jax._validate import check_positive, check_positive_int


def hope_inv_freq(rotary_dim: int, *, train_length: int, base: float = 10000.0) -> jax.Array:
    """HoPE's inverse frequencies: RoPE's theta_i where theta_i * train_length >= 2 pi, else 0.

    Args:
      rotary_dim: R, even, >= 2.
      train_length: L, the training sequence length that decides which frequencies are "high".
      base: RoPE base.

    Returns:
      float32 [R/2]; use with `apply_rope` (a zero frequency leaves its pair unchanged).

    Raises:
      ValueError: R not a positive even int, train_length < 1, base <= 0.
    """
    rotary_dim = check_positive_int("rotary_dim", rotary_dim)
    if rotary_dim % 2:
        raise ValueError(f"rotary_dim must be even, got {rotary_dim}.")
    train_length = check_positive_int("train_length", train_length)
    base = check_positive("base", base)
    theta = base ** (-np.arange(0, rotary_dim, 2, dtype=np.float64) / rotary_dim)
    theta = np.where(theta * train_length >= 2 * math.pi, theta, 0.0)
    return jnp.asarray(theta, jnp.float32)
