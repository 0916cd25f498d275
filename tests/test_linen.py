"""The pure encodings inside a Flax Linen module: no NNX needed to use pe_jax.encodings."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from pe_jax.encodings._alibi_t5 import alibi_bias, alibi_slopes
from pe_jax.encodings._rope import apply_rope
from pe_jax.encodings._rope_scaling import rope_inv_freq
from pe_jax.nn._attention import Attention
from pe_jax.nn._config import TransformerConfig
from pe_jax.nn._registry import make_encoding

WIDTH, HEADS, LENGTH = 16, 2, 7


class LinenAttention(nn.Module):
    """Self-attention with RoPE (Su et al. 2021) and/or ALiBi (Press et al. 2022)."""

    num_heads: int
    use_rope: bool = True
    use_alibi: bool = True
    causal: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, positions: jax.Array) -> jax.Array:
        batch, length, width = x.shape
        shape = (batch, length, self.num_heads, width // self.num_heads)
        q, k, v = (
            nn.Dense(width, use_bias=False, name=name)(x).reshape(shape)
            for name in ("query", "key", "value")
        )
        if self.use_rope:
            inv_freq, scale = rope_inv_freq(shape[-1])
            q = apply_rope(q, positions, inv_freq=inv_freq, attention_scale=scale)
            k = apply_rope(k, positions, inv_freq=inv_freq, attention_scale=scale)
        bias = None
        if self.use_alibi:
            slopes = alibi_slopes(self.num_heads)
            bias = alibi_bias(positions, positions, slopes=slopes, bidirectional=not self.causal)
        y = jax.nn.dot_product_attention(q, k, v, bias=bias, is_causal=self.causal)
        return nn.Dense(width, use_bias=False, name="out")(y.reshape(batch, length, width))


X = jax.random.normal(jax.random.key(0), (2, LENGTH, WIDTH))
POSITIONS = jnp.arange(LENGTH, dtype=jnp.int32)


@pytest.mark.parametrize("causal", [True, False])
def test_linen_rope_alibi_attention_is_shift_invariant(causal):
    layer = LinenAttention(HEADS, causal=causal)
    params = layer.init(jax.random.key(1), X, POSITIONS)
    apply = jax.jit(layer.apply)
    base = apply(params, X, POSITIONS)
    np.testing.assert_allclose(apply(params, X, POSITIONS + 100), base, atol=1e-4, rtol=1e-4)
    # The positions do matter: reversing them changes the output.
    assert float(jnp.abs(apply(params, X, POSITIONS[::-1]) - base).max()) > 1e-3


@pytest.mark.parametrize("encoding", ["rope", "alibi"])
def test_linen_layer_equals_nnx_attention_with_same_weights(encoding):
    config = TransformerConfig(
        vocab_size=11, width=WIDTH, num_heads=HEADS, num_layers=1, encoding=encoding
    )
    attention = Attention(config, rngs=nnx.Rngs(3))
    adapter = make_encoding(
        encoding, width=WIDTH, num_heads=HEADS, head_dim=WIDTH // HEADS, rngs=nnx.Rngs(0)
    )
    expected, _ = attention(
        X,
        encoding=adapter,
        positions=POSITIONS,
        bias=adapter.bias(POSITIONS, POSITIONS),
        is_causal=True,
    )
    layer = LinenAttention(HEADS, use_rope=encoding == "rope", use_alibi=encoding == "alibi")
    names = ("query", "key", "value", "out")
    params = {"params": {n: {"kernel": getattr(attention, n).kernel[...]} for n in names}}
    np.testing.assert_allclose(layer.apply(params, X, POSITIONS), expected, atol=1e-5)
