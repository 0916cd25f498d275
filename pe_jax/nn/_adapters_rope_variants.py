"""Query/key-place adapters built on RoPE's rotation: M-RoPE (Qwen2-VL) and HoPE.

Like "rope", their frequencies are fixed at construction and kept as static floats.
"""

from __future__ import annotations

import jax

from pe_jax.encodings import (
    apply_mrope,
    check_mrope_section,
    default_mrope_section,
    hope_inv_freq,
    mrope_config,
)
from pe_jax.nn._adapters_qk import RoPE, _FixedFrequencies, _rotary_dim, _static_inv_freq
from pe_jax.nn._declare import register_encoding


@register_encoding
class MRoPE(_FixedFrequencies):
    """Multimodal RoPE (Wang et al. 2024, "Qwen2-VL", sec. 2.1): the R/2 rotary frequencies are
    cut into sections (s_t, s_h, s_w) driven by the temporal, height and width ids of a token;
    pair i is rotated by p_a(i) * theta_i. Positions: (t, h, w) ids [B, L, 3], or 1-D positions
    (t = h = w, text tokens), for which M-RoPE equals "rope".

    Options: base, layout ("half", Hugging Face's and Qwen2-VL's pairing, or "interleaved"),
    rotary_fraction, mrope_section (default: Qwen2-VL's 16:24:24 proportions of R/2), scaling
    (a Hugging Face rope config, verbatim: {"type": "mrope", "mrope_section": [16, 24, 24]} or
    {"rope_type": "default", "mrope_section": ..., "rope_theta": ...}; its rope_theta is the
    base).
    """

    name = "mrope"
    place = "query_key"
    takes_positions = False  # on 1-D positions it is "rope", whose variants exist

    def __init__(
        self,
        head_dim: int,
        *,
        base: float = 10000.0,
        layout: str = "half",
        rotary_fraction: float = 1.0,
        mrope_section: tuple[int, int, int] | None = None,
        scaling: dict | None = None,
    ):
        rotary_dim = _rotary_dim(head_dim, rotary_fraction)
        from_config, theta = mrope_config(scaling)
        if from_config is not None and mrope_section is not None:
            if tuple(mrope_section) != from_config:
                raise ValueError(
                    f"mrope_section={mrope_section!r} disagrees with scaling['mrope_section'] = "
                    f"{list(from_config)}; give one of them."
                )
        section = mrope_section if mrope_section is not None else from_config
        if section is None:
            section = default_mrope_section(rotary_dim // 2)
        self.mrope_section = check_mrope_section(section, rotary_dim // 2)
        inv_freq, _ = _static_inv_freq(rotary_dim, base=base if theta is None else theta)
        self._set_frequencies(inv_freq, 1.0, layout)

    def rotate(
        self, q: jax.Array, k: jax.Array, q_positions: jax.Array, k_positions: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        options = dict(
            inv_freq=self._inv_freq(), mrope_section=self.mrope_section, layout=self.layout
        )
        return apply_mrope(q, q_positions, **options), apply_mrope(k, k_positions, **options)


@register_encoding
class HoPE(RoPE):
    """HoPE (Chen et al. 2024, "HoPE: A Novel Positional Encoding Without Long-Term Decay"):
    RoPE whose low-frequency components, those with theta_i * train_length < 2 pi (no full
    period within the training length), are made position-independent (theta_i = 0, the pair
    is not rotated); the high-frequency components rotate as in "rope".

    Options: base, layout, rotary_fraction (as "rope"), train_length (the training sequence
    length that separates high from low frequencies).
    """

    name = "hope"
    place = "query_key"
    takes_positions = True

    def __init__(
        self,
        head_dim: int,
        *,
        base: float = 10000.0,
        layout: str = "half",
        rotary_fraction: float = 1.0,
        train_length: int = 512,
    ):
        rotary_dim = _rotary_dim(head_dim, rotary_fraction)
        with jax.ensure_compile_time_eval():
            inv_freq = hope_inv_freq(rotary_dim, train_length=train_length, base=base)
            inv_freq = tuple(float(f) for f in jax.device_get(inv_freq))
        self.train_length = train_length
        self._set_frequencies(inv_freq, 1.0, layout)
        self.rotate_num_heads = None  # RoPE's rotation of every head
