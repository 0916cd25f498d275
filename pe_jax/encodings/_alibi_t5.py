"""Fixed-form attention-logit biases: ALiBi slopes, T5 relative buckets, Sandwich.

Every bias function maps query positions (int [L] or [B, L]) and key positions (int [S] or
[B, S]) to a float32 bias of shape [1, H, L, S] when both are 1-D and [B, H, L, S] when either
is 2-D, to be added to the attention logits. The batch axis is only materialised when the
positions carry one. The pairing helpers here are shared with `_learned_bias.py`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from pe_jax._validate import (
    check_int_positions,
    check_positive,
    check_positive_int,
    check_rank,
)
from pe_jax.encodings._positions import map_gaps


def pair_positions(q_positions, k_positions) -> tuple[jax.Array, jax.Array]:
    """Validates positions and returns them as int32 [b, L, 1] and [b, 1, S] (b = 1 or B)."""
    q = check_int_positions("q_positions", q_positions)
    k = check_int_positions("k_positions", k_positions)
    q = q if q.ndim == 2 else q[None]
    k = k if k.ndim == 2 else k[None]
    bq, bk = q.shape[0], k.shape[0]
    if bq != bk and 1 not in (bq, bk):
        raise ValueError(
            f"q_positions and k_positions must have the same batch size (or one of them 1-D), "
            f"got shapes {q.shape} and {k.shape}."
        )
    return q[:, :, None], k[:, None, :]


def head_vector(name: str, x, num_heads: int | None = None) -> jax.Array:
    """Returns a per-head parameter as float32 [H], or raises ValueError naming it."""
    check_rank(name, x, min_ndim=1, max_ndim=1)
    if num_heads is not None and jnp.shape(x)[0] != num_heads:
        raise ValueError(f"{name} must have shape ({num_heads},), got shape {jnp.shape(x)}.")
    return jnp.asarray(x, jnp.float32)


def alibi_slopes(num_heads: int) -> jax.Array:
    """ALiBi head slopes (Press et al. 2022, "Train Short, Test Long", Sec. 3).

    For H a power of two the slopes are the geometric sequence 2^(-8/H), 2^(-16/H), ...,
    2^(-8) (start 2^(-8/H), ratio 2^(-8/H)). Otherwise, with n the largest power of two below
    H, they are the n slopes of the n-head sequence followed by every other slope of the
    2n-head sequence, `slopes(2n)[0::2][: H - n]` (the rule of the paper's official code).

    Args:
      num_heads: H >= 1.

    Returns:
      float32 [H], decreasing for powers of two.

    Raises:
      ValueError: if `num_heads` is not an integer >= 1.
    """
    num_heads = check_positive_int("num_heads", num_heads)
    return jnp.asarray(_alibi_slopes_list(num_heads), jnp.float32)


def _alibi_slopes_list(num_heads: int) -> list[float]:
    # Exponents are computed directly (not start * ratio**i) so that powers of two are exact.
    if num_heads & (num_heads - 1) == 0:
        return [2.0 ** (-8.0 * (i + 1) / num_heads) for i in range(num_heads)]
    n = 1 << (num_heads.bit_length() - 1)
    return _alibi_slopes_list(n) + _alibi_slopes_list(2 * n)[0::2][: num_heads - n]


def alibi_bias(
    q_positions,
    k_positions,
    *,
    slopes,
    bidirectional: bool = False,
    left_offset: float = 0.0,
    distances=None,
) -> jax.Array:
    """ALiBi linear bias (Press et al. 2022): b_h(i, j) = -m_h * (i - j).

    Causal form (`bidirectional=False`, the paper's): -m_h * max(i - j, 0). Keys after the
    query (j > i) are expected to be masked by the caller; they get 0, the value at distance 0,
    as the reference implementations (lower-triangular distance matrix) do, so the bias never
    holds inf/NaN. Bidirectional form (encoders; not in the paper):

        b_h(i, j) = -m_h * |i - j| + left_offset * m_h * [i > j].

    The symmetric form (left_offset = 0) cannot tell a key on the left from one on the right.
    Ruoss et al. 2023's official code (google-deepmind/randomized_positional_encodings,
    `models/positional_encodings.py`) adds 0.5 * m_h on the strictly lower triangle (keys
    before the query) "to (arbitrarily) break the symmetry": left_offset = 0.5.

    With `distances` (Ruoss et al.'s randomized ALiBi, see `randomized_distances`), the gap
    i - j is replaced by `map_gaps(i - j, distances)`: the n-th neighbour on either side sits at
    the sampled distance distances[n].

    Args:
      q_positions: int [L] or [B, L], query positions i.
      k_positions: int [S] or [B, S], key positions j.
      slopes: float [H], e.g. `alibi_slopes(H)`; may be learned.
      bidirectional: the |i - j| form instead of the causal one.
      left_offset: added (times m_h) to keys before the query; bidirectional only.
      distances: optional int [N], the distance of each index gap (entry 0 is 0).

    Returns:
      float32 [1, H, L, S] (both positions 1-D) or [B, H, L, S].

    Raises:
      ValueError: for non-integer positions or distances, mismatched batch sizes, `slopes` not
        rank 1, or a non-zero `left_offset` that is not a finite number or comes without
        `bidirectional`.
    """
    q, k = pair_positions(q_positions, k_positions)
    slopes = head_vector("slopes", slopes)
    if (
        isinstance(left_offset, bool)
        or not isinstance(left_offset, int | float)
        or not math.isfinite(left_offset)
    ):
        raise ValueError(f"left_offset must be a finite number, got {left_offset!r}.")
    if left_offset and not bidirectional:
        raise ValueError(
            f"left_offset applies to bidirectional biases only, got {left_offset!r} with "
            "bidirectional=False."
        )
    gap = q - k
    if distances is not None:
        gap = map_gaps(gap, distances)
    if bidirectional:
        distance = jnp.abs(gap).astype(jnp.float32) - left_offset * (gap > 0)
    else:
        distance = jnp.maximum(gap, 0).astype(jnp.float32)
    return -slopes[:, None, None] * distance[:, None]


def _check_t5_buckets(num_buckets, max_distance, bidirectional: bool) -> tuple[int, int, float]:
    """Returns (buckets per side, exact buckets, max_distance) after validating them."""
    num_buckets = check_positive_int("num_buckets", num_buckets)
    if bidirectional and (num_buckets % 2 or num_buckets < 4):
        raise ValueError(
            f"num_buckets must be an even integer >= 4 when bidirectional (half the buckets per "
            f"sign), got {num_buckets}."
        )
    if num_buckets < 2:
        raise ValueError(f"num_buckets must be an integer >= 2, got {num_buckets}.")
    side = num_buckets // 2 if bidirectional else num_buckets
    max_exact = side // 2
    max_distance = check_positive("max_distance", max_distance)
    if max_distance <= max_exact:
        raise ValueError(
            f"max_distance must be > the number of exact buckets ({max_exact} for "
            f"num_buckets={num_buckets}, bidirectional={bidirectional}), got {max_distance}."
        )
    return side, max_exact, max_distance


def t5_relative_bucket(
    relative_position,
    *,
    bidirectional: bool,
    num_buckets: int = 32,
    max_distance: float = 128,
) -> jax.Array:
    """T5 relative-position bucket (Raffel et al. 2020; mesh-tensorflow / HF T5 semantics).

    With n = relative_position = k_pos - q_pos (memory minus query):
    - bidirectional: half the buckets per sign; n > 0 adds num_buckets // 2; then |n| is
      bucketed in num_buckets // 2 buckets. Causal: n is replaced by max(-n, 0), so every key
      after the query shares bucket 0 with distance 0.
    - with N buckets left and max_exact = N // 2: distances below max_exact get their own
      bucket; larger ones get max_exact + floor(log(n / max_exact) / log(max_distance /
      max_exact) * (N - max_exact)), clipped to N - 1 (the log is computed in float32 as in
      the reference implementations).

    Args:
      relative_position: int array of any shape, k_pos - q_pos.
      bidirectional: whether positive offsets get their own half of the buckets.
      num_buckets: total buckets; >= 2, even and >= 4 when bidirectional.
      max_distance: distance from which everything falls in the last bucket; > max_exact.

    Returns:
      int32 array shaped like `relative_position`, values in [0, num_buckets).

    Raises:
      ValueError: for a non-integer `relative_position` or invalid `num_buckets` /
        `max_distance`.
    """
    ndim = jnp.ndim(relative_position)
    n = check_int_positions("relative_position", relative_position, min_ndim=0, max_ndim=ndim)
    side, max_exact, max_distance = _check_t5_buckets(num_buckets, max_distance, bidirectional)
    if bidirectional:
        offset = jnp.where(n > 0, side, 0)
        n = jnp.abs(n)
    else:
        offset = 0
        n = jnp.maximum(-n, 0)
    # max(n, max_exact) keeps log finite for the small distances the `where` discards anyway.
    ratio = jnp.maximum(n, max_exact).astype(jnp.float32) / max_exact
    log_bucket = jnp.log(ratio) / math.log(max_distance / max_exact) * (side - max_exact)
    large = jnp.minimum(max_exact + log_bucket.astype(jnp.int32), side - 1)
    return (offset + jnp.where(n < max_exact, n, large)).astype(jnp.int32)


def t5_bias(
    q_positions,
    k_positions,
    *,
    table,
    bidirectional: bool,
    max_distance: float = 128,
) -> jax.Array:
    """T5 relative attention bias (Raffel et al. 2020): b_h(i, j) = table[bucket(j - i), h].

    Args:
      q_positions: int [L] or [B, L].
      k_positions: int [S] or [B, S].
      table: float [num_buckets, H], learned bias per bucket and head.
      bidirectional: see `t5_relative_bucket` (True for encoders, False for decoders).
      max_distance: see `t5_relative_bucket`.

    Returns:
      float32 [1, H, L, S] (both positions 1-D) or [B, H, L, S].

    Raises:
      ValueError: for non-integer positions, a `table` that is not rank 2, or an invalid
        number of buckets (`table.shape[0]`) / `max_distance`.
    """
    check_rank("table", table, min_ndim=2, max_ndim=2)
    q, k = pair_positions(q_positions, k_positions)
    buckets = t5_relative_bucket(
        k - q,
        bidirectional=bidirectional,
        num_buckets=int(jnp.shape(table)[0]),
        max_distance=max_distance,
    )
    values = jnp.asarray(table, jnp.float32)[buckets]  # [b, L, S, H]
    return jnp.moveaxis(values, -1, 1)


def sandwich_bias(
    q_positions,
    k_positions,
    *,
    num_heads: int,
    dim: int = 128,
    max_wavelength: float = 10000.0,
) -> jax.Array:
    """Sandwich bias (Chi et al. 2023, "Dissecting Transformer Length Extrapolation ...").

    The inner product of two sinusoidal embeddings of width d = `dim` (the paper's d-bar),
    minus its value at distance 0, compressed per head like ALiBi:

      b_h(i, j) = (sum_{k=1}^{d/2} cos((i - j) / w^(2k/d)) - d/2) / r_h,  r_h = 8h / H,

    for heads h = 1..H and w = `max_wavelength`. The per-head ratio r_h and the subtraction
    of d/2 (so b_h(i, i) = 0; a per-head constant, which softmax ignores) follow the NeMo
    implementation of the paper's construction. The bias is symmetric in i - j; a causal model
    masks j > i. Computed as -2 * sum sin^2((i - j) / (2 w^(2k/d))), which equals the above
    and keeps precision near distance 0.

    Args:
      q_positions: int [L] or [B, L].
      k_positions: int [S] or [B, S].
      num_heads: H >= 1.
      dim: even d-bar >= 2 (the paper uses 128).
      max_wavelength: w > 0.

    Returns:
      float32 [1, H, L, S] (both positions 1-D) or [B, H, L, S].

    Raises:
      ValueError: for non-integer positions or invalid `num_heads` / `dim` /
        `max_wavelength`.
    """
    num_heads = check_positive_int("num_heads", num_heads)
    dim = check_positive_int("dim", dim)
    if dim % 2:
        raise ValueError(f"dim must be even, got {dim}.")
    max_wavelength = check_positive("max_wavelength", max_wavelength)
    q, k = pair_positions(q_positions, k_positions)
    exponents = 2.0 * np.arange(1, dim // 2 + 1, dtype=np.float64) / dim
    half_freqs = jnp.asarray(0.5 * max_wavelength**-exponents, jnp.float32)
    distance = (q - k).astype(jnp.float32)
    base = -2.0 * jnp.sum(jnp.square(jnp.sin(distance[..., None] * half_freqs)), axis=-1)
    ratios = jnp.asarray(8.0 * np.arange(1, num_heads + 1) / num_heads, jnp.float32)
    return base[:, None] / ratios[:, None, None]
