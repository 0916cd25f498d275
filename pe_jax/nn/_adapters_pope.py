"""PoPE adapter: polar-coordinate scores with a learned per-head key phase bias."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from pe_jax._validate import check_choice
from pe_jax.encodings import clamp_phase_bias, pope_inv_freq, pope_scores
from pe_jax.nn._base import Encoding
from pe_jax.nn._declare import register_encoding


@register_encoding
class PoPE(Encoding):
    """PoPE (Gopalakrishnan et al. 2025, "Decoupling the 'What' and 'Where' With Polar
    Coordinate Positional Embeddings"): score(m, n) = sum_c softplus(q_c) softplus(k_c)
    cos((m - n) theta_c - delta_hc), theta_c = base^(-c/K) for all K features, delta [H, K] a
    learned key phase bias clamped to [-2 pi, 0] (as x-transformers).

    The score replaces q.k (`replaces_qk`): it is divided by sqrt(K), as q.k would be, and
    given to attention through the `input_bias` hook. The KV cache holds plain keys (nothing
    is rotated), so decoding works. Options: base, phase_bias_init ("zeros", the default, or
    "uniform" on [-2 pi, 0], x-transformers' `polar_bias_uniform_init`).
    """

    name = "pope"
    place = "query_key"
    takes_positions = True

    attention_params = True
    replaces_qk = True

    def __init__(
        self,
        num_heads: int,
        head_dim: int,
        *,
        base: float = 10000.0,
        phase_bias_init: str = "zeros",
        rngs: nnx.Rngs,
    ):
        check_choice("phase_bias_init", phase_bias_init, ("zeros", "uniform"))
        with jax.ensure_compile_time_eval():
            inv_freq = pope_inv_freq(head_dim, base=base)
            self.inv_freq = tuple(float(f) for f in jax.device_get(inv_freq))
        shape = (num_heads, head_dim)
        if phase_bias_init == "zeros":
            delta = jnp.zeros(shape, jnp.float32)
        else:
            delta = jax.random.uniform(rngs.params(), shape, minval=-2.0 * math.pi, maxval=0.0)
        self.phase_bias = nnx.Param(delta)

    def input_bias(
        self,
        x: jax.Array,
        q: jax.Array,
        k: jax.Array,
        q_positions: jax.Array,
        k_positions: jax.Array,
    ) -> jax.Array:
        del x
        scores = pope_scores(
            q,
            k,
            q_positions,
            k_positions,
            inv_freq=jnp.asarray(self.inv_freq, jnp.float32),
            phase_bias=clamp_phase_bias(self.phase_bias[...]),
        )
        return scores * (1.0 / math.sqrt(q.shape[-1]))
