"""Input-place encodings and position samplers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pe_jax.encodings._absolute import (
    binary_positions,
    integer_positions,
    normalized_positions,
    sinusoidal,
    sinusoidal_table,
)
from pe_jax.encodings._positions import (
    arange_positions,
    map_gaps,
    randomized_distances,
    randomized_positions,
    shifted_positions,
)


def test_integer_and_normalized_values():
    p = jnp.array([0, 3, 7])
    np.testing.assert_array_equal(integer_positions(p, 4)[:, 0], [0.0, 3.0, 7.0])
    np.testing.assert_array_equal(integer_positions(p, 4)[1], [3.0] * 4)
    np.testing.assert_allclose(normalized_positions(p, 2, length=8)[:, 1], [0.0, 3 / 8, 7 / 8])


def test_binary_digits_match_python():
    p = np.arange(40)
    bits = np.asarray(binary_positions(jnp.asarray(p), 6))
    expected = np.array([[int(c) for c in reversed(format(int(v), "06b"))] for v in p])
    np.testing.assert_array_equal(bits, expected)


def test_sinusoidal_matches_paper_formula():
    p, dim = np.arange(50), 16
    pe = np.asarray(sinusoidal(jnp.asarray(p), dim))
    for i in range(dim // 2):
        w = 10000.0 ** (-2 * i / dim)
        np.testing.assert_allclose(pe[:, 2 * i], np.sin(p * w), atol=2e-5)
        np.testing.assert_allclose(pe[:, 2 * i + 1], np.cos(p * w), atol=2e-5)
    np.testing.assert_array_equal(sinusoidal_table(50, dim), pe)


@given(st.integers(0, 2000), st.integers(0, 500))
def test_sinusoidal_shift_is_a_fixed_rotation(p, k):
    """PE(p + k) = R(k) PE(p): each (sin, cos) pair turns by angle k * w_i, whatever p is."""
    dim = 8
    pe_p, pe_pk = np.asarray(sinusoidal(jnp.array([p, p + k]), dim), np.float64)
    w = 10000.0 ** (-np.arange(0, dim, 2) / dim)
    s, c = pe_p[0::2], pe_p[1::2]
    # sin(a + b) = sin a cos b + cos a sin b ; cos(a + b) = cos a cos b - sin a sin b
    rot_s = s * np.cos(k * w) + c * np.sin(k * w)
    rot_c = c * np.cos(k * w) - s * np.sin(k * w)
    np.testing.assert_allclose(pe_pk[0::2], rot_s, atol=5e-4)
    np.testing.assert_allclose(pe_pk[1::2], rot_c, atol=5e-4)


def test_dtype_cast_and_float32_angles():
    p = jnp.array([100_000])
    out = sinusoidal(p, 4, dtype=jnp.bfloat16)
    assert out.dtype == jnp.bfloat16
    ref = np.sin(100_000.0)
    assert abs(float(out[0, 0]) - ref) < 1e-2  # bf16 rounding of a float32 sine


def test_batched_positions_and_jit_vmap_grad():
    p = jnp.array([[0, 1, 2], [5, 6, 7]])
    for fn in (
        lambda q: sinusoidal(q, 6),
        lambda q: integer_positions(q, 3),
        lambda q: binary_positions(q, 3),
        lambda q: normalized_positions(q, 3, length=8),
    ):
        eager = fn(p)
        np.testing.assert_array_equal(jax.jit(fn)(p), eager)
        np.testing.assert_array_equal(jax.vmap(fn)(p), jnp.stack([fn(row) for row in p]))
    grad = jax.grad(lambda s: jnp.sum(s * sinusoidal(p, 6)))(1.0)
    assert np.isfinite(grad)


def test_position_samplers():
    np.testing.assert_array_equal(arange_positions(4, offset=3), [3, 4, 5, 6])
    assert arange_positions(4, batch_size=2).shape == (2, 4)
    key = jax.random.key(0)
    r = np.asarray(randomized_positions(key, 16, max_length=64, batch_size=8))
    assert r.shape == (8, 16) and r.dtype == np.int32
    assert (np.diff(r, axis=-1) > 0).all() and r.min() >= 0 and r.max() < 64
    assert len({tuple(row) for row in r}) == 8  # each example draws its own sample
    r2 = randomized_positions(jax.random.key(1), 16, max_length=64, batch_size=8)
    assert not np.array_equal(r, r2)
    np.testing.assert_array_equal(randomized_positions(key, 5, max_length=5), np.arange(5))
    s = np.asarray(shifted_positions(key, 4, max_shift=10, batch_size=3))
    assert (np.diff(s, axis=-1) == 1).all() and s[:, 0].min() >= 0 and s[:, 0].max() <= 10


def test_randomized_positions_cover_the_range():
    r = np.asarray(randomized_positions(jax.random.key(3), 8, max_length=32, batch_size=512))
    counts = np.bincount(r.ravel(), minlength=32)
    assert counts.min() > 0  # every position of [0, max_length) is sampled


def test_randomized_distances_are_sorted_unique_and_within_one_to_max_length():
    # Ruoss et al.'s official code: L - 1 distinct distances from [1, L_max), sorted.
    draws = [
        np.asarray(randomized_distances(jax.random.key(s), 9, max_length=16)) for s in range(200)
    ]
    for d in draws:
        assert d.shape == (9,) and d.dtype == np.int32 and d[0] == 0
        assert (np.diff(d) > 0).all() and d[1:].min() >= 1 and d.max() < 16
    counts = np.bincount(np.concatenate([d[1:] for d in draws]), minlength=16)
    assert counts[0] == 0 and counts[1:].min() > 0  # every distance of [1, L_max) occurs
    assert len({d.tobytes() for d in draws}) > 1
    np.testing.assert_array_equal(
        randomized_distances(jax.random.key(0), 5, max_length=5), np.arange(5)
    )
    np.testing.assert_array_equal(randomized_distances(jax.random.key(0), 1, max_length=1), [0])
    with pytest.raises(ValueError, match="max_length"):
        randomized_distances(jax.random.key(0), 6, max_length=5)


def test_map_gaps_mirrors_the_table_on_both_sides():
    table = jnp.array([0, 2, 5, 9])
    gaps = jnp.arange(-5, 6)
    want = (
        np.sign(np.arange(-5, 6)) * np.array([0, 2, 5, 9])[np.minimum(np.abs(np.arange(-5, 6)), 3)]
    )
    np.testing.assert_array_equal(map_gaps(gaps, table), want)
    with pytest.raises(ValueError, match="distances"):
        map_gaps(gaps, jnp.ones((2, 2), jnp.int32))


def test_padded_examples_draw_positions_of_their_own_length():
    """With `lengths`, n real tokens of an L-wide row get a sample of n from [0, max_length)
    (expected largest (max_length + 1) n / (n + 1) - 1), not the first n of a sample of L."""
    n, width, top = 4, 16, 1000
    lengths = jnp.full((4000,), n)
    r = np.asarray(randomized_positions(jax.random.key(5), width, max_length=top, lengths=lengths))
    assert (np.diff(r[:, :n], axis=-1) > 0).all() and r.min() >= 0 and r.max() < top
    assert (r[:, n:] == r[:, n - 1 : n]).all()  # padding slots repeat the last real position
    expected = (top + 1) * n / (n + 1) - 1  # 800
    assert abs(r[:, n - 1].mean() - expected) < 0.03 * expected
    unaware = np.asarray(
        randomized_positions(jax.random.key(5), width, max_length=top, batch_size=4000)
    )
    assert unaware[:, n - 1].mean() < 0.4 * expected  # ~ top * n / (width + 1) = 235
    # the first n of a row's top-L draws are its top-n draws: the same sample as unpadded
    mixed = jnp.array([3, 16])
    padded = np.asarray(
        randomized_positions(jax.random.key(6), width, max_length=64, lengths=mixed)
    )
    alone = np.asarray(randomized_positions(jax.random.key(6), 3, max_length=64, batch_size=2))
    np.testing.assert_array_equal(padded[0, :3], alone[0])
    assert (np.diff(padded[1]) > 0).all()
    s = np.asarray(shifted_positions(jax.random.key(7), width, max_shift=10, lengths=lengths))
    assert (np.diff(s[:, :n], axis=-1) == 1).all() and (s[:, n:] == s[:, n - 1 : n]).all()
    assert s[:, 0].min() == 0 and s[:, 0].max() == 10 + width - n  # last real position <= 25


@pytest.mark.parametrize(
    "call, name",
    [
        (
            lambda: randomized_positions(
                jax.random.key(0), 4, max_length=8, lengths=jnp.ones((2, 2))
            ),
            "lengths",
        ),
        (
            lambda: shifted_positions(
                jax.random.key(0), 4, max_shift=1, batch_size=3, lengths=jnp.ones(2)
            ),
            "lengths",
        ),
        (lambda: sinusoidal(jnp.array([0.5]), 4), "positions"),
        (lambda: sinusoidal(jnp.array([1]), 5), "dim"),
        (lambda: sinusoidal(jnp.array([1]), 4, max_wavelength=0.0), "max_wavelength"),
        (lambda: binary_positions(jnp.array([1]), 40), "dim"),
        (lambda: normalized_positions(jnp.array([1]), 4, length=0), "length"),
        (lambda: randomized_positions(jax.random.key(0), 10, max_length=5), "max_length"),
        (lambda: arange_positions(0), "length"),
        (lambda: shifted_positions(jax.random.key(0), 3, max_shift=-1), "max_shift"),
    ],
)
def test_bad_arguments(call, name):
    with pytest.raises(ValueError, match=name):
        call()
