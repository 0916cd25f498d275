"""Which positions are fed to an encoding: arange, randomized (Ruoss et al. 2023), shifted.

NoPE (Kazemnejad et al. 2023) is the absence of an encoding, not a choice of positions: use the
"none" adapter in `pe_jax.nn`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from pe_jax.encodings._checks import check_positive_int


def _check_batch_size(batch_size):
    if batch_size is not None:
        check_positive_int("batch_size", batch_size)


def arange_positions(length: int, *, offset: int = 0, batch_size: int | None = None) -> jax.Array:
    """Positions offset, offset + 1, ..., offset + length - 1.

    Args:
      length: L >= 1.
      offset: first position (e.g. the KV-cache offset when decoding), int >= 0.
      batch_size: if given, the positions are broadcast to [B, L].

    Returns:
      int32 [L] or [B, L].

    Raises:
      ValueError: length < 1, offset < 0, batch_size < 1.
    """
    length = check_positive_int("length", length)
    if isinstance(offset, int) and offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}.")
    _check_batch_size(batch_size)
    positions = jnp.arange(length, dtype=jnp.int32) + jnp.asarray(offset, jnp.int32)
    if batch_size is None:
        return positions
    return jnp.broadcast_to(positions, (batch_size, length))


def randomized_positions(
    key: jax.Array, length: int, *, max_length: int, batch_size: int | None = None
) -> jax.Array:
    """Sorted sample of `length` distinct positions from [0, max_length).

    Ruoss et al. 2023, "Randomized Positional Encodings Boost Length Generalization of
    Transformers": train (and test) with positions drawn as an ordered subset of a range much
    larger than the test length, so every position the model meets at test time was seen during
    training. Each example of a batch gets its own sample.

    Args:
      key: PRNG key.
      length: L >= 1.
      max_length: size of the range, >= length (2048 in the paper).
      batch_size: if given, B independent samples, [B, L].

    Returns:
      int32 [L] or [B, L], strictly increasing along the last axis.

    Raises:
      ValueError: length < 1, max_length < length, batch_size < 1.
    """
    length = check_positive_int("length", length)
    max_length = check_positive_int("max_length", max_length)
    if max_length < length:
        raise ValueError(f"max_length must be >= length ({length}), got {max_length}.")
    _check_batch_size(batch_size)

    def one(k):
        # Top-L of i.i.d. uniform scores is a uniform subset without replacement.
        scores = jax.random.uniform(k, (max_length,))
        _, idx = jax.lax.top_k(scores, length)
        return jnp.sort(idx).astype(jnp.int32)

    if batch_size is None:
        return one(key)
    return jax.vmap(one)(jax.random.split(key, batch_size))


def shifted_positions(
    key: jax.Array, length: int, *, max_shift: int, batch_size: int | None = None
) -> jax.Array:
    """Consecutive positions starting at a random offset drawn uniformly from [0, max_shift].

    A random global shift (e.g. Kiyono et al. 2021, "SHAPE: Shifted Absolute Position
    Embedding"): absolute encodings then cannot rely on the first position being 0, while
    relative ones are unaffected.

    Args:
      key: PRNG key.
      length: L >= 1.
      max_shift: largest offset, >= 0.
      batch_size: if given, one offset per example, [B, L].

    Returns:
      int32 [L] or [B, L].

    Raises:
      ValueError: length < 1, max_shift < 0, batch_size < 1.
    """
    length = check_positive_int("length", length)
    if not isinstance(max_shift, int) or max_shift < 0:
        raise ValueError(f"max_shift must be an integer >= 0, got {max_shift!r}.")
    _check_batch_size(batch_size)
    shape = () if batch_size is None else (batch_size, 1)
    offset = jax.random.randint(key, shape, 0, max_shift + 1, dtype=jnp.int32)
    return jnp.arange(length, dtype=jnp.int32) + offset
