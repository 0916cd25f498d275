"""Tests of the attention-logit biases (pe_jax/encodings/_alibi_t5.py, _learned_bias.py)."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pe_jax.encodings._alibi_t5 import (
    alibi_bias,
    alibi_slopes,
    sandwich_bias,
    t5_bias,
    t5_relative_bucket,
)
from pe_jax.encodings._learned_bias import (
    dynamic_position_bias,
    fire_bias,
    init_dynamic_bias_params,
    init_fire_params,
    init_kerple_params,
    kerple_log_bias,
    kerple_power_bias,
)

H = 3
_KEY = jax.random.key(0)
_TABLE = jnp.asarray(np.random.default_rng(0).normal(size=(8, H)), jnp.float32)

# name -> (bias(q, k, params), params). Params are the traced argument in jit/grad tests.
CASES = {
    "alibi": (lambda q, k, p: alibi_bias(q, k, slopes=p), alibi_slopes(H)),
    "alibi_bidirectional": (
        lambda q, k, p: alibi_bias(q, k, slopes=p, bidirectional=True),
        alibi_slopes(H),
    ),
    "t5": (
        lambda q, k, p: t5_bias(q, k, table=p, bidirectional=False, max_distance=20),
        _TABLE,
    ),
    "t5_bidirectional": (
        lambda q, k, p: t5_bias(q, k, table=p, bidirectional=True, max_distance=20),
        _TABLE,
    ),
    "kerple_log": (
        lambda q, k, p: kerple_log_bias(q, k, **p),
        init_kerple_params(_KEY, H, kind="log"),
    ),
    "kerple_power": (
        lambda q, k, p: kerple_power_bias(q, k, **p),
        init_kerple_params(_KEY, H, kind="power"),
    ),
    "sandwich": (lambda q, k, p: sandwich_bias(q, k, num_heads=H, dim=16), {}),
    "fire": (
        lambda q, k, p: fire_bias(q, k, params=p),
        init_fire_params(_KEY, H, hidden=8, threshold=6.0),
    ),
    "dpb": (
        lambda q, k, p: dynamic_position_bias(q, k, params=p),
        init_dynamic_bias_params(_KEY, H, hidden=8),
    ),
    "dpb_linear": (
        lambda q, k, p: dynamic_position_bias(q, k, params=p, log_distance=False),
        init_dynamic_bias_params(_KEY, H, hidden=8, depth=1),
    ),
}
ALL = sorted(CASES)
# One jitted wrapper per case, shared by the tests so each shape compiles once (op-by-op eager
# dispatch of many small shapes dominates the run time otherwise); eager runs in test_jit_*.
JIT = {name: jax.jit(fn) for name, (fn, _) in CASES.items()}
TRAINABLE = [name for name in ALL if name != "sandwich"]  # sandwich has no parameters

Q = jnp.array([3, 5, 9])
K = jnp.array([0, 2, 3, 7, 11])


# ----------------------------------------------------------------------------- ALiBi


def test_alibi_slopes_power_of_two_exact():
    np.testing.assert_array_equal(alibi_slopes(8), [2.0**-k for k in range(1, 9)])
    np.testing.assert_array_equal(alibi_slopes(1), [2.0**-8])
    np.testing.assert_array_equal(alibi_slopes(2), [2.0**-4, 2.0**-8])


def _paper_slopes(n):
    # Press et al.: 2^(-8k/n) for k = 1..n when n is a power of two; else the closest power of
    # two below, then every other slope of twice that.
    if n & (n - 1) == 0:
        return [2.0 ** (-8.0 * k / n) for k in range(1, n + 1)]
    p = 2 ** int(math.log2(n))
    return _paper_slopes(p) + _paper_slopes(2 * p)[::2][: n - p]


def test_alibi_slopes_non_power_of_two():
    # 6 heads: the 4-head slopes, then the 8-head sequence's 2^-1, 2^-3.
    six = [2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8, 2.0**-1, 2.0**-3]
    twelve = [2.0**-k for k in range(1, 9)] + [2.0 ** -(k / 2) for k in (1, 3, 5, 7)]
    np.testing.assert_allclose(alibi_slopes(6), six, rtol=1e-7)
    np.testing.assert_allclose(alibi_slopes(12), twelve, rtol=1e-7)
    for n in (3, 5, 6, 7, 12, 24):
        np.testing.assert_allclose(alibi_slopes(n), _paper_slopes(n), rtol=1e-7)


def test_alibi_bias_by_hand():
    pos = jnp.arange(3)
    causal = alibi_bias(pos, pos, slopes=jnp.array([0.5, 0.25]))
    sym = np.asarray(alibi_bias(pos, pos, slopes=jnp.array([0.5, 0.25]), bidirectional=True))
    assert causal.shape == (1, 2, 3, 3) and causal.dtype == jnp.float32
    causal = np.asarray(causal)
    # Keys after the query (j > i) get 0 in the causal form (they are masked).
    np.testing.assert_allclose(causal[0, 0], [[0, 0, 0], [-0.5, 0, 0], [-1.0, -0.5, 0]])
    np.testing.assert_allclose(causal[0, 1], [[0, 0, 0], [-0.25, 0, 0], [-0.5, -0.25, 0]])
    np.testing.assert_allclose(sym[0, 0], [[0, -0.5, -1.0], [-0.5, 0, -0.5], [-1.0, -0.5, 0]])


def test_alibi_left_offset_breaks_the_symmetry_as_the_official_encoder_code():
    # Ruoss et al. 2023's encoder ALiBi: -m |i - j| + 0.5 m on the strictly lower triangle.
    n, slopes = 5, alibi_slopes(4)
    pos = jnp.arange(n)
    bias = np.asarray(alibi_bias(pos, pos, slopes=slopes, bidirectional=True, left_offset=0.5))[0]
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    official = -np.abs(i - j) + 0.5 * np.tri(n, n, k=-1)
    np.testing.assert_allclose(bias, np.asarray(slopes)[:, None, None] * official, rtol=1e-6)
    for h, m in enumerate(np.asarray(slopes)):
        lower = i > j
        diff = bias[h] - bias[h].T
        np.testing.assert_allclose(diff[lower], 0.5 * m, rtol=1e-6)
        np.testing.assert_allclose(np.diag(bias[h]), 0.0)
    with pytest.raises(ValueError, match="left_offset"):
        alibi_bias(pos, pos, slopes=slopes, left_offset=0.5)  # causal: no offset
    with pytest.raises(ValueError, match="left_offset"):
        alibi_bias(pos, pos, slopes=slopes, bidirectional=True, left_offset=float("nan"))


@pytest.mark.parametrize("bidirectional", [False, True])
def test_alibi_with_distances_reads_the_gap_table(bidirectional):
    slopes = jnp.array([0.5, 0.25])
    pos = jnp.arange(4)
    distances = jnp.array([0, 3, 7, 20])
    offset = 0.5 if bidirectional else 0.0
    got = np.asarray(
        alibi_bias(
            pos,
            pos,
            slopes=slopes,
            bidirectional=bidirectional,
            left_offset=offset,
            distances=distances,
        )
    )[0]
    i, j = np.arange(4)[:, None], np.arange(4)[None, :]
    d = np.asarray(distances)[np.abs(i - j)]
    want = -d + offset * (i > j) if bidirectional else np.where(i >= j, -d, 0)
    np.testing.assert_allclose(got, np.asarray(slopes)[:, None, None] * want, rtol=1e-6)
    # The identity table is plain ALiBi.
    plain = alibi_bias(pos, pos, slopes=slopes, bidirectional=bidirectional)
    same = alibi_bias(pos, pos, slopes=slopes, bidirectional=bidirectional, distances=pos)
    np.testing.assert_allclose(plain, same)


# ----------------------------------------------------------------------------- T5


def _ref_bucket(n, bidirectional, num_buckets, max_distance):
    """T5's bucketing (mesh-tensorflow / HF), written in plain Python with math.log."""
    bucket = 0
    if bidirectional:
        num_buckets //= 2
        bucket += num_buckets if n > 0 else 0
        n = abs(n)
    else:
        n = max(-n, 0)
    max_exact = num_buckets // 2
    if n < max_exact:
        return bucket + n
    big = max_exact + int(
        math.log(n / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact)
    )
    return bucket + min(big, num_buckets - 1)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_buckets", [32, 8])
@pytest.mark.parametrize("max_distance", [128, 20])
def test_t5_bucket_matches_reference(bidirectional, num_buckets, max_distance):
    offsets = np.arange(-300, 301)
    got = t5_relative_bucket(
        jnp.asarray(offsets),
        bidirectional=bidirectional,
        num_buckets=num_buckets,
        max_distance=max_distance,
    )
    want = [_ref_bucket(int(n), bidirectional, num_buckets, max_distance) for n in offsets]
    assert got.dtype == jnp.int32
    np.testing.assert_array_equal(got, want)


def test_t5_bucket_hand_values():
    offsets = np.arange(-1000, 1001)
    causal_all = np.asarray(t5_relative_bucket(offsets, bidirectional=False))
    bidi_all = np.asarray(t5_relative_bucket(offsets, bidirectional=True))

    def causal(n):
        return int(causal_all[n + 1000])

    def bidi(n):
        return int(bidi_all[n + 1000])

    # Causal: 16 exact buckets, then 16 log buckets up to distance 128.
    assert [causal(n) for n in (0, 5, -1, -15)] == [0, 0, 1, 15]
    assert causal(-16) == 16  # log(16/16) = 0
    assert causal(-32) == 21  # 16 + floor(16 ln 2 / ln 8) = 16 + 5
    assert causal(-127) == 31 and causal(-128) == 31 and causal(-1000) == 31
    # Bidirectional: 16 buckets per sign, 8 exact; positive offsets add 16.
    assert [bidi(n) for n in (0, 1, -1, 7, -7)] == [0, 17, 1, 23, 7]
    assert bidi(-16) == 10 and bidi(16) == 26  # 8 + floor(8 ln 2 / ln 16) = 8 + 2
    assert bidi(-1000) == 15 and bidi(1000) == 31


def test_t5_bias_gathers_table():
    table = np.arange(32 * 2, dtype=np.float32).reshape(32, 2)
    q, k = jnp.array([0, 4, 40]), jnp.array([1, 2, 30, 200])
    bias = np.asarray(jax.jit(functools.partial(t5_bias, bidirectional=True))(q, k, table=table))
    assert bias.shape == (1, 2, 3, 4)
    for i, qi in enumerate(q.tolist()):
        for j, kj in enumerate(k.tolist()):
            bucket = _ref_bucket(kj - qi, True, 32, 128)
            np.testing.assert_array_equal(bias[0, :, i, j], table[bucket])


# ----------------------------------------------------------------------------- Kerple, Sandwich


def test_kerple_values_by_hand_and_constraints():
    pos = jnp.arange(4)
    r1, r2 = jnp.array([2.0, -5.0]), jnp.array([0.5, 0.0])
    log = np.asarray(JIT["kerple_log"](pos, pos, {"r1": r1, "r2": r2}))
    np.testing.assert_allclose(log[0, 0, 2, 0], -2.0 * np.log(2.0), rtol=1e-6)
    # Out-of-range parameters act as the bound 0.01.
    np.testing.assert_allclose(log[0, 1, 3, 0], -0.01 * np.log1p(0.01 * 3), rtol=1e-6)
    params = {"r1": jnp.array([0.5, 1.0]), "r2": jnp.array([2.0, 3.0])}
    power = np.asarray(JIT["kerple_power"](pos, pos, params))
    np.testing.assert_allclose(power[0, 0, 3, 0], -4.5, rtol=1e-6)
    np.testing.assert_allclose(power[0, 1, 0, 3], -9.0, rtol=1e-6)  # r2 clipped to 2
    np.testing.assert_array_equal(power[0, :, 1, 1], 0.0)


def test_sandwich_matches_cosine_sum():
    dim, heads = 16, 4
    pos = np.array([0, 1, 2, 5, 17, 60])
    got = np.asarray(jax.jit(functools.partial(sandwich_bias, num_heads=heads, dim=dim))(pos, pos))
    d = (pos[:, None] - pos[None, :]).astype(np.float64)
    freqs = 10000.0 ** (-2.0 * np.arange(1, dim // 2 + 1) / dim)
    inner = np.cos(d[..., None] * freqs).sum(-1) - dim / 2
    want = inner[None] / (8.0 * np.arange(1, heads + 1) / heads)[:, None, None]
    np.testing.assert_allclose(got[0], want, atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(np.diagonal(got[0], axis1=1, axis2=2), 0.0)


# ----------------------------------------------------------------------------- FIRE, DPB


def _np_mlp(x, params, act):
    n = sum(1 for name in params if name.startswith("w"))
    h = x[..., None]
    for i in range(n):
        h = h @ np.asarray(params[f"w{i}"], np.float64) + np.asarray(params[f"b{i}"], np.float64)
        if i < n - 1:
            h = act(h)
    return np.moveaxis(h, -1, 0)  # [H, L, S]


def test_fire_matches_numpy_reference():
    params = dict(init_fire_params(jax.random.key(7), H, hidden=8, c=0.3, threshold=5.0))
    q, k = np.array([0, 2, 4, 5, 9, 30]), np.array([0, 1, 3, 4, 8, 9, 29, 30])
    c, big_l = 0.3, 5.0
    ratio = np.log1p(c * np.abs(q[:, None] - k[None, :])) / (
        np.log1p(c * np.maximum(q, big_l))[:, None] + 1e-6
    )
    want = _np_mlp(ratio, params, lambda h: np.maximum(h, 0.0))
    got = JIT["fire"](q, k, params)
    np.testing.assert_allclose(got[0], want, atol=1e-5, rtol=1e-5)
    # Negative c and L act through their absolute values.
    flipped = dict(params, c=-params["c"], threshold=-params["threshold"])
    np.testing.assert_allclose(JIT["fire"](q, k, flipped), got, rtol=1e-6)


def test_fire_depends_on_log_ratio_only():
    params = dict(init_fire_params(jax.random.key(3), H, hidden=16, c=1.0, threshold=3.0))
    # psi(x) = log(1 + x): psi(1)/psi(3) = psi(3)/psi(15) = 1/2, so (i, j) = (3, 2) and (15, 12)
    # (both i >= L) share a bias; (15, 14) has the same i - j as (3, 2) but a different ratio.
    b = np.asarray(JIT["fire"](jnp.array([3, 15]), jnp.array([2, 12, 14]), params))[0]
    np.testing.assert_allclose(b[:, 0, 0], b[:, 1, 1], rtol=1e-5, atol=1e-6)
    assert not np.allclose(b[:, 0, 0], b[:, 1, 2], atol=1e-4)
    # Below the threshold the normaliser is psi(L): only i - j matters.
    low = np.asarray(JIT["fire"](jnp.array([1, 3]), jnp.array([0, 2]), params))[0]
    np.testing.assert_allclose(low[:, 0, 0], low[:, 1, 1], rtol=1e-6)


def test_dynamic_position_bias_matches_numpy_reference():
    params = init_dynamic_bias_params(jax.random.key(5), H, hidden=8, depth=2)
    q, k = np.array([0, 3, 10]), np.array([0, 1, 7, 12, 40])
    d = (q[:, None] - k[None, :]).astype(np.float64)

    def silu(h):
        return h / (1.0 + np.exp(-h))

    for log_distance, x in ((True, np.sign(d) * np.log1p(np.abs(d))), (False, d)):
        got = JIT["dpb" if log_distance else "dpb_linear"](q, k, params)
        np.testing.assert_allclose(got[0], _np_mlp(x, params, silu), atol=1e-5, rtol=1e-5)
    assert sorted(params) == ["b0", "b1", "b2", "w0", "w1", "w2"]
    assert params["w0"].shape == (1, 8) and params["w2"].shape == (8, H)


# ----------------------------------------------------------------------------- properties


@pytest.mark.parametrize("name", [n for n in ALL if n != "fire"])
def test_translation_invariant(name):
    fn, p = JIT[name], CASES[name][1]
    np.testing.assert_array_equal(fn(Q, K, p), fn(Q + 1000, K + 1000, p))


@pytest.mark.parametrize("name", ALL)
def test_shapes_and_decoding(name):
    eager, p = CASES[name]
    fn = JIT[name]
    assert eager(Q, K, p).shape == (1, H, 3, 5)
    assert eager(Q, K, p).dtype == jnp.float32
    # Batched shapes are fixed at trace time: eval_shape checks them without compiling.
    qb, kb = jnp.stack([Q, Q + 2]), jnp.stack([K, K + 1])
    for q, k in ((qb, K), (Q, kb), (qb, kb)):
        assert jax.eval_shape(fn, q, k, p).shape == (2, H, 3, 5)
    pos = jnp.arange(10)
    full = np.asarray(fn(pos, pos, p))
    step = np.asarray(fn(jnp.array([9]), pos, p))
    assert step.shape == (1, H, 1, 10)
    np.testing.assert_allclose(step[:, :, 0], full[:, :, 9], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ALL)
def test_jit_matches_eager(name):
    fn, p = CASES[name]
    np.testing.assert_allclose(JIT[name](Q, K, p), fn(Q, K, p), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_vmap_matches_loop(name):
    fn, p = JIT[name], CASES[name][1]
    qb = jnp.stack([Q, Q + 4, Q * 2])
    kb = jnp.stack([K, K + 1, K * 3])
    mapped = jax.jit(jax.vmap(lambda q, k: fn(q, k, p)[0]))(qb, kb)
    looped = jnp.stack([fn(qb[b], kb[b], p)[0] for b in range(3)])
    np.testing.assert_allclose(mapped, looped, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(fn(qb, kb, p), looped, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", TRAINABLE)
def test_parameter_gradients_finite(name):
    fn, p = CASES[name]
    pos = jnp.arange(8)
    weights = np.random.default_rng(1).normal(size=(1, H, 8, 8)).astype(np.float32)
    grads = jax.jit(jax.grad(lambda p: jnp.sum(fn(pos, pos, p) * weights)))(p)
    for leaf in jax.tree.leaves(grads):
        assert np.all(np.isfinite(leaf))
    assert any(np.any(leaf != 0) for leaf in jax.tree.leaves(grads))


@pytest.mark.parametrize("name", ["kerple_log", "kerple_power"])
def test_clamped_parameters_keep_a_gradient(name):
    fn, pos = JIT[name], jnp.arange(5)
    params = {"r1": jnp.array([-1.0]), "r2": jnp.array([1.5])}
    grads = jax.jit(jax.grad(lambda p: jnp.sum(fn(pos, pos, p))))(params)
    # Straight-through clamp: r1 below its bound still gets the gradient that lowers the bias.
    assert np.isfinite(grads["r1"]).all() and grads["r1"][0] < 0


def test_fire_gradients_reach_c_and_threshold():
    _, p = CASES["fire"]
    grads = jax.jit(jax.grad(lambda p: jnp.sum(JIT["fire"](jnp.arange(9), jnp.arange(9), p))))(p)
    assert grads["c"] != 0 and grads["threshold"] != 0


# ----------------------------------------------------------------------------- bad arguments


def test_bad_arguments():
    # NumPy inputs: the checks run before any computation, so nothing is compiled here.
    pos = np.arange(4)
    slopes = np.ones(2, np.float32)
    with pytest.raises(ValueError, match="num_heads"):
        alibi_slopes(0)
    with pytest.raises(ValueError, match="q_positions"):
        alibi_bias(pos.astype(np.float32), pos, slopes=slopes)
    with pytest.raises(ValueError, match="k_positions"):
        alibi_bias(pos, np.array([0.5, 1.0]), slopes=slopes)
    with pytest.raises(ValueError, match="q_positions"):
        alibi_bias(np.zeros((2, 4), int), np.zeros((3, 4), int), slopes=slopes)
    with pytest.raises(ValueError, match="slopes"):
        alibi_bias(pos, pos, slopes=np.ones((2, 2)))
    with pytest.raises(ValueError, match="table"):
        t5_bias(pos, pos, table=np.ones(32), bidirectional=True)
    with pytest.raises(ValueError, match="table"):
        t5_bias(pos, pos, table=np.ones((32, 2, 1)), bidirectional=True)
    with pytest.raises(ValueError, match="relative_position"):
        t5_relative_bucket(np.ones(3), bidirectional=True)
    for num_buckets, bidirectional in ((1, False), (0, False), (7, True), (2, True)):
        with pytest.raises(ValueError, match="num_buckets"):
            t5_relative_bucket(pos, bidirectional=bidirectional, num_buckets=num_buckets)
    with pytest.raises(ValueError, match="max_distance"):
        t5_relative_bucket(pos, bidirectional=False, num_buckets=32, max_distance=16)
    with pytest.raises(ValueError, match="max_distance"):
        t5_bias(pos, pos, table=np.ones((32, 2)), bidirectional=True, max_distance=8)
    with pytest.raises(ValueError, match="num_heads"):
        sandwich_bias(pos, pos, num_heads=0)
    with pytest.raises(ValueError, match="dim"):
        sandwich_bias(pos, pos, num_heads=2, dim=7)
    with pytest.raises(ValueError, match="max_wavelength"):
        sandwich_bias(pos, pos, num_heads=2, max_wavelength=0.0)
    with pytest.raises(ValueError, match="kind"):
        init_kerple_params(jax.random.key(0), 2, kind="exp")
    with pytest.raises(ValueError, match="num_heads"):
        init_kerple_params(jax.random.key(0), 0, kind="log")
    with pytest.raises(ValueError, match="r2"):
        kerple_log_bias(pos, pos, r1=np.ones(3), r2=np.ones(4))
    with pytest.raises(ValueError, match="hidden"):
        init_fire_params(jax.random.key(0), 2, hidden=0)
    with pytest.raises(ValueError, match="c must"):
        init_fire_params(jax.random.key(0), 2, c=-1.0)
    with pytest.raises(ValueError, match="threshold"):
        init_fire_params(jax.random.key(0), 2, threshold=0.0)
    fire = CASES["fire"][1]
    with pytest.raises(ValueError, match="params"):
        fire_bias(pos, pos, params={k: v for k, v in fire.items() if k != "c"})
    with pytest.raises(ValueError, match="depth"):
        init_dynamic_bias_params(jax.random.key(0), 2, depth=0)
    dpb = CASES["dpb"][1]
    with pytest.raises(ValueError, match="params"):
        dynamic_position_bias(pos, pos, params={k: v for k, v in dpb.items() if k != "b1"})
