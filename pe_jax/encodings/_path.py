"""PaTH: attention logits through accumulated data-dependent Householder transformations.

Yang et al. 2025, "PaTH Attention: Position Encoding via Accumulating Householder
Transformations" (arXiv:2505.16381). Each token t emits a unit vector w_t and a strength
beta_t in (0, 2) (beta_t = 2 sigmoid(.) in the paper), i.e. the generalized Householder
matrix H_t = I - beta_t w_t w_t^T. Where RoPE puts the fixed rotation R^(i-j) between query i
and key j, PaTH puts the product of the transformations of the tokens in between:

    logit_ij = q_i^T H_i H_{i-1} ... H_{j+1} k_j       (j <= i; j = i: q_i . k_i),

so key j is carried to query i through every later token's Householder. With w = 0 (or
beta = 0) every H_t is the identity and PaTH is NoPE, logit_ij = q_i . k_j.

Non-causal (our extension; the paper is causal): for j > i the path runs the other way,
logit_ij = q_i^T H_{i+1} ... H_j k_j = (H_j ... H_{i+1} q_i)^T k_j, i.e. the causal formula
with the roles of q and k exchanged.

`path_logits` is the O(L^2 K) reference: a scan over queries i that applies H_i to every
earlier key, so it keeps one [B, L, H, K] copy of the keys and never forms a K x K matrix.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from pe_jax._validate import check_rank


def _causal_logits(q: jax.Array, k: jax.Array, w: jax.Array, beta: jax.Array) -> jax.Array:
    """float32 [B, H, L, L]; entry (i, j), j <= i, is q_i^T H_i ... H_{j+1} k_j; j > i: 0."""
    length = q.shape[1]
    index = jnp.arange(length)

    def step(keys, inputs):
        i, q_i, w_i, beta_i = inputs  # [B, H, K], [B, H, K], [B, H]
        # H_i acts on keys j < i only (the path from key j to query i starts at j + 1).
        proj = jnp.einsum("bshk,bhk->bsh", keys, w_i)
        update = beta_i[:, None, :, None] * proj[..., None] * w_i[:, None]
        keys = keys - jnp.where((index < i)[None, :, None, None], update, 0.0)
        row = jnp.einsum("bhk,bshk->bhs", q_i, keys)
        return keys, jnp.where(index <= i, row, 0.0)

    inputs = (index, q.swapaxes(0, 1), w.swapaxes(0, 1), beta.swapaxes(0, 1))
    _, rows = jax.lax.scan(step, k, inputs)  # [L, B, H, S]
    return rows.transpose(1, 2, 0, 3)


def path_logits(
    q: jax.Array,
    k: jax.Array,
    w: jax.Array,
    beta: jax.Array,
    *,
    causal: bool = True,
) -> jax.Array:
    """PaTH logits q_i^T H_i ... H_{j+1} k_j (Yang et al. 2025), the O(L^2 K) reference.

    Unscaled (divide by sqrt(K) as for q.k); computed in float32.

    Args:
      q, k: float [B, L, H, K] (self-attention: query i and key i are token i).
      w: float [B, L, H, K], the Householder directions (unit vectors in the paper; used as
        given, H_t = I - beta_t w_t w_t^T).
      beta: float [B, L, H], the strengths (in (0, 2) in the paper).
      causal: True gives entries j <= i (j > i are 0, to be masked); False also fills j > i
        with q_i^T H_{i+1} ... H_j k_j.

    Returns:
      float32 [B, H, L, L].

    Raises:
      ValueError: when shapes disagree.
    """
    for name, value in (("q", q), ("k", k), ("w", w)):
        check_rank(name, value, min_ndim=4, max_ndim=4)
    if not q.shape == k.shape == w.shape or beta.shape != q.shape[:3]:
        raise ValueError(
            f"q, k, w must share one shape [B, L, H, K] and beta be [B, L, H]; got q {q.shape}, "
            f"k {k.shape}, w {w.shape}, beta {beta.shape}."
        )
    q, k, w, beta = (a.astype(jnp.float32) for a in (q, k, w, beta))
    lower = _causal_logits(q, k, w, beta)
    if causal:
        return lower
    upper = _causal_logits(k, q, w, beta).swapaxes(-1, -2)
    length = q.shape[1]
    return jnp.where(jnp.tril(jnp.ones((length, length), bool)), lower, upper)
