"""Tests for N-D rotary embeddings: axial RoPE and RoPE-Mixed."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pe_jax.encodings._rope import apply_rope
from pe_jax.encodings._rope_nd import apply_axial_rope, apply_rope_mixed, init_rope_mixed_freqs

LAYOUTS = ("half", "interleaved")

# Jitted once per shape (much cheaper than compiling every primitive eagerly); eager behaviour
# is checked in test_jit_vmap_grad.
axial = jax.jit(apply_axial_rope, static_argnames=("base", "layout"))
mixed = jax.jit(apply_rope_mixed, static_argnames="layout")
init = jax.jit(init_rope_mixed_freqs, static_argnames=("num_heads", "head_dim", "ndim", "theta"))
rope = jax.jit(apply_rope, static_argnames="layout")


def default_inv_freq(rotary_dim, base=10000.0):
    return (base ** (-np.arange(0, rotary_dim, 2) / rotary_dim)).astype(np.float32)


def normal(seed, shape):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def pair_indices(rotary_dim, layout):
    if layout == "half":
        return np.arange(rotary_dim // 2), np.arange(rotary_dim // 2, rotary_dim)
    return np.arange(0, rotary_dim, 2), np.arange(1, rotary_dim, 2)


def rotate_ref(x, angles, layout):
    """float64 rotation of x [..., L, H, K] by angles [..., L, H or 1, R/2]; dims >= R unchanged."""
    x = np.asarray(x, np.float64)
    i1, i2 = pair_indices(2 * angles.shape[-1], layout)
    out = x.copy()
    out[..., i1] = x[..., i1] * np.cos(angles) - x[..., i2] * np.sin(angles)
    out[..., i2] = x[..., i1] * np.sin(angles) + x[..., i2] * np.cos(angles)
    return out


def mixed_ref(x, positions, freqs, layout):
    angles = np.einsum("...la,ahi->...lhi", np.asarray(positions, np.float64), freqs)
    return rotate_ref(x, angles, layout)


def random_positions(seed, shape, high=1000):
    return np.random.default_rng(seed).integers(0, high, shape).astype(np.int32)


def scores(q, k):
    return jnp.einsum("lhk,shk->hls", q, k)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("ndim", [2, 3])
def test_axial_rotates_each_chunk_by_its_axis(ndim, layout):
    chunk = 8
    head_dim = chunk * ndim
    x = normal(0, (2, 5, 3, head_dim))
    positions = random_positions(1, (2, 5, ndim), high=100_000)
    y = axial(x, positions, layout=layout)
    inv_freq = default_inv_freq(chunk).astype(np.float64)
    for a in range(ndim):
        block = slice(a * chunk, (a + 1) * chunk)
        angles = positions[..., a, None, None] * inv_freq  # [B, L, 1, C/2]
        expected = rotate_ref(x[..., block], angles, layout)
        np.testing.assert_allclose(y[..., block], expected, rtol=0, atol=2e-6)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_axial_ndim1_equals_apply_rope(layout):
    x = normal(2, (2, 6, 2, 16))
    positions = random_positions(3, (2, 6), high=50_000)
    y = axial(x, positions[..., None], base=500.0, layout=layout)
    expected = rope(x, positions, inv_freq=default_inv_freq(16, base=500.0), layout=layout)
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-7)


def test_axial_axes_act_on_their_own_features():
    x = normal(4, (4, 2, 12))
    positions = random_positions(5, (4, 3))
    moved = positions + np.array([7, 0, 0], np.int32)  # shift only the time axis
    y, y_moved = axial(x, positions), axial(x, moved)
    np.testing.assert_array_equal(y[..., 4:], y_moved[..., 4:])
    assert not np.allclose(y[..., :4], y_moved[..., :4], atol=1e-3)


@jax.jit
def _shift_gap(q, k, positions, shift, freqs):
    """Max |score change| when every position moves by `shift`, axial (both layouts) and mixed."""
    gaps = []
    for layout in LAYOUTS:
        before = scores(
            apply_axial_rope(q, positions, layout=layout),
            apply_axial_rope(k, positions, layout=layout),
        )
        after = scores(
            apply_axial_rope(q, positions + shift, layout=layout),
            apply_axial_rope(k, positions + shift, layout=layout),
        )
        gaps.append(jnp.abs(before - after).max())
    before = scores(
        apply_rope_mixed(q, positions, freqs=freqs), apply_rope_mixed(k, positions, freqs=freqs)
    )
    after = scores(
        apply_rope_mixed(q, positions + shift, freqs=freqs),
        apply_rope_mixed(k, positions + shift, freqs=freqs),
    )
    return jnp.stack(gaps + [jnp.abs(before - after).max()])


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    row_shift=st.integers(-500, 500),
    col_shift=st.integers(-500, 500),
)
def test_2d_scores_invariant_to_shifting_rows_and_cols(seed, row_shift, col_shift):
    q, k = normal(seed, (6, 2, 16)), normal(seed + 1, (6, 2, 16))
    positions = random_positions(seed, (6, 2), high=200)
    freqs = init(jax.random.key(seed), num_heads=2, head_dim=16, ndim=2)
    shift = jnp.array([row_shift, col_shift], jnp.int32)
    bound = 1e-4 * float(jnp.linalg.norm(q, axis=-1).max() * jnp.linalg.norm(k, axis=-1).max())
    assert float(_shift_gap(q, k, positions, shift, freqs).max()) <= bound


def test_2d_scores_do_depend_on_positions():
    # Guards the invariance test against encodings that ignore positions.
    q = normal(6, (6, 2, 16))
    positions = random_positions(7, (6, 2), high=200)
    freqs = init(jax.random.key(0), num_heads=2, head_dim=16, ndim=2)
    plain = scores(q, q)
    assert not np.allclose(scores(axial(q, positions), axial(q, positions)), plain, atol=1e-2)
    rotated = mixed(q, positions, freqs=freqs)
    assert not np.allclose(scores(rotated, rotated), plain, atol=1e-2)


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_init_rope_mixed_freqs_follows_the_paper(ndim):
    heads, head_dim, theta = 5, 12 * ndim, 10.0
    freqs = np.asarray(init(jax.random.key(ndim), num_heads=heads, head_dim=head_dim, ndim=ndim))
    assert freqs.shape == (ndim, heads, head_dim // 2) and freqs.dtype == np.float32
    group = head_dim // (2 * ndim)
    grouped = freqs.reshape(ndim, heads, ndim, group)  # [axis a, head, group g, j]
    magnitude = theta ** (-2.0 * ndim * np.arange(group) / head_dim)
    # Every pair's frequency vector has the paper's magnitude ...
    np.testing.assert_allclose(
        np.linalg.norm(grouped, axis=0), np.broadcast_to(magnitude, (heads, ndim, group)), rtol=1e-5
    )
    # ... and group g of head h points along column g of a rotation U_h (orthonormal, det +1).
    rotations = grouped[..., 0].transpose(1, 0, 2)  # [H, a, g]
    eye = np.broadcast_to(np.eye(ndim), rotations.shape)
    np.testing.assert_allclose(rotations.transpose(0, 2, 1) @ rotations, eye, atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0, rtol=1e-5)
    np.testing.assert_allclose(
        grouped, rotations.transpose(1, 0, 2)[..., None] * magnitude, rtol=1e-5, atol=1e-7
    )
    if ndim > 1:  # random per head and per key
        assert np.ptp(rotations[:, 0, 0]) > 1e-3
        other = init(jax.random.key(99), num_heads=heads, head_dim=head_dim, ndim=ndim)
        assert not np.allclose(other, freqs)


def test_init_2d_is_a_random_angle_and_its_right_angle():
    # Heo et al. 2024: freqs_x = mag * [cos phi, cos(phi + pi/2)],
    #                  freqs_y = mag * [sin phi, sin(phi + pi/2)].
    freqs = np.asarray(init(jax.random.key(3), num_heads=4, head_dim=16, ndim=2))
    magnitude = 10.0 ** (-np.arange(0, 16, 4) / 16)
    for h in range(4):
        phi = np.arctan2(freqs[1, h, 0], freqs[0, h, 0])
        expected_x = np.concatenate([magnitude * np.cos(phi), magnitude * np.cos(phi + np.pi / 2)])
        expected_y = np.concatenate([magnitude * np.sin(phi), magnitude * np.sin(phi + np.pi / 2)])
        np.testing.assert_allclose(freqs[0, h], expected_x, atol=1e-6)
        np.testing.assert_allclose(freqs[1, h], expected_y, atol=1e-6)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_rope_mixed_matches_reference(layout):
    # Per-head freqs, partial rotary (R = 8 of K = 10), batched positions.
    x = normal(8, (2, 5, 3, 10))
    positions = random_positions(9, (2, 5, 2), high=64)
    freqs = np.asarray(normal(10, (2, 3, 4)))
    y = mixed(x, positions, freqs=freqs, layout=layout)
    np.testing.assert_allclose(y, mixed_ref(x, positions, freqs, layout), rtol=0, atol=2e-5)
    np.testing.assert_array_equal(y[..., 8:], x[..., 8:])


@pytest.mark.parametrize("ndim", [2, 3])
def test_rope_mixed_with_block_diagonal_freqs_is_axial(ndim):
    # Axial RoPE is RoPE-Mixed whose axis a owns pairs [a G, (a + 1) G) with its standard
    # frequencies; in the interleaved layout those pairs are exactly axial's chunk a.
    heads, head_dim = 2, 8 * ndim
    group = head_dim // (2 * ndim)
    freqs = np.zeros((ndim, heads, head_dim // 2), np.float32)
    for a in range(ndim):
        freqs[a, :, a * group : (a + 1) * group] = default_inv_freq(2 * group)
    x = normal(11, (7, heads, head_dim))
    positions = random_positions(12, (7, ndim), high=300)
    np.testing.assert_allclose(
        mixed(x, positions, freqs=freqs),
        axial(x, positions, layout="interleaved"),
        rtol=0,
        atol=1e-5,
    )


@pytest.mark.parametrize("layout", LAYOUTS)
def test_rope_mixed_1d_shared_freqs_is_apply_rope(layout):
    x = normal(13, (2, 6, 3, 12))
    positions = random_positions(14, (2, 6), high=500)
    inv_freq = default_inv_freq(8)
    y = mixed(x, positions[..., None], freqs=inv_freq[None, None], layout=layout)
    expected = rope(x, positions, inv_freq=inv_freq, layout=layout)
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-5)


# ---- transformations: jit == eager, vmap == loop, finite gradients --------------------------

FREQS = np.asarray(normal(15, (2, 2, 4)))


def _nd_fns():
    return {
        "apply_axial_rope": lambda x, p, f: apply_axial_rope(x, p, layout="interleaved"),
        "apply_rope_mixed": lambda x, p, f: apply_rope_mixed(x, p, freqs=f),
    }


@pytest.mark.parametrize("name", list(_nd_fns()))
def test_jit_vmap_grad(name):
    fn = _nd_fns()[name]
    x = normal(16, (3, 5, 2, 8))
    positions = random_positions(17, (3, 5, 2))
    freqs = jnp.asarray(FREQS)
    eager = fn(x, positions, freqs)
    np.testing.assert_allclose(jax.jit(fn)(x, positions, freqs), eager, rtol=1e-6, atol=1e-6)
    looped = jnp.stack([jax.jit(fn)(x[b], positions[b], freqs) for b in range(3)])
    batched = jax.vmap(fn, in_axes=(0, 0, None))(x, positions, freqs)
    np.testing.assert_allclose(batched, looped, rtol=1e-6, atol=1e-6)
    grads = jax.jit(jax.grad(lambda x, f: jnp.sum(jnp.sin(fn(x, positions, f))), argnums=(0, 1)))(
        x, freqs
    )
    for grad in grads:
        assert bool(jnp.all(jnp.isfinite(grad)))
    assert float(jnp.abs(grads[0]).max()) > 0
    if name == "apply_rope_mixed":  # freqs are learnable
        assert float(jnp.abs(grads[1]).max()) > 0


def test_init_jit_vmap():
    keys = jax.random.split(jax.random.key(0), 3)
    kwargs = dict(num_heads=2, head_dim=12, ndim=3)
    eager = init_rope_mixed_freqs(keys[0], **kwargs)
    np.testing.assert_allclose(init(keys[0], **kwargs), eager, rtol=1e-6, atol=1e-6)
    looped = jnp.stack([init(key, **kwargs) for key in keys])
    batched = jax.vmap(lambda key: init_rope_mixed_freqs(key, **kwargs))(keys)
    np.testing.assert_allclose(batched, looped, rtol=1e-6, atol=1e-6)


# ---- argument validation ---------------------------------------------------------------------

X = jnp.zeros((4, 2, 12))
POS2 = jnp.zeros((4, 2), jnp.int32)
KEY = jax.random.key(0)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: apply_axial_rope(X, jnp.zeros((4, 5), jnp.int32)), "x has head dim"),
        (lambda: apply_axial_rope(X, POS2 * 1.0), "positions.*integer"),
        (lambda: apply_axial_rope(X, jnp.zeros((4,), jnp.int32)), "positions"),
        (lambda: apply_axial_rope(X, jnp.zeros((3, 2), jnp.int32)), "positions"),
        (lambda: apply_axial_rope(X, POS2, layout="neox"), "layout"),
        (lambda: apply_axial_rope(X, POS2, base=0.0), "base"),
        (lambda: apply_axial_rope(jnp.zeros((4, 12)), POS2), "x"),
        (lambda: init_rope_mixed_freqs(KEY, num_heads=0, head_dim=8, ndim=2), "num_heads"),
        (lambda: init_rope_mixed_freqs(KEY, num_heads=2, head_dim=10, ndim=2), "head_dim"),
        (lambda: init_rope_mixed_freqs(KEY, num_heads=2, head_dim=8, ndim=0), "ndim"),
        (lambda: init_rope_mixed_freqs(KEY, num_heads=2, head_dim=8, ndim=2, theta=-1), "theta"),
        (lambda: apply_rope_mixed(X, POS2, freqs=np.zeros((3, 2, 6))), "freqs"),
        (lambda: apply_rope_mixed(X, POS2, freqs=np.zeros((2, 3, 6))), "freqs"),
        (lambda: apply_rope_mixed(X, POS2, freqs=np.zeros((2, 2, 7))), "freqs"),
        (lambda: apply_rope_mixed(X, POS2, freqs=np.zeros((2, 6))), "freqs"),
        (lambda: apply_rope_mixed(X, POS2 * 1.0, freqs=FREQS), "positions"),
        (lambda: apply_rope_mixed(X, POS2, freqs=FREQS, layout="x"), "layout"),
    ],
)
def test_bad_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
