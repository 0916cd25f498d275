"""The model door: `Transformer.__call__` with a KV cache, and attention probabilities sown as
`nnx.Intermediate` (recorded only on request, read back with `nnx.capture`)."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from pe_jax.nn._config import TransformerConfig
from pe_jax.nn._decode import init_cache
from pe_jax.nn._transformer import Transformer

SMALL = dict(vocab_size=11, width=16, num_heads=2, num_layers=2)
TOKENS = jax.random.randint(jax.random.key(0), (2, 6), 0, SMALL["vocab_size"])


@functools.cache
def _model(name: str, causal: bool = True, share: bool = True) -> Transformer:
    config = TransformerConfig(**SMALL, causal=causal, encoding=name, share_encoding=share)
    return Transformer(config, rngs=nnx.Rngs(0))


def _sown(model, tokens, **kwargs):
    """(logits, cache) and the per-block probabilities [B, H, L, S] of one recorded pass."""
    probe = nnx.with_attributes(model, sow_attention_probs=True)
    out, sown = nnx.capture(probe, nnx.Intermediate)(tokens, **kwargs)
    probs = [
        sown["blocks"][i]["attention"]["attention_probs"].get_value()
        for i in range(len(model.blocks))
    ]
    assert all(len(p) == 1 for p in probs)  # one call of each block, one record
    return out, [p[0] for p in probs]


# rope, alibi: fast path without sowing; t5 per layer: the bias is computed in the block.
@pytest.mark.parametrize("name, share", [("rope", True), ("alibi", True), ("t5", False)])
def test_sown_probabilities_equal_an_independent_softmax(name, share):
    """Block 0's record == softmax(q.k / sqrt(K) + bias, causal) of its own projections."""
    m = _model(name, share=share)
    _, (probs, _) = _sown(m, TOKENS)
    block, encoding = m.blocks[0], (m.layer_encodings[0] if m.per_layer else m.encoding)
    pos = jnp.arange(6, dtype=jnp.int32)
    h = block.attention_norm(m.encoding.embed(m.embed_tokens(TOKENS), pos))
    q = block.attention.query(h).reshape(2, 6, 2, 8)
    k = block.attention.key(h).reshape(2, 6, 2, 8)
    q, k = encoding.rotate(q, k, pos, pos)
    logits = jnp.einsum("blhk,bshk->bhls", q, k) / math.sqrt(8)
    bias = encoding.bias(pos, pos)
    if bias is not None:
        logits = logits + bias
    logits = jnp.where(jnp.tril(jnp.ones((6, 6), bool)), logits, -jnp.inf)
    expected = jax.nn.softmax(logits, axis=-1)
    assert probs.shape == (2, 2, 6, 6) and probs.dtype == jnp.float32
    np.testing.assert_allclose(probs, expected, atol=1e-5)


@pytest.mark.parametrize("name, causal", [("rope", True), ("t5", False), ("cope", True)])
def test_recording_changes_nothing_but_records(name, causal):
    """The explicit path that records gives the fast path's logits; every block's rows sum to
    1, a decoder's are causal, and padded keys get no weight."""
    m = _model(name, causal)
    mask = jnp.array([[True] * 6, [True] * 4 + [False] * 2])
    (logits, cache), probs = _sown(m, TOKENS, mask=mask)
    assert cache is None
    np.testing.assert_allclose(logits, m(TOKENS, mask=mask)[0], atol=1e-5)
    assert len(probs) == SMALL["num_layers"]
    for p in probs:
        np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)
        assert float(jnp.abs(p[1, :, :, 4:]).max()) == 0.0
        if causal:
            assert float(jnp.abs(jnp.triu(p, 1)).max()) == 0.0
    assert float(jnp.abs(probs[0] - probs[1]).max()) > 1e-4  # layers differ


def test_nothing_is_recorded_unless_asked():
    m = _model("rope")
    (logits, _), sown = nnx.capture(m, nnx.Intermediate)(TOKENS)
    assert jax.tree.leaves(sown) == []
    m(TOKENS)
    assert jax.tree.leaves(nnx.state(m, nnx.Intermediate)) == []
    _sown(m, TOKENS)  # a recording copy leaves the model itself as it was
    assert not any(block.attention.sow_attention_probs for block in m.blocks)
    assert jax.tree.leaves(nnx.state(m, nnx.Intermediate)) == []


@pytest.mark.parametrize("name", ["rope", "alibi", "cope"])
def test_cached_calls_equal_a_full_pass(name):
    """Prefill 4 tokens then 2 one-token steps through __call__ == one full causal pass; with a
    per-example cache_index too, and the cached pass records its [B, H, T, S] probabilities."""
    m = _model(name)
    full, none = m(TOKENS)
    assert none is None
    cache = init_cache(m, 2, 8)
    prefill, cache = m(TOKENS[:, :4], cache=cache, cache_index=0)
    step_4, cache = m(TOKENS[:, 4:5], cache=cache, cache_index=4)
    (step_5, _), probs = _sown(m, TOKENS[:, 5:], cache=cache, cache_index=jnp.array([5, 5]))
    cached = jnp.concatenate([prefill, step_4, step_5], axis=1)
    np.testing.assert_allclose(cached, full, atol=1e-4, rtol=1e-4)
    assert probs[0].shape == (2, 2, 1, 8)
    np.testing.assert_allclose(probs[0].sum(-1), 1.0, atol=1e-5)
    assert float(jnp.abs(probs[0][..., 6:]).max()) == 0.0  # slots after the query's position


def test_cached_call_rejects_what_it_cannot_do():
    m = _model("rope")
    cache = init_cache(m, 2, 8)
    with pytest.raises(ValueError, match="cache_index"):
        m(TOKENS, cache_index=0)
    with pytest.raises(ValueError, match="cache_index"):
        m(TOKENS, cache=cache)
    with pytest.raises(ValueError, match="cache_index"):
        m(TOKENS, cache=cache, cache_index=jnp.zeros((3,), jnp.int32))
    with pytest.raises(ValueError, match="cache_index"):
        m(TOKENS, cache=cache, cache_index=3)  # 3 + 6 > 8 slots
    with pytest.raises(ValueError, match="positions"):
        m(TOKENS, cache=cache, cache_index=0, positions=jnp.arange(6))
    with pytest.raises(ValueError, match="causal"):
        _model("rope", causal=False)(TOKENS, cache=cache, cache_index=0)
