"""RoPE inverse frequencies: context-extension scalings (Hugging Face vocabulary) and p-RoPE."""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from pe_jax._validate import check_fraction, check_positive, check_positive_int

ROPE_SCALING_TYPES = ("default", "linear", "dynamic", "yarn", "longrope", "llama3")

# The whole `rope_scaling` vocabulary we understand. Anything else is almost surely a typo
# (e.g. "beta_fats"), which would otherwise be silently ignored and change the frequencies.
_KNOWN_KEYS = frozenset(
    {
        "rope_type",
        "type",
        "factor",
        "original_max_position_embeddings",
        "max_position_embeddings",
        "attention_factor",
        "beta_fast",
        "beta_slow",
        "mscale",
        "mscale_all_dim",
        "truncate",
        "short_factor",
        "long_factor",
        "low_freq_factor",
        "high_freq_factor",
    }
)


def rope_inv_freq(
    rotary_dim: int,
    *,
    base: float = 10000.0,
    scaling: Mapping | None = None,
    seq_len: int | None = None,
    proportion: float = 1.0,
) -> tuple[jax.Array, float]:
    """Inverse frequencies of RoPE, optionally rescaled for longer contexts and/or p-RoPE.

    With d = rotary_dim and i = 0 .. d/2 - 1, the unscaled ("default") frequencies are

        theta_i = base ** (-2i / d)                       (Su et al. 2021, RoFormer)

    and `scaling` (a dict in the vocabulary of Hugging Face transformers' `rope_scaling`, giving
    the same numbers as its `ROPE_INIT_FUNCTIONS`) selects, by "rope_type" (legacy key "type";
    absent means "default"):

    - "linear", position interpolation (Chen et al. 2023): theta_i / factor.
    - "dynamic", dynamic NTK-aware scaling (bloc97 and emozilla, 2023): with
      s = max(seq_len, L0), base' = base * (factor * s / L0 - (factor - 1)) ** (d / (d - 2)),
      theta_i = base' ** (-2i / d); identical to "default" when seq_len <= L0, and when seq_len
      is None (HF's initial frequencies: it then takes s = L0).
    - "yarn" (Peng et al. 2023, YaRN): correction dims c(beta) = d ln(L0 / (2 pi beta)) /
      (2 ln base); lo = c(beta_fast), hi = c(beta_slow) (floor / ceil when truncate), clipped to
      [0, d - 1]; ramp r_i = clip((i - lo) / (hi - lo), 0, 1) (hi += 0.001 when lo == hi);
      theta'_i = theta_i * (1 - r_i) + (theta_i / factor) * r_i. Attention factor: the given
      attention_factor, else m(factor, mscale) / m(factor, mscale_all_dim) when both mscale
      and mscale_all_dim are non-zero (DeepSeek-V2), else m(factor, 1), where
      m(s, k) = 0.1 k ln(s) + 1 for s > 1 and 1 otherwise. Defaults: beta_fast = 32,
      beta_slow = 1 (also when given as 0), truncate = True. factor, when absent, is
      max_position_embeddings / L0.
    - "longrope" (Ding et al. 2024, LongRoPE): theta_i / ext_i with ext = long_factor when
      seq_len > L0, else short_factor (also when seq_len is None). Attention factor: the given
      attention_factor, else sqrt(1 + ln(factor) / ln(L0)) for factor > 1, else 1; factor,
      when absent, is max_position_embeddings / L0 (the Phi-3 convention).
    - "llama3" (Meta Llama 3.1, 2024): with wavelength w_i = 2 pi / theta_i, low_wl =
      L0 / low_freq_factor and high_wl = L0 / high_freq_factor: theta_i when w_i < high_wl;
      theta_i / factor when w_i > low_wl; in between (1 - g) theta_i / factor + g theta_i with
      g = (L0 / w_i - low_freq_factor) / (high_freq_factor - low_freq_factor).

    L0 is the pre-training context length: scaling["original_max_position_embeddings"], or
    scaling["max_position_embeddings"] when the former is absent (this is what HF's config
    standardisation does for yarn / longrope / llama3, and for "dynamic" HF reads
    `config.max_position_embeddings`, so pass that value under either key). The optional
    "max_position_embeddings" is the extended length and is only used to infer a missing
    `factor` for yarn and longrope. Keys outside the HF vocabulary raise, so typos cannot pass.

    p-RoPE (Barbero et al. 2024, "Round and Round We Go! What makes Rotary Positional
    Encodings useful?"): after the scaling above, only the first k = round(proportion * d / 2)
    frequencies (the highest; Python round, ties to even) are kept and the rest set to 0, so
    those rotary pairs carry no position; the exponent denominator stays d.

    Args:
      rotary_dim: d, the number of rotated channels; an even int >= 2 (>= 4 for "dynamic").
      base: RoPE base (HF `rope_theta`), > 0 (> 1 for "yarn").
      scaling: None (same as {"rope_type": "default"}) or a dict as described above.
      seq_len: current sequence length, an int >= 1, or None (e.g. at initialisation); sets
        the "dynamic" base (None: the default frequencies), chooses the long/short factors of
        "longrope", ignored by the other types.
      proportion: p-RoPE fraction of frequencies kept, in (0, 1]; 1.0 keeps all.

    Returns:
      (inv_freq, attention_scale): inv_freq a float32 jax array of shape [rotary_dim // 2]
      (computed in float64, then cast); attention_scale a Python float by which cos and sin
      are multiplied (HF's "attention_factor"; 1.0 except for yarn and longrope).

    Raises:
      ValueError: rotary_dim odd or < 2; base <= 0; proportion outside (0, 1]; seq_len not an
        int >= 1; scaling not a dict; unknown rope_type or key; a required key missing (named);
        factor < 1; a malformed value; longrope factor lists whose length is not
        rotary_dim // 2; llama3 high_freq_factor <= low_freq_factor.
    """
    if isinstance(rotary_dim, bool) or not isinstance(rotary_dim, int | np.integer):
        raise ValueError(f"rotary_dim must be an even integer >= 2, got {rotary_dim!r}.")
    if rotary_dim < 2 or rotary_dim % 2:
        raise ValueError(f"rotary_dim must be an even integer >= 2, got {rotary_dim!r}.")
    dim = int(rotary_dim)
    base = check_positive("base", base)
    if seq_len is not None:
        seq_len = check_positive_int("seq_len", seq_len)
    check_fraction("proportion", proportion)
    if scaling is None:
        scaling = {}
    if not isinstance(scaling, Mapping):
        raise ValueError(f"scaling must be a dict (HF rope_scaling) or None, got {scaling!r}.")
    unknown = sorted(str(k) for k in scaling if k not in _KNOWN_KEYS)
    if unknown:
        raise ValueError(
            f"scaling has unknown keys {unknown}; allowed keys are {sorted(_KNOWN_KEYS)} "
            "(pass rope_theta as `base` and the rotated width as `rotary_dim`)."
        )
    rope_type = _rope_type(scaling)

    # Exponents 2i / d; float64 so that the float32 result matches HF's float32 computation
    # to rounding.
    theta = base ** -(np.arange(0, dim, 2, dtype=np.float64) / dim)
    attention_scale = 1.0
    if rope_type == "linear":
        theta = theta / _factor(scaling, rope_type)
    elif rope_type == "dynamic":
        theta = _dynamic(scaling, dim, base, seq_len)
    elif rope_type == "yarn":
        theta, attention_scale = _yarn(scaling, dim, base, theta)
    elif rope_type == "longrope":
        theta, attention_scale = _longrope(scaling, dim, theta, seq_len)
    elif rope_type == "llama3":
        theta = _llama3(scaling, theta)

    keep = round(float(proportion) * (dim // 2))
    theta = np.where(np.arange(dim // 2) < keep, theta, 0.0)
    return jnp.asarray(theta, dtype=jnp.float32), float(attention_scale)


def _rope_type(scaling: Mapping) -> str:
    """The rope_type of `scaling`, from "rope_type" or the legacy "type"; "default" if neither."""
    rope_type = scaling.get("rope_type")
    legacy = scaling.get("type")
    if rope_type is not None and legacy is not None and rope_type != legacy:
        raise ValueError(
            f"scaling['rope_type'] = {rope_type!r} and scaling['type'] = {legacy!r} disagree; "
            "give one of them."
        )
    rope_type = rope_type if rope_type is not None else legacy
    if rope_type is None:
        return "default"
    if rope_type not in ROPE_SCALING_TYPES:
        raise ValueError(
            f"scaling['rope_type'] must be one of {ROPE_SCALING_TYPES}, got {rope_type!r}."
        )
    return rope_type


def _number(scaling: Mapping, key: str, rope_type: str, *, required: bool) -> float | None:
    """scaling[key] as a finite float; None when absent (or None) and not required."""
    value = scaling.get(key)
    if value is None:
        if required:
            raise ValueError(f"scaling['{key}'] is required for rope_type '{rope_type}'.")
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float | np.integer | np.floating)
        or not math.isfinite(value)
    ):
        raise ValueError(f"scaling['{key}'] must be a finite number, got {value!r}.")
    return float(value)


def _positive(scaling: Mapping, key: str, rope_type: str, *, required: bool) -> float | None:
    value = _number(scaling, key, rope_type, required=required)
    if value is not None and value <= 0:
        raise ValueError(f"scaling['{key}'] must be > 0, got {scaling[key]!r}.")
    return value


def _length(scaling: Mapping, key: str) -> int | None:
    value = scaling.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 2:
        raise ValueError(f"scaling['{key}'] must be an integer >= 2, got {value!r}.")
    return int(value)


def _original_length(scaling: Mapping, rope_type: str) -> int:
    """L0: original_max_position_embeddings, falling back to max_position_embeddings."""
    original = _length(scaling, "original_max_position_embeddings")
    maximum = _length(scaling, "max_position_embeddings")
    if original is None and maximum is None:
        raise ValueError(
            f"scaling['original_max_position_embeddings'] (the pre-training length) is required "
            f"for rope_type '{rope_type}' (scaling['max_position_embeddings'] is used if absent)."
        )
    return original if original is not None else maximum


def _check_factor(factor: float) -> float:
    if factor < 1.0:
        raise ValueError(f"scaling['factor'] must be >= 1, got {factor!r}.")
    return factor


def _factor(scaling: Mapping, rope_type: str) -> float:
    return _check_factor(_number(scaling, "factor", rope_type, required=True))


def _inferred_factor(scaling: Mapping, rope_type: str, original: int) -> float:
    """factor, or max_position_embeddings / L0 when factor is absent (yarn, longrope)."""
    factor = _number(scaling, "factor", rope_type, required=False)
    if factor is None:
        maximum = _length(scaling, "max_position_embeddings")
        if maximum is None:
            raise ValueError(
                f"scaling['factor'] is required for rope_type '{rope_type}' (or give "
                "scaling['max_position_embeddings'] to use max_position_embeddings / "
                "original_max_position_embeddings)."
            )
        factor = maximum / original
    return _check_factor(factor)


def _dynamic(scaling: Mapping, dim: int, base: float, seq_len: int | None) -> np.ndarray:
    factor = _factor(scaling, "dynamic")
    original = _original_length(scaling, "dynamic")
    if dim < 4:
        raise ValueError(
            f"rotary_dim must be >= 4 for rope_type 'dynamic' (exponent d / (d - 2)), got {dim}."
        )
    # HF's _compute_dynamic_ntk_parameters: seq_len defaults to L0 (e.g. at init time).
    length = original if seq_len is None else max(seq_len, original)
    new_base = base * (factor * length / original - (factor - 1.0)) ** (dim / (dim - 2))
    return new_base ** -(np.arange(0, dim, 2, dtype=np.float64) / dim)


def _yarn(scaling: Mapping, dim: int, base: float, theta: np.ndarray) -> tuple[np.ndarray, float]:
    original = _original_length(scaling, "yarn")
    factor = _inferred_factor(scaling, "yarn", original)
    if base <= 1.0:
        raise ValueError(f"base must be > 1 for rope_type 'yarn' (uses log(base)), got {base!r}.")

    # HF treats a 0 / None beta, or a 0 / None mscale, as "not given".
    beta_fast = _number(scaling, "beta_fast", "yarn", required=False) or 32.0
    beta_slow = _number(scaling, "beta_slow", "yarn", required=False) or 1.0
    for key, beta in (("beta_fast", beta_fast), ("beta_slow", beta_slow)):
        if beta < 0:
            raise ValueError(f"scaling['{key}'] must be >= 0 (0 means default), got {beta!r}.")
    truncate = scaling.get("truncate", True)
    if not isinstance(truncate, bool | np.bool_):
        raise ValueError(f"scaling['truncate'] must be a bool, got {truncate!r}.")

    def correction_dim(rotations: float) -> float:
        # The channel index whose wavelength fits `rotations` turns into L0 positions.
        return dim * math.log(original / (rotations * 2.0 * math.pi)) / (2.0 * math.log(base))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = np.clip((np.arange(dim // 2, dtype=np.float64) - low) / (high - low), 0.0, 1.0)
    theta = theta * (1.0 - ramp) + (theta / factor) * ramp

    attention = _positive(scaling, "attention_factor", "yarn", required=False)
    if attention is None:
        mscale = _number(scaling, "mscale", "yarn", required=False)
        mscale_all_dim = _number(scaling, "mscale_all_dim", "yarn", required=False)
        if mscale and mscale_all_dim:
            attention = _yarn_mscale(factor, mscale) / _yarn_mscale(factor, mscale_all_dim)
        else:
            attention = _yarn_mscale(factor, 1.0)
    return theta, attention


def _yarn_mscale(factor: float, mscale: float) -> float:
    return 1.0 if factor <= 1.0 else 0.1 * mscale * math.log(factor) + 1.0


def _factor_list(scaling: Mapping, key: str, dim: int) -> np.ndarray:
    if scaling.get(key) is None:
        raise ValueError(f"scaling['{key}'] is required for rope_type 'longrope'.")
    try:
        values = np.asarray(scaling[key], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"scaling['{key}'] must be a list of numbers, got {scaling[key]!r}."
        ) from None
    if values.shape != (dim // 2,):
        raise ValueError(
            f"scaling['{key}'] must be a list of rotary_dim // 2 = {dim // 2} numbers, "
            f"got shape {values.shape}."
        )
    if not np.all(np.isfinite(values) & (values > 0)):
        raise ValueError(f"scaling['{key}'] must hold finite numbers > 0, got {scaling[key]!r}.")
    return values


def _longrope(
    scaling: Mapping, dim: int, theta: np.ndarray, seq_len: int | None
) -> tuple[np.ndarray, float]:
    short = _factor_list(scaling, "short_factor", dim)
    long = _factor_list(scaling, "long_factor", dim)
    original = _original_length(scaling, "longrope")
    factor = _inferred_factor(scaling, "longrope", original)
    ext = long if seq_len is not None and seq_len > original else short
    attention = _positive(scaling, "attention_factor", "longrope", required=False)
    if attention is None:
        attention = 1.0 if factor <= 1.0 else math.sqrt(1.0 + math.log(factor) / math.log(original))
    return theta / ext, attention


def _llama3(scaling: Mapping, theta: np.ndarray) -> np.ndarray:
    factor = _factor(scaling, "llama3")
    low_ff = _positive(scaling, "low_freq_factor", "llama3", required=True)
    high_ff = _positive(scaling, "high_freq_factor", "llama3", required=True)
    if high_ff <= low_ff:
        raise ValueError(
            f"scaling['high_freq_factor'] must be > scaling['low_freq_factor'], got "
            f"{high_ff!r} <= {low_ff!r}."
        )
    original = _original_length(scaling, "llama3")
    wavelength = 2.0 * math.pi / theta
    smooth = (original / wavelength - low_ff) / (high_ff - low_ff)
    blended = (1.0 - smooth) * theta / factor + smooth * theta
    # Long wavelengths (> L0 / low_ff) are interpolated, short ones (< L0 / high_ff) kept.
    return np.where(
        wavelength > original / low_ff,
        theta / factor,
        np.where(wavelength < original / high_ff, theta, blended),
    )
