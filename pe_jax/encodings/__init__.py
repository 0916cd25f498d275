"""The catalogue of positional encodings as pure JAX functions, by the place they act at.

input place:     integer_positions, normalized_positions, binary_positions, sinusoidal
query/key place: rope_inv_freq, apply_rope, apply_rope_complex, xpos_scale, apply_xpos,
                 apply_axial_rope, init_rope_mixed_freqs, apply_rope_mixed, apply_mrope,
                 hope_inv_freq, pope_inv_freq, apply_pope, pope_scores
logits place:    alibi_slopes, alibi_bias, t5_relative_bucket, t5_bias, kerple_*_bias,
                 sandwich_bias, fire_bias, dynamic_position_bias
content place:   shaw_relative_logits, shaw_relative_values, transformer_xl_logits, cope_logits
data-dependent:  forgetting_bias, path_logits
which positions: arange_positions, randomized_positions, shifted_positions
which distances: randomized_distances, map_gaps
"""

from pe_jax.encodings._absolute import (
    binary_positions,
    integer_positions,
    normalized_positions,
    sinusoidal,
    sinusoidal_table,
)
from pe_jax.encodings._alibi_t5 import (
    alibi_bias,
    alibi_slopes,
    sandwich_bias,
    t5_bias,
    t5_relative_bucket,
)
from pe_jax.encodings._content import (
    cope_logits,
    init_cope_table,
    init_shaw_tables,
    init_transformer_xl_params,
    shaw_relative_logits,
    shaw_relative_values,
    transformer_xl_logits,
)
from pe_jax.encodings._forgetting import forgetting_bias
from pe_jax.encodings._hope import hope_inv_freq
from pe_jax.encodings._learned_bias import (
    dynamic_position_bias,
    fire_bias,
    init_dynamic_bias_params,
    init_fire_params,
    init_kerple_params,
    kerple_log_bias,
    kerple_power_bias,
)

# Used by neighbouring packages; not part of the documented surface (__all__).
from pe_jax.encodings._mrope import (
    apply_mrope,
    check_mrope_section,  # noqa: F401
    default_mrope_section,
    mrope_config,
)
from pe_jax.encodings._path import path_logits
from pe_jax.encodings._pope import apply_pope, clamp_phase_bias, pope_inv_freq, pope_scores
from pe_jax.encodings._positions import (
    arange_positions,
    map_gaps,
    randomized_distances,
    randomized_positions,
    shifted_positions,
)
from pe_jax.encodings._rope import (
    LAYOUTS,
    apply_rope,
    apply_rope_complex,
    apply_xpos,
    xpos_scale,
)
from pe_jax.encodings._rope_nd import apply_axial_rope, apply_rope_mixed, init_rope_mixed_freqs
from pe_jax.encodings._rope_scaling import ROPE_SCALING_TYPES, rope_inv_freq

__all__ = [
    "LAYOUTS",
    "ROPE_SCALING_TYPES",
    "alibi_bias",
    "alibi_slopes",
    "apply_axial_rope",
    "apply_mrope",
    "apply_pope",
    "apply_rope",
    "apply_rope_complex",
    "apply_rope_mixed",
    "apply_xpos",
    "arange_positions",
    "binary_positions",
    "clamp_phase_bias",
    "cope_logits",
    "default_mrope_section",
    "dynamic_position_bias",
    "fire_bias",
    "forgetting_bias",
    "hope_inv_freq",
    "init_cope_table",
    "init_dynamic_bias_params",
    "init_fire_params",
    "init_kerple_params",
    "init_rope_mixed_freqs",
    "init_shaw_tables",
    "init_transformer_xl_params",
    "integer_positions",
    "kerple_log_bias",
    "kerple_power_bias",
    "map_gaps",
    "mrope_config",
    "normalized_positions",
    "path_logits",
    "pope_inv_freq",
    "pope_scores",
    "randomized_distances",
    "randomized_positions",
    "rope_inv_freq",
    "sandwich_bias",
    "shaw_relative_logits",
    "shaw_relative_values",
    "shifted_positions",
    "sinusoidal",
    "sinusoidal_table",
    "t5_bias",
    "t5_relative_bucket",
    "transformer_xl_logits",
    "xpos_scale",
]
