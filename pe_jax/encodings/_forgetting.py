"""Forgetting gate (data-dependent ALiBi): a logit bias summed from per-token forget gates.

Lin, Nikishin, He and Courville 2025, "Forgetting Transformer: Softmax Attention with a Forget
Gate" (FoX, ICLR 2025, arXiv:2503.02130). Each token t emits, per head h, a scalar forget gate
f_t = sigmoid(w_h . x_t + b_h) in (0, 1), and the causal attention logits get

    D_ij = sum_{t = j+1}^{i} log f_t = c_i - c_j,    c_i = sum_{t <= i} log f_t     (j <= i),

a bias <= 0 that decays with the content between key j and query i. With every f_t = 1 it is
zero; with one constant gate f it is ALiBi with slope -log f, hence "data-dependent ALiBi"
(x-transformers' `DataDependentAlibi`). No position is used. Memory beyond the bias itself is
the cumulative sum c, [B, H, L].

Non-causal (x-transformers' bidirectional variant): a second set of gates g_t covers keys after
the query, D_ij = sum_{t = i+1}^{j} log g_t = r_j - r_i with r the cumulative sum of log g.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from pe_jax._validate import check_rank


def _pairwise(log_gates: jax.Array) -> jax.Array:
    """[B, L, H] log gates -> c_i - c_j, float32 [B, H, L, L] (c the cumulative sum over L)."""
    c = jnp.cumsum(log_gates.astype(jnp.float32), axis=1).transpose(0, 2, 1)  # [B, H, L]
    return c[..., :, None] - c[..., None, :]


def forgetting_bias(
    log_forget: jax.Array, *, log_forget_reverse: jax.Array | None = None
) -> jax.Array:
    """The forgetting-gate bias D [B, H, L, L] from log forget gates (Lin et al. 2025, FoX).

    Causal part (j <= i): D_ij = sum_{t=j+1}^{i} log_forget[t]. Entries j > i are
    sum_{t=i+1}^{j} log_forget_reverse[t] when `log_forget_reverse` is given (bidirectional),
    else 0 (future keys are for a causal mask to remove). The diagonal is 0.

    Args:
      log_forget: float [B, L, H], log f_t <= 0 (e.g. jax.nn.log_sigmoid of the gate logits).
      log_forget_reverse: float [B, L, H] or None, the gates of keys after the query.

    Returns:
      float32 [B, H, L, L].

    Raises:
      ValueError: when an argument is not of rank 3 or the two shapes differ.
    """
    check_rank("log_forget", log_forget, min_ndim=3, max_ndim=3)
    length = log_forget.shape[1]
    causal = jnp.tril(jnp.ones((length, length), bool))
    lower = _pairwise(log_forget)
    if log_forget_reverse is None:
        return jnp.where(causal, lower, 0.0)
    if jnp.shape(log_forget_reverse) != jnp.shape(log_forget):
        raise ValueError(
            f"log_forget_reverse must have the shape of log_forget {log_forget.shape}, got "
            f"{jnp.shape(log_forget_reverse)}."
        )
    upper = -_pairwise(log_forget_reverse)  # r_j - r_i
    return jnp.where(causal, lower, upper)
