"""PaTH attention (Yang et al. 2025): the O(L^2 K) scan against explicit matrix products."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pe_jax.encodings import path_logits

B, L, H, K = 2, 5, 2, 4


def inputs(seed=0):
    kq, kk, kw, kb = jax.random.split(jax.random.key(seed), 4)
    q = jax.random.normal(kq, (B, L, H, K))
    k = jax.random.normal(kk, (B, L, H, K))
    w = jax.random.normal(kw, (B, L, H, K))
    w = w / jnp.linalg.norm(w, axis=-1, keepdims=True)
    beta = 2 * jax.nn.sigmoid(jax.random.normal(kb, (B, L, H)))
    return q, k, w, beta


def path_np(q, k, w, beta, causal=True):
    """logit_ij = q_i^T H_i ... H_{j+1} k_j (j <= i), q_i^T H_{i+1} ... H_j k_j (j > i)."""
    q, k, w, beta = (np.asarray(a, np.float64) for a in (q, k, w, beta))
    out = np.zeros((B, H, L, L))
    for b in range(B):
        for h in range(H):
            eye = np.eye(K)
            hh = [eye - beta[b, t, h] * np.outer(w[b, t, h], w[b, t, h]) for t in range(L)]
            for i in range(L):
                for j in range(L):
                    m = eye
                    if j <= i:
                        for t in range(i, j, -1):  # H_i H_{i-1} ... H_{j+1}
                            m = m @ hh[t]
                    elif causal:
                        continue
                    else:
                        for t in range(i + 1, j + 1):  # H_{i+1} ... H_j
                            m = m @ hh[t]
                    out[b, h, i, j] = q[b, i, h] @ m @ k[b, j, h]
    return out


@pytest.mark.parametrize("causal", [True, False])
def test_matches_explicit_householder_products(causal):
    q, k, w, beta = inputs()
    out = path_logits(q, k, w, beta, causal=causal)
    np.testing.assert_allclose(out, path_np(q, k, w, beta, causal), atol=1e-5)


def test_zero_householder_vectors_are_nope():
    q, k, _, beta = inputs()
    out = np.asarray(path_logits(q, k, jnp.zeros_like(q), beta, causal=False))
    np.testing.assert_allclose(out, jnp.einsum("blhk,bshk->bhls", q, k), atol=1e-6)


def test_causal_logits_ignore_future_tokens():
    q, k, w, beta = inputs()

    def row(q, k, w, beta, i):
        return path_logits(q, k, w, beta)[:, :, i, : i + 1].sum()

    for i in range(L):
        grads = jax.grad(row, argnums=(0, 1, 2, 3))(q, k, w, beta, i)
        for g in grads:
            assert (np.asarray(g)[:, i + 1 :] == 0).all()


def test_orthogonal_householders_preserve_norms():
    """beta = 2 makes each H_t a reflection: |logit_ij| <= |q_i| |k_j|, equality along k_j."""
    q, k, w, _ = inputs()
    out = np.asarray(path_logits(k, k, w, jnp.full((B, L, H), 2.0)))
    norms = np.asarray(jnp.linalg.norm(k, axis=-1)).transpose(0, 2, 1)  # [B, H, L]
    bound = norms[..., :, None] * norms[..., None, :] + 1e-5
    assert (np.abs(out) <= bound).all()
