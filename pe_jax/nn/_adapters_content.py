"""Content x position adapters: logit terms that depend on the query (or key) and on position.

These need the explicit einsum attention path (`uses_content = True`): the attention computes
logits = (q.k + content_logits) / sqrt(K) + bias and, for Shaw values, adds content_values to
probs @ v. Parameters are initialised by the pure `init_*` functions of
`pe_jax.encodings._content`.
"""

from __future__ import annotations

import jax
from flax import nnx

from pe_jax._validate import check_bool, check_positive_int
from pe_jax.encodings import (
    cope_logits,
    init_cope_table,
    init_shaw_tables,
    init_transformer_xl_params,
    shaw_relative_logits,
    shaw_relative_values,
    transformer_xl_logits,
)
from pe_jax.nn._base import Encoding
from pe_jax.nn._declare import register_encoding


@register_encoding
class ShawRelative(Encoding):
    """Relative position representations of Shaw et al. 2018, "Self-Attention with Relative
    Position Representations": logits_ij += q_i . a^K_{clip(j - i, -M, M)} and, with
    `values=True`, out_i += sum_j probs_ij a^V_{clip(j - i, -M, M)}.

    Options: max_distance M (16, the paper's clipping distance), values (also learn the value
    table), per_head (one table per head instead of the paper's table shared by heads), stddev
    (normal init).
    """

    name = "shaw"
    place = "content"
    takes_positions = True

    uses_content = True
    attention_params = True

    def __init__(
        self,
        num_heads: int,
        head_dim: int,
        *,
        max_distance: int = 16,
        values: bool = False,
        per_head: bool = False,
        stddev: float = 0.02,
        rngs: nnx.Rngs,
    ):
        self.max_distance = check_positive_int("max_distance", max_distance)
        self.values = check_bool("values", values)
        per_head = check_bool("per_head", per_head)
        tables = init_shaw_tables(
            rngs.params(),
            max_distance=self.max_distance,
            head_dim=head_dim,
            num_heads=num_heads if per_head else None,
            stddev=stddev,
        )
        self.rel_key_table = nnx.Param(tables["rel_key_table"])
        self.rel_value_table = nnx.Param(tables["rel_value_table"]) if self.values else None

    def content_logits(
        self,
        q: jax.Array,
        k: jax.Array,
        q_positions: jax.Array,
        k_positions: jax.Array,
        *,
        mask: jax.Array | None = None,
    ) -> jax.Array:
        del k, mask
        return shaw_relative_logits(
            q,
            q_positions,
            k_positions,
            rel_key_table=self.rel_key_table[...],
            max_distance=self.max_distance,
        )

    def content_values(
        self, probs: jax.Array, q_positions: jax.Array, k_positions: jax.Array
    ) -> jax.Array | None:
        if self.rel_value_table is None:
            return None
        return shaw_relative_values(
            probs,
            q_positions,
            k_positions,
            rel_value_table=self.rel_value_table[...],
            max_distance=self.max_distance,
        )


@register_encoding
class TransformerXLRelative(Encoding):
    """Relative terms of Transformer-XL (Dai et al. 2019, "Transformer-XL: Attentive Language
    Models Beyond a Fixed-Length Context", sec. 3.3):
    A_ij = q_i.k_j + q_i.W_R R_{i-j} + u.k_j + v.W_R R_{i-j}, R the sinusoid of i - j.

    Learns u, v [H, K] (zero init) and W_R [D_r, H, K]. Options: rel_dim D_r (default the
    model width, as in the paper), max_wavelength of the sinusoid.
    """

    name = "transformer_xl"
    place = "content"
    takes_positions = True
    randomized_distances = True  # Ruoss et al.'s code samples distances

    uses_content = True
    attention_params = True

    def __init__(
        self,
        width: int,
        num_heads: int,
        head_dim: int,
        *,
        rel_dim: int | None = None,
        max_wavelength: float = 10000.0,
        rngs: nnx.Rngs,
    ):
        rel_dim = width if rel_dim is None else rel_dim
        params = init_transformer_xl_params(
            rngs.params(), num_heads=num_heads, head_dim=head_dim, rel_dim=rel_dim
        )
        self.max_wavelength = float(max_wavelength)
        self.u = nnx.Param(params["u"])
        self.v = nnx.Param(params["v"])
        self.w_r = nnx.Param(params["w_r"])

    def content_logits(
        self,
        q: jax.Array,
        k: jax.Array,
        q_positions: jax.Array,
        k_positions: jax.Array,
        *,
        mask: jax.Array | None = None,
        distances: jax.Array | None = None,
    ) -> jax.Array:
        """The hook; `distances` (int [N], see `randomized_distances`) replaces index gaps by
        sampled distances (Ruoss et al.'s randomized Transformer-XL)."""
        del mask
        return transformer_xl_logits(
            q,
            k,
            q_positions,
            k_positions,
            u=self.u[...],
            v=self.v[...],
            w_r=self.w_r[...],
            max_wavelength=self.max_wavelength,
            distances=distances,
        )


@register_encoding
class CoPE(Encoding):
    """Contextual position encoding (Golovneva et al. 2024, "Contextual Position Encoding:
    Learning to Count What's Important"): positions are counts of sigmoid gates
    p_ij = sum_{t=j}^{i} sigmoid(q_i.k_t / sqrt(K)) (the attention's scaled logit, as in the
    authors' code), interpolated into a learned table e [npos, K].

    Ignores the integer positions. Options: npos (counts are clipped to npos - 1), per_head
    (one table per head), stddev (normal init; 0 gives the paper's zeros). `causal` comes from
    the model; bidirectional models count on both sides of the query.
    """

    name = "cope"
    place = "content"
    takes_positions = False  # counts its own positions from the gates

    uses_content = True
    attention_params = True

    def __init__(
        self,
        num_heads: int,
        head_dim: int,
        *,
        causal: bool = True,
        npos: int = 64,
        per_head: bool = False,
        stddev: float = 0.02,
        rngs: nnx.Rngs,
    ):
        self.causal = check_bool("causal", causal)
        table = init_cope_table(
            rngs.params(),
            npos=npos,
            head_dim=head_dim,
            num_heads=num_heads if check_bool("per_head", per_head) else None,
            stddev=stddev,
        )
        self.pos_table = nnx.Param(table)

    def content_logits(
        self,
        q: jax.Array,
        k: jax.Array,
        q_positions: jax.Array,
        k_positions: jax.Array,
        *,
        mask: jax.Array | None = None,
    ) -> jax.Array:
        del q_positions, k_positions
        return cope_logits(q, k, pos_table=self.pos_table[...], causal=self.causal, mask=mask)
