"""Content x position encodings: q-dependent terms added to the attention logits.

Every `*_logits` function returns UNSCALED dot products [B, H, L, S]; the attention computes

    logits = (q . k + terms) / sqrt(K) + bias.

Terms are computed and returned in float32 whatever the dtype of q and k, so that bfloat16
activations do not round the positional part of the logits.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from pe_jax._validate import (
    check_choice,
    check_int_positions,
    check_positive,
    check_positive_int,
    check_rank,
)

# ----------------------------------------------------------------------------- argument checks


def _activations(name: str, x) -> jax.Array:
    check_rank(name, x, min_ndim=4, max_ndim=4)
    return jnp.asarray(x, jnp.float32)


def _same_heads(q: jax.Array, k: jax.Array) -> None:
    (bq, _, hq, kq), (bk, _, hk, kk) = q.shape, k.shape
    if (bq, hq, kq) != (bk, hk, kk):
        raise ValueError(
            f"q [B, L, H, K] and k [B, S, H, K] must agree on B, H and K, got q shape {q.shape} "
            f"and k shape {k.shape}."
        )


def _positions(name: str, positions, *, batch: int, length: int | None) -> jax.Array:
    positions = check_int_positions(name, positions)
    if length is not None and positions.shape[-1] != length:
        raise ValueError(f"{name} must have length {length}, got shape {positions.shape}.")
    if positions.ndim == 2 and positions.shape[0] not in (1, batch):
        raise ValueError(f"{name} must have batch size 1 or {batch}, got shape {positions.shape}.")
    return positions


def _table(name: str, table, *, rows: int | None, num_heads: int, head_dim: int | None):
    """Checks a [rows, K] (shared by heads) or [rows, H, K] (per head) table; None = any >= 1."""
    check_rank(name, table, min_ndim=2, max_ndim=3)
    shape = jnp.shape(table)
    rows = max(shape[0], 1) if rows is None else rows
    head_dim = shape[-1] if head_dim is None else head_dim
    allowed = [(rows, head_dim), (rows, num_heads, head_dim)]
    if shape not in allowed:
        raise ValueError(f"{name} must have shape {allowed[0]} or {allowed[1]}, got {shape}.")
    return jnp.asarray(table, jnp.float32)


def _init_shape(rows: int, head_dim: int, num_heads: int | None) -> tuple[int, ...]:
    head_dim = check_positive_int("head_dim", head_dim)
    if num_heads is None:
        return (rows, head_dim)
    return (rows, check_positive_int("num_heads", num_heads), head_dim)


def _shaw_index(
    q_positions, k_positions, max_distance: int, *, batch: int, length: int, keys: int | None = None
) -> jax.Array:
    """Checks the positions; clip(k_pos - q_pos, -M, M) + M as int32 [1|B, 1, L, S], the row of
    the Shaw table."""
    q_positions = _positions("q_positions", q_positions, batch=batch, length=length)
    k_positions = _positions("k_positions", k_positions, batch=batch, length=keys)
    rel = k_positions[..., None, :] - q_positions[..., :, None]
    rel = rel[None, None] if rel.ndim == 2 else rel[:, None]
    return jnp.clip(rel, -max_distance, max_distance) + max_distance


def _nonnegative(name: str, value) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}.")
    return float(value)


# ----------------------------------------------------------------------------- Shaw et al. 2018


def shaw_relative_logits(
    q: jax.Array,
    q_positions: jax.Array,
    k_positions: jax.Array,
    *,
    rel_key_table: jax.Array,
    max_distance: int,
) -> jax.Array:
    """Relative-key logit terms of Shaw et al. 2018, "Self-Attention with Relative Position
    Representations": term_ij = q_i . a^K_{clip(j - i, -M, M)}.

    The paper shares one table across heads ([2M+1, K]); a per-head table [2M+1, H, K] is also
    accepted. Computed as z = q . table for the 2M+1 embeddings ([B, H, L, 2M+1]) and a gather by
    the clipped relative index, so no [L, S, K] tensor is built.

    Args:
      q: queries [B, L, H, K], any float dtype.
      q_positions: int [L] or [B, L].
      k_positions: int [S] or [B, S].
      rel_key_table: float [2M+1, K] or [2M+1, H, K]; row r embeds the distance r - M.
      max_distance: M >= 1; distances beyond +-M use the edge rows.

    Returns:
      float32 [B, H, L, S], unscaled (the attention divides by sqrt(K)).

    Raises:
      ValueError: bad ranks or shapes, max_distance < 1, non-integer positions.
    """
    q = _activations("q", q)
    batch, length, heads, head_dim = q.shape
    max_distance = check_positive_int("max_distance", max_distance)
    rows = 2 * max_distance + 1
    table = _table("rel_key_table", rel_key_table, rows=rows, num_heads=heads, head_dim=head_dim)
    index = _shaw_index(q_positions, k_positions, max_distance, batch=batch, length=length)
    z = jnp.einsum("blhk,rk->bhlr" if table.ndim == 2 else "blhk,rhk->bhlr", q, table)
    index = jnp.broadcast_to(index, (batch, heads, length, index.shape[-1]))
    return jnp.take_along_axis(z, index, axis=-1)


def shaw_relative_values(
    probs: jax.Array,
    q_positions: jax.Array,
    k_positions: jax.Array,
    *,
    rel_value_table: jax.Array,
    max_distance: int,
) -> jax.Array:
    """Relative-value term of Shaw et al. 2018: out_i = sum_j probs_ij a^V_{clip(j - i, -M, M)}.

    Add the result to probs @ v. The probabilities are first summed into the 2M+1 distance
    buckets (a scatter-add, [B, H, L, 2M+1]) and then multiplied by the table, so no
    [L, S, K] tensor is built.

    Args:
      probs: attention weights [B, H, L, S] (after softmax).
      q_positions: int [L] or [B, L].
      k_positions: int [S] or [B, S].
      rel_value_table: float [2M+1, K] (shared by heads, as in the paper) or [2M+1, H, K].
      max_distance: M >= 1.

    Returns:
      float32 [B, L, H, K].

    Raises:
      ValueError: bad ranks or shapes, max_distance < 1, non-integer positions.
    """
    probs = _activations("probs", probs)
    batch, heads, length, keys = probs.shape
    max_distance = check_positive_int("max_distance", max_distance)
    rows = 2 * max_distance + 1
    table = _table("rel_value_table", rel_value_table, rows=rows, num_heads=heads, head_dim=None)
    index = _shaw_index(
        q_positions, k_positions, max_distance, batch=batch, length=length, keys=keys
    )
    b, h, i = jnp.ogrid[:batch, :heads, :length]
    buckets = jnp.zeros((batch, heads, length, rows), jnp.float32)
    buckets = buckets.at[b[..., None], h[..., None], i[..., None], index].add(probs)
    return jnp.einsum("bhlr,rk->blhk" if table.ndim == 2 else "bhlr,rhk->blhk", buckets, table)


def init_shaw_tables(
    key: jax.Array,
    *,
    max_distance: int,
    head_dim: int,
    num_heads: int | None = None,
    stddev: float = 0.02,
) -> dict[str, jax.Array]:
    """Initial Shaw et al. 2018 tables, normal(0, stddev).

    Args:
      key: PRNG key.
      max_distance: M >= 1.
      head_dim: K.
      num_heads: None for tables shared by heads ([2M+1, K], as in the paper), else H
        ([2M+1, H, K]).
      stddev: >= 0.

    Returns:
      {"rel_key_table": float32, "rel_value_table": float32}, each [2M+1, K] or [2M+1, H, K].

    Raises:
      ValueError: non-positive sizes or negative stddev.
    """
    rows = 2 * check_positive_int("max_distance", max_distance) + 1
    shape = _init_shape(rows, head_dim, num_heads)
    stddev = _nonnegative("stddev", stddev)
    key_k, key_v = jax.random.split(key)
    return {
        "rel_key_table": stddev * jax.random.normal(key_k, shape, jnp.float32),
        "rel_value_table": stddev * jax.random.normal(key_v, shape, jnp.float32),
    }


# ----------------------------------------------------------------------------- Transformer-XL


def _sin_cos(positions: jax.Array, dim: int, max_wavelength: float):
    """sin and cos of p / w^(2f/dim), f < dim/2, each float32 [..., L, dim // 2]."""
    inv_freq = max_wavelength ** (-jnp.arange(0, dim, 2, dtype=jnp.float32) / dim)
    angle = positions.astype(jnp.float32)[..., None] * inv_freq
    return jnp.sin(angle), jnp.cos(angle)


def transformer_xl_logits(
    q: jax.Array,
    k: jax.Array,
    q_positions: jax.Array,
    k_positions: jax.Array,
    *,
    u: jax.Array,
    v: jax.Array,
    w_r: jax.Array,
    max_wavelength: float = 10000.0,
    distances: jax.Array | None = None,
) -> jax.Array:
    """Transformer-XL relative terms (Dai et al. 2019, sec. 3.3): (b) + (c) + (d) of

        A_ij = q_i.k_j (a) + q_i.W_R R_{i-j} (b) + u.k_j (c) + v.W_R R_{i-j} (d),

    where R_d is the sinusoid of the signed distance d = q_pos - k_pos with Vaswani's
    interleaved layout (R[2f] = sin(d / w^(2f/D_r)), R[2f+1] = cos(...)); the paper's code
    concatenates [sin, cos] instead, which is only a permutation of the learned rows of W_R.
    Keys after the query (bidirectional attention) get negative distances: sin is odd, so
    the two sides are distinguishable.

    No per-pair R is built ([L, S, D_r] or [L, S, H, K]) and positions need not be contiguous:
    with y = (q + v) W_R split into sin rows y_s and cos rows y_c, angle addition gives
        (b) + (d) = sum_f [y_s s_i + y_c c_i]_f c_jf + [y_c s_i - y_s c_i]_f s_jf,
    s, c being the sin and cos of each token's own position: one [L, D_r] x [D_r, S] matmul
    per (batch, head). As with RoPE, float32 angles of large positions are rounded, so a
    shift of all positions changes the terms by rounding only.

    With `distances` (Ruoss et al. 2023's randomized Transformer-XL, see
    `randomized_distances`), R is taken at the sampled signed distance
    d = `map_gaps(q_pos - k_pos, distances)`: z = y . R_d is formed for the 2N - 1 signed
    distances of the table ([B, H, L, 2N - 1]) and gathered by gap, as for Shaw's table.

    Args:
      q: queries [B, L, H, K].
      k: keys [B, S, H, K].
      q_positions: int [L] or [B, L].
      k_positions: int [S] or [B, S].
      u: content bias [H, K].
      v: position bias [H, K].
      w_r: projection of the sinusoid [D_r, H, K], D_r even.
      max_wavelength: w > 0.
      distances: optional int [N], the distance of each index gap (entry 0 is 0).

    Returns:
      float32 [B, H, L, S], unscaled (the attention adds q.k and divides by sqrt(K)).

    Raises:
      ValueError: bad ranks or shapes, odd D_r, non-integer positions or distances.
    """
    q, k = _activations("q", q), _activations("k", k)
    _same_heads(q, k)
    batch, length, heads, head_dim = q.shape
    keys = k.shape[1]
    for name, bias in (("u", u), ("v", v)):
        if jnp.shape(bias) != (heads, head_dim):
            raise ValueError(f"{name} must have shape {(heads, head_dim)}, got {jnp.shape(bias)}.")
    check_rank("w_r", w_r, min_ndim=3, max_ndim=3)
    rel_dim = w_r.shape[0]
    if w_r.shape[1:] != (heads, head_dim) or rel_dim % 2:
        raise ValueError(
            f"w_r must have shape [D_r, {heads}, {head_dim}] with D_r even, got {w_r.shape}."
        )
    max_wavelength = check_positive("max_wavelength", max_wavelength)
    q_positions = _positions("q_positions", q_positions, batch=batch, length=length)
    k_positions = _positions("k_positions", k_positions, batch=batch, length=keys)
    u, v, w_r = (jnp.asarray(x, jnp.float32) for x in (u, v, w_r))

    y = jnp.einsum("blhk,rhk->bhlr", q + v, w_r)
    y_sin, y_cos = y[..., 0::2], y[..., 1::2]
    content_bias = jnp.einsum("hk,bshk->bhs", u, k)[:, :, None, :]
    if distances is not None:
        return (
            _mapped_position_terms(
                y_sin, y_cos, q_positions, k_positions, distances, max_wavelength
            )
            + content_bias
        )
    sin_q, cos_q = _sin_cos(q_positions, rel_dim, max_wavelength)
    # Positions [L] or [B, L] -> [1|B, 1, L, F] to broadcast over heads.
    sin_q, cos_q = (x[None, None] if x.ndim == 2 else x[:, None] for x in (sin_q, cos_q))
    left = jnp.concatenate([y_sin * sin_q + y_cos * cos_q, y_cos * sin_q - y_sin * cos_q], -1)
    sin_k, cos_k = _sin_cos(k_positions, rel_dim, max_wavelength)
    right = jnp.concatenate([cos_k, sin_k], -1)
    right = jnp.broadcast_to(right, (batch, keys, rel_dim))
    position_terms = jnp.einsum("bhlf,bsf->bhls", left, right)
    return position_terms + content_bias


def _mapped_position_terms(y_sin, y_cos, q_positions, k_positions, distances, max_wavelength):
    """(b) + (d) with R at the signed distances of the `distances` table, [B, H, L, S]."""
    distances = check_int_positions("distances", distances, min_ndim=1, max_ndim=1)
    last = distances.shape[0] - 1
    signed = jnp.concatenate([-distances[:0:-1], distances])  # gaps -last .. last
    sin_r, cos_r = _sin_cos(signed, 2 * y_sin.shape[-1], max_wavelength)
    z = jnp.einsum("bhlf,rf->bhlr", y_sin, sin_r) + jnp.einsum("bhlf,rf->bhlr", y_cos, cos_r)
    gap = q_positions[..., :, None] - k_positions[..., None, :]
    index = jnp.clip(gap, -last, last) + last
    index = index[None, None] if index.ndim == 2 else index[:, None]
    batch, heads, length, _ = z.shape
    index = jnp.broadcast_to(index, (batch, heads, length, index.shape[-1]))
    return jnp.take_along_axis(z, index, axis=-1)


def init_transformer_xl_params(
    key: jax.Array, *, num_heads: int, head_dim: int, rel_dim: int
) -> dict[str, jax.Array]:
    """Initial Transformer-XL parameters.

    w_r ~ normal(0, 1 / rel_dim) (fan-in scaling, so W_R R has entries of variance ~1/2);
    u and v start at zero so that the model starts from terms (a) + (b).

    Args:
      key: PRNG key.
      num_heads: H.
      head_dim: K.
      rel_dim: D_r, the width of the sinusoid; must be even.

    Returns:
      {"u": float32 [H, K], "v": float32 [H, K], "w_r": float32 [D_r, H, K]}.

    Raises:
      ValueError: non-positive sizes or odd rel_dim.
    """
    heads = check_positive_int("num_heads", num_heads)
    head_dim = check_positive_int("head_dim", head_dim)
    rel_dim = check_positive_int("rel_dim", rel_dim)
    if rel_dim % 2:
        raise ValueError(f"rel_dim must be even (sin and cos pairs), got {rel_dim}.")
    w_r = jax.random.normal(key, (rel_dim, heads, head_dim), jnp.float32) / rel_dim**0.5
    zeros = jnp.zeros((heads, head_dim), jnp.float32)
    return {"u": zeros, "v": zeros, "w_r": w_r}


# ----------------------------------------------------------------------------- CoPE


def cope_logits(
    q: jax.Array,
    k: jax.Array,
    *,
    pos_table: jax.Array,
    causal: bool = True,
    mask: jax.Array | None = None,
) -> jax.Array:
    """Contextual position logit terms (Golovneva et al. 2024, "Contextual Position Encoding:
    Learning to Count What's Important").

        g_ij = sigmoid(q_i . k_j / sqrt(K)),   p_ij = min(sum_{t=j}^{i} g_it, npos - 1),
        z_i[p] = q_i . e[p],   term_ij = w z_i[ceil p_ij] + (1 - w) z_i[floor p_ij],
                               w = p_ij - floor p_ij.

    Gates are the sigmoid of the attention's own scaled logit q.k / sqrt(K), as in the
    paper's code snippet (the sigmoid of the logits after the 1/sqrt(K) scaling) and in
    x-transformers' CoPE (sigmoid of `sim`, already multiplied by the scale). Both add q.e
    after the scaling, while this term is returned unscaled and divided by sqrt(K) with q.k:
    the learned e absorbs that factor. Masked keys (mask False, or j after the query when
    causal) get gate 0, so they add nothing to any count, and their own term is 0.

    Query i sits at key index i + S - L (queries are the last L of the S keys, as when decoding
    with a KV cache); for L == S this is the usual j <= i.

    causal=False uses a two-sided count: p_ij sums the gates g_it of the keys t between j and
    the query, both ends included, on whichever side j lies. The count is unsigned, so e[p] does
    not tell left from right (let the mask or another encoding do that); with a causal mask it
    equals the causal count.

    Args:
      q: queries [B, L, H, K].
      k: keys [B, S, H, K].
      pos_table: e, float [npos, K] (shared by heads) or [npos, H, K].
      causal: mask keys after the query.
      mask: optional bool, broadcastable to [B, H, L, S] (e.g. [B|1, 1|H, L, S]); True = attend.

    Returns:
      float32 [B, H, L, S], unscaled (the attention adds q.k and divides by sqrt(K)).

    Raises:
      ValueError: bad ranks, shapes or dtypes of the arguments.
    """
    q, k = _activations("q", q), _activations("k", k)
    _same_heads(q, k)
    batch, length, heads, head_dim = q.shape
    keys = k.shape[1]
    table = _table("pos_table", pos_table, rows=None, num_heads=heads, head_dim=head_dim)
    npos = table.shape[0]
    check_choice("causal", causal, (True, False))
    shape = (batch, heads, length, keys)
    keep = jnp.ones(shape, bool)
    if mask is not None:
        check_rank("mask", mask, min_ndim=4, max_ndim=4)
        if jnp.result_type(mask) != jnp.bool_:
            raise ValueError(f"mask must be a bool array, got dtype {jnp.result_type(mask)}.")
        try:
            keep = jnp.broadcast_to(mask, shape)
        except ValueError:
            raise ValueError(
                f"mask must broadcast to [B, H, L, S] = {shape}, got shape {jnp.shape(mask)}."
            ) from None
    query_index = jnp.arange(length)[:, None] + (keys - length)
    key_index = jnp.arange(keys)[None, :]
    if causal:
        keep = keep & (key_index <= query_index)

    # The attention's scaled logit, formed as the attention forms it.
    scaled = jnp.einsum("blhk,bshk->bhls", q, k) * (1.0 / math.sqrt(head_dim))
    gates = jnp.where(keep, jax.nn.sigmoid(scaled), 0.0)
    if causal:
        # Gates after the query are 0, so a suffix sum is sum_{t=j}^{i}, as in the paper.
        positions = jax.lax.cumsum(gates, axis=3, reverse=True)
    else:
        before = key_index <= query_index
        after = key_index >= query_index
        left = jax.lax.cumsum(jnp.where(before, gates, 0.0), axis=3, reverse=True)
        right = jnp.cumsum(jnp.where(after, gates, 0.0), axis=-1)
        positions = jnp.where(before, left, right)
    positions = jnp.minimum(positions, npos - 1)

    z = jnp.einsum("blhk,pk->bhlp" if table.ndim == 2 else "blhk,phk->bhlp", q, table)
    floor = jnp.floor(positions)
    weight = positions - floor
    z_floor = jnp.take_along_axis(z, floor.astype(jnp.int32), axis=-1)
    z_ceil = jnp.take_along_axis(z, jnp.ceil(positions).astype(jnp.int32), axis=-1)
    return jnp.where(keep, weight * z_ceil + (1.0 - weight) * z_floor, 0.0)


def init_cope_table(
    key: jax.Array,
    *,
    npos: int,
    head_dim: int,
    num_heads: int | None = None,
    stddev: float = 0.02,
) -> jax.Array:
    """Initial CoPE position table e, normal(0, stddev) (stddev=0 gives the paper's zeros).

    Args:
      key: PRNG key.
      npos: number of integer positions; counts are clipped to npos - 1.
      head_dim: K.
      num_heads: None for a table shared by heads ([npos, K]), else H ([npos, H, K]).
      stddev: >= 0.

    Returns:
      float32 [npos, K] or [npos, H, K].

    Raises:
      ValueError: non-positive sizes or negative stddev.
    """
    shape = _init_shape(check_positive_int("npos", npos), head_dim, num_heads)
    stddev = _nonnegative("stddev", stddev)
    return stddev * jax.random.normal(key, shape, jnp.float32)
