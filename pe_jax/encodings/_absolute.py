"""Input-place encodings: vectors added to the token embeddings, one per absolute position.

These are the rungs of the ladder in "You could have designed state of the art positional
encoding" (Fleetwood, 2024): the raw integer, the integer normalised by the length, its binary
digits, and the sinusoids of Vaswani et al. (2017) that are a smooth version of those digits.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from pe_jax._validate import check_int_positions, check_positive, check_positive_int


def _expand(positions: jax.Array, dim: int) -> jax.Array:
    return jnp.broadcast_to(positions[..., None], (*positions.shape, dim))


def integer_positions(positions, dim: int, *, dtype=jnp.float32) -> jax.Array:
    """The raw integer position repeated over every dimension: PE[p, i] = p.

    The first rung of the ladder: unbounded, so it dwarfs the token embeddings as p grows.

    Args:
      positions: int [L] or [B, L].
      dim: embedding width D >= 1.
      dtype: output dtype.

    Returns:
      [..., L, D] array of `dtype`.

    Raises:
      ValueError: non-integer positions, dim < 1.
    """
    positions = check_int_positions("positions", positions)
    dim = check_positive_int("dim", dim)
    return _expand(positions.astype(jnp.float32), dim).astype(dtype)


def normalized_positions(positions, dim: int, *, length: int, dtype=jnp.float32) -> jax.Array:
    """The position divided by the sequence length: PE[p, i] = p / length.

    Bounded in [0, 1), but the same offset means different values at different lengths, so the
    model cannot learn a length-independent notion of distance.

    Args:
      positions: int [L] or [B, L].
      dim: embedding width D >= 1.
      length: the normaliser (usually the sequence length), >= 1.
      dtype: output dtype.

    Returns:
      [..., L, D] array of `dtype`.

    Raises:
      ValueError: non-integer positions, dim < 1, length < 1.
    """
    positions = check_int_positions("positions", positions)
    dim = check_positive_int("dim", dim)
    length = check_positive_int("length", length)
    return _expand(positions.astype(jnp.float32) / length, dim).astype(dtype)


def binary_positions(positions, dim: int, *, dtype=jnp.float32) -> jax.Array:
    """The binary digits of the position, least significant first: PE[p, i] = (p >> i) & 1.

    Bounded and unique for p < 2**D, but the low bits jump between 0 and 1 at every step: a
    discontinuous signal the sinusoids below smooth out.

    Args:
      positions: non-negative int [L] or [B, L].
      dim: number of bits D, 1 <= D <= 31.
      dtype: output dtype.

    Returns:
      [..., L, D] array of `dtype` with values in {0, 1}.

    Raises:
      ValueError: non-integer positions, dim outside [1, 31].
    """
    positions = check_int_positions("positions", positions)
    dim = check_positive_int("dim", dim)
    if dim > 31:
        raise ValueError(f"dim must be in [1, 31] for int32 positions, got {dim}.")
    bits = jnp.arange(dim, dtype=jnp.int32)
    return ((positions[..., None] >> bits) & 1).astype(dtype)


def _sinusoid_angles(positions: jax.Array, dim: int, max_wavelength: float) -> jax.Array:
    # Angles are formed in float32 whatever the output dtype: p * w**(-2i/D) loses all
    # precision in bfloat16 once p is in the hundreds.
    inv_freq = max_wavelength ** (-jnp.arange(0, dim, 2, dtype=jnp.float32) / dim)
    return positions.astype(jnp.float32)[..., None] * inv_freq


def sinusoidal(
    positions, dim: int, *, max_wavelength: float = 10000.0, dtype=jnp.float32
) -> jax.Array:
    """Sinusoidal encoding of Vaswani et al. 2017, "Attention Is All You Need", sec. 3.5.

    PE[p, 2i] = sin(p * w_i), PE[p, 2i + 1] = cos(p * w_i), w_i = max_wavelength ** (-2i / D).

    Each (sin, cos) pair is a point on a circle turning at its own frequency, so
    PE[p + k] = R(k) PE[p] with a block-diagonal rotation R(k) that depends only on k.
    Sin and cos are interleaved (dimension 2i and 2i + 1), as in the paper.

    Args:
      positions: int [L] or [B, L].
      dim: even embedding width D >= 2.
      max_wavelength: the longest wavelength / (2 pi), 10000 in the paper.
      dtype: output dtype; the angles are always float32.

    Returns:
      [..., L, D] array of `dtype`.

    Raises:
      ValueError: non-integer positions, odd or non-positive dim, max_wavelength <= 0.
    """
    positions = check_int_positions("positions", positions)
    dim = check_positive_int("dim", dim)
    if dim % 2:
        raise ValueError(f"dim must be even for sinusoidal, got {dim}.")
    max_wavelength = check_positive("max_wavelength", max_wavelength)
    angles = _sinusoid_angles(positions, dim, max_wavelength)
    pe = jnp.stack([jnp.sin(angles), jnp.cos(angles)], axis=-1)
    return pe.reshape(*angles.shape[:-1], dim).astype(dtype)


def sinusoidal_table(
    length: int, dim: int, *, max_wavelength: float = 10000.0, dtype=jnp.float32
) -> jax.Array:
    """The table form of `sinusoidal`: rows 0..length-1, [length, D].

    Raises:
      ValueError: length < 1, plus the errors of `sinusoidal`.
    """
    length = check_positive_int("length", length)
    positions = jnp.arange(length, dtype=jnp.int32)
    return sinusoidal(positions, dim, max_wavelength=max_wavelength, dtype=dtype)
