"""Tests for RoPE (apply_rope, apply_rope_complex) and xPos (xpos_scale, apply_xpos)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pe_jax.encodings._rope import apply_rope, apply_rope_complex, apply_xpos, xpos_scale

# Jitted once per shape: compiling a whole function is far cheaper than compiling each of its
# primitives eagerly, which keeps this file fast. Eager behaviour is tested below (jit == eager).
rope = jax.jit(apply_rope, static_argnames="layout")
rope_complex = jax.jit(apply_rope_complex, static_argnames="layout")
xpos = jax.jit(apply_xpos, static_argnames=("layout", "scale_base", "gamma"))
scale_of = jax.jit(xpos_scale, static_argnames=("rotary_dim", "scale_base", "gamma"))

LAYOUTS = ("half", "interleaved")


def default_inv_freq(rotary_dim, base=10000.0):
    return (base ** (-np.arange(0, rotary_dim, 2) / rotary_dim)).astype(np.float32)


def rotate_ref(x, angles, layout, scale=1.0):
    """float64 NumPy rotation of x [..., L, H, K] by angles [..., L, R/2] (pass-through after R)."""
    x = np.asarray(x, np.float64)
    rotary = 2 * angles.shape[-1]
    cos = scale * np.cos(angles)[..., None, :]
    sin = scale * np.sin(angles)[..., None, :]
    out = x.copy()
    if layout == "half":
        i1, i2 = np.arange(rotary // 2), np.arange(rotary // 2, rotary)
    else:
        i1, i2 = np.arange(0, rotary, 2), np.arange(1, rotary, 2)
    out[..., i1] = x[..., i1] * cos - x[..., i2] * sin
    out[..., i2] = x[..., i1] * sin + x[..., i2] * cos
    return out


def rope_ref(x, positions, inv_freq, layout="half", scale=1.0):
    angles = np.asarray(positions, np.float64)[..., None] * np.asarray(inv_freq, np.float64)
    return rotate_ref(x, angles, layout, scale)


def normal(seed, shape, dtype=jnp.float32):
    # NumPy, not jax.random: eager jax.random recompiles for every new shape, which is slow.
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("fn", [rope, rope_complex])
def test_matches_float64_reference_at_large_positions(fn, layout):
    # Positions up to 1e6 and partial rotary (R = 12 of K = 16), attention_scale != 1.
    x = normal(0, (2, 7, 3, 16))
    positions = np.random.default_rng(0).integers(0, 1_000_000, (2, 7))
    inv_freq = default_inv_freq(12)
    y = fn(x, positions, inv_freq=inv_freq, layout=layout, attention_scale=1.3)
    expected = rope_ref(x, positions, inv_freq, layout, scale=1.3)
    np.testing.assert_allclose(np.asarray(y), expected, rtol=0, atol=2e-6)


@functools.partial(jax.jit, static_argnames="layout")
def _score(q, k, m, n, layout):
    inv_freq = default_inv_freq(q.shape[-1])
    qm = rope(q, jnp.full((1,), m), inv_freq=inv_freq, layout=layout)
    kn = rope(k, jnp.full((1,), n), inv_freq=inv_freq, layout=layout)
    return jnp.sum(qm * kn)


@settings(max_examples=20, deadline=None)
@given(
    m=st.integers(0, 10_000),
    n=st.integers(0, 10_000),
    shift=st.integers(-10_000, 10_000),
    seed=st.integers(0, 2**16),
    layout=st.sampled_from(LAYOUTS),
)
def test_score_depends_only_on_offset(m, n, shift, seed, layout):
    q, k = normal(seed, (1, 1, 32)), normal(seed + 1, (1, 1, 32))
    scale = float(jnp.linalg.norm(q) * jnp.linalg.norm(k))
    before = float(_score(q, k, m, n, layout))
    after = float(_score(q, k, m + shift, n + shift, layout))
    assert abs(before - after) <= 1e-4 * scale


def test_score_is_not_position_blind():
    # Guards the invariance test against an implementation that does not rotate at all.
    q, k = normal(0, (1, 1, 32)), normal(1, (1, 1, 32))
    assert abs(float(_score(q, k, 0, 0, "half")) - float(_score(q, k, 5, 0, "half"))) > 1e-2


@pytest.mark.parametrize("layout", LAYOUTS)
def test_norm_preserved(layout):
    x = normal(2, (3, 5, 2, 8))
    y = rope(x, jnp.arange(5) * 997, inv_freq=default_inv_freq(8), layout=layout)
    np.testing.assert_allclose(jnp.linalg.norm(y, axis=-1), jnp.linalg.norm(x, axis=-1), rtol=1e-6)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_complex_equals_real(layout):
    x = normal(3, (2, 6, 3, 10))
    positions = np.random.default_rng(1).integers(-50_000, 50_000, (2, 6))
    kwargs = dict(inv_freq=default_inv_freq(8, base=500.0), layout=layout, attention_scale=0.7)
    real = rope(x, positions, **kwargs)
    complex_ = rope_complex(x, positions, **kwargs)
    np.testing.assert_allclose(real, complex_, rtol=0, atol=1e-6)


def test_half_and_interleaved_agree_under_permutation():
    rotary, head_dim = 8, 12
    x = normal(4, (2, 5, 3, head_dim))
    positions = jnp.arange(5) * 31
    inv_freq = default_inv_freq(rotary)
    # Interleaved pair i = (2i, 2i + 1) sits at half-layout slots (i, i + R/2).
    to_half = np.concatenate([np.arange(0, rotary, 2), np.arange(1, rotary, 2), np.arange(8, 12)])
    to_interleaved = np.argsort(to_half)
    via_half = rope(x[..., to_half], positions, inv_freq=inv_freq, layout="half")
    direct = rope(x, positions, inv_freq=inv_freq, layout="interleaved")
    np.testing.assert_allclose(via_half[..., to_interleaved], direct, rtol=0, atol=1e-6)
    # The two layouts really are different maps.
    other = rope(x, positions, inv_freq=inv_freq, layout="half")
    assert not np.allclose(other, direct, atol=1e-3)


@pytest.mark.parametrize(
    "dtype, layout",
    [
        (jnp.float32, "interleaved"),
        (jnp.bfloat16, "half"),
        (jnp.bfloat16, "interleaved"),
        (jnp.float16, "half"),
    ],
)
def test_partial_rotary_passes_through_bit_identical(dtype, layout):
    x = normal(5, (2, 4, 2, 14), dtype)
    positions = jnp.arange(4) + 123_456
    inv_freq = default_inv_freq(6)
    outputs = [
        rope(x, positions, inv_freq=inv_freq, layout=layout, attention_scale=2.0),
        rope_complex(x, positions, inv_freq=inv_freq, layout=layout),
        *xpos(x, x, positions, positions, inv_freq=inv_freq, layout=layout),
    ]
    for y in outputs:
        assert y.dtype == dtype and y.shape == x.shape
        assert np.array_equal(np.asarray(y[..., 6:]), np.asarray(x[..., 6:]))
        assert not np.allclose(
            np.asarray(y[..., :6], np.float32), np.asarray(x[..., :6], np.float32)
        )


@pytest.mark.parametrize("fn", [rope, rope_complex])
def test_attention_scale_scales_rotated_part(fn):
    x = normal(6, (4, 2, 12))
    positions, inv_freq = jnp.arange(4) * 7, default_inv_freq(8)
    plain = fn(x, positions, inv_freq=inv_freq)
    scaled = fn(x, positions, inv_freq=inv_freq, attention_scale=1.5)
    np.testing.assert_allclose(scaled[..., :8], 1.5 * plain[..., :8], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(scaled[..., 8:], x[..., 8:])


def test_bf16_at_large_positions_is_accurate_to_bf16_rounding():
    rotary = 64
    rng = np.random.default_rng(0)
    positions = rng.integers(0, 1_000_001, (256,))
    x = normal(7, (256, 2, rotary), jnp.bfloat16)
    x64 = np.asarray(x.astype(jnp.float32), np.float64)
    inv_freq = default_inv_freq(rotary)
    expected = rope_ref(x64, positions, inv_freq)
    bound = 2**-7 * np.abs(x64).max()

    y = rope(x, positions, inv_freq=inv_freq)
    assert y.dtype == jnp.bfloat16
    assert np.abs(np.asarray(y.astype(jnp.float32), np.float64) - expected).max() <= bound

    # Contrast 1: angles formed in bf16 (x's dtype) are garbage at these positions.
    angles_bf16 = jnp.asarray(positions).astype(jnp.bfloat16)[:, None] * jnp.asarray(
        inv_freq, jnp.bfloat16
    )
    bad = rotate_ref(x64, np.asarray(angles_bf16.astype(jnp.float32), np.float64), "half")
    assert np.abs(bad - expected).max() > 10 * bound
    # Contrast 2: even a plain float32 product is off by up to 0.03 rad at 1e6, which is
    # why apply_rope forms the angle with an exact product.
    angles_f32 = jnp.asarray(positions, jnp.float32)[:, None] * jnp.asarray(inv_freq)
    bad = rotate_ref(x64, np.asarray(angles_f32, np.float64), "half")
    assert np.abs(bad - expected).max() > bound


def test_positions_broadcast_over_batch():
    x = normal(8, (3, 5, 2, 8))
    inv_freq = default_inv_freq(8)
    shared = rope(x, jnp.arange(5), inv_freq=inv_freq)
    tiled = rope(x, jnp.tile(jnp.arange(5), (3, 1)), inv_freq=inv_freq)
    np.testing.assert_array_equal(shared, tiled)
    per_row = jnp.arange(15).reshape(3, 5) * 11
    batched = rope(x, per_row, inv_freq=inv_freq)
    for b in range(3):
        np.testing.assert_allclose(
            batched[b], rope(x[b], per_row[b], inv_freq=inv_freq), rtol=0, atol=1e-7
        )


def xpos_zeta(rotary_dim, gamma=0.4):
    return (np.arange(0, rotary_dim, 2) / rotary_dim + gamma) / (1 + gamma)


def test_xpos_scale_golden():
    positions = np.array([[0, 1, 600], [-700, 5, 2048]])
    scale = scale_of(positions, 8, scale_base=256.0, gamma=0.5)
    assert scale.shape == (2, 3, 4) and scale.dtype == jnp.float32
    expected = xpos_zeta(8, 0.5) ** (positions[..., None] / 256.0)
    np.testing.assert_allclose(scale, expected, rtol=1e-5)
    np.testing.assert_array_equal(scale_of(jnp.zeros((3,), jnp.int32), 16), np.ones((3, 8)))
    # The fastest pair decays fastest: zeta_0 = gamma / (1 + gamma).
    np.testing.assert_allclose(scale_of(jnp.array([512]), 8)[0, 0], 0.4 / 1.4, rtol=1e-6)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_xpos_matches_reference(layout):
    q, k = normal(9, (2, 4, 2, 10)), normal(10, (2, 6, 2, 10))
    q_pos, k_pos = np.arange(4) + 300, np.arange(6) * 90
    inv_freq = default_inv_freq(8)
    q2, k2 = xpos(q, k, q_pos, k_pos, inv_freq=inv_freq, layout=layout)
    zeta = xpos_zeta(8)
    q_scale = np.concatenate([zeta ** (q_pos[:, None] / 512.0)] * 2, -1)
    k_scale = np.concatenate([zeta ** (-k_pos[:, None] / 512.0)] * 2, -1)
    if layout == "interleaved":
        q_scale, k_scale = (np.repeat(s[:, :4], 2, -1) for s in (q_scale, k_scale))
    q_ref = rope_ref(q, q_pos, inv_freq, layout)
    k_ref = rope_ref(k, k_pos, inv_freq, layout)
    q_ref[..., :8] *= q_scale[:, None, :]
    k_ref[..., :8] *= k_scale[:, None, :]
    np.testing.assert_allclose(q2, q_ref, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(k2, k_ref, rtol=2e-5, atol=1e-6)


@functools.partial(jax.jit, static_argnames="layout")
def _xpos_score(q, k, m, n, layout):
    q2, k2 = xpos(
        q,
        k,
        jnp.full((1,), m),
        jnp.full((1,), n),
        inv_freq=default_inv_freq(q.shape[-1]),
        layout=layout,
    )
    return jnp.sum(q2 * k2)


@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(0, 4_000),
    offset=st.integers(0, 2_000),
    shift=st.integers(-4_000, 4_000),
    seed=st.integers(0, 2**16),
    layout=st.sampled_from(LAYOUTS),
)
def test_xpos_score_depends_only_on_offset(n, offset, shift, seed, layout):
    q, k = normal(seed, (1, 1, 32)), normal(seed + 1, (1, 1, 32))
    m = n + offset  # causal: query at or after key, so the decay keeps scores bounded
    scale = float(jnp.linalg.norm(q) * jnp.linalg.norm(k))
    before = float(_xpos_score(q, k, m, n, layout))
    after = float(_xpos_score(q, k, m + shift, n + shift, layout))
    assert abs(before - after) <= 1e-4 * scale


def test_xpos_score_golden():
    # q = k = ones, half layout: pair i contributes 2 cos(d theta_i) under RoPE, weighted by
    # zeta_i ** (d / 512) under xPos (d = m - n).
    q = jnp.ones((1, 1, 16))
    zeta, theta = xpos_zeta(16), default_inv_freq(16).astype(np.float64)
    for m, n in [(0, 0), (300, 0), (1000, 700), (2000, 1500)]:
        d = m - n
        expected = np.sum(zeta ** (d / 512.0) * 2 * np.cos(d * theta))
        assert float(_xpos_score(q, q, m, n, "half")) == pytest.approx(expected, rel=1e-5)


# ---- transformations: jit == eager, vmap == loop, finite gradients --------------------------

INV_FREQ = default_inv_freq(6)


def _rope_fns():
    def xpos_pair(x, p):
        return jnp.concatenate(apply_xpos(x, x[..., ::-1, :, :], p, p, inv_freq=INV_FREQ), -1)

    return {
        "apply_rope": lambda x, p: apply_rope(x, p, inv_freq=INV_FREQ, attention_scale=1.1),
        "apply_rope_complex": lambda x, p: apply_rope_complex(
            x, p, inv_freq=INV_FREQ, layout="interleaved"
        ),
        "apply_xpos": xpos_pair,
        "xpos_scale": lambda x, p: xpos_scale(p, 6) * jnp.sum(x),
    }


@pytest.mark.parametrize("name", list(_rope_fns()))
def test_jit_vmap_grad(name):
    fn = _rope_fns()[name]
    x = normal(11, (3, 5, 2, 8))
    positions = jnp.arange(15).reshape(3, 5) * 37
    eager = fn(x, positions)
    np.testing.assert_allclose(jax.jit(fn)(x, positions), eager, rtol=1e-6, atol=1e-6)
    # The loop and the gradient run jitted: eager equivalence is checked above, and eager
    # calls on new shapes recompile every primitive.
    looped = jnp.stack([jax.jit(fn)(x[b], positions[b]) for b in range(3)])
    np.testing.assert_allclose(jax.vmap(fn)(x, positions), looped, rtol=1e-6, atol=1e-6)
    grad = jax.jit(jax.grad(lambda x: jnp.sum(jnp.sin(fn(x, positions)))))(x)
    assert grad.shape == x.shape and bool(jnp.all(jnp.isfinite(grad)))
    assert float(jnp.abs(grad).max()) > 0


# ---- argument validation ---------------------------------------------------------------------

X = jnp.zeros((4, 2, 8))
POS = jnp.arange(4)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: apply_rope(X, POS, inv_freq=default_inv_freq(10)), "inv_freq.*rotary"),
        (lambda: apply_rope(jnp.zeros((4, 2, 7)), POS, inv_freq=np.ones(4)), "inv_freq"),
        (lambda: apply_rope(X, POS, inv_freq=np.ones((2, 2))), "inv_freq"),
        (lambda: apply_rope(X, POS, inv_freq=INV_FREQ, layout="neox"), "layout.*interleaved"),
        (lambda: apply_rope(X, POS * 1.0, inv_freq=INV_FREQ), "positions.*integer"),
        (lambda: apply_rope(X, jnp.arange(5), inv_freq=INV_FREQ), "positions"),
        (lambda: apply_rope(X, jnp.zeros((3, 4), jnp.int32), inv_freq=INV_FREQ), "positions"),
        (lambda: apply_rope(jnp.zeros((4, 8)), POS, inv_freq=INV_FREQ), "x"),
        (lambda: apply_rope(X.astype(jnp.int32), POS, inv_freq=INV_FREQ), "x must be"),
        (lambda: apply_rope_complex(X, POS, inv_freq=np.ones(5)), "inv_freq"),
        (lambda: apply_rope_complex(X, POS, inv_freq=INV_FREQ, layout="x"), "layout"),
        (lambda: xpos_scale(POS, 7), "rotary_dim"),
        (lambda: xpos_scale(POS, 8, gamma=0.0), "gamma"),
        (lambda: xpos_scale(POS, 8, scale_base=-1.0), "scale_base"),
        (lambda: xpos_scale(POS * 0.5, 8), "positions"),
        (lambda: apply_xpos(X, X, POS, jnp.arange(3), inv_freq=INV_FREQ), "k_positions"),
        (lambda: apply_xpos(X, X, POS[:2], POS, inv_freq=INV_FREQ), "q_positions"),
        (lambda: apply_xpos(X, X, POS, POS, inv_freq=np.ones(6)), "inv_freq"),
        (lambda: apply_xpos(X, X, POS, POS, inv_freq=INV_FREQ, gamma=-1.0), "gamma"),
    ],
)
def test_bad_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
