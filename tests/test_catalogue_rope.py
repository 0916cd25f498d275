"""rope's rotate_num_heads, M-RoPE and HoPE against float64 NumPy references."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from pe_jax.encodings import apply_mrope, apply_rope, hope_inv_freq, rope_inv_freq
from pe_jax.nn._registry import make_encoding

B, L, H, K = 2, 5, 3, 12


def build(name, **options):
    return make_encoding(name, width=16, num_heads=H, head_dim=K, rngs=nnx.Rngs(0), **options)


def qk():
    kq, kk = jax.random.split(jax.random.key(0))
    return jax.random.normal(kq, (B, L, H, K)), jax.random.normal(kk, (B, L, H, K))


def rotate_half_np(x):
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], -1)


def rope_np(x, angles):
    """HF convention: x * cos + rotate_half(x) * sin, angles [..., L, K/2] -> broadcast heads."""
    emb = np.concatenate([angles, angles], -1)[..., None, :]
    return x * np.cos(emb) + rotate_half_np(x) * np.sin(emb)


# rotate_num_heads


@pytest.mark.parametrize("n", [1, 2, H])
def test_rotate_num_heads_rotates_only_the_last_heads(n):
    q, k = qk()
    positions = jnp.arange(L, dtype=jnp.int32) + 3
    q2, k2 = build("rope", rotate_num_heads=n).rotate(q, k, positions, positions)
    q_all, k_all = build("rope").rotate(q, k, positions, positions)
    np.testing.assert_array_equal(q2[..., : H - n, :], q[..., : H - n, :])
    np.testing.assert_array_equal(k2[..., : H - n, :], k[..., : H - n, :])
    np.testing.assert_allclose(q2[..., H - n :, :], q_all[..., H - n :, :], rtol=1e-6)
    np.testing.assert_allclose(k2[..., H - n :, :], k_all[..., H - n :, :], rtol=1e-6)
    # Reference: float64 RoPE on the last n heads.
    inv_freq = np.asarray(rope_inv_freq(K)[0], np.float64)
    angles = np.asarray(positions, np.float64)[:, None] * inv_freq
    expected = np.asarray(q, np.float64).copy()
    expected[..., H - n :, :] = rope_np(expected[..., H - n :, :], angles)
    np.testing.assert_allclose(q2, expected, atol=1e-5)


def test_rotate_num_heads_is_validated():
    with pytest.raises(ValueError, match="rotate_num_heads"):
        build("rope", rotate_num_heads=H + 1)
    with pytest.raises(ValueError, match="rotate_num_heads"):
        build("rope", rotate_num_heads=0)


# M-RoPE


def hf_mrope_np(x, ids, inv_freq, section):
    """Hugging Face's apply_multimodal_rotary_pos_emb in float64: cos/sin of width K per id,
    split by the doubled sections, chunk c taking id c mod 3."""
    freqs = np.asarray(ids, np.float64).transpose(2, 0, 1)[..., None] * inv_freq  # [3, B, L, K/2]
    emb = np.concatenate([freqs, freqs], -1)
    bounds = np.cumsum(list(section) * 2)[:-1]
    cos = np.concatenate([c[i % 3] for i, c in enumerate(np.split(np.cos(emb), bounds, -1))], -1)
    sin = np.concatenate([c[i % 3] for i, c in enumerate(np.split(np.sin(emb), bounds, -1))], -1)
    x = np.asarray(x, np.float64)
    return x * cos[:, :, None] + rotate_half_np(x) * sin[:, :, None]


def test_mrope_matches_hugging_face_formula():
    q, _ = qk()
    ids = jax.random.randint(jax.random.key(3), (B, L, 3), 0, 50)
    inv_freq = rope_inv_freq(K)[0]
    section = (2, 2, 2)
    out = apply_mrope(q, ids, inv_freq=inv_freq, mrope_section=section)
    expected = hf_mrope_np(q, ids, np.asarray(inv_freq, np.float64), section)
    np.testing.assert_allclose(out, expected, atol=2e-5)


def test_mrope_with_coinciding_ids_is_rope():
    q, k = qk()
    positions = jax.random.randint(jax.random.key(4), (B, L), 0, 1000)
    ids = jnp.stack([positions] * 3, -1)
    inv_freq = rope_inv_freq(K)[0]
    out = apply_mrope(q, ids, inv_freq=inv_freq, mrope_section=(1, 2, 3))
    np.testing.assert_array_equal(out, apply_rope(q, positions, inv_freq=inv_freq))
    # The adapter on flat positions is the rope adapter.
    enc, rope = build("mrope"), build("rope")
    pairs = zip(
        enc.rotate(q, k, positions, positions), rope.rotate(q, k, positions, positions), strict=True
    )
    for a, b in pairs:
        np.testing.assert_array_equal(a, b)


def test_mrope_reads_hugging_face_configs_verbatim():
    qwen2_vl = {"type": "mrope", "mrope_section": [1, 2, 3]}
    assert build("mrope", scaling=qwen2_vl).mrope_section == (1, 2, 3)
    newer = {"rope_type": "default", "mrope_section": [2, 2, 2], "rope_theta": 1e6}
    enc = build("mrope", scaling=newer)
    assert enc.mrope_section == (2, 2, 2)
    np.testing.assert_allclose(enc.inv_freq, rope_inv_freq(K, base=1e6)[0], rtol=1e-6)
    with pytest.raises(ValueError, match="mrope_section"):
        build("mrope", scaling={"type": "mrope", "mrope_section": [2, 2, 3]})
    with pytest.raises(ValueError, match="mrope_interleaved"):
        build("mrope", scaling={"mrope_section": [2, 2, 2], "mrope_interleaved": True})
    with pytest.raises(ValueError, match="disagrees"):
        build("mrope", mrope_section=(2, 2, 2), scaling={"mrope_section": [1, 2, 3]})


# HoPE


def test_hope_frequencies_follow_the_definition():
    inv_freq = np.asarray(hope_inv_freq(K, train_length=100, base=10000.0), np.float64)
    theta = 10000.0 ** (-np.arange(0, K, 2) / K)
    expected = np.where(theta * 100 >= 2 * np.pi, theta, 0.0)
    np.testing.assert_allclose(inv_freq, expected, rtol=1e-6)
    assert 0 < np.count_nonzero(inv_freq) < K // 2  # both parts present for this setting


def test_hope_low_frequency_pairs_are_position_independent():
    q, k = qk()
    enc = build("hope", train_length=100)
    dropped = np.asarray(enc.inv_freq) == 0
    mask = np.concatenate([dropped, dropped])  # "half" layout: pair i is (i, i + K/2)
    positions = jnp.arange(L, dtype=jnp.int32) * 37
    q2, k2 = enc.rotate(q, k, positions, positions)
    np.testing.assert_array_equal(np.asarray(q2)[..., mask], np.asarray(q)[..., mask])
    assert not np.allclose(np.asarray(q2)[..., ~mask], np.asarray(q)[..., ~mask])
    # Scores depend on the offset only (relative), as for RoPE.
    s1 = jnp.einsum("blhk,bshk->bhls", q2, k2)
    q3, k3 = enc.rotate(q, k, positions + 11, positions + 11)
    np.testing.assert_allclose(s1, jnp.einsum("blhk,bshk->bhls", q3, k3), atol=1e-4)
