"""The visual explorer: every figure renders, the claims behind figures 3 and 5 hold, figure 9
reads a trained run, and attention probabilities are the weights attention applies."""

import jax
import jax.numpy as jnp
import matplotlib.image
import numpy as np
import pytest
from flax import nnx

from configs.copy import get_config
from pe_jax.encodings import sinusoidal
from pe_jax.evaluation._attention_maps import (
    attention_maps,
    offset_concentration,
    sample_attention,
)
from pe_jax.explorer import (
    attention_figures,
    plot_attention_maps,
    select_figures,
    write_explorer,
    write_index,
)
from pe_jax.explorer._attention import attention_figure_size
from pe_jax.explorer._common import pixels
from pe_jax.explorer._figures import FIGURES, explorer_pixels
from pe_jax.explorer._ladder import shift_rotation, sinusoid_shift_error
from pe_jax.explorer._rope import relative_invariance_scores, toeplitz_deviation
from pe_jax.nn._attention import attend, attention_probs
from pe_jax.nn._config import TransformerConfig
from pe_jax.nn._registry import make_encoding
from pe_jax.nn._transformer import Transformer
from pe_jax.training import train_and_evaluate
from pe_jax.training._load import load_run

DPI = 40  # small PNGs: the tests check sizes and content, not looks
SMALL = {
    "ladder": dict(length=16, dim=8),
    "binary": dict(length=16, bits=2),
    "linearity": dict(length=32, dim=8, max_offset=8, offset=3),
    "circle": dict(positions=4),
    "relative": dict(length=8, dim=8),
    "decay": dict(head_dim=16, bases=(1e2, 1e4), original_length=64),
    "spectrum": dict(head_dim=16, train_length=64),
    "biases": dict(length=16, num_heads=4),
}


def assert_png(path, shape):
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == shape
    # Not blank: a white canvas has variance 0; axes, text and data give far more than 1e-3.
    assert image[..., :3].var() > 1e-3


@pytest.mark.parametrize("figure", FIGURES, ids=lambda f: f.name)
def test_each_figure_writes_a_png_of_its_size_with_content(figure, tmp_path):
    (written,) = write_explorer(tmp_path, only=figure.name, dpi=DPI, options=SMALL)
    assert written.path == tmp_path / figure.filename
    assert_png(written.path, explorer_pixels(figure.name, dpi=DPI))
    assert "{" not in written.caption and written.caption.endswith(".")


def test_index_lists_every_figure_with_its_caption(tmp_path):
    written = write_explorer(tmp_path, only="circle,2", dpi=DPI, options=SMALL)
    text = write_index(tmp_path, written).read_text()
    assert [w.name for w in written] == ["binary", "circle"]
    for w in written:
        assert f"]({w.path.name})" in text and w.caption in text


def test_select_figures_takes_names_and_numbers_and_rejects_others():
    assert select_figures(None)[-1] == "attention" and len(select_figures(None)) == 9
    assert select_figures("1, relative,9") == ["ladder", "relative", "attention"]
    with pytest.raises(ValueError, match="only"):
        select_figures("ladder,nope")
    with pytest.raises(ValueError, match="only"):
        select_figures("10")


def test_sinusoid_shift_is_a_rotation_to_float32_rounding():
    errors = sinusoid_shift_error(length=200, dim=32, max_offset=40)
    assert errors.shape == (40,)
    assert errors.max() < 1e-4
    # The identity is specific: the rotation of another offset misses PE(p + k) by far.
    table = np.asarray(sinusoidal(jnp.arange(20, dtype=jnp.int32), 8), np.float64)
    right, wrong = shift_rotation(3, 8), shift_rotation(4, 8)
    np.testing.assert_allclose(table[:10] @ right.T, table[3:13], atol=1e-5)
    assert np.abs(table[:10] @ wrong.T - table[3:13]).max() > 0.1
    np.testing.assert_allclose(shift_rotation(0, 8), np.eye(8), atol=1e-12)
    np.testing.assert_allclose(right @ right.T, np.eye(8), atol=1e-12)  # orthogonal


def test_rope_scores_are_toeplitz_and_absolute_scores_are_not():
    rope, absolute = relative_invariance_scores(length=12, dim=8, seed=3)
    assert rope.shape == absolute.shape == (12, 12)
    assert toeplitz_deviation(rope) < 1e-5
    assert toeplitz_deviation(absolute) > 0.1
    # RoPE's score at (m, n) equals its score at (m - n, 0): a function of the offset only.
    np.testing.assert_allclose(rope[10, 4], rope[6, 0], rtol=1e-5)
    np.testing.assert_allclose(np.diagonal(rope, -3), rope[3, 0], rtol=1e-5)


def test_toeplitz_deviation_is_zero_exactly_for_toeplitz_matrices():
    offsets = np.subtract.outer(np.arange(6), np.arange(6))
    assert toeplitz_deviation(np.cos(offsets)) == 0.0
    assert toeplitz_deviation(np.cos(offsets) + np.eye(6)[::-1]) > 0.1
    with pytest.raises(ValueError, match="matrix"):
        toeplitz_deviation(np.ones((2, 3)))


def test_attention_maps_plot_handles_missing_panels(tmp_path):
    probs = np.full((5, 5), 0.2)
    rows = [("rope", [("T = 5", probs), ("T = 20", "beyond max_length")])]
    path = plot_attention_maps(rows, tmp_path / "a.png", title="t", dpi=DPI)
    assert_png(path, pixels(attention_figure_size(1), dpi=DPI))
    with pytest.raises(ValueError, match="rows"):
        plot_attention_maps([("a", [("x", probs)]), ("b", [])], tmp_path / "b.png", title="t")


def _qkv(key, *, batch=2, length=5, heads=2, dim=8):
    kq, kk, kv = jax.random.split(key, 3)
    shape = (batch, length, heads, dim)
    return (jax.random.normal(k, shape) for k in (kq, kk, kv))


@pytest.mark.parametrize("name", ["alibi", "transformer_xl"])
def test_attention_probs_are_the_weights_attend_applies(name):
    # alibi: the fast path (dot_product_attention); transformer_xl: the explicit content path.
    q, k, v = _qkv(jax.random.key(0))
    encoding = make_encoding(name, width=16, num_heads=2, head_dim=8, rngs=nnx.Rngs(0))
    mask = jnp.array([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], bool)[:, None, None, :]

    @nnx.jit  # one compiled program instead of one per eager primitive
    def both(encoding, q, k, v):
        pos = jnp.arange(5, dtype=jnp.int32)
        kwargs = dict(
            encoding=encoding,
            q_positions=pos,
            k_positions=pos,
            bias=encoding.bias(pos, pos),
            mask=mask,
            is_causal=True,
        )
        probs = attention_probs(q, k, **kwargs)
        return probs, jnp.einsum("bhls,bshk->blhk", probs, v), attend(q, k, v, **kwargs)

    probs, implied, out = both(encoding, q, k, v)
    assert probs.shape == (2, 2, 5, 5) and probs.dtype == jnp.float32
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-6)
    assert float(jnp.abs(jnp.triu(probs, 1)).max()) == 0.0  # causal
    assert float(jnp.abs(probs[0, :, :, 4]).max()) == 0.0  # padded key
    np.testing.assert_allclose(implied, out, atol=1e-5)


def test_attention_maps_of_a_model_match_its_first_attention_layer():
    config = TransformerConfig(
        vocab_size=7,
        width=16,
        num_heads=2,
        num_layers=2,
        mlp_ratio=2,
        causal=True,
        encoding="alibi",
        norm="pre",
    )
    model = Transformer(config, rngs=nnx.Rngs(0))
    tokens = jnp.array([[1, 2, 3, 4, 5, 6]], jnp.int32)

    @nnx.jit
    def layer_0(model, tokens):
        # probs @ v through the output projection must be the block's attention output.
        probs = attention_maps(model, tokens, layer=0)
        block, pos = model.blocks[0], jnp.arange(6, dtype=jnp.int32)
        h = block.attention_norm(model.embed_tokens(tokens))
        v = block.attention.value(h).reshape(1, 6, 2, 8)
        mixed = jnp.einsum("bhls,bshk->blhk", probs, v).reshape(1, 6, 16)
        expected, _ = block.attention(
            h,
            encoding=model.encoding,
            positions=pos,
            bias=model.encoding.bias(pos, pos),
            is_causal=True,
        )
        last = attention_maps(model, tokens, layer=-1)
        return probs, block.attention.out(mixed), expected, last

    probs, got, expected, last = layer_0(model, tokens)
    assert probs.shape == (1, 2, 6, 6)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert last.shape == (1, 2, 6, 6)
    assert float(jnp.abs(last - probs).max()) > 1e-4  # another layer, other weights
    with pytest.raises(ValueError, match="layer"):
        attention_maps(model, tokens, layer=2)


def test_attention_maps_of_randomized_alibi_use_the_layer_draws():
    config = TransformerConfig(
        vocab_size=7,
        width=16,
        num_heads=2,
        num_layers=2,
        causal=False,
        encoding="randomized_alibi",
        encoding_options={"max_length": 64},
    )
    model = Transformer(config, rngs=nnx.Rngs(0))
    tokens = jnp.array([[1, 2, 3, 4, 5, 6]], jnp.int32)
    key = jax.random.key(3)
    probs = attention_maps(model, tokens, layer=0, key=key)
    # Layer 0's weights: softmax(q.k / sqrt(K) + bias of layer 0's draw).
    block, pos = model.blocks[0], jnp.arange(6, dtype=jnp.int32)
    h = block.attention_norm(model.embed_tokens(tokens))  # pre-LN
    q = block.attention.query(h).reshape(1, 6, 2, 8)
    k = block.attention.key(h).reshape(1, 6, 2, 8)
    bias = model.layer_encoding(0, key).bias(pos, pos)
    want = jax.nn.softmax(jnp.einsum("blhk,bshk->bhls", q, k) / np.sqrt(8) + bias, axis=-1)
    np.testing.assert_allclose(probs, want, atol=1e-5)
    other = model.layer_encoding(1, key).bias(pos, pos)
    assert float(jnp.abs(other - bias).max()) > 1e-4  # the next layer draws its own
    with pytest.raises(ValueError, match="key"):
        attention_maps(model, tokens, layer=0)


def test_offset_concentration_scores_heads_that_read_a_fixed_offset():
    width = 8
    previous = np.eye(width, k=-1)
    previous[0, 0] = 1.0  # the first query reads itself
    column = np.zeros((width, width))
    column[:, 3] = 1.0  # reads one token by content, whatever the query's position
    uniform = np.full((width, width), 1.0 / width)
    scores = offset_concentration(np.stack([previous, column, uniform]))
    np.testing.assert_allclose(scores, [7 / 8, 1 / 8, 1 / 8])
    with pytest.raises(ValueError, match="probs"):
        offset_concentration(np.ones((2, 3, 4)))


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("smoke_run")
    # Smaller than the smoke preset: two steps and one evaluation bucket keep this file fast.
    config = get_config("smoke,train.steps=2,train.checkpoint_every=2,train.log_every=2")
    config.eval.lengths = (2, 3)
    train_and_evaluate(config, workdir, log=lambda _: None)
    return workdir


def test_load_run_restores_the_trained_model(smoke_run):
    run = load_run(smoke_run)
    assert run.step == run.settings.steps and run.results is not None
    settings = run.settings  # at the training length: the program figure 9 compiles too
    probs = sample_attention(
        run.model(0), task=settings.task, layout=settings.protocol, length=settings.max_length
    )
    assert probs.shape[0] == run.settings.model.num_heads
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="seed_index"):
        run.model(1)
    with pytest.raises(ValueError, match="step"):
        load_run(smoke_run, step=7)


def test_figure_9_from_a_smoke_run(smoke_run, tmp_path):
    (written,) = attention_figures(smoke_run, tmp_path, factor=2, dpi=DPI)
    assert written.path == tmp_path / "09_attention.png" and written.number == 9
    assert_png(written.path, pixels(attention_figure_size(1), dpi=DPI))
