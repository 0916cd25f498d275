"""Tests of rope_inv_freq: golden values written out from the published formulas, per element."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pe_jax.encodings._rope_scaling import rope_inv_freq

RTOL = 2e-6  # float32 result vs float64 reference


def plain(d, base=10000.0):
    """theta_i = base ** (-2i / d), one element at a time."""
    return [base ** (-(2 * i) / d) for i in range(d // 2)]


def close(actual, expected, rtol=RTOL):
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=rtol, atol=0)


# --- output type and the default type ---------------------------------------------------------


@pytest.mark.parametrize("d", [2, 8, 16, 128])
def test_default_formula_dtype_and_shape(d):
    inv_freq, scale = rope_inv_freq(d, base=500.0)
    assert isinstance(inv_freq, jax.Array)
    assert inv_freq.dtype == jnp.float32
    assert inv_freq.shape == (d // 2,)
    assert type(scale) is float and scale == 1.0
    close(inv_freq, plain(d, 500.0))


def test_none_default_legacy_type_and_linear_one_agree():
    ref, _ = rope_inv_freq(16)
    for scaling in (
        {"rope_type": "default"},
        {"type": "default"},
        {},
        {"rope_type": "linear", "factor": 1.0},
    ):
        out, scale = rope_inv_freq(16, scaling=scaling)
        np.testing.assert_array_equal(out, ref)
        assert scale == 1.0


def test_every_type_returns_float32_of_right_shape():
    lists = {"short_factor": [1.0] * 4, "long_factor": [2.0] * 4}
    for scaling in (
        {"rope_type": "linear", "factor": 2.0},
        {"rope_type": "dynamic", "factor": 2.0, "original_max_position_embeddings": 16},
        {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 16},
        {"rope_type": "longrope", "factor": 2.0, "original_max_position_embeddings": 16, **lists},
        {
            "rope_type": "llama3",
            "factor": 2.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 16,
        },
    ):
        inv_freq, scale = rope_inv_freq(8, scaling=scaling, seq_len=64)
        assert isinstance(inv_freq, jax.Array) and inv_freq.dtype == jnp.float32
        assert inv_freq.shape == (4,) and type(scale) is float
        assert np.all(np.isfinite(inv_freq)) and np.all(np.asarray(inv_freq) > 0)


# --- linear and dynamic ------------------------------------------------------------------------


def test_linear_divides_by_factor():
    out, scale = rope_inv_freq(8, base=100.0, scaling={"type": "linear", "factor": 4})
    close(out, [t / 4 for t in plain(8, 100.0)])
    assert scale == 1.0


@pytest.mark.parametrize("key", ["original_max_position_embeddings", "max_position_embeddings"])
def test_dynamic_ntk_golden(key):
    d, base, factor, orig, seq_len = 8, 10000.0, 2.0, 16, 64
    new_base = base * ((factor * seq_len / orig) - (factor - 1)) ** (d / (d - 2))
    scaling = {"rope_type": "dynamic", "factor": factor, key: orig}
    out, scale = rope_inv_freq(d, base=base, scaling=scaling, seq_len=seq_len)
    close(out, plain(d, new_base))
    assert scale == 1.0
    assert new_base > base and np.all(np.asarray(out)[1:] < np.asarray(plain(d, base))[1:])


@pytest.mark.parametrize("seq_len", [1, 10, 16])
def test_dynamic_equals_default_up_to_original_length(seq_len):
    scaling = {"rope_type": "dynamic", "factor": 4.0, "original_max_position_embeddings": 16}
    out, _ = rope_inv_freq(8, scaling=scaling, seq_len=seq_len)
    close(out, plain(8))


def test_dynamic_without_seq_len_gives_the_initial_default_frequencies():
    # Hugging Face's _compute_dynamic_ntk_parameters takes seq_len = max_position_embeddings
    # when it is None (at initialisation), so the base is unchanged.
    scaling = {"rope_type": "dynamic", "factor": 4.0, "original_max_position_embeddings": 16}
    out, scale = rope_inv_freq(8, base=500.0, scaling=scaling)
    close(out, plain(8, 500.0))
    assert scale == 1.0
    longer, _ = rope_inv_freq(8, base=500.0, scaling=scaling, seq_len=64)
    assert not np.allclose(longer, out)
    # The dynamic keys are still validated without seq_len.
    with pytest.raises(ValueError, match="original_max_pos"):
        rope_inv_freq(8, scaling={"rope_type": "dynamic", "factor": 2.0})


# --- yarn ----------------------------------------------------------------------------------------


def yarn_reference(d, base, factor, orig, beta_fast=32.0, beta_slow=1.0, truncate=True):
    """YaRN "NTK-by-parts" frequencies from Peng et al. 2023, as HF parametrises them."""

    def dim_for(rotations):
        return d * math.log(orig / (rotations * 2 * math.pi)) / (2 * math.log(base))

    lo, hi = dim_for(beta_fast), dim_for(beta_slow)
    if truncate:
        lo, hi = math.floor(lo), math.ceil(hi)
    lo, hi = max(lo, 0), min(hi, d - 1)
    if lo == hi:
        hi += 0.001
    out = []
    for i, theta in enumerate(plain(d, base)):
        ramp = min(max((i - lo) / (hi - lo), 0.0), 1.0)  # 0: keep, 1: interpolate
        out.append((1 - ramp) * theta + ramp * theta / factor)
    return out


@pytest.mark.parametrize("truncate", [True, False])
def test_yarn_golden(truncate):
    # d=16, base=1e4, L0=4096: correction dims ~2.62 and ~5.63, so the ramp covers i = 3..5.
    d, factor, orig = 16, 8.0, 4096
    scaling = {"rope_type": "yarn", "factor": factor, "original_max_position_embeddings": orig}
    if not truncate:
        scaling["truncate"] = False
    out, scale = rope_inv_freq(d, scaling=scaling)
    expected = yarn_reference(d, 10000.0, factor, orig, truncate=truncate)
    close(out, expected)
    default = plain(d)
    close(out[:2], default[:2])  # fastest channels extrapolate
    close(out[-2:], [t / factor for t in default[-2:]])  # slowest channels interpolate
    blended = np.asarray(out[3:6], np.float64)
    assert np.all(blended < np.asarray(default[3:6])) and np.all(
        blended > np.asarray(default[3:6]) / factor
    )
    assert scale == pytest.approx(0.1 * math.log(factor) + 1.0, rel=1e-12)


def test_truncate_changes_yarn():
    scaling = {"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 4096}
    a, _ = rope_inv_freq(16, scaling=scaling)
    b, _ = rope_inv_freq(16, scaling={**scaling, "truncate": False})
    assert not np.allclose(a, b)


def test_yarn_custom_betas():
    scaling = {
        "rope_type": "yarn",
        "factor": 4.0,
        "original_max_position_embeddings": 2048,
        "beta_fast": 16,
        "beta_slow": 2,
    }
    out, _ = rope_inv_freq(16, base=5000.0, scaling=scaling)
    close(out, yarn_reference(16, 5000.0, 4.0, 2048, beta_fast=16, beta_slow=2))
    default_betas, _ = rope_inv_freq(16, base=5000.0, scaling={**scaling, "beta_fast": 0})
    close(default_betas, yarn_reference(16, 5000.0, 4.0, 2048, beta_fast=32, beta_slow=2))


def test_yarn_degenerate_ramp_is_a_step():
    # L0 = 6 < 2 pi: both correction dims clip to 0, so lo == hi and only channel 0 extrapolates.
    scaling = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 6}
    out, _ = rope_inv_freq(16, scaling=scaling)
    default = plain(16)
    close(out, [default[0]] + [t / 4.0 for t in default[1:]])
    close(out, yarn_reference(16, 10000.0, 4.0, 6))


def test_yarn_attention_factor_variants():
    base_cfg = {"rope_type": "yarn", "factor": 40, "original_max_position_embeddings": 4096}
    ln40 = math.log(40.0)
    _, plain_scale = rope_inv_freq(16, scaling=base_cfg)
    assert plain_scale == pytest.approx(0.1 * ln40 + 1.0, rel=1e-12)
    # DeepSeek-V2 style: mscale / mscale_all_dim ratio.
    _, ratio = rope_inv_freq(16, scaling={**base_cfg, "mscale": 0.707, "mscale_all_dim": 1.0})
    assert ratio == pytest.approx((0.1 * 0.707 * ln40 + 1.0) / (0.1 * ln40 + 1.0), rel=1e-12)
    _, equal = rope_inv_freq(16, scaling={**base_cfg, "mscale": 1.0, "mscale_all_dim": 1.0})
    assert equal == pytest.approx(1.0, rel=1e-12)
    # Only one of the two given: falls back to 0.1 ln(factor) + 1.
    _, one = rope_inv_freq(16, scaling={**base_cfg, "mscale": 0.707})
    assert one == pytest.approx(plain_scale, rel=1e-12)
    # An explicit attention_factor wins over everything.
    _, given = rope_inv_freq(16, scaling={**base_cfg, "mscale": 0.7, "attention_factor": 1.5})
    assert given == 1.5
    # factor == 1: no interpolation and no attention change.
    out, unit = rope_inv_freq(16, scaling={**base_cfg, "factor": 1.0})
    close(out, plain(16))
    assert unit == 1.0


def test_yarn_factor_inferred_from_max_position_embeddings():
    inferred = {
        "rope_type": "yarn",
        "original_max_position_embeddings": 1024,
        "max_position_embeddings": 4096,
    }
    explicit = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024}
    a, sa = rope_inv_freq(16, scaling=inferred)
    b, sb = rope_inv_freq(16, scaling=explicit)
    np.testing.assert_array_equal(a, b)
    assert sa == sb
    # Without original_max_position_embeddings, max_position_embeddings is L0 (HF's fallback).
    c, _ = rope_inv_freq(
        16, scaling={"type": "yarn", "factor": 4.0, "max_position_embeddings": 1024}
    )
    np.testing.assert_array_equal(b, c)


# --- longrope ------------------------------------------------------------------------------------

SHORT = [1.0, 1.5, 2.0, 3.0]
LONG = [1.0, 2.0, 8.0, 16.0]


@pytest.mark.parametrize(
    "seq_len, factors", [(None, SHORT), (100, SHORT), (4096, SHORT), (4097, LONG), (10**5, LONG)]
)
def test_longrope_factor_selection(seq_len, factors):
    scaling = {
        "rope_type": "longrope",
        "short_factor": SHORT,
        "long_factor": LONG,
        "factor": 32.0,
        "original_max_position_embeddings": 4096,
    }
    out, scale = rope_inv_freq(8, base=500.0, scaling=scaling, seq_len=seq_len)
    close(out, [t / f for t, f in zip(plain(8, 500.0), factors, strict=True)])
    assert scale == pytest.approx(math.sqrt(1 + math.log(32.0) / math.log(4096)), rel=1e-12)


def test_longrope_attention_factor():
    common = {"type": "longrope", "short_factor": SHORT, "long_factor": LONG}
    # Phi-3 convention: factor = max_position_embeddings / original_max_position_embeddings.
    phi3 = {**common, "original_max_position_embeddings": 4096, "max_position_embeddings": 131072}
    _, scale = rope_inv_freq(8, scaling=phi3)
    assert scale == pytest.approx(math.sqrt(1 + math.log(32) / math.log(4096)), rel=1e-12)
    _, given = rope_inv_freq(8, scaling={**phi3, "attention_factor": 1.25})
    assert given == 1.25
    _, one = rope_inv_freq(8, scaling={**phi3, "factor": 1.0})
    assert one == 1.0


# --- llama3 --------------------------------------------------------------------------------------


def test_llama3_golden():
    # Wavelengths 2 pi 1e4^(i/8): i <= 3 are < 256 (kept), i = 4, 5 lie in [256, 2048]
    # (smoothed), i >= 6 are > 2048 (divided by factor).
    d, factor, low, high, orig = 16, 8.0, 1.0, 8.0, 2048
    scaling = {
        "rope_type": "llama3",
        "factor": factor,
        "low_freq_factor": low,
        "high_freq_factor": high,
        "original_max_position_embeddings": orig,
    }
    out, scale = rope_inv_freq(d, scaling=scaling)
    expected, regimes = [], []
    for theta in plain(d):
        wavelength = 2 * math.pi / theta
        if wavelength < orig / high:
            expected.append(theta)
            regimes.append("high")
        elif wavelength > orig / low:
            expected.append(theta / factor)
            regimes.append("low")
        else:
            g = (orig / wavelength - low) / (high - low)
            expected.append((1 - g) * theta / factor + g * theta)
            regimes.append("mid")
    assert regimes == ["high"] * 4 + ["mid"] * 2 + ["low"] * 2
    close(out, expected)
    assert scale == 1.0


# --- p-RoPE --------------------------------------------------------------------------------------


def test_proportion_one_is_unchanged():
    a, _ = rope_inv_freq(16, proportion=1.0)
    b, _ = rope_inv_freq(16)
    np.testing.assert_array_equal(a, b)


def test_proportion_half_zeroes_lower_half():
    out, scale = rope_inv_freq(16, proportion=0.5)
    out = np.asarray(out)
    close(out[:4], plain(16)[:4])  # exponent denominator stays 16
    np.testing.assert_array_equal(out[4:], 0.0)
    assert scale == 1.0


def test_proportion_applies_after_scaling():
    scaling = {"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 4096}
    full, scale = rope_inv_freq(16, scaling=scaling)
    part, part_scale = rope_inv_freq(16, scaling=scaling, proportion=0.75)
    np.testing.assert_array_equal(np.asarray(part)[:6], np.asarray(full)[:6])
    np.testing.assert_array_equal(np.asarray(part)[6:], 0.0)
    assert part_scale == scale
    third, _ = rope_inv_freq(12, proportion=1 / 3)
    assert np.count_nonzero(np.asarray(third)) == 2


# --- bad arguments -------------------------------------------------------------------------------

L3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0}
LR = {"rope_type": "longrope", "short_factor": [1.0] * 4, "long_factor": [1.0] * 4}
ORIG = {"original_max_position_embeddings": 64}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"rotary_dim": 7}, "rotary_dim"),
        ({"rotary_dim": 0}, "rotary_dim"),
        ({"rotary_dim": -4}, "rotary_dim"),
        ({"rotary_dim": 8.0}, "rotary_dim"),
        ({"base": 0.0}, "base"),
        ({"base": -10.0}, "base"),
        ({"proportion": 0.0}, "proportion"),
        ({"proportion": 1.5}, "proportion"),
        ({"proportion": -0.5}, "proportion"),
        ({"proportion": float("nan")}, "proportion"),
        ({"seq_len": 0}, "seq_len"),
        ({"scaling": [("rope_type", "linear")]}, "scaling"),
        ({"scaling": "linear"}, "scaling"),
        ({"scaling": {"rope_type": "ntk"}}, r"rope_type.*'default', 'linear', 'dynamic'"),
        ({"scaling": {"type": "su"}}, "rope_type"),
        ({"scaling": {"rope_type": "linear", "type": "yarn", "factor": 2.0}}, "type"),
        ({"scaling": {"rope_type": "linear", "factr": 2.0}}, "factr"),
        ({"scaling": {"rope_type": "linear"}}, r"\['factor'\].*linear"),
        ({"scaling": {"rope_type": "linear", "factor": 0.5}}, "factor"),
        ({"scaling": {"rope_type": "linear", "factor": "2"}}, "factor"),
        ({"scaling": {"rope_type": "dynamic", "factor": 2.0}, "seq_len": 9}, "original_max_pos"),
        ({"scaling": {"rope_type": "dynamic", "factor": 0.9, **ORIG}, "seq_len": 9}, "factor"),
        (
            {
                "scaling": {"rope_type": "dynamic", "factor": 2.0, **ORIG},
                "rotary_dim": 2,
                "seq_len": 9,
            },
            "rotary",
        ),
        ({"scaling": {"rope_type": "yarn", **ORIG}}, "factor"),
        ({"scaling": {"rope_type": "yarn", "factor": 0.5, **ORIG}}, "factor"),
        ({"scaling": {"rope_type": "yarn", "factor": 2.0}}, "original_max_position_embeddings"),
        ({"scaling": {"rope_type": "yarn", "factor": 2.0, **ORIG, "truncate": 1}}, "truncate"),
        ({"scaling": {"rope_type": "yarn", "factor": 2.0, **ORIG}, "base": 1.0}, "base"),
        ({"scaling": {"rope_type": "yarn", "factor": 2.0, **ORIG, "beta_fast": -1}}, "beta_fast"),
        ({"scaling": {**LR, **ORIG, "factor": 2.0, "short_factor": None}}, "short_factor"),
        ({"scaling": {**LR, **ORIG, "factor": 2.0, "long_factor": [1.0] * 3}}, "long_factor"),
        ({"scaling": {**LR, **ORIG, "factor": 2.0, "short_factor": [1.0] * 5}}, "short_factor"),
        ({"scaling": {**LR, **ORIG, "factor": 2.0, "long_factor": [1, 0, 1, 1]}}, "long_factor"),
        ({"scaling": {**LR, **ORIG}}, "factor"),
        ({"scaling": {**LR, "factor": 2.0}}, "original_max_position_embeddings"),
        ({"scaling": {**LR, **ORIG, "factor": 0.5}}, "factor"),
        ({"scaling": L3}, "original_max_position_embeddings"),
        ({"scaling": {**L3, **ORIG, "factor": 0.5}}, "factor"),
        ({"scaling": {**L3, **ORIG, "low_freq_factor": None}}, "low_freq_factor"),
        ({"scaling": {**L3, **ORIG, "high_freq_factor": 1.0}}, "high_freq_factor"),
        ({"scaling": {**L3, "original_max_position_embeddings": 8.5}}, "original_max_pos"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    kwargs = {"rotary_dim": 8, **kwargs}
    rotary_dim = kwargs.pop("rotary_dim")
    with pytest.raises(ValueError, match=match):
        rope_inv_freq(rotary_dim, **kwargs)
