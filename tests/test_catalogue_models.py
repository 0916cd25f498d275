"""The catalogue additions (issue 19) inside the Transformer: both layouts, decoding, the hook.

tests/test_transformer.py and tests/test_decode.py sweep every registered name with default
options; this file adds the non-default options (rotate_num_heads, M-RoPE ids) and the
properties of the `input_bias` hook.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from pe_jax.nn._config import TransformerConfig
from pe_jax.nn._decode import decode_step, init_cache
from pe_jax.nn._registry import make_encoding
from pe_jax.nn._transformer import Transformer

SMALL = dict(vocab_size=11, width=16, num_heads=2, num_layers=2)
TOKENS = jax.random.randint(jax.random.key(0), (2, 6), 0, SMALL["vocab_size"])


def model(name, causal=True, share=True, **options):
    config = TransformerConfig(
        **SMALL, causal=causal, encoding=name, encoding_options=options, share_encoding=share
    )
    return Transformer(config, rngs=nnx.Rngs(0))


CASES = [
    ("rope", {"rotate_num_heads": 1}),
    ("mrope", {"scaling": {"type": "mrope", "mrope_section": [1, 1, 2]}}),
    ("hope", {"train_length": 64}),
    ("pope", {"phase_bias_init": "uniform"}),
]


@pytest.mark.parametrize("name, options", CASES, ids=[c[0] for c in CASES])
def test_cached_decoding_equals_full_pass(name, options):
    """Teacher-forced: one-token decode steps give the logits of one full causal pass."""
    m = model(name, **options)
    cache = init_cache(m, 2, TOKENS.shape[1])
    steps = []
    for s in range(TOKENS.shape[1]):
        logits, cache = decode_step(m, cache, TOKENS[:, s : s + 1], s)
        steps.append(logits[:, 0])
    np.testing.assert_allclose(jnp.stack(steps, 1), m(TOKENS)[0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["forgetting_gate", "path"])
def test_data_dependent_encodings_refuse_decoding(name):
    with pytest.raises(ValueError, match="decoding"):
        init_cache(model(name), 2, 8)


@pytest.mark.parametrize("name", ["forgetting_gate", "path", "pope"])
def test_gradient_reaches_the_input_bias_parameters(name):
    """The hook's parameters are trained: a per-layer instance each, with non-zero gradients."""
    m = model(name, causal=False, share=False)
    assert len(m.layer_encodings) == SMALL["num_layers"]

    def loss(m):
        return jnp.sum(jnp.sin(m(TOKENS)[0]))

    grads = nnx.grad(loss)(m)
    for layer in grads["layer_encodings"].values():
        leaves = jax.tree.leaves(layer)
        assert leaves and any(float(jnp.abs(g).max()) > 0 for g in leaves), name


def test_replaces_qk_ignores_the_plain_dot_product():
    """PaTH with zero Householder strength is NoPE: equal to "none" given the same weights."""
    nope = model("none")
    path = model("path", share=False)
    # Same weights everywhere else; beta = 2 sigmoid(-1e9) = 0 in every layer.
    path.embedder, path.blocks, path.final_norm, path.head = (
        nope.embedder,
        nope.blocks,
        nope.final_norm,
        nope.head,
    )
    for encoding in path.layer_encodings:
        encoding.strengths.bias[...] = jnp.full((SMALL["num_heads"],), -1e9)
    np.testing.assert_allclose(path(TOKENS)[0], nope(TOKENS)[0], atol=1e-5, rtol=1e-5)


def test_randomized_wrapper_forwards_the_hook():
    enc = make_encoding(
        "randomized_pope", width=16, num_heads=2, head_dim=8, rngs=nnx.Rngs(0), max_length=64
    )
    assert enc.replaces_qk and enc.attention_params
    q = jax.random.normal(jax.random.key(1), (1, 3, 2, 8))
    positions = jnp.array([0, 5, 9], jnp.int32)
    out = enc.input_bias(None, q, q, positions, positions)
    np.testing.assert_allclose(out, enc.inner.input_bias(None, q, q, positions, positions))
