"""Forgetting gate (Lin et al. 2025, FoX) against a float64 NumPy reference."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from pe_jax.encodings import forgetting_bias
from pe_jax.nn._registry import make_encoding

B, L, H, D = 2, 6, 3, 16


def bias_np(log_f, log_g=None):
    """D_ij = sum_{t=j+1}^{i} log f_t (j <= i); sum_{t=i+1}^{j} log g_t (j > i), float64."""
    log_f = np.asarray(log_f, np.float64)
    out = np.zeros((B, H, L, L))
    for i in range(L):
        for j in range(L):
            if j <= i:
                out[:, :, i, j] = log_f[:, j + 1 : i + 1].sum(1)
            elif log_g is not None:
                out[:, :, i, j] = np.asarray(log_g, np.float64)[:, i + 1 : j + 1].sum(1)
    return out


def log_gates(seed):
    return jax.nn.log_sigmoid(jax.random.normal(jax.random.key(seed), (B, L, H)) + 2.0)


def test_causal_bias_matches_reference():
    log_f = log_gates(0)
    out = np.asarray(forgetting_bias(log_f))
    np.testing.assert_allclose(out, bias_np(log_f), atol=1e-5)  # future entries: 0
    assert (out <= 0).all()


def test_bidirectional_bias_matches_reference():
    log_f, log_g = log_gates(0), log_gates(1)
    out = forgetting_bias(log_f, log_forget_reverse=log_g)
    np.testing.assert_allclose(out, bias_np(log_f, log_g), atol=1e-5)


def test_gates_at_one_give_no_bias():
    zeros = jnp.zeros((B, L, H))
    np.testing.assert_array_equal(forgetting_bias(zeros), 0.0)
    np.testing.assert_array_equal(forgetting_bias(zeros, log_forget_reverse=zeros), 0.0)


def test_constant_gate_is_alibi():
    slope = 0.25
    out = forgetting_bias(jnp.full((1, L, 1), -slope))
    i, j = np.arange(L)[:, None], np.arange(L)[None]
    np.testing.assert_allclose(out[0, 0], np.where(j <= i, -slope * (i - j), 0.0), atol=1e-6)


def test_adapter_bias_has_no_future_influence():
    """Causal: the bias at (i, j <= i) depends on no token after i."""
    enc = make_encoding("forgetting_gate", width=D, num_heads=H, head_dim=4, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(2), (B, L, D))
    k = jnp.zeros((B, L, H, 4))

    def row(x, i):
        return enc.input_bias(x, k, k, None, None)[:, :, i, : i + 1].sum()

    for i in range(L):
        grad = np.asarray(jax.grad(row)(x, i))
        assert (grad[:, i + 1 :] == 0).all()
        if i > 0:
            assert np.abs(grad[:, 1 : i + 1]).max() > 0  # gates 1..i do act


def test_adapter_uses_gate_from_the_input():
    enc = make_encoding(
        "forgetting_gate", width=D, num_heads=H, head_dim=4, rngs=nnx.Rngs(0), causal=False
    )
    x = jax.random.normal(jax.random.key(2), (B, L, D))
    k = jnp.zeros((B, L, H, 4))
    gates = jax.nn.log_sigmoid(x @ enc.gates.kernel[...] + enc.gates.bias[...])
    expected = bias_np(gates[..., :H], gates[..., H:])
    np.testing.assert_allclose(enc.input_bias(x, k, k, None, None), expected, atol=1e-5)
    with pytest.raises(ValueError, match="decoding"):
        enc.input_bias(x, k, jnp.zeros((B, L + 1, H, 4)), None, None)
