"""Data-dependent adapters: biases and transport computed from the layer input x.

Both act through the `input_bias` hook (they need the tokens, not only their positions) and use
no positions at all. Neither decodes with the KV cache: their logits depend on per-token gates
or Householder vectors of every earlier token, which the cache does not keep.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from pe_jax.encodings import forgetting_bias, path_logits
from pe_jax.nn._base import Encoding
from pe_jax.nn._declare import register_encoding


def _check_full_pass(x: jax.Array, k: jax.Array, name: str) -> None:
    if k.shape[1] != x.shape[1]:
        raise ValueError(
            f"{name} needs a full pass (keys = the layer's tokens); got {x.shape[1]} tokens and "
            f"{k.shape[1]} keys (KV-cache decoding is not supported)."
        )


@register_encoding
class ForgettingGate(Encoding):
    """Forgetting gate (Lin et al. 2025, "Forgetting Transformer: Softmax Attention with a
    Forget Gate"; x-transformers' data-dependent ALiBi): per head, f_t = sigmoid(w . x_t + b)
    and logits get D_ij = sum_{t=j+1}^{i} log f_t (causal). Non-causal models get a second
    gate set for keys after the query, D_ij = sum_{t=i+1}^{j} log g_t (x-transformers).

    x is the attention layer's input; no positions are used. Options: bias_init (the gate
    bias b at init, 5.0 as x-transformers: f ~ 0.993, a slow decay).
    """

    name = "forgetting_gate"
    place = "data_dependent"
    takes_positions = False  # no positions: gates from the input

    attention_params = True
    supports_decoding = False

    def __init__(
        self,
        width: int,
        num_heads: int,
        *,
        causal: bool = True,
        bias_init: float = 5.0,
        rngs: nnx.Rngs,
    ):
        self.causal = causal
        self.num_heads = num_heads
        self.gates = nnx.Linear(
            width,
            num_heads * (1 if causal else 2),
            bias_init=nnx.initializers.constant(float(bias_init)),
            rngs=rngs,
        )

    def input_bias(
        self,
        x: jax.Array,
        q: jax.Array,
        k: jax.Array,
        q_positions: jax.Array,
        k_positions: jax.Array,
    ) -> jax.Array:
        del q, q_positions, k_positions
        _check_full_pass(x, k, "the forgetting gate")
        log_gates = jax.nn.log_sigmoid(self.gates(x.astype(jnp.float32)))  # [B, L, H or 2H]
        if self.causal:
            return forgetting_bias(log_gates)
        h = self.num_heads
        return forgetting_bias(log_gates[..., :h], log_forget_reverse=log_gates[..., h:])


@register_encoding
class PaTH(Encoding):
    """PaTH attention (Yang et al. 2025, "PaTH Attention: Position Encoding via Accumulating
    Householder Transformations"): logit_ij = q_i^T H_i ... H_{j+1} k_j / sqrt(K) with
    H_t = I - beta_t w_t w_t^T, w_t = l2-normalised W_w x_t per head and beta_t =
    2 sigmoid(u . x_t + b) in (0, 2). Non-causal models use q_i^T H_{i+1} ... H_j k_j for
    j > i (our extension; the paper is causal).

    The O(L^2 K) reference algorithm (`path_logits`); the logits replace q.k (`replaces_qk`).
    The paper's short convolution and low-rank map before w are left out: w is one linear map
    of x. Options: none.
    """

    name = "path"
    place = "data_dependent"
    takes_positions = False  # no positions: Householder products of the input

    attention_params = True
    supports_decoding = False
    replaces_qk = True

    def __init__(
        self,
        width: int,
        num_heads: int,
        head_dim: int,
        *,
        causal: bool = True,
        rngs: nnx.Rngs,
    ):
        self.causal = causal
        self.num_heads, self.head_dim = num_heads, head_dim
        self.directions = nnx.Linear(width, num_heads * head_dim, use_bias=False, rngs=rngs)
        self.strengths = nnx.Linear(width, num_heads, rngs=rngs)

    def householder(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(w [B, L, H, K] unit vectors, beta [B, L, H] in (0, 2)) of x [B, L, D], float32."""
        x = x.astype(jnp.float32)
        w = self.directions(x).reshape(*x.shape[:-1], self.num_heads, self.head_dim)
        w = w * jax.lax.rsqrt(jnp.sum(w * w, axis=-1, keepdims=True) + 1e-12)
        return w, 2.0 * jax.nn.sigmoid(self.strengths(x))

    def input_bias(
        self,
        x: jax.Array,
        q: jax.Array,
        k: jax.Array,
        q_positions: jax.Array,
        k_positions: jax.Array,
    ) -> jax.Array:
        del q_positions, k_positions
        _check_full_pass(x, k, "PaTH")
        w, beta = self.householder(x)
        logits = path_logits(q, k, w, beta, causal=self.causal)
        return logits * (1.0 / math.sqrt(q.shape[-1]))
