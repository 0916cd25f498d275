"""Properties of pe_jax.nn.Transformer over the registered encodings.

Models are tiny (width 16, 2 heads, 2 layers, vocab 11, length 6). Most checks run eagerly:
every encoding shares the same primitive shapes, so op-by-op execution reuses compiled kernels
across the sweep, while a jit program is compiled per encoding (about a second on CPU).

Every registered name runs eagerly and traces in both modes. The costlier sweeps (reverse
passes, jit, padding) cover a core set by default, so the files stay fast on CPU; set
PE_JAX_FULL_SWEEP=1 to run them over every registered encoding in both modes.
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from pe_jax.nn._config import TransformerConfig
from pe_jax.nn._registry import list_encodings
from pe_jax.nn._transformer import Transformer

NAMES = list_encodings()
WRAPPER_PREFIXES = ("randomized_", "shifted_")
BASE = [n for n in NAMES if not n.startswith(WRAPPER_PREFIXES)]
FULL = os.environ.get("PE_JAX_FULL_SWEEP") == "1"
# Left out of the default sweeps: variants whose code path a core member shares (complex RoPE
# = RoPE in complex arithmetic, 2-D/axial grids = RoPE per axis, kerple_power = kerple_log's
# structure, dynamic_bias = an MLP bias like FIRE, integer/normalized = added like binary).
VARIANTS = ("rope_complex", "rope_2d", "axial", "kerple_power", "dynamic_bias", "integer")
CORE = BASE if FULL else [n for n in BASE if n not in VARIANTS + ("normalized",)]
SMALL = dict(vocab_size=11, width=16, num_heads=2, num_layers=2)
LENGTH = 6
TOKENS = jax.random.randint(jax.random.key(0), (2, LENGTH), 0, SMALL["vocab_size"])
KEY = jax.random.key(1)

ABSOLUTE = ["integer", "binary", "sinusoidal", "learned", "scaled_sinusoidal"]
RELATIVE = [
    "rope",
    "rope_complex",
    "xpos",
    "alibi",
    "t5",
    "kerple_log",
    "kerple_power",
    "sandwich",
    "dynamic_bias",
    "shaw",
    "transformer_xl",
]
# Options that make an encoding independent of the (padded) sequence length.
LENGTH_FREE = {"normalized": {"length": 32}}


@functools.cache
def _model(name: str, causal: bool, options: tuple = (), **overrides) -> Transformer:
    config = TransformerConfig(
        **{**SMALL, **overrides}, causal=causal, encoding=name, encoding_options=dict(options)
    )
    return Transformer(config, rngs=nnx.Rngs(0))


def model(name: str, causal: bool, options: dict | None = None, **overrides) -> Transformer:
    return _model(name, causal, tuple(sorted((options or {}).items())), **overrides)


def _finite(tree) -> bool:
    return all(bool(jnp.isfinite(leaf).all()) for leaf in jax.tree.leaves(tree))


@functools.cache
def probe(name: str, causal: bool, **overrides):
    """One eager reverse pass of (x, params) -> logits @ r for tokens [2, 6].

    r is a fixed random direction over the vocabulary, so the Jacobian row of (b, i) is the
    gradient of a generic combination of the logits at (b, i). Returns the logits, the
    Jacobian w.r.t. the token embeddings x [B, L, B, L, D] and w.r.t. the parameters (per
    output position).
    """
    m = model(name, causal, **overrides)
    graphdef, state = nnx.split(m)
    direction = jax.random.normal(jax.random.key(2), (SMALL["vocab_size"],))

    def projected(x, state):
        logits, _ = nnx.merge(graphdef, state).forward_embeddings(x, key=KEY)
        return logits @ direction, logits

    (d_x, d_params), logits = jax.jacrev(projected, argnums=(0, 1), has_aux=True)(
        m.embed_tokens(TOKENS), state
    )
    return logits, np.asarray(jnp.abs(d_x).sum(-1)), d_params


# Core encodings in both modes, plus wrappers in the mode of their protocol (randomized:
# encoder, Ruoss et al. 2023; shifted: decoder). A wrapper only replaces the `positions` hook
# of its base encoding, and every case costs an eager reverse pass (seconds on CPU the first
# time an encoding's kernels compile), so by default only a sample of wrappers gets one.
WRAPPERS = [n for n in NAMES if n.startswith(WRAPPER_PREFIXES)]
WRAPPER_SAMPLE = [
    ("randomized_learned", False),
    ("randomized_t5", False),
    ("randomized_shaw", False),
    ("shifted_alibi", True),
]
SWEEP = [(n, c) for n in CORE for c in (False, True)] + (
    [(n, c) for n in WRAPPERS for c in (False, True)] if FULL else WRAPPER_SAMPLE
)


def _case_id(case):
    return f"{case[0]}-{'decoder' if case[1] else 'encoder'}"


@pytest.mark.parametrize("case", SWEEP, ids=_case_id)
def test_forward_and_grads_are_finite(case):
    name, causal = case
    logits, _, d_params = probe(name, causal)
    assert logits.shape == (2, LENGTH, SMALL["vocab_size"]) and logits.dtype == jnp.float32
    assert _finite(logits)
    assert _finite(d_params)
    # The gradient reaches the encoding's own parameters, when it has any.
    encoding_grads = jax.tree.leaves(d_params["encoding"]) if "encoding" in d_params else []
    if encoding_grads:
        assert any(float(jnp.abs(g).max()) > 0 for g in encoding_grads), name


@pytest.mark.parametrize("case", SWEEP, ids=_case_id)
def test_attention_pattern(case):
    """Decoder: d logits_i / d x_j == 0 exactly for j > i; encoder: the future is seen.

    Examples never see each other (the cross-batch blocks are exactly zero), and every
    position depends on its own input.
    """
    name, causal = case
    _, dependence, _ = probe(name, causal)  # [B, L_i, B, L_j]
    assert (dependence[0, :, 1] == 0).all() and (dependence[1, :, 0] == 0).all()
    for b in range(2):
        block = dependence[b, :, b]
        assert (np.diag(block) > 0).all(), block
        future = block[np.triu_indices(LENGTH, 1)]
        if causal:
            assert (future == 0).all(), block
        else:
            assert (future > 0).all(), block


def _call(graphdef, state):
    return nnx.merge(graphdef, state)(TOKENS, key=KEY)[0]


@pytest.mark.parametrize("name", NAMES)
def test_every_encoding_runs_and_traces(name):
    """Every registered encoding, encoder and decoder: tracing (what jit does before
    compiling) gives float32 [B, L, V] logits, and an eager pass gives finite ones (wrappers:
    in the mode of their protocol, see SWEEP, unless PE_JAX_FULL_SWEEP=1)."""
    shape = (2, LENGTH, SMALL["vocab_size"])
    for causal in (False, True):
        m = model(name, causal)
        traced = jax.eval_shape(functools.partial(_call, nnx.graphdef(m)), nnx.state(m))
        assert traced.shape == shape and traced.dtype == jnp.float32
        if FULL or name in BASE or causal == name.startswith("shifted_"):
            logits = m(TOKENS, key=KEY)[0]
            assert logits.shape == shape and _finite(logits), (name, causal)


# Representatives of each place and attention path (a jit program costs about a second to
# compile on CPU): input (learned), query/key (rope), bias (alibi, t5), content (cope: the
# einsum path) and a randomized wrapper (positions drawn from the key).
# Not the integer/normalized wrappers: they add p (or p / L) * ones, with p up to 2048, to
# O(1) embeddings; pre-LN's mean subtraction removes it exactly, leaving only the float32
# rounding of x + p, which fusion changes (see test_integer_encoding_is_erased_by_pre_layer_norm).
ILL_CONDITIONED = [f"{w}_{n}" for w in ("randomized", "shifted") for n in ("integer", "normalized")]
JIT_CASES = (
    [n for n in NAMES if n not in ILL_CONDITIONED]
    if FULL
    else ["learned", "rope", "alibi", "t5", "cope", "randomized_rope"]
)


@pytest.mark.parametrize("name", JIT_CASES)
def test_nnx_jit_matches_eager(name):
    encoder, decoder = model(name, False), model(name, True)

    @nnx.jit
    def both(encoder, decoder, tokens, key):
        return encoder(tokens, key=key)[0], decoder(tokens, key=key)[0]

    jitted = both(encoder, decoder, TOKENS, KEY)
    eager = (encoder(TOKENS, key=KEY)[0], decoder(TOKENS, key=KEY)[0])
    for a, b in zip(jitted, eager, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


def _permuted(name: str, **overrides):
    m = model(name, False, **overrides)
    perm = np.array([3, 0, 5, 1, 4, 2])
    return m(TOKENS, key=KEY)[0][:, perm], m(TOKENS[:, perm], key=KEY)[0]


def test_nope_encoder_is_permutation_equivariant():
    expected, actual = _permuted("none")
    np.testing.assert_allclose(actual, expected, atol=1e-5)


@pytest.mark.parametrize("name", ABSOLUTE)
def test_absolute_encodings_break_permutation_equivariance(name):
    # x + p * ones is erased by a LayerNorm's mean subtraction, so with pre-LN (every branch
    # and the head see only normalised activations) the integer encoding is exactly NoPE;
    # post-LN (Deletang et al. 2023's choice) feeds the raw sum to the attention.
    expected, actual = _permuted(name, norm="post" if name == "integer" else "pre")
    assert float(jnp.abs(actual - expected).max()) > 1e-3


def test_integer_encoding_is_erased_by_pre_layer_norm():
    expected, actual = _permuted("integer")
    np.testing.assert_allclose(actual, expected, atol=1e-3)


@pytest.mark.parametrize("name", RELATIVE)
@pytest.mark.parametrize("causal", [False, True], ids=["encoder", "decoder"])
def test_relative_encodings_are_shift_invariant(name, causal):
    m = model(name, causal)
    positions = jnp.arange(LENGTH, dtype=jnp.int32)
    base = m(TOKENS, positions=positions)[0]
    shifted = m(TOKENS, positions=positions + 37)[0]
    np.testing.assert_allclose(shifted, base, atol=2e-4, rtol=2e-4)
    # Per-example shifts ([B, L] positions) too.
    per_example = positions + jnp.array([[5], [11]], jnp.int32)
    np.testing.assert_allclose(m(TOKENS, positions=per_example)[0], base, atol=2e-4, rtol=2e-4)


@pytest.mark.parametrize("name", ["learned", "sinusoidal"])
def test_absolute_encodings_are_not_shift_invariant(name):
    m = model(name, True)
    positions = jnp.arange(LENGTH, dtype=jnp.int32)
    diff = m(TOKENS, positions=positions + 7)[0] - m(TOKENS, positions=positions)[0]
    assert float(jnp.abs(diff).max()) > 1e-3


@pytest.mark.parametrize("name", ["rope", "t5", "cope", "learned"])
def test_batched_positions_match_shared_positions(name):
    """Default 1-D positions (biases with a leading 1) == the same positions per example."""
    m = model(name, True)
    batched = jnp.broadcast_to(jnp.arange(LENGTH, dtype=jnp.int32), TOKENS.shape)
    np.testing.assert_allclose(m(TOKENS, positions=batched)[0], m(TOKENS)[0], atol=1e-5)


# Encodings that could leak across positions outside the masked attention (lengths, counts,
# relative tables, ...) and one per other kind. Right padding cannot reach the real tokens of
# a decoder through causality alone, so by default decoders are checked for a few only.
PADDING_CASES = (
    [(n, c) for n in BASE for c in (False, True)]
    if FULL
    else [(n, False) for n in ("normalized", "learned", "rope", "t5", "fire", "transformer_xl")]
    + [(n, c) for n in ("shaw", "cope") for c in (False, True)]
)


@pytest.mark.parametrize("case", PADDING_CASES, ids=_case_id)
def test_padding_does_not_change_real_outputs(case):
    name, causal = case
    m = model(name, causal, LENGTH_FREE.get(name))
    short = LENGTH - 2
    # Example 0 has no padding; example 1 has `short` real tokens, then junk tokens.
    tokens = TOKENS.at[1, short:].set(7)
    mask = jnp.arange(LENGTH)[None] < jnp.array([[LENGTH], [short]])
    padded = m(tokens, mask=mask)[0]
    assert _finite(padded)
    np.testing.assert_allclose(padded[0], m(TOKENS)[0][0], atol=1e-4, rtol=1e-4)
    unpadded = m(TOKENS[:, :short])[0][1]
    np.testing.assert_allclose(padded[1, :short], unpadded, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["randomized_rope", "shifted_sinusoidal"])
def test_padded_example_gets_the_positions_of_its_unpadded_self(name):
    """Randomized positions are drawn per example for its real length (from the mask), so
    with the same key a padded example computes exactly what it does unpadded."""
    m = model(name, False, {"max_length": 64})
    short = LENGTH - 3
    tokens = TOKENS.at[:, short:].set(7)
    mask = jnp.broadcast_to(jnp.arange(LENGTH) < short, TOKENS.shape)
    padded = m(tokens, mask=mask, key=KEY)[0]
    unpadded = m(TOKENS[:, :short], mask=mask[:, :short], key=KEY)[0]
    np.testing.assert_allclose(padded[:, :short], unpadded, atol=1e-5, rtol=1e-5)
    # and the draw is keyed: another key gives other positions, other outputs
    other = m(TOKENS[:, :short], mask=mask[:, :short], key=jax.random.key(9))[0]
    assert float(jnp.abs(other - unpadded).max()) > 1e-3


@pytest.mark.parametrize("case", [("t5", False), ("cope", True)], ids=_case_id)
def test_fully_padded_example_stays_finite(case):
    """A row whose keys are all masked gets a uniform average, not NaN (both attention paths);
    the other example is unaffected."""
    name, causal = case
    m = model(name, causal)
    mask = jnp.array([[True] * LENGTH, [False] * LENGTH])
    logits = m(TOKENS, mask=mask)[0]
    assert _finite(logits)
    np.testing.assert_allclose(logits[0], m(TOKENS)[0][0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["rope", "t5", "cope", "sinusoidal"])
def test_bfloat16_compute_is_close_to_float32(name):
    """Same float32 parameters, bfloat16 activations: logits within 0.06 (they are O(2); the
    observed gap is about 0.02, bfloat16's 8-bit mantissa through two layers)."""
    m32 = model(name, True)
    m16 = model(name, True, dtype=jnp.bfloat16)
    logits16 = m16(TOKENS)[0]
    assert logits16.dtype == jnp.float32
    assert _finite(logits16)
    np.testing.assert_allclose(logits16, m32(TOKENS)[0], atol=0.06)


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_dropout_needs_key_and_is_reproducible(norm):
    m = model("rope", True, dropout=0.5, norm=norm)
    with pytest.raises(ValueError, match="key"):
        m(TOKENS, deterministic=False)
    a = m(TOKENS, deterministic=False, key=KEY)[0]
    b = m(TOKENS, deterministic=False, key=KEY)[0]
    c = m(TOKENS, deterministic=False, key=jax.random.key(9))[0]
    np.testing.assert_array_equal(a, b)
    assert float(jnp.abs(a - c).max()) > 1e-3
    assert float(jnp.abs(a - m(TOKENS)[0]).max()) > 1e-3


def test_randomized_positions_need_key_and_depend_on_it():
    m = model("randomized_rope", False)
    with pytest.raises(ValueError, match="key"):
        m(TOKENS)
    assert float(jnp.abs(m(TOKENS, key=KEY)[0] - m(TOKENS, key=jax.random.key(5))[0]).max()) > 1e-4


@pytest.mark.parametrize("name", ["randomized_alibi", "randomized_transformer_xl"])
def test_randomized_relative_encodings_draw_distances_in_every_layer(name, monkeypatch):
    """Ruoss et al.'s official method: each layer of each pass draws its own sorted, distinct
    distances from [1, L_max), shared by the batch (the positions variant draws per example)."""
    from pe_jax.nn import _randomized_distances

    draws = []
    original = _randomized_distances._LayerDraw.distances

    def spy(self, q_positions, k_positions):
        distances = original(self, q_positions, k_positions)
        draws.append(np.asarray(distances))
        return distances

    monkeypatch.setattr(_randomized_distances._LayerDraw, "distances", spy)
    m = model(name, False, {"max_length": 64})
    first, _ = m(TOKENS, key=KEY)
    assert len(draws) == SMALL["num_layers"]  # one draw per layer
    for d in draws:
        assert d.shape == (LENGTH,) and d[0] == 0  # one draw for the whole batch
        assert (np.diff(d) > 0).all() and d[1:].min() >= 1 and d.max() < 64
    assert not np.array_equal(draws[0], draws[1])  # each layer its own
    again = draws[:]
    draws.clear()
    np.testing.assert_array_equal(m(TOKENS, key=KEY)[0], first)
    assert all(np.array_equal(a, b) for a, b in zip(again, draws, strict=True))
    draws.clear()
    m(TOKENS, key=jax.random.key(5))  # afresh in every pass (a new key per step)
    other = draws[:]
    assert not any(np.array_equal(a, b) for a, b in zip(again, other, strict=True))
    # Shared by the batch: two copies of one example get the same logits.
    twins = jnp.stack([TOKENS[0], TOKENS[0]])
    logits, _ = m(twins, key=KEY)
    np.testing.assert_allclose(logits[0], logits[1], rtol=1e-6, atol=1e-6)
    positions_variant = model(name.replace("randomized_", "randomized_positions_"), False)
    per_example, _ = positions_variant(twins, key=KEY)
    assert float(jnp.abs(per_example[0] - per_example[1]).max()) > 1e-4


def test_shared_encoding_has_one_table_per_model_per_layer_otherwise():
    def tables(share):
        m = model("t5", True, share_encoding=share)
        return [p for p in jax.tree.leaves(nnx.state(m, nnx.Param)) if p.shape == (32, 2)]

    assert len(tables(True)) == 1
    assert len(tables(False)) == SMALL["num_layers"]
    # Shared or not, the parameter-free ALiBi has a single instance.
    assert not model("alibi", True, share_encoding=False).per_layer


def test_per_layer_encodings_all_receive_gradients():
    grads = jax.tree.map(lambda g: g.sum((0, 1)), probe("t5", True, share_encoding=False)[2])
    # Block 0 uses model.encoding itself (state path "encoding"), blocks 1.. their own.
    tables = [grads["encoding"]["table"]]
    tables += [grads["layer_encodings"][i]["table"] for i in range(1, SMALL["num_layers"])]
    for table in tables:
        assert float(jnp.abs(table[...]).max()) > 0


def test_model_rejects_bad_inputs():
    m = model("none", True)
    with pytest.raises(ValueError, match="tokens"):
        m(TOKENS.astype(jnp.float32))
    with pytest.raises(ValueError, match="positions"):
        m(TOKENS, positions=jnp.arange(LENGTH + 1))
    with pytest.raises(ValueError, match="positions"):
        m(TOKENS, positions=jnp.arange(LENGTH, dtype=jnp.float32))
    with pytest.raises(ValueError, match="mask"):
        m(TOKENS, mask=jnp.ones((2, LENGTH + 1), bool))
    bounded = model("none", True, max_length=4)
    with pytest.raises(ValueError, match="max_length"):
        bounded(TOKENS)
    short_table = model("learned", True, {"max_length": 4})
    with pytest.raises(ValueError, match="max_length"):
        short_table(TOKENS)


@pytest.mark.parametrize(
    "field, kwargs",
    [
        ("width", dict(width=15)),
        ("width", dict(width=0)),
        ("num_heads", dict(num_heads=-1)),
        ("num_layers", dict(num_layers=0)),
        ("vocab_size", dict(vocab_size=2.5)),
        ("mlp_ratio", dict(mlp_ratio=0)),
        ("dropout", dict(dropout=1.0)),
        ("dropout", dict(dropout=-0.1)),
        ("norm", dict(norm="sandwich")),
        ("causal", dict(causal=1)),
        ("share_encoding", dict(share_encoding="yes")),
        ("dtype", dict(dtype=jnp.int32)),
        ("param_dtype", dict(param_dtype="not-a-dtype")),
        ("max_length", dict(max_length=0)),
        ("encoding", dict(encoding="no_such_encoding")),
        ("encoding_options", dict(encoding="rope", encoding_options={"no_such_option": 1})),
        ("rotary_fraction", dict(encoding="rope", encoding_options={"rotary_fraction": 0.3})),
        ("rotary_fraction", dict(encoding="rope", encoding_options={"rotary_fraction": 1.5})),
        ("max_length", dict(encoding="learned", max_length=600)),
        ("encoding_options", dict(encoding="t5", encoding_options={"causal": False})),
        ("encoding_options", dict(encoding="t5", encoding_options=[("num_buckets", 8)])),
    ],
)
def test_config_validation_names_the_field(field, kwargs):
    with pytest.raises(ValueError, match=field):
        TransformerConfig(**{**SMALL, **kwargs})


def test_config_builds_no_encoding(monkeypatch):
    """Construction checks the options abstractly: no parameter is ever drawn concretely."""
    for name in ("normal", "uniform", "truncated_normal"):
        draw = getattr(jax.random, name)

        def abstract_only(key, *args, _draw=draw, **kwargs):
            assert isinstance(key, jax.core.Tracer), "TransformerConfig initialised parameters"
            return _draw(key, *args, **kwargs)

        monkeypatch.setattr(jax.random, name, abstract_only)
    for encoding in ("t5", "learned", "shaw", "fire", "rope_mixed", "scaled_sinusoidal"):
        TransformerConfig(**SMALL, encoding=encoding)
    with pytest.raises(ValueError, match="num_buckets"):
        TransformerConfig(**SMALL, encoding="t5", causal=False, encoding_options={"num_buckets": 5})
    with pytest.raises(AssertionError):  # the spy does catch a concrete build
        Transformer(TransformerConfig(**SMALL, encoding="t5"), rngs=nnx.Rngs(0))


def test_config_is_frozen_and_hashable():
    options = {"rotary_fraction": 0.25, "scaling": {"rope_type": "linear", "factor": 2.0}}
    config = TransformerConfig(**SMALL, encoding="rope", encoding_options=options)
    options["rotary_fraction"] = 1.0  # The config keeps its own frozen copy.
    assert config.options["rotary_fraction"] == 0.25
    assert isinstance(config.options["scaling"], dict)
    same = TransformerConfig(**SMALL, encoding="rope", encoding_options=config.options)
    assert config == same and hash(config) == hash(same)
    with pytest.raises(AttributeError):
        config.width = 32
    assert config.dtype == jnp.dtype(jnp.float32)
