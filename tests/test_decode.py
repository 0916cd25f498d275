"""KV-cache decoding: cached greedy decoding == greedy decoding by full recomputation."""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from pe_jax.nn._config import TransformerConfig
from pe_jax.nn._decode import decode_step, generate, init_cache
from pe_jax.nn._registry import list_encodings
from pe_jax.nn._transformer import Transformer

SMALL = dict(vocab_size=11, width=16, num_heads=2, num_layers=2)
# Options that make an encoding independent of the current sequence length (normalized
# positions divide by the length, which changes at every step otherwise).
OPTIONS = {"normalized": {"length": 32}}
# Randomized and shifted positions are not decodable. By default the variants that share a
# core encoding's code path are left out (see tests/test_transformer.py); set
# PE_JAX_FULL_SWEEP=1 to decode with every encoding.
VARIANTS = ("rope_complex", "rope_2d", "axial", "kerple_power", "dynamic_bias", "integer")
# Their logits need every earlier token's forget gates / Householder vectors, not in the cache.
NOT_DECODABLE = ("forgetting_gate", "path")
DECODABLE = [
    n
    for n in list_encodings()
    if not n.startswith(("randomized_", "shifted_"))
    and n not in NOT_DECODABLE
    and (os.environ.get("PE_JAX_FULL_SWEEP") == "1" or n not in VARIANTS)
]
# Prompt + new tokens fill [2, 6], the shape of tests/test_transformer.py, so the eager
# kernels of the recomputation are shared when both files run in one process.
PROMPT = jnp.array([[3, 1, 4], [5, 0, 0]], jnp.int32)
LENGTHS = jnp.array([3, 1], jnp.int32)  # example 1 is right-padded
NEW = 3


@functools.cache
def _model(name: str, share: bool = True) -> Transformer:
    config = TransformerConfig(
        **SMALL,
        causal=True,
        encoding=name,
        encoding_options=OPTIONS.get(name, {}),
        share_encoding=share,
    )
    return Transformer(config, rngs=nnx.Rngs(0))


def recompute_greedy(m: Transformer, prompt, lengths, new: int) -> np.ndarray:
    """Greedy decoding without a cache: rerun the model on the whole sequence at every step.

    The sequences live in a fixed [B, P + new] buffer (one shape, so one set of compiled
    kernels); entries after each sequence's end are junk that a causal model never sees
    (tests/test_transformer.py checks causality for every encoding).
    """
    batch, length = prompt.shape
    buffer = np.zeros((batch, length + new), np.int32)
    buffer[:, :length] = np.asarray(prompt)
    ends = np.asarray(lengths).copy()
    out = np.zeros((batch, new), np.int32)
    for i in range(new):
        logits = np.asarray(m(jnp.asarray(buffer))[0])
        out[:, i] = logits[np.arange(batch), ends - 1].argmax(-1)
        buffer[np.arange(batch), ends] = out[:, i]
        ends += 1
    return out


def cached_greedy(m: Transformer, prompt, lengths, new: int):
    """Greedy decoding with decode_step, eagerly, one token per step for the whole batch.

    All examples advance in lockstep (scalar offset s at step s): an example still inside its
    prompt is fed its next prompt token, one past it is fed its last greedy token. Returns the
    new tokens [B, new], the tokens fed [B, steps + 1] and the logits of every step
    [B, steps, V]. (Per-example offsets and the multi-token prefill are exercised by
    `generate` below.)
    """
    batch, length = prompt.shape
    ends = np.asarray(lengths)
    steps = int(ends.max()) + new - 1
    fed = np.zeros((batch, length + new), np.int32)
    fed[:, :length] = np.asarray(prompt)
    out = np.zeros((batch, new), np.int32)
    cache = init_cache(m, batch, length + new)
    all_logits = []
    for s in range(steps):
        logits, cache = decode_step(m, cache, jnp.asarray(fed[:, s : s + 1]), s)
        all_logits.append(np.asarray(logits[:, 0]))
        for b in range(batch):
            produced = s - (ends[b] - 1)
            if 0 <= produced < new:
                out[b, produced] = fed[b, s + 1] = all_logits[-1][b].argmax()
    return out, fed, np.stack(all_logits, axis=1)


@pytest.mark.parametrize("name", DECODABLE)
def test_cached_greedy_matches_recomputation(name):
    m = _model(name)
    expected = recompute_greedy(m, PROMPT, LENGTHS, NEW)
    actual, fed, step_logits = cached_greedy(m, PROMPT, LENGTHS, NEW)
    np.testing.assert_array_equal(actual, expected)
    # Teacher-forced: each cached step's logits equal a full causal pass over what was fed.
    full = np.asarray(m(jnp.asarray(fed))[0])[:, : step_logits.shape[1]]
    np.testing.assert_allclose(step_logits, full, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    "name, share, ragged",
    [("rope", True, True), ("t5", False, False), ("cope", True, True)],
)
def test_generate_matches_recomputation(name, share, ragged):
    m = _model(name, share)
    lengths = LENGTHS if ragged else jnp.full((2,), PROMPT.shape[1], jnp.int32)
    out = generate(m, PROMPT, NEW, prompt_lengths=lengths if ragged else None)
    assert out.shape == (2, NEW) and out.dtype == jnp.int32
    np.testing.assert_array_equal(out, recompute_greedy(m, PROMPT, lengths, NEW))


def test_decode_step_with_scalar_offset_keeps_bias_unbatched():
    """Scalar offsets give [T] query positions, so a shared bias is [1, H, T, S]."""
    m = _model("alibi")
    seen = []
    original = type(m.encoding).bias

    def spy(self, q_positions, k_positions):
        bias = original(self, q_positions, k_positions)
        seen.append(bias.shape)
        return bias

    cache = init_cache(m, 2, 6)
    try:
        type(m.encoding).bias = spy
        decode_step(m, cache, PROMPT, 0)
        decode_step(m, cache, PROMPT[:, :1], jnp.array([3, 1]))
    finally:
        type(m.encoding).bias = original
    assert seen == [(1, 2, 3, 6), (2, 2, 1, 6)]


def test_decoding_rejects_what_it_cannot_do():
    encoder = Transformer(TransformerConfig(**SMALL, causal=False), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="causal"):
        init_cache(encoder, 1, 8)
    randomized = _model("randomized_rope")
    with pytest.raises(ValueError, match="decoding"):
        generate(randomized, PROMPT, 2)
    m = _model("learned")  # table of 512 positions
    with pytest.raises(ValueError, match="max_length"):
        init_cache(m, 1, 513)
    cache = init_cache(m, 2, 4)
    with pytest.raises(ValueError, match="offset"):
        decode_step(m, cache, PROMPT, 2)
    with pytest.raises(ValueError, match="tokens"):
        decode_step(m, cache, PROMPT[0], 0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(m, PROMPT, 0)
    with pytest.raises(ValueError, match="prompt_lengths"):
        generate(m, PROMPT, 2, prompt_lengths=jnp.array([4, 1]))


def test_jitted_decode_step_matches_eager():
    m = _model("xpos")
    cache = init_cache(m, 2, 8)
    step = nnx.jit(decode_step)
    logits_jit, cache_jit = step(m, cache, PROMPT, 0)
    logits, cache = decode_step(m, cache, PROMPT, 0)
    np.testing.assert_allclose(logits_jit, logits, atol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), cache_jit, cache)
