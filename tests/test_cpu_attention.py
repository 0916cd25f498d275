"""The custom-gradient CPU attention equals jax.nn.dot_product_attention in values and grads."""

import itertools
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pe_jax import runtime
from pe_jax.nn._cpu_attention import cpu_attention

B, L, H, K = 3, 7, 2, 4


def _inputs(seed, dtype=jnp.float32, length=L):
    keys = jax.random.split(jax.random.key(seed), 5)
    q, k, v = (jax.random.normal(keys[i], (B, length, H, K), dtype) for i in range(3))
    return q, k, v, keys[3], keys[4]


def _bias(key, kind, length=L):
    shapes = {
        "none": None,
        "shared": (1, H, length, length),
        "batch": (B, H, length, length),
        "heads1": (1, 1, length, length),
    }
    shape = shapes[kind]
    return None if shape is None else jax.random.normal(key, shape, jnp.float32)


def _mask(key, kind, length=L):
    if kind == "none":
        return None
    valid = jax.random.bernoulli(key, 0.7, (B, length)).at[:, 0].set(True)
    if kind == "padding_row_empty":  # example 1 has no valid key at all
        valid = valid.at[1].set(False)
    return valid[:, None, None, :]


def _reference(q, k, v, bias, mask, is_causal):
    return jax.nn.dot_product_attention(
        q,
        k,
        v,
        bias=None if bias is None else jnp.broadcast_to(bias, (B, H, L, L)),
        mask=mask,
        scale=1 / math.sqrt(K),
        is_causal=is_causal,
    )


def _ours(q, k, v, bias, mask, is_causal):
    return cpu_attention(q, k, v, bias=bias, mask=mask, scale=1 / math.sqrt(K), is_causal=is_causal)


@pytest.mark.parametrize(
    "bias_kind, mask_kind, is_causal",
    list(
        itertools.product(["none", "shared", "batch", "heads1"], ["none", "padding"], [False, True])
    )
    + [("shared", "padding_row_empty", False)],
)
def test_values_and_gradients_equal_reference(bias_kind, mask_kind, is_causal):
    q, k, v, kb, km = _inputs(0)
    bias, mask = _bias(kb, bias_kind), _mask(km, mask_kind)
    cot = jax.random.normal(jax.random.key(9), (B, L, H, K))

    def loss(fn):
        def f(q, k, v, bias):
            return jnp.sum(fn(q, k, v, bias, mask, is_causal) * cot)

        return f

    ours = _ours(q, k, v, bias, mask, is_causal)
    ref = _reference(q, k, v, bias, mask, is_causal)
    np.testing.assert_allclose(ours, ref, rtol=2e-5, atol=2e-5)
    argnums = (0, 1, 2) if bias is None else (0, 1, 2, 3)
    g_ours = jax.grad(loss(_ours), argnums=argnums)(q, k, v, bias)
    g_ref = jax.grad(loss(_reference), argnums=argnums)(q, k, v, bias)
    for a, b in zip(g_ours, g_ref, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_bfloat16_inputs_keep_dtype_and_stay_close():
    q, k, v, kb, km = _inputs(1, jnp.bfloat16)
    bias, mask = _bias(kb, "shared"), _mask(km, "padding")
    out = _ours(q, k, v, bias, mask, False)
    assert out.dtype == jnp.bfloat16
    ref = _reference(*(x.astype(jnp.float32) for x in (q, k, v)), bias, mask, False)
    np.testing.assert_allclose(out.astype(jnp.float32), ref, atol=3e-2)
    g = jax.grad(lambda q: jnp.sum(_ours(q, k, v, bias, mask, False).astype(jnp.float32)))(q)
    assert g.dtype == jnp.bfloat16 and bool(jnp.all(jnp.isfinite(g.astype(jnp.float32))))


def test_jit_and_second_order_free_of_nan():
    q, k, v, kb, km = _inputs(2)
    bias, mask = _bias(kb, "batch"), _mask(km, "padding_row_empty")
    f = jax.jit(lambda q, k, v, b: jnp.sum(_ours(q, k, v, b, mask, True) ** 2))
    grads = jax.grad(f, argnums=(0, 1, 2, 3))(q, k, v, bias)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)


@pytest.mark.parametrize(
    "encoding, causal", [("none", True), ("rope", False), ("alibi", True), ("t5", False)]
)
def test_transformer_cpu_kernel_equals_xla_kernel(encoding, causal):
    from flax import nnx

    from pe_jax.nn import Transformer, TransformerConfig

    def build(impl):
        sizes = dict(vocab_size=11, width=16, num_heads=2, num_layers=2)
        options = dict(encoding=encoding, share_encoding=False, attention_impl=impl)
        config = TransformerConfig(**sizes, causal=causal, **options)
        return Transformer(config, rngs=nnx.Rngs(0))

    tokens = jax.random.randint(jax.random.key(1), (3, 9), 0, 11)
    mask = jnp.arange(9)[None, :] < jnp.array([[9], [5], [1]])

    def loss(model):
        logits, _ = model(tokens, mask=mask)
        return jnp.sum(jnp.where(mask[..., None], logits, 0.0) ** 2)

    values, grads = {}, {}
    for impl in ("xla", "cpu"):
        model = build(impl)
        values[impl], grads[impl] = nnx.value_and_grad(loss)(model)
    np.testing.assert_allclose(values["cpu"], values["xla"], rtol=1e-5)
    flat_x = jax.tree.leaves(nnx.state(grads["xla"]))
    flat_c = jax.tree.leaves(nnx.state(grads["cpu"]))
    assert len(flat_x) == len(flat_c) > 0
    for a, b in zip(flat_c, flat_x, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_bad_implementation_named():
    from pe_jax.nn import TransformerConfig

    with pytest.raises(ValueError, match="attention_impl"):
        TransformerConfig(vocab_size=5, width=8, num_heads=2, num_layers=1, attention_impl="gpu")


_COPIES = """
import jax, jax.numpy as jnp
from pe_jax import runtime
from pe_jax.nn._cpu_attention import cpu_attention
B, L, H, K = 3, 12, 2, 4
q, k, v = (jax.random.normal(jax.random.key(i), (B, L, H, K)) for i in range(3))
mask = (jnp.arange(L) < L - 2)[None, None, None, :]
loss = lambda q, k, v: jnp.sum(jnp.sin(cpu_attention(q, k, v, mask=mask, scale=0.5)))
hlo = jax.jit(jax.grad(loss, argnums=(0, 1, 2))).lower(q, k, v).compile().as_text()
# Instructions "%name = f32[B,H,L,S]{layout} op(...)": a copy or transpose is named so.
names = [l.split("=")[0] for l in hlo[hlo.index("ENTRY"):].splitlines() if "= f32[3,2,12,12]" in l]
print(len(names), sum("copy" in n or "transpose" in n for n in names))
"""


def test_gradient_copies_no_attention_matrix():
    """Compiled with the entry points' CPU flags (`runtime.CPU_XLA_FLAGS`, in a fresh process
    since XLA reads its flags once), forward + backward hold [B, H, L, S] matrices but no copy
    or transpose of one: only the small [B, L, H, K] operands change layout (see `_bmm`; the
    einsum form before it made two such copies)."""
    env = {**os.environ, "XLA_FLAGS": runtime.CPU_XLA_FLAGS, "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, "-c", _COPIES], env=env, capture_output=True, text=True, check=True
    )
    matrices, moved = map(int, out.stdout.split())
    assert matrices > 0, "the compiled pass holds no [B, H, L, S] matrix: the check sees nothing"
    assert moved == 0


@pytest.mark.parametrize(
    "bias_kind, mask_kind, is_causal",
    list(
        itertools.product(["none", "shared", "batch", "heads1"], ["none", "padding"], [False, True])
    )
    + [("shared", "padding_row_empty", False)],
)
@pytest.mark.parametrize("block", [(1, 2), (3, 4), (1, 8)])
def test_blocked_forward_equals_one_block(bias_kind, mask_kind, is_causal, block):
    """A gradient-free pass in blocks of (examples, queries) gives the one-block values (and
    the reference's); under a gradient the block is ignored, so the gradients are unchanged."""
    length = 8
    q, k, v, kb, km = _inputs(3, length=length)
    bias, mask = _bias(kb, bias_kind, length), _mask(km, mask_kind, length)

    def run(block, q=q):
        return cpu_attention(
            q, k, v, bias=bias, mask=mask, scale=0.35, is_causal=is_causal, block=block
        )

    whole = jax.jit(lambda: run((B, length)))()
    blocked = jax.jit(lambda: run(block))()
    np.testing.assert_allclose(blocked, whole, rtol=1e-6, atol=1e-6)
    ref = jax.nn.dot_product_attention(
        q,
        k,
        v,
        bias=None if bias is None else jnp.broadcast_to(bias, (B, H, length, length)),
        mask=mask,
        scale=0.35,
        is_causal=is_causal,
    )
    np.testing.assert_allclose(blocked, ref, rtol=2e-5, atol=2e-5)
    g_blocked = jax.grad(lambda q: jnp.sum(run(block, q) ** 2))(q)
    g_whole = jax.grad(lambda q: jnp.sum(run((B, length), q) ** 2))(q)
    np.testing.assert_array_equal(g_blocked, g_whole)


def test_block_choice():
    from pe_jax.nn import _cpu_attention as ca

    # Training widths (S <= 80) and small passes: one block.
    assert ca.block_for(128, 8, 80, 80) == (128, 80)
    assert ca.block_for(1024, 8, 80, 80) == (1024, 80)
    assert ca.block_for(2, 2, 256, 256) == (2, 256)
    # Evaluation widths: blocks of at most BLOCK_ELEMENTS logits that divide (B, L).
    for batch, length in [(64, 1024), (64, 320), (64, 1000), (10, 997)]:
        examples, rows = ca.block_for(batch, 8, length, length)
        assert batch % examples == 0 and length % rows == 0
        assert (examples, rows) != (batch, length)
        assert rows >= 8 or rows == length
        assert examples * 8 * rows * length <= max(ca.BLOCK_ELEMENTS, 8 * length * length)
    with pytest.raises(ValueError, match="block"):
        _ours_block = cpu_attention(*_inputs(0)[:3], scale=1.0, block=(2, 7))
        del _ours_block


@pytest.mark.parametrize(
    "encoding, causal",
    [("none", True), ("rope", False), ("alibi", True), ("t5", False), ("fire", False)],
)
def test_transformer_forward_blocked_equals_unblocked(encoding, causal, monkeypatch):
    """The model's gradient-free forward with blocking forced on (every pass in blocks) equals
    the one-block forward, for the bias kinds (ALiBi, T5 and FIRE biases, rope, none), padding
    masks and the causal mask."""
    from flax import nnx

    from pe_jax.nn import Transformer, TransformerConfig
    from pe_jax.nn import _cpu_attention as ca

    sizes = dict(vocab_size=11, width=16, num_heads=2, num_layers=2)
    config = TransformerConfig(
        **sizes, causal=causal, encoding=encoding, share_encoding=False, attention_impl="cpu"
    )
    model = Transformer(config, rngs=nnx.Rngs(0))
    tokens = jax.random.randint(jax.random.key(1), (4, 16), 0, 11)
    mask = jnp.arange(16)[None, :] < jnp.array([[16], [9], [1], [12]])

    def forward(model):
        return jax.jit(lambda t, m: model(t, mask=m)[0])(tokens, mask)

    whole = forward(model)
    monkeypatch.setattr(ca, "BLOCK_MIN_KEYS", 1)
    logits = 2 * 8 * 16  # blocks of one example and 8 queries
    assert ca.block_for(4, 2, 16, 16, elements=logits) == (1, 8)
    blocked = forward(nnx.with_attributes(model, block_logits=logits))
    np.testing.assert_allclose(blocked, whole, rtol=1e-5, atol=1e-5)
