"""Tests of the content x position encodings against naive NumPy references of the papers."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pe_jax.encodings._content import (
    cope_logits,
    init_cope_table,
    init_shaw_tables,
    init_transformer_xl_params,
    shaw_relative_logits,
    shaw_relative_values,
    transformer_xl_logits,
)

B, L, S, H, K, M = 2, 5, 6, 2, 4, 2


def _normal(seed, shape, scale=1.0):
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def _batched(positions, batch):
    positions = np.asarray(positions)
    return np.broadcast_to(positions, (batch, positions.shape[-1]))


# Property tests call jitted functions: eager dispatch compiles every primitive separately,
# which would dominate the run time (test_jit_vmap_and_grads checks jit == eager). XLA's
# backend optimisation level changes compile time only, not what jit traces.
_fast_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
_shaw_relative_logits = _fast_jit(shaw_relative_logits, static_argnames="max_distance")
_shaw_relative_values = _fast_jit(shaw_relative_values, static_argnames="max_distance")
_transformer_xl_logits = _fast_jit(transformer_xl_logits, static_argnames="max_wavelength")
_cope_logits = _fast_jit(cope_logits, static_argnames="causal")


# ----------------------------------------------------------------------------- NumPy references


def naive_shaw_logits(q, q_pos, k_pos, table, max_distance):
    """Materialises a[b, i, j] = table[clip(j - i)] and dots it with q_i."""
    q, table = np.float64(q), np.float64(table)
    qp, kp = _batched(q_pos, q.shape[0]), _batched(k_pos, q.shape[0])
    rel = np.clip(kp[:, None, :] - qp[:, :, None], -max_distance, max_distance) + max_distance
    a = table[rel]  # [B, L, S, K] or [B, L, S, H, K]
    if table.ndim == 2:
        return np.einsum("bihk,bijk->bhij", q, a)
    return np.einsum("bihk,bijhk->bhij", q, a)


def naive_shaw_values(probs, q_pos, k_pos, table, max_distance):
    probs, table = np.float64(probs), np.float64(table)
    qp, kp = _batched(q_pos, probs.shape[0]), _batched(k_pos, probs.shape[0])
    rel = np.clip(kp[:, None, :] - qp[:, :, None], -max_distance, max_distance) + max_distance
    a = table[rel]
    if table.ndim == 2:
        return np.einsum("bhij,bijk->bihk", probs, a)
    return np.einsum("bhij,bijhk->bihk", probs, a)


def naive_transformer_xl(q, k, q_pos, k_pos, u, v, w_r, max_wavelength=10000.0):
    """Builds R_{i-j} for every pair from Vaswani's formula, then terms (b) + (c) + (d)."""
    q, k, u, v, w_r = (np.float64(x) for x in (q, k, u, v, w_r))
    qp, kp = _batched(q_pos, q.shape[0]), _batched(k_pos, q.shape[0])
    dist = (qp[:, :, None] - kp[:, None, :]).astype(np.float64)  # i - j
    rel_dim = w_r.shape[0]
    r = np.zeros(dist.shape + (rel_dim,))
    for f in range(rel_dim // 2):
        r[..., 2 * f] = np.sin(dist / max_wavelength ** (2 * f / rel_dim))
        r[..., 2 * f + 1] = np.cos(dist / max_wavelength ** (2 * f / rel_dim))
    projected = np.einsum("bijr,rhk->bijhk", r, w_r)
    b_term = np.einsum("bihk,bijhk->bhij", q, projected)
    c_term = np.einsum("hk,bjhk->bhj", u, k)[:, :, None, :]
    d_term = np.einsum("hk,bijhk->bhij", v, projected)
    return b_term + c_term + d_term


def naive_cope(q, k, table, causal=True, mask=None):
    """Loops over (b, h, i, j) with the paper's equations, gates on the scaled logit
    q.k / sqrt(K) as in its code; bidirectional = two-sided count."""
    q, k, table = np.float64(q), np.float64(k), np.float64(table)
    batch, length, heads, _ = q.shape
    keys, npos = k.shape[1], table.shape[0]
    mask = np.ones((batch, heads, length, keys), bool) if mask is None else mask
    mask = np.broadcast_to(mask, (batch, heads, length, keys))
    out = np.zeros((batch, heads, length, keys))
    for b in range(batch):
        for h in range(heads):
            e = table if table.ndim == 2 else table[:, h]
            for i in range(length):
                qi, diag = q[b, i, h], i + keys - length
                keep = [mask[b, h, i, t] and (not causal or t <= diag) for t in range(keys)]
                logits = [qi @ k[b, t, h] / np.sqrt(q.shape[-1]) for t in range(keys)]
                gates = [keep[t] / (1.0 + np.exp(-logits[t])) for t in range(keys)]
                z = e @ qi
                for j in range(keys):
                    if not keep[j]:
                        continue
                    lo, hi = min(j, diag), max(j, diag)
                    p = min(sum(gates[lo : hi + 1]), npos - 1)
                    fl, ce = int(np.floor(p)), int(np.ceil(p))
                    out[b, h, i, j] = (p - fl) * z[ce] + (1 - (p - fl)) * z[fl]
    return out


# ----------------------------------------------------------------------------- Shaw


@pytest.mark.parametrize("per_head", [False, True])
@pytest.mark.parametrize("batched_positions", [False, True])
def test_shaw_logits_and_values_match_naive(per_head, batched_positions):
    tables = init_shaw_tables(
        jax.random.key(0), max_distance=M, head_dim=K, num_heads=H if per_head else None, stddev=1
    )
    q = _normal(1, (B, L, H, K))
    q_pos, k_pos = np.arange(L) + 1, np.arange(S)
    if batched_positions:
        q_pos = np.stack([q_pos, np.array([0, 3, 4, 9, 11])])
        k_pos = np.stack([k_pos, np.array([-4, 0, 2, 3, 8, 12])])
    got = _shaw_relative_logits(
        q, q_pos, k_pos, rel_key_table=tables["rel_key_table"], max_distance=M
    )
    want = naive_shaw_logits(q, q_pos, k_pos, tables["rel_key_table"], M)
    assert got.shape == (B, H, L, S) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

    probs = jax.nn.softmax(_normal(2, (B, H, L, S)), axis=-1)
    got_v = _shaw_relative_values(
        probs, q_pos, k_pos, rel_value_table=tables["rel_value_table"], max_distance=M
    )
    want_v = naive_shaw_values(probs, q_pos, k_pos, tables["rel_value_table"], M)
    assert got_v.shape == (B, L, H, K) and got_v.dtype == jnp.float32
    np.testing.assert_allclose(got_v, want_v, rtol=1e-5, atol=1e-5)


def test_shaw_clipping_uses_edge_embeddings():
    table = np.arange(2 * M + 1, dtype=np.float32)[:, None] * np.ones((1, K), np.float32)
    q = np.ones((1, 1, H, K), np.float32)
    k_pos = np.array([-10, -3, -2, -1, 0, 1, 2, 3, 10])
    got = _shaw_relative_logits(q, np.array([0]), k_pos, rel_key_table=table, max_distance=M)
    # Row r of the table holds r * ones, so q . a = K * (clip(j - i) + M).
    want = K * (np.clip(k_pos, -M, M) + M)
    np.testing.assert_array_equal(got[0, 0, 0], want)


def test_shaw_translation_invariant():
    tables = init_shaw_tables(jax.random.key(3), max_distance=M, head_dim=K, stddev=1)
    q, probs = _normal(4, (B, L, H, K)), jax.nn.softmax(_normal(5, (B, H, L, S)), -1)
    q_pos, k_pos = np.arange(L), np.array([0, 1, 4, 5, 6, 9])
    kwargs = dict(rel_key_table=tables["rel_key_table"], max_distance=M)
    vkwargs = dict(rel_value_table=tables["rel_value_table"], max_distance=M)
    for shift in (7, -3):
        np.testing.assert_array_equal(
            _shaw_relative_logits(q, q_pos, k_pos, **kwargs),
            _shaw_relative_logits(q, q_pos + shift, k_pos + shift, **kwargs),
        )
        np.testing.assert_array_equal(
            _shaw_relative_values(probs, q_pos, k_pos, **vkwargs),
            _shaw_relative_values(probs, q_pos + shift, k_pos + shift, **vkwargs),
        )


# ----------------------------------------------------------------------------- Transformer-XL


def _xl_params(seed, rel_dim=6):
    return {
        "u": _normal(seed, (H, K)),
        "v": _normal(seed + 1, (H, K)),
        "w_r": _normal(seed + 2, (rel_dim, H, K)),
    }


@pytest.mark.parametrize("batched_positions", [False, True])
def test_transformer_xl_matches_naive(batched_positions):
    q, k, params = _normal(10, (B, L, H, K)), _normal(11, (B, S, H, K)), _xl_params(12)
    q_pos, k_pos = np.arange(L) + S - L, np.arange(S)
    if batched_positions:  # arbitrary, non-contiguous positions and keys after the queries
        q_pos = np.stack([q_pos, np.array([3, 7, 8, 20, 21])])
        k_pos = np.stack([k_pos, np.array([-2, 0, 9, 15, 22, 30])])
    got = _transformer_xl_logits(q, k, q_pos, k_pos, max_wavelength=100.0, **params)
    want = naive_transformer_xl(q, k, q_pos, k_pos, max_wavelength=100.0, **params)
    assert got.shape == (B, H, L, S) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_transformer_xl_translation_invariant():
    q, k, params = _normal(13, (B, L, H, K)), _normal(14, (B, S, H, K)), _xl_params(15)
    q_pos, k_pos = np.arange(L) + 1, np.arange(S)
    base = _transformer_xl_logits(q, k, q_pos, k_pos, **params)
    for shift in (9, 250):
        shifted = _transformer_xl_logits(q, k, q_pos + shift, k_pos + shift, **params)
        np.testing.assert_allclose(shifted, base, rtol=1e-4, atol=1e-4)
    # A shift of the queries alone changes i - j, so the terms must change.
    assert not np.allclose(_transformer_xl_logits(q, k, q_pos + 1, k_pos, **params), base)


@pytest.mark.parametrize("batched_positions", [False, True])
def test_transformer_xl_with_distances_uses_the_sampled_signed_distance(batched_positions):
    # Ruoss et al.'s randomized Transformer-XL: R at sign(i - j) * d_|i - j|.
    q, k, params = _normal(40, (B, L, H, K)), _normal(41, (B, S, H, K)), _xl_params(42)
    q_pos, k_pos = np.arange(L) + S - L, np.arange(S)
    if batched_positions:
        q_pos, k_pos = _batched(q_pos, B), _batched(k_pos, B)
    distances = np.array([0, 3, 4, 10, 17, 40])
    got = transformer_xl_logits(
        q, k, q_pos, k_pos, max_wavelength=100.0, distances=distances, **params
    )
    # The naive reference at positions whose differences are the mapped gaps: query i at
    # P[i], key j at P[i] - sign(i - j) d_|i-j| is not one set of positions, so check row by row.
    qp, kp = _batched(q_pos, B), _batched(k_pos, B)
    for i in range(L):
        gap = qp[:, i : i + 1] - kp  # [B, S]
        mapped = np.sign(gap) * distances[np.abs(gap)]
        want = naive_transformer_xl(
            q[:, i : i + 1], k, np.zeros((B, 1), int), -mapped, max_wavelength=100.0, **params
        )
        np.testing.assert_allclose(got[:, :, i : i + 1], want, rtol=1e-4, atol=1e-4)
    # The identity table is plain Transformer-XL.
    plain = transformer_xl_logits(q, k, q_pos, k_pos, **params)
    same = transformer_xl_logits(q, k, q_pos, k_pos, distances=np.arange(S), **params)
    np.testing.assert_allclose(same, plain, rtol=1e-4, atol=1e-4)


def test_transformer_xl_content_bias_is_independent_of_q():
    k, params = _normal(16, (B, S, H, K)), _xl_params(17)
    no_u = dict(params, u=np.zeros((H, K), np.float32))
    want = np.einsum("hk,bshk->bhs", params["u"], k)[:, :, None, :] * np.ones((1, 1, L, 1))
    for seed in (18, 19):
        q = _normal(seed, (B, L, H, K))
        args = (q, k, np.arange(L), np.arange(S))
        diff = _transformer_xl_logits(*args, **params) - _transformer_xl_logits(*args, **no_u)
        np.testing.assert_allclose(diff, want, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- CoPE


@pytest.mark.parametrize(
    "per_head, npos, causal, length",
    [(False, 8, True, S), (True, 3, True, L), (False, 3, False, S), (True, 8, False, L)],
)
def test_cope_matches_naive(per_head, npos, causal, length):
    q, k = _normal(20, (B, length, H, K)), _normal(21, (B, S, H, K))
    table = init_cope_table(
        jax.random.key(22), npos=npos, head_dim=K, num_heads=H if per_head else None, stddev=1
    )
    got = _cope_logits(q, k, pos_table=table, causal=causal)
    assert got.shape == (B, H, length, S) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, naive_cope(q, k, table, causal), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("causal", [True, False])
def test_cope_with_mask_matches_naive(causal):
    q, k = _normal(23, (B, S, H, K)), _normal(24, (B, S, H, K))
    table = _normal(25, (6, K))
    mask = np.random.default_rng(26).random((B, 1, S, S)) < 0.7
    mask |= np.eye(S, dtype=bool)
    got = _cope_logits(q, k, pos_table=table, causal=causal, mask=mask)
    want = naive_cope(q, k, table, causal, mask)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_cope_is_causal_and_masked_keys_contribute_nothing():
    q, k, table = _normal(27, (B, S, H, K)), _normal(28, (B, S, H, K)), _normal(29, (5, H, K))
    padding = np.ones((B, 1, 1, S), bool)
    padding[:, :, :, 2] = False
    for mask in (None, padding):
        jac = _fast_jit(jax.jacrev(lambda k_, m=mask: cope_logits(q, k_, pos_table=table, mask=m)))(
            k
        )
        # [B, H, L, S, B, S_k, H, K] -> total |d term[i, :] / d k[t]| per (query row i, key t).
        jac = np.abs(np.asarray(jac)).sum(axis=(0, 1, 3, 4, 6, 7))
        for i in range(S):
            assert np.all(jac[i, i + 1 :] == 0.0), (mask is None, i)
            assert np.any(jac[i, : i + 1] != 0.0)
        if mask is not None:
            assert np.all(jac[:, 2] == 0.0)
            terms = _cope_logits(q, k, pos_table=table, mask=mask)
            np.testing.assert_array_equal(terms[..., 2], 0.0)
    # Equivalent statement on the bidirectional path: an explicit causal mask = causal=True.
    tril = np.tril(np.ones((S, S), bool))[None, None]
    np.testing.assert_allclose(
        _cope_logits(q, k, pos_table=table, causal=False, mask=tril),
        _cope_logits(q, k, pos_table=table),
        rtol=1e-6,
        atol=1e-6,
    )


def test_cope_gate_is_sigmoid_of_the_scaled_attention_logit():
    # With q's last channel 1 and e[p] = p on that channel, z_i[p] = p and the term reads out
    # the count p_ij = sum_{t=j}^{i} g_it, so g_ij = term_ij - term_i(j+1) (and g_ii = term_ii).
    n = 5
    q = np.asarray(_normal(34, (1, n, 1, K))).copy()
    q[..., -1] = 1.0
    k = _normal(35, (1, n, 1, K))
    table = np.zeros((n + 1, K), np.float32)
    table[:, -1] = np.arange(n + 1)
    count = np.asarray(_cope_logits(q, k, pos_table=table))[0, 0]
    gates = count - np.concatenate([count[:, 1:], np.zeros((n, 1), np.float32)], axis=1)
    logits = np.einsum("lk,sk->ls", q[0, :, 0], k[0, :, 0]) * (1.0 / np.sqrt(K))
    want = np.tril(1.0 / (1.0 + np.exp(-logits)))
    np.testing.assert_allclose(gates, want, rtol=1e-5, atol=1e-5)
    unscaled = np.tril(1.0 / (1.0 + np.exp(-logits * np.sqrt(K))))
    assert not np.allclose(gates, unscaled, atol=1e-3)


@pytest.mark.parametrize("causal", [True, False])
def test_cope_counts_tokens_when_all_gates_are_one(causal):
    n, npos = 6, 9
    q = k = np.full((1, n, 1, K), 3.0, np.float32)  # q.k / sqrt(K) = 9 sqrt(K): sigmoid == 1
    # e[p] = p / (3 K) ones, so z_i[p] = q_i . e[p] = p: the term reads out the count.
    linear = (np.arange(npos, dtype=np.float32)[:, None] / (3 * K)) * np.ones((1, K), np.float32)
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    count = np.abs(i - j) + 1.0
    keep = (j <= i) | (not causal)
    got = _cope_logits(q, k, pos_table=linear, causal=causal)[0, 0]
    np.testing.assert_allclose(got, np.where(keep, count, 0.0), rtol=1e-6, atol=1e-5)
    clipped = _cope_logits(q, k, pos_table=linear[:4], causal=causal)[0, 0]
    np.testing.assert_allclose(clipped, np.where(keep, np.minimum(count, 3), 0), atol=1e-5)
    # At integer positions the interpolation must return z[p] exactly.
    table = _normal(30, (npos, K))
    z = table @ q[0, 0, 0]
    got = _cope_logits(q, k, pos_table=table, causal=causal)[0, 0]
    want = np.where(keep, z[count.astype(int)], 0.0)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-5)


def test_cope_computes_in_float32():
    q, k, table = _normal(31, (B, S, H, K)), _normal(32, (B, S, H, K)), _normal(33, (4, K))
    got = _cope_logits(q.astype(jnp.bfloat16), k.astype(jnp.bfloat16), pos_table=table)
    want = _cope_logits(
        jnp.asarray(q, jnp.bfloat16).astype(jnp.float32),
        jnp.asarray(k, jnp.bfloat16).astype(jnp.float32),
        pos_table=table,
    )
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------- all functions


def _cases():
    """(name, function of (q, k, probs, q_pos, k_pos, params), params, names of used params)."""
    shaw = init_shaw_tables(jax.random.key(40), max_distance=M, head_dim=K, num_heads=H, stddev=1)
    xl = _xl_params(41)
    cope = {"pos_table": _normal(42, (4, H, K))}
    return [
        (
            "shaw_logits",
            lambda q, k, p, qp, kp, t: shaw_relative_logits(
                q, qp, kp, rel_key_table=t["rel_key_table"], max_distance=M
            ),
            shaw,
            ["rel_key_table"],
        ),
        (
            "shaw_values",
            lambda q, k, p, qp, kp, t: shaw_relative_values(
                p, qp, kp, rel_value_table=t["rel_value_table"], max_distance=M
            ),
            shaw,
            ["rel_value_table"],
        ),
        ("xl", lambda q, k, p, qp, kp, t: transformer_xl_logits(q, k, qp, kp, **t), xl, list(xl)),
        (
            "cope",
            lambda q, k, p, qp, kp, t: cope_logits(q, k, pos_table=t["pos_table"]),
            cope,
            ["pos_table"],
        ),
    ]


def _inputs():
    q, k = _normal(43, (B, L, H, K)), _normal(44, (B, S, H, K))
    probs = jax.nn.softmax(_normal(45, (B, H, L, S)), axis=-1)
    q_pos = np.stack([np.arange(L) + 1, np.arange(L) + 4])
    k_pos = np.stack([np.arange(S), np.array([0, 2, 3, 5, 8, 9])])
    return q, k, probs, q_pos, k_pos


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c[0])
def test_jit_vmap_and_grads(case):
    _, fn, params, reads = case
    q, k, probs, q_pos, k_pos = _inputs()

    def single(q_, k_, p_, qp_, kp_):
        return fn(q_[None], k_[None], p_[None], qp_[None], kp_[None], params)[0]

    def loss(q_, k_, p_, params_):
        return jnp.sum(jnp.sin(fn(q_, k_, p_, q_pos, k_pos, params_)))

    @_fast_jit
    def everything(q, k, probs, q_pos, k_pos, params):
        # One compilation for all the jitted checks keeps the file fast.
        looped = jnp.stack([single(q[b], k[b], probs[b], q_pos[b], k_pos[b]) for b in range(B)])
        return (
            fn(q, k, probs, q_pos, k_pos, params),
            jax.vmap(single)(q, k, probs, q_pos, k_pos),
            looped,
            jax.grad(loss, argnums=(0, 1, 2, 3))(q, k, probs, params),
        )

    jitted, vmapped, looped, grads = everything(q, k, probs, q_pos, k_pos, params)
    eager = fn(q, k, probs, q_pos, k_pos, params)
    np.testing.assert_allclose(jitted, eager, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(vmapped, looped, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(vmapped, eager, rtol=1e-5, atol=1e-5)
    for leaf in jax.tree_util.tree_leaves(grads):
        assert np.all(np.isfinite(leaf))
    # Every parameter the function reads gets a non-zero gradient.
    for name in reads:
        assert np.any(np.asarray(grads[3][name]) != 0), name


def test_init_shapes():
    key = jax.random.key(0)
    shapes = jax.eval_shape(
        lambda key: (
            init_shaw_tables(key, max_distance=3, head_dim=K),
            init_shaw_tables(key, max_distance=1, head_dim=K, num_heads=H),
            init_transformer_xl_params(key, num_heads=H, head_dim=K, rel_dim=8),
            init_cope_table(key, npos=5, head_dim=K),
            init_cope_table(key, npos=5, head_dim=K, num_heads=H),
        ),
        key,
    )
    shapes = jax.tree_util.tree_map(lambda x: (x.shape, x.dtype), shapes)
    f32 = jnp.float32
    assert shapes == (
        {"rel_key_table": ((7, K), f32), "rel_value_table": ((7, K), f32)},
        {"rel_key_table": ((3, H, K), f32), "rel_value_table": ((3, H, K), f32)},
        {"u": ((H, K), f32), "v": ((H, K), f32), "w_r": ((8, H, K), f32)},
        ((5, K), f32),
        ((5, H, K), f32),
    )
    assert np.all(init_cope_table(key, npos=5, head_dim=K, stddev=0) == 0)


# ----------------------------------------------------------------------------- bad arguments

_Q, _K = np.zeros((B, L, H, K), np.float32), np.zeros((B, S, H, K), np.float32)
_P = np.zeros((B, H, L, S), np.float32)
_QP, _KP = np.arange(L), np.arange(S)
_T = np.zeros((2 * M + 1, K), np.float32)
_XL = {"u": np.zeros((H, K)), "v": np.zeros((H, K)), "w_r": np.zeros((6, H, K))}
_shaw = functools.partial(shaw_relative_logits, _Q, _QP, _KP, max_distance=M)
_values = functools.partial(shaw_relative_values, _P, _QP, _KP, max_distance=M)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: _shaw(rel_key_table=np.zeros((2 * M + 1,))), "rel_key_table"),
        (lambda: _shaw(rel_key_table=np.zeros((2 * M, K))), "rel_key_table"),
        (lambda: _shaw(rel_key_table=np.zeros((2 * M + 1, H + 1, K))), "rel_key_table"),
        (lambda: _shaw(rel_key_table=np.zeros((2 * M + 1, K + 1))), "rel_key_table"),
        (lambda: shaw_relative_logits(_Q, _QP, _KP, rel_key_table=_T, max_distance=0), "max_dist"),
        (lambda: shaw_relative_logits(_Q[0], _QP, _KP, rel_key_table=_T, max_distance=M), "q"),
        (lambda: shaw_relative_logits(_Q, _QP * 1.0, _KP, rel_key_table=_T, max_distance=M), "q_p"),
        (lambda: shaw_relative_logits(_Q, _QP, _KP * 1.0, rel_key_table=_T, max_distance=M), "k_p"),
        (lambda: shaw_relative_logits(_Q, _KP, _KP, rel_key_table=_T, max_distance=M), "q_pos"),
        (lambda: _values(rel_value_table=np.zeros((2 * M + 3, K))), "rel_value_table"),
        (lambda: _values(rel_value_table=np.zeros((1, 2 * M + 1, K, K))), "rel_value_table"),
        (lambda: shaw_relative_values(_P, _QP, _QP, rel_value_table=_T, max_distance=M), "k_pos"),
        (lambda: shaw_relative_values(_P, _QP, _KP, rel_value_table=_T, max_distance=-1), "max_d"),
        (lambda: init_shaw_tables(jax.random.key(0), max_distance=0, head_dim=K), "max_distance"),
        (lambda: init_shaw_tables(jax.random.key(0), max_distance=1, head_dim=0), "head_dim"),
        (lambda: transformer_xl_logits(_Q, _K[:, :, :1], _QP, _KP, **_XL), "q .* and k"),
        (lambda: transformer_xl_logits(_Q, _K[..., :2], _QP, _KP, **_XL), "q .* and k"),
        (lambda: transformer_xl_logits(_Q, _K, _QP, _KP, **dict(_XL, u=np.zeros(K))), "u"),
        (lambda: transformer_xl_logits(_Q, _K, _QP, _KP, **dict(_XL, v=np.zeros((K, H)))), "v"),
        (lambda: transformer_xl_logits(_Q, _K, _QP, _KP, **dict(_XL, w_r=np.zeros((6, K)))), "w_r"),
        (
            lambda: transformer_xl_logits(_Q, _K, _QP, _KP, **dict(_XL, w_r=np.zeros((5, H, K)))),
            "w_r",
        ),
        (lambda: transformer_xl_logits(_Q, _K, _QP * 1.0, _KP, **_XL), "q_positions"),
        (lambda: transformer_xl_logits(_Q, _K, _QP, _KP[:-1], **_XL), "k_positions"),
        (lambda: transformer_xl_logits(_Q, _K, _QP, _KP, max_wavelength=0, **_XL), "max_wave"),
        (
            lambda: init_transformer_xl_params(
                jax.random.key(0), num_heads=H, head_dim=K, rel_dim=5
            ),
            "rel_dim",
        ),
        (lambda: cope_logits(_Q, _K[:, :, :1], pos_table=_T), "q .* and k"),
        (lambda: cope_logits(_Q, _K, pos_table=np.zeros((4,))), "pos_table"),
        (lambda: cope_logits(_Q, _K, pos_table=np.zeros((4, K + 1))), "pos_table"),
        (lambda: cope_logits(_Q, _K, pos_table=np.zeros((4, H + 1, K))), "pos_table"),
        (lambda: cope_logits(_Q, _K, pos_table=np.zeros((0, K))), "pos_table"),
        (lambda: cope_logits(_Q, _K, pos_table=_T, causal="yes"), "causal"),
        (lambda: cope_logits(_Q, _K, pos_table=_T, mask=np.ones((L, S), bool)), "mask"),
        (lambda: cope_logits(_Q, _K, pos_table=_T, mask=np.ones((1, 1, L, S))), "mask"),
        (lambda: cope_logits(_Q, _K, pos_table=_T, mask=np.ones((1, 1, L, S + 1), bool)), "mask"),
        (lambda: init_cope_table(jax.random.key(0), npos=0, head_dim=K), "npos"),
        (lambda: init_cope_table(jax.random.key(0), npos=2, head_dim=K, stddev=-1.0), "stddev"),
    ],
)
def test_bad_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
