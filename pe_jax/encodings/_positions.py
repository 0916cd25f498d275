"""Which positions are fed to an encoding: arange, randomized (Ruoss et al. 2023), shifted;
and the randomized relative distances of Ruoss et al.'s relative encodings.

NoPE (Kazemnejad et al. 2023) is the absence of an encoding, not a choice of positions: use the
"none" adapter in `pe_jax.nn`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from pe_jax._validate import check_int_positions, check_positive_int


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
    key: jax.Array,
    length: int,
    *,
    max_length: int,
    batch_size: int | None = None,
    lengths: jax.Array | None = None,
) -> jax.Array:
    """Sorted sample of `length` distinct positions from [0, max_length).

    Ruoss et al. 2023, "Randomized Positional Encodings Boost Length Generalization of
    Transformers": train (and test) with positions drawn as an ordered subset of a range much
    larger than the test length, so every position the model meets at test time was seen during
    training. Each example of a batch gets its own sample.

    For padded batches, `lengths` gives each example's number of real tokens n (a prefix of
    the L slots): the sample is then of n positions, drawn as for an unpadded input of
    length n, and the padding slots repeat the last of them. Without it, a short example in a
    wide batch would get the first n of L sorted draws, denser than a sample of n.

    Args:
      key: PRNG key.
      length: L >= 1.
      max_length: size of the range, >= length (2048 in the paper).
      batch_size: if given, B independent samples, [B, L].
      lengths: optional int [B] real lengths in [1, L]; implies batch_size = B.

    Returns:
      int32 [L] or [B, L], strictly increasing along the last axis (over the first lengths[b]
      entries when `lengths` is given).

    Raises:
      ValueError: length < 1, max_length < length, batch_size < 1, or lengths not of shape
        [batch_size].
    """
    length = check_positive_int("length", length)
    max_length = check_positive_int("max_length", max_length)
    if max_length < length:
        raise ValueError(f"max_length must be >= length ({length}), got {max_length}.")
    _check_batch_size(batch_size)
    index = jnp.arange(length, dtype=jnp.int32)

    def one(k, n):
        # Top-L of i.i.d. uniform scores is a uniform subset without replacement, in a uniformly
        # random order, so its first n entries are a uniform n-subset.
        scores = jax.random.uniform(k, (max_length,))
        _, idx = jax.lax.top_k(scores, length)
        idx = jnp.sort(jnp.where(index < n, idx, max_length)).astype(jnp.int32)
        return jnp.where(index < n, idx, idx[jnp.maximum(n, 1) - 1])

    if lengths is not None:
        batch_size = _check_lengths(lengths, batch_size)
    elif batch_size is None:
        return one(key, length)
    else:
        lengths = jnp.full((batch_size,), length, jnp.int32)
    return jax.vmap(one)(jax.random.split(key, batch_size), lengths)


def shifted_positions(
    key: jax.Array,
    length: int,
    *,
    max_shift: int,
    batch_size: int | None = None,
    lengths: jax.Array | None = None,
) -> jax.Array:
    """Consecutive positions starting at a random offset drawn uniformly from [0, max_shift].

    A random global shift (e.g. Kiyono et al. 2021, "SHAPE: Shifted Absolute Position
    Embedding"): absolute encodings then cannot rely on the first position being 0, while
    relative ones are unaffected.

    With `lengths` (real tokens n per example, a prefix of the L slots), an example's offset is
    drawn from [0, max_shift + L - n], the range its last real position would have unpadded,
    and padding slots repeat the last real position.

    Args:
      key: PRNG key.
      length: L >= 1.
      max_shift: largest offset, >= 0.
      batch_size: if given, one offset per example, [B, L].
      lengths: optional int [B] real lengths in [1, L]; implies batch_size = B.

    Returns:
      int32 [L] or [B, L].

    Raises:
      ValueError: length < 1, max_shift < 0, batch_size < 1, or lengths not of shape
        [batch_size].
    """
    length = check_positive_int("length", length)
    if not isinstance(max_shift, int) or max_shift < 0:
        raise ValueError(f"max_shift must be an integer >= 0, got {max_shift!r}.")
    _check_batch_size(batch_size)
    index = jnp.arange(length, dtype=jnp.int32)
    if lengths is None:
        shape = () if batch_size is None else (batch_size, 1)
        offset = jax.random.randint(key, shape, 0, max_shift + 1, dtype=jnp.int32)
        return index + offset
    batch_size = _check_lengths(lengths, batch_size)
    n = lengths.astype(jnp.int32)[:, None]
    offset = jax.random.randint(key, (batch_size, 1), 0, max_shift + length - n + 1)
    return offset.astype(jnp.int32) + jnp.minimum(index, jnp.maximum(n, 1) - 1)


def randomized_distances(key: jax.Array, length: int, *, max_length: int) -> jax.Array:
    """Distances of index gaps 0..L-1: 0, then a sorted sample of L - 1 distinct distances.

    Ruoss et al. 2023, "Randomized Positional Encodings Boost Length Generalization of
    Transformers": the official code (google-deepmind/randomized_positional_encodings,
    `models/positional_encodings.py`) randomizes its relative encodings (ALiBi and
    Transformer-XL) by sampling the *distances*, not positions: L - 1 distinct values from
    [1, max_length), sorted, so that the n-th nearest key on either side is at distance d_n.
    It draws them afresh in every attention layer's forward pass, shared by the batch.

    Args:
      key: PRNG key.
      length: L >= 1 (the number of keys; gaps 0..L-1 occur).
      max_length: L_max >= length; distances are drawn from [1, L_max).

    Returns:
      int32 [L]: entry n is the distance of index gap n; entry 0 is 0 and the rest strictly
      increase within [1, max_length). Use with `map_gaps`.

    Raises:
      ValueError: length < 1 or max_length < length.
    """
    length = check_positive_int("length", length)
    max_length = check_positive_int("max_length", max_length)
    if max_length < length:
        raise ValueError(f"max_length must be >= length ({length}), got {max_length}.")
    if length == 1:
        return jnp.zeros((1,), jnp.int32)
    # Top-(L-1) of i.i.d. uniform scores over the L_max - 1 candidates is a uniform subset
    # without replacement.
    _, idx = jax.lax.top_k(jax.random.uniform(key, (max_length - 1,)), length - 1)
    sample = jnp.sort(idx).astype(jnp.int32) + 1
    return jnp.concatenate([jnp.zeros((1,), jnp.int32), sample])


def map_gaps(gaps: jax.Array, distances: jax.Array) -> jax.Array:
    """Signed gaps g -> sign(g) * distances[min(|g|, N - 1)]: relative distances from a table.

    With `distances` from `randomized_distances`, each side of a query sees its n-th
    neighbour at the sampled distance d_n, mirrored (as Ruoss et al.'s code does for one
    randomized side). Gaps beyond N - 1 take the last entry.

    Args:
      gaps: int array of any shape, e.g. q_pos - k_pos.
      distances: int [N], N >= 1; entry 0 should be 0.

    Returns:
      int32, shaped like `gaps`.

    Raises:
      ValueError: non-integer arguments, or `distances` not of rank 1.
    """
    gaps = check_int_positions("gaps", gaps, min_ndim=0, max_ndim=jnp.ndim(gaps))
    distances = check_int_positions("distances", distances, min_ndim=1, max_ndim=1)
    magnitude = distances[jnp.minimum(jnp.abs(gaps), distances.shape[0] - 1)]
    return jnp.sign(gaps) * magnitude


def _check_lengths(lengths: jax.Array, batch_size: int | None) -> int:
    """The batch size of a [B] lengths array (which must match batch_size if given)."""
    shape = getattr(lengths, "shape", None)
    if shape is None or len(shape) != 1 or (batch_size is not None and shape[0] != batch_size):
        want = "[B]" if batch_size is None else f"[{batch_size}]"
        raise ValueError(f"lengths must have shape {want}, got {shape}.")
    return shape[0]
