"""Tests of the encoding adapters (pe_jax.nn._adapters_*) and their registry."""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from pe_jax.nn._registry import check_options, encoding_doc, list_encodings, make_encoding

B, L, H, K, D = 2, 6, 2, 8, 16
REQUIRED = (
    "none integer binary sinusoidal learned scaled_sinusoidal rope rope_complex xpos rope_2d "
    "axial rope_mixed alibi t5 kerple_log kerple_power sandwich fire dynamic_bias shaw "
    "transformer_xl cope randomized_rope randomized_sinusoidal randomized_learned "
    "randomized_alibi randomized_transformer_xl randomized_positions_alibi "
    "randomized_positions_transformer_xl"
).split()
RELATIVE = (
    "rope rope_complex xpos alibi t5 kerple_log kerple_power sandwich shaw transformer_xl "
    "dynamic_bias"
).split()
PARAMETER_FREE = (
    "none integer normalized binary sinusoidal rope rope_complex xpos rope_2d axial alibi sandwich "
    "mrope hope"
).split()
BASE_NAMES = [n for n in list_encodings() if not n.startswith(("randomized_", "shifted_"))]


def build(name, *, causal=True, seed=0, **options):
    return make_encoding(
        name, width=D, num_heads=H, head_dim=K, rngs=nnx.Rngs(seed), causal=causal, **options
    )


@functools.cache
def built(name, causal=True):
    """A shared instance for tests that only read the encoding (saves re-initialising)."""
    return build(name, causal=causal, **({"values": True} if name == "shaw" else {}))


def inputs(dtype=jnp.float32):
    kx, kq, kk, kp = jax.random.split(jax.random.key(42), 4)
    x = jax.random.normal(kx, (B, L, D)).astype(dtype)
    q = jax.random.normal(kq, (B, L, H, K)).astype(dtype)
    k = jax.random.normal(kk, (B, L, H, K)).astype(dtype)
    probs = jax.nn.softmax(jax.random.normal(kp, (B, H, L, L)), axis=-1)
    return x, q, k, probs


def run_hooks(enc, x, q, k, probs, key):
    """All hooks on one input, after the encoding's own choice of positions (attention hooks:
    those of one layer, `for_layer`, as the model calls them)."""
    positions = enc.positions(jnp.broadcast_to(jnp.arange(L, dtype=jnp.int32), (B, L)), key=key)
    layer = enc.for_layer(jax.random.fold_in(key, 1))
    q2, k2 = layer.rotate(q, k, positions, positions)
    return {
        "positions": positions,
        "embed": enc.embed(x, positions),
        "q": q2,
        "k": k2,
        "bias": layer.bias(positions, positions),
        "content": layer.content_logits(q, k, positions, positions),
        "values": layer.content_values(probs, positions, positions),
        "input": layer.input_bias(x, q2, k2, positions, positions),
    }


def scores(enc, q, k, positions):
    """Attention logits as the model forms them: (q'.k' + content) / sqrt(K) + bias."""
    q2, k2 = enc.rotate(q, k, positions, positions)
    logits = jnp.einsum("blhk,bshk->bhls", q2, k2)
    content = enc.content_logits(q, k, positions, positions)
    if content is not None:
        logits = logits + content
    logits = logits / np.sqrt(K)
    bias = enc.bias(positions, positions)
    return logits if bias is None else logits + bias


def test_list_encodings_is_sorted_and_complete():
    names = list_encodings()
    assert names == sorted(names)
    assert set(REQUIRED) <= set(names)


def check_shapes(name, enc, out, x, q, k):
    assert out["positions"].shape == (B, L)
    assert out["embed"].shape == x.shape and out["embed"].dtype == x.dtype
    assert out["q"].shape == q.shape and out["q"].dtype == q.dtype
    assert out["k"].shape == k.shape and out["k"].dtype == k.dtype
    if out["bias"] is not None:
        assert out["bias"].shape == (B, H, L, L) and out["bias"].dtype == jnp.float32
    if enc.uses_content:
        assert out["content"].shape == (B, H, L, L) and out["content"].dtype == jnp.float32
    else:
        assert out["content"] is None and out["values"] is None
    if out["values"] is not None:
        assert out["values"].shape == (B, L, H, K)
    if out["input"] is not None:
        assert out["input"].shape == (B, H, L, L) and out["input"].dtype == jnp.float32


@pytest.mark.parametrize("name", list_encodings())
def test_every_name_builds_and_hooks_have_right_shapes_and_dtypes(name):
    # Abstract evaluation: checks construction and every hook's shapes without compiling.
    enc = nnx.eval_shape(lambda: build(name))
    x, q, k, probs = inputs(jnp.bfloat16)
    out = nnx.eval_shape(run_hooks, enc, x, q, k, probs, jax.random.key(3))
    check_shapes(name, enc, out, x, q, k)


def hooks_and_grads(enc, x, q, k, probs, key):
    """run_hooks, and the gradient of a scalar function of all its outputs w.r.t. the params."""

    def loss(enc):
        out = run_hooks(enc, x, q, k, probs, key)
        terms = [v for h, v in out.items() if h != "positions" and v is not None]
        return sum(jnp.sum(jnp.sin(v.astype(jnp.float32))) for v in terms), out

    grads, out = nnx.grad(loss, has_aux=True)(enc)
    return out, grads


@pytest.mark.parametrize("name", BASE_NAMES)
def test_hooks_jit_equals_eager_and_param_gradients_are_finite(name):
    # The randomized/shifted wrappers only add `positions` and delegate every other hook; they
    # are traced by the shapes test and sampled by the randomized tests below.
    enc = built(name)
    x, q, k, probs = inputs(jnp.bfloat16)
    key = jax.random.key(3)
    eager = run_hooks(enc, x, q, k, probs, key)
    jitted, grads = nnx.jit(hooks_and_grads)(enc, x, q, k, probs, key)
    check_shapes(name, enc, eager, x, q, k)
    for hook, value in eager.items():
        if value is None:
            assert jitted[hook] is None, hook
            continue
        value = np.asarray(value, np.float32)
        assert np.all(np.isfinite(value)), hook
        np.testing.assert_allclose(value, np.asarray(jitted[hook], np.float32), atol=1e-2)

    grads = jax.tree.leaves(grads)
    assert bool(grads) == (name not in PARAMETER_FREE)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)
    assert not grads or sum(float(jnp.sum(jnp.abs(g))) for g in grads) > 0
    # Every encoding but NoPE acts at some place.
    acts = (
        not np.array_equal(eager["embed"], x)
        or not np.array_equal(eager["q"], q)
        or eager["bias"] is not None
        or eager["content"] is not None
        or eager["input"] is not None
    )
    assert acts == (name != "none")


@pytest.mark.parametrize("name", ["alibi", "t5", "sandwich", "kerple_power", "fire"])
def test_bias_of_shared_positions_has_no_batch_axis(name):
    positions = jnp.arange(L, dtype=jnp.int32)
    bias = nnx.eval_shape(lambda e, p: e.bias(p, p), built(name), positions)
    assert bias.shape == (1, H, L, L) and bias.dtype == jnp.float32


@pytest.mark.parametrize(
    "name, causal",
    [(name, True) for name in RELATIVE] + [("alibi", False), ("t5", False)],
)
def test_relative_encodings_are_shift_invariant(name, causal):
    enc = built(name, causal)
    _, q, k, probs = inputs()
    positions = jnp.broadcast_to(jnp.arange(L, dtype=jnp.int32) * 3, (B, L))

    @nnx.jit
    def terms(enc, positions):
        return scores(enc, q, k, positions), enc.content_values(probs, positions, positions)

    (base, values), (shifted, shifted_values) = terms(enc, positions), terms(enc, positions + 7)
    np.testing.assert_allclose(base, shifted, atol=2e-4, rtol=2e-4)
    if values is not None:
        np.testing.assert_allclose(values, shifted_values, atol=1e-5)


@pytest.mark.parametrize("name", ["rope", "alibi", "transformer_xl"])
def test_relative_scores_do_see_the_offset(name):
    # Control for the test above: moving only the queries must change the scores.
    enc = built(name)
    _, q, k, _ = inputs()
    positions = jnp.arange(L, dtype=jnp.int32)

    @nnx.jit
    def both(enc):
        q2, k2 = enc.rotate(q, k, positions + 7, positions)
        logits = jnp.einsum("blhk,bshk->bhls", q2, k2)
        content = enc.content_logits(q, k, positions + 7, positions)
        bias = enc.bias(positions + 7, positions)
        moved = (logits + (0 if content is None else content)) / np.sqrt(K)
        return moved + (0 if bias is None else bias), scores(enc, q, k, positions)

    moved, base = both(enc)
    assert not np.allclose(moved, base, atol=1e-3)


def test_learned_table_beyond_max_length_raises_eagerly_and_is_nan_under_jit():
    enc = build("learned", max_length=L)
    assert enc.max_length == L
    x = jnp.zeros((1, L + 1, D))
    positions = jnp.arange(L + 1, dtype=jnp.int32)[None]
    with pytest.raises(ValueError, match="max_length"):
        enc.embed(x, positions)
    out = nnx.jit(lambda e, x, p: e.embed(x, p))(enc, x, positions)
    assert np.all(np.isnan(out[0, -1])) and np.all(np.isfinite(out[0, :-1]))
    assert enc.table.shape == (L, D)


def test_learned_embed_reads_its_table_rows():
    enc = built("learned")
    positions = jnp.array([[3, 0, 511]], jnp.int32)
    out = enc.embed(jnp.ones((1, 3, D)), positions)
    np.testing.assert_allclose(out[0], 1 + enc.table[...][np.array([3, 0, 511])], rtol=1e-6)


@pytest.mark.parametrize(
    "name", ["randomized_rope", "randomized_learned", "randomized_positions_alibi"]
)
def test_randomized_positions_are_sorted_distinct_bounded_and_keyed(name):
    enc = build(name, max_length=64)
    assert enc.randomizes_positions and enc.max_length == 64
    default = jnp.broadcast_to(jnp.arange(L, dtype=jnp.int32), (B, L))
    a = np.asarray(enc.positions(default, key=jax.random.key(0)))
    b = np.asarray(enc.positions(default, key=jax.random.key(1)))
    for sample in (a, b):
        assert sample.shape == (B, L) and sample.dtype == np.int32
        assert np.all(np.diff(sample, axis=-1) > 0)
        assert sample.min() >= 0 and sample.max() < 64
    assert not np.array_equal(a, b)
    assert not np.array_equal(a[0], a[1])  # Each example draws its own sample.
    with pytest.raises(ValueError, match="key"):
        enc.positions(default)
    with pytest.raises(ValueError, match="max_length"):
        enc.positions(jnp.zeros((B, 65), jnp.int32), key=jax.random.key(0))


@pytest.mark.parametrize("name", ["randomized_alibi", "randomized_transformer_xl"])
def test_randomized_relative_encodings_draw_distances_per_layer(name):
    # Ruoss et al.'s official code: sorted distinct distances from [1, L_max), drawn by each
    # layer, shared by the batch; the positions stay 0..L-1.
    enc = build(name, causal=False, max_length=32)
    assert enc.draws_per_layer and not enc.randomizes_positions and not enc.supports_decoding
    positions = jnp.arange(L, dtype=jnp.int32)
    assert enc.positions(positions) is positions
    draws = [enc.for_layer(jax.random.key(s)).distances(positions, positions) for s in range(3)]
    for d in map(np.asarray, draws):
        assert d.shape == (L,) and d[0] == 0
        assert np.all(np.diff(d) > 0) and d[1:].min() >= 1 and d.max() < 32
    assert len({np.asarray(d).tobytes() for d in draws}) == 3
    with pytest.raises(ValueError, match="key"):
        enc.for_layer(None)
    with pytest.raises(ValueError, match="for_layer"):
        enc.bias(positions, positions)
    with pytest.raises(ValueError, match="max_length"):
        enc.for_layer(jax.random.key(0)).distances(jnp.arange(33), jnp.arange(33))


def test_randomized_alibi_bias_is_alibi_at_the_drawn_distances():
    enc = build("randomized_alibi", causal=False, max_length=64)
    layer = enc.for_layer(jax.random.key(4))
    positions = jnp.arange(L, dtype=jnp.int32)
    d = np.asarray(layer.distances(positions, positions))
    bias = np.asarray(layer.bias(positions, positions))
    assert bias.shape == (1, H, L, L)  # shared by the batch
    i, j = np.arange(L)[:, None], np.arange(L)[None, :]
    slopes = np.asarray(enc.inner.slopes)[:, None, None]
    want = slopes * (-d[np.abs(i - j)] + 0.5 * (i > j))  # the official encoder offset
    np.testing.assert_allclose(bias[0], want, rtol=1e-6)
    # The same layer key gives the same draw; the Transformer-XL content terms use it too.
    np.testing.assert_array_equal(enc.for_layer(jax.random.key(4)).bias(positions, positions), bias)
    xl = build("randomized_transformer_xl", causal=False, max_length=64)
    _, q, k, _ = inputs()
    got = xl.for_layer(jax.random.key(4)).content_logits(q, k, positions, positions)
    want = xl.inner.content_logits(q, k, positions, positions, distances=jnp.asarray(d))
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_randomized_learned_table_covers_max_length():
    enc = nnx.eval_shape(lambda: build("randomized_learned", max_length=100))
    assert enc.inner.table.shape == (100, D) and enc.max_length == 100
    assert nnx.eval_shape(lambda: build("randomized_learned")).inner.table.shape == (2048, D)


def test_shifted_positions_are_consecutive_with_random_offsets():
    enc = build("shifted_sinusoidal", max_length=40)
    default = jnp.broadcast_to(jnp.arange(L, dtype=jnp.int32), (B, L))
    offsets = set()
    for seed in range(5):
        sample = np.asarray(enc.positions(default, key=jax.random.key(seed)))
        assert np.all(np.diff(sample, axis=-1) == 1)
        assert sample.min() >= 0 and sample.max() < 40
        offsets.update(sample[:, 0].tolist())
    assert len(offsets) > 1
    with pytest.raises(ValueError, match="key"):
        enc.positions(default)


def test_randomized_wrapper_forwards_class_attributes():
    assert build("randomized_shaw").uses_content
    assert build("randomized_t5").attention_params
    assert not build("randomized_rope").uses_content


def test_unknown_name_and_option_raise_naming_them():
    with pytest.raises(ValueError, match="ropee") as info:
        build("ropee")
    assert "Did you mean 'rope'" in str(info.value)  # The close matches, on one line.
    with pytest.raises(ValueError, match="bsae") as info:
        build("rope", bsae=10.0)
    assert "base" in str(info.value)  # Lists the allowed options.
    with pytest.raises(ValueError, match="grid_width"):
        build("alibi", grid_width=4)
    with pytest.raises(ValueError, match="ropee"):
        encoding_doc("ropee")


def test_bad_option_values_raise_naming_them():
    with pytest.raises(ValueError, match="rotary_fraction"):
        build("rope", rotary_fraction=0.1)
    with pytest.raises(ValueError, match="layout"):
        build("rope", layout="sideways")
    with pytest.raises(ValueError, match="max_length"):
        build("learned", max_length=0)
    with pytest.raises(ValueError, match="num_buckets"):
        build("t5", causal=False, num_buckets=5)


BAD_OPTIONS = [
    ("ropee", {}, "ropee"),
    ("rope", {"bsae": 10.0}, "bsae"),
    ("alibi", {"grid_width": 4}, "grid_width"),
    ("rope", {"rotary_fraction": 0.1}, "rotary_fraction"),
    ("rope", {"rotary_fraction": 0.3}, "rotary_fraction"),
    ("rope", {"layout": "sideways"}, "layout"),
    ("rope", {"scaling": {"rope_type": "linear"}}, "factor"),
    ("learned", {"max_length": 0}, "max_length"),
    ("t5", {"num_buckets": 5}, "num_buckets"),
    ("shaw", {"values": 1}, "values"),
    ("sinusoidal", {"max_wavelength": -1.0}, "max_wavelength"),
    ("fire", {"hidden": 0}, "hidden"),
    ("randomized_rope", {"max_length": 0}, "max_length"),
]


@pytest.mark.parametrize("name, options, match", BAD_OPTIONS)
def test_check_options_rejects_what_building_rejects(name, options, match):
    causal = name != "t5"  # bidirectional T5 needs an even num_buckets
    with pytest.raises(ValueError, match=match) as built_error:
        build(name, causal=causal, **options)
    with pytest.raises(ValueError, match=match) as checked_error:
        check_options(name, options, width=D, num_heads=H, head_dim=K, causal=causal)
    assert str(checked_error.value) == str(built_error.value)


def test_check_options_returns_the_reach_and_initialises_nothing(monkeypatch):
    assert check_options("rope", {}, width=D, num_heads=H, head_dim=K) is None
    assert check_options("learned", {"max_length": 7}, width=D, num_heads=H, head_dim=K) == 7
    seen = []

    def spy(*args, **kwargs):
        seen.append(make_encoding(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr("pe_jax.nn._registry.make_encoding", spy)
    check_options("t5", {}, width=D, num_heads=H, head_dim=K)
    leaves = jax.tree.leaves(nnx.state(seen[0]))
    assert leaves and all(isinstance(x, jax.core.Tracer) for x in leaves)


@pytest.mark.parametrize("name", list_encodings())
def test_every_encoding_documents_its_paper(name):
    doc = encoding_doc(name)
    assert doc.startswith(name)
    assert re.search(r"(19|20)\d\d", doc), doc
    assert "Options:" in doc


def test_content_encodings_use_content_path():
    for name in ("shaw", "transformer_xl", "cope"):
        enc = build(name)
        assert enc.uses_content and enc.attention_params
    assert build("shaw").content_values(inputs()[3], jnp.arange(L), jnp.arange(L)) is None


def test_rope_partial_rotary_passes_trailing_dims_through():
    enc = build("rope", rotary_fraction=0.5)
    _, q, k, _ = inputs()
    positions = jnp.arange(L, dtype=jnp.int32) + 5
    q2, _ = enc.rotate(q, k, positions, positions)
    np.testing.assert_array_equal(q2[..., K // 2 :], q[..., K // 2 :])
    assert not np.allclose(q2[..., : K // 2], q[..., : K // 2])


def test_rope_scaling_option_changes_frequencies():
    plain = build("rope")
    linear = build("rope", scaling={"rope_type": "linear", "factor": 4.0})
    np.testing.assert_allclose(np.array(linear.inv_freq) * 4, plain.inv_freq, rtol=1e-6)


def test_rope_2d_maps_positions_to_row_major_grid():
    enc = build("rope_2d", grid_width=3)
    _, q, k, _ = inputs()
    flat = jnp.arange(L, dtype=jnp.int32)
    grid = jnp.stack([flat // 3, flat % 3], axis=-1)[None].repeat(B, 0)
    np.testing.assert_allclose(enc.rotate(q, k, flat, flat)[0], enc.rotate(q, k, grid, grid)[0])
    # Shifting by a whole row is a pure shift of the row coordinate: scores are unchanged.
    base = scores(enc, q, k, jnp.broadcast_to(flat, (B, L)))
    np.testing.assert_allclose(
        base, scores(enc, q, k, jnp.broadcast_to(flat + 3, (B, L))), atol=1e-4
    )


def test_causal_flag_reaches_biases():
    positions = jnp.broadcast_to(jnp.arange(L, dtype=jnp.int32), (B, L))
    causal = np.asarray(built("alibi", True).bias(positions, positions))
    bidirectional = np.asarray(built("alibi", False).bias(positions, positions))
    upper = np.triu(np.ones((L, L), bool), 1)
    assert np.all(causal[..., upper] == 0)
    assert np.all(bidirectional[..., upper] < 0)
    # Causal T5 puts every later key in the distance-0 bucket; bidirectional ones get their own.
    t5_causal = np.asarray(built("t5", True).bias(positions, positions))
    assert np.all(t5_causal[..., upper] == t5_causal[..., 0, 0][..., None])
    t5_bidirectional = np.asarray(built("t5", False).bias(positions, positions))
    assert not np.allclose(t5_bidirectional[..., 0, 1], t5_bidirectional[..., 0, 0])


def test_bidirectional_alibi_breaks_the_symmetry_unless_asked_not_to():
    # Encoder ALiBi as in Ruoss et al. 2023's official code: +0.5 slope for keys on the left.
    positions = jnp.arange(L, dtype=jnp.int32)
    enc = built("alibi", False)
    bias = np.asarray(enc.bias(positions, positions))[0]
    lower = np.tri(L, L, k=-1, dtype=bool)
    for h, slope in enumerate(enc.slopes):
        np.testing.assert_allclose((bias[h] - bias[h].T)[lower], 0.5 * slope, rtol=1e-6)
    symmetric = np.asarray(build("alibi", causal=False, symmetric=True).bias(positions, positions))
    np.testing.assert_allclose(symmetric, np.swapaxes(symmetric, -1, -2))
    # Causal ALiBi has no offset to add (the option does not change it).
    causal = np.asarray(built("alibi", True).bias(positions, positions))
    np.testing.assert_array_equal(causal, build("alibi", symmetric=True).bias(positions, positions))
    with pytest.raises(ValueError, match="symmetric"):
        build("alibi", causal=False, symmetric=1)


def test_scaled_sinusoidal_starts_at_inverse_sqrt_width_and_learns_its_scale():
    enc = built("scaled_sinusoidal")
    np.testing.assert_allclose(enc.scale[...], D**-0.5, rtol=1e-6)
    state = nnx.state(enc, nnx.Param)
    assert [p.shape for p in jax.tree.leaves(state)] == [()]
