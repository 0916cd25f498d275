"""PoPE (Gopalakrishnan et al. 2025) against a float64 NumPy reference of its equation."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from pe_jax.encodings import apply_pope, clamp_phase_bias, pope_inv_freq, pope_scores
from pe_jax.nn._registry import make_encoding

B, L, H, K = 2, 5, 3, 8


def qk():
    kq, kk = jax.random.split(jax.random.key(0))
    return jax.random.normal(kq, (B, L, H, K)), jax.random.normal(kk, (B, L, H, K))


def pope_np(q, k, m, n, delta, base=10000.0):
    """s_bhij = sum_c softplus(q) softplus(k) cos((m_i - n_j) theta_c - delta_hc), float64."""
    q, k = (np.log1p(np.exp(np.asarray(a, np.float64))) for a in (q, k))
    theta = base ** (-np.arange(K) / K)
    offset = np.asarray(m, np.float64)[:, None] - np.asarray(n, np.float64)[None, :]
    phase = offset[None, :, :, None] * theta - np.asarray(delta, np.float64)[:, None, None, :]
    return np.einsum("bihc,bjhc,hijc->bhij", q, k, np.cos(phase))


def test_scores_match_the_paper_equation():
    q, k = qk()
    m = jnp.array([0, 3, 7, 100, 4000], jnp.int32)
    n = jnp.array([2, 2, 9, 50, 0], jnp.int32)
    delta = jax.random.uniform(jax.random.key(5), (H, K), minval=-2 * math.pi, maxval=0.0)
    out = pope_scores(q, k, m, n, inv_freq=pope_inv_freq(K), phase_bias=delta)
    np.testing.assert_allclose(out, pope_np(q, k, m, n, delta), atol=1e-4, rtol=1e-5)


def test_scores_depend_only_on_offset_without_phase_bias():
    q, k = qk()
    positions = jnp.arange(L, dtype=jnp.int32)
    inv_freq = pope_inv_freq(K)
    base = pope_scores(q, k, positions, positions, inv_freq=inv_freq)
    shifted = pope_scores(q, k, positions + 123, positions + 123, inv_freq=inv_freq)
    np.testing.assert_allclose(base, shifted, atol=1e-4)
    # A non-zero phase bias keeps that (it is per head, not per position) ...
    delta = jnp.full((H, K), -1.0)
    a = pope_scores(q, k, positions, positions, inv_freq=inv_freq, phase_bias=delta)
    b = pope_scores(q, k, positions + 9, positions + 9, inv_freq=inv_freq, phase_bias=delta)
    np.testing.assert_allclose(a, b, atol=1e-4)
    # ... but changes the scores.
    assert not np.allclose(a, base, atol=1e-3)


def test_cartesian_form_and_magnitudes():
    q, _ = qk()
    positions = jnp.arange(L, dtype=jnp.int32)
    out = apply_pope(q, positions, inv_freq=pope_inv_freq(K))
    assert out.shape == (B, L, H, 2 * K)
    magnitude = jnp.hypot(out[..., :K], out[..., K:])
    np.testing.assert_allclose(magnitude, jax.nn.softplus(q), rtol=1e-5)
    np.testing.assert_allclose(pope_inv_freq(K), 10000.0 ** (-np.arange(K) / K), rtol=1e-6)
    clamped = clamp_phase_bias(jnp.array([-7.0, -1.0, 2.0]))
    np.testing.assert_allclose(clamped, [-2 * math.pi, -1, 0])


def test_adapter_scales_scores_and_replaces_qk():
    enc = make_encoding(
        "pope", width=16, num_heads=H, head_dim=K, rngs=nnx.Rngs(0), phase_bias_init="uniform"
    )
    assert enc.replaces_qk and enc.attention_params
    delta = np.asarray(enc.phase_bias[...])
    assert (delta <= 0).all() and (delta >= -2 * math.pi).all() and delta.std() > 0
    q, k = qk()
    positions = jnp.arange(L, dtype=jnp.int32)
    out = enc.input_bias(None, q, k, positions, positions)
    np.testing.assert_allclose(
        out, pope_np(q, k, positions, positions, delta) / math.sqrt(K), atol=1e-4, rtol=1e-5
    )
    with pytest.raises(ValueError, match="phase_bias_init"):
        make_encoding(
            "pope", width=16, num_heads=H, head_dim=K, rngs=nnx.Rngs(0), phase_bias_init="x"
        )
