"""Multimodal RoPE (M-RoPE, Qwen2-VL): rotary frequency sections driven by (t, h, w) ids.

Wang et al. 2024, "Qwen2-VL: Enhancing Vision-Language Model's Perception of the World at Any
Resolution" (arXiv:2409.12191), sec. 2.1: each token carries three position ids, temporal t,
height h and width w (a text token has t = h = w = its 1-D position). The R/2 rotary
frequencies theta_0 > theta_1 > ... are cut into three consecutive sections of sizes
`mrope_section` = (s_t, s_h, s_w), s_t + s_h + s_w = R/2; frequency i is driven by the id of
its section:

    angle_i = p_a(i) * theta_i,   a(i) = t for i < s_t, h for i < s_t + s_h, w otherwise,

and pair i is rotated by angle_i exactly as in RoPE. This is what Hugging Face's
`apply_multimodal_rotary_pos_emb` computes (its cos/sin tables of width R, split by the doubled
sections, chunk c taking id c mod 3). When t = h = w every frequency sees the same position:
M-RoPE is 1-D RoPE.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp

from pe_jax._validate import check_choice, check_int_positions
from pe_jax.encodings._rope import _check_positions_shape, _cos_sin, _rotate

MROPE_TYPES = ("mrope", "default")  # HF writes {"type": "mrope"} or {"rope_type": "default"}.


def default_mrope_section(num_frequencies: int) -> tuple[int, int, int]:
    """Qwen2-VL's proportions, (16, 24, 24) of 64 frequencies, for `num_frequencies` = R/2.

    s_t = R/8 (rounded down, at least 1), the rest split evenly between h and w (w gets the odd
    one). Raises ValueError for fewer than 3 frequencies.
    """
    if num_frequencies < 3:
        raise ValueError(
            f"M-RoPE needs at least 3 rotary frequencies (one per id), got {num_frequencies}."
        )
    t = max(1, num_frequencies // 4)
    h = (num_frequencies - t) // 2
    return t, h, num_frequencies - t - h


def mrope_config(config: Mapping | None) -> tuple[tuple[int, ...] | None, float | None]:
    """Reads a Hugging Face rope config verbatim: returns (mrope_section, rope_theta or None).

    Accepted keys: "type" / "rope_type" ("mrope" or "default"), "mrope_section" (3 ints) and
    "rope_theta" (the Qwen2-VL `rope_scaling` dict and the newer `rope_parameters` dict).
    Anything else (another rope_type, "mrope_interleaved" of Qwen3-VL) raises ValueError.
    """
    if config is None:
        return None, None
    if not isinstance(config, Mapping):
        raise ValueError(f"scaling must be a dict (HF rope config) or None, got {config!r}.")
    unknown = sorted(set(config) - {"type", "rope_type", "mrope_section", "rope_theta"})
    if unknown:
        raise ValueError(
            f"scaling has keys {unknown} that M-RoPE does not support; allowed: type, rope_type "
            "('mrope' or 'default'), mrope_section, rope_theta."
        )
    for key in ("type", "rope_type"):
        if key in config:
            check_choice(f"scaling[{key!r}]", config[key], MROPE_TYPES)
    section = config.get("mrope_section")
    theta = config.get("rope_theta")
    return (None if section is None else tuple(section)), (None if theta is None else float(theta))


def check_mrope_section(mrope_section: Sequence[int], num_frequencies: int) -> tuple[int, ...]:
    """Returns the section as a tuple of 3 positive ints summing to num_frequencies, or raises."""
    section = tuple(mrope_section)
    ok = len(section) == 3 and all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in section
    )
    if not ok or sum(section) != num_frequencies:
        raise ValueError(
            f"mrope_section must be 3 positive ints summing to the number of rotary frequencies "
            f"R/2 = {num_frequencies}, got {mrope_section!r}."
        )
    return section


def mrope_ids(positions: jax.Array) -> jax.Array:
    """(t, h, w) ids int32 [..., L, 3]: rank-3 [B, L, 3] ids as they are, 1-D positions [L] or
    [B, L] repeated three times (text tokens)."""
    positions = check_int_positions("positions", positions, max_ndim=3)
    if positions.ndim == 3:
        if positions.shape[-1] != 3:
            raise ValueError(
                f"positions of rank 3 must be (t, h, w) ids [B, L, 3], got {positions.shape}."
            )
        return positions
    return jnp.stack([positions] * 3, axis=-1)


def apply_mrope(
    x: jax.Array,
    positions: jax.Array,
    *,
    inv_freq: jax.Array,
    mrope_section: Sequence[int],
    layout: str = "half",
    attention_scale: float = 1.0,
) -> jax.Array:
    """Applies M-RoPE (Qwen2-VL) to queries or keys: pair i rotated by p_a(i) * inv_freq[i].

    Args:
      x: float [..., L, H, K].
      positions: int (t, h, w) ids [B, L, 3], or 1-D positions [L] / [B, L] (t = h = w, which
        gives exactly `apply_rope`).
      inv_freq: float [R/2], 2 * len(inv_freq) <= K; features R..K pass through.
      mrope_section: (s_t, s_h, s_w), positive, summing to R/2.
      layout: "half" (Hugging Face's `rotate_half`, Qwen2-VL) or "interleaved".
      attention_scale: scalar multiplying the rotated features.

    Returns:
      Array like x.

    Raises:
      ValueError: bad ids shape, a section that does not sum to R/2, or as `apply_rope`.
    """
    check_choice("layout", layout, ("half", "interleaved"))
    inv_freq = jnp.asarray(inv_freq, jnp.float32)
    section = check_mrope_section(mrope_section, inv_freq.shape[0])
    if 2 * inv_freq.shape[0] > x.shape[-1]:
        raise ValueError(
            f"2 * len(inv_freq) = {2 * inv_freq.shape[0]} exceeds the head dim {x.shape[-1]}."
        )
    ids = mrope_ids(positions)
    _check_positions_shape("positions", ids.shape[:-1], "x", x.shape[:-2])
    cos, sin, start = [], [], 0
    for axis, size in enumerate(section):
        c, s = _cos_sin(ids[..., axis], inv_freq[start : start + size])
        cos.append(c)
        sin.append(s)
        start += size
    cos = jnp.concatenate(cos, axis=-1)[..., None, :] * attention_scale
    sin = jnp.concatenate(sin, axis=-1)[..., None, :] * attention_scale
    return _rotate(x, cos, sin, layout)
