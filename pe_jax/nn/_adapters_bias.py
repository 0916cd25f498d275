"""Logits-place adapters: a bias b_h(i, j) added to the attention logits after 1/sqrt(K).

Every `bias` returns float32 [1, H, L, S] when query and key positions are 1-D ([L], [S]) and
[B, H, L, S] when either is 2-D: pass 1-D positions when they are shared by the batch, so the
batch axis is never materialised. Learned parameters (T5 table, Kerple r1/r2, FIRE and
dynamic-bias MLPs) are nnx.Params initialised by the pure `init_*` functions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from pe_jax._validate import check_bool, check_positive, check_positive_int
from pe_jax.encodings import (
    alibi_bias,
    alibi_slopes,
    dynamic_position_bias,
    fire_bias,
    init_dynamic_bias_params,
    init_fire_params,
    init_kerple_params,
    kerple_log_bias,
    kerple_power_bias,
    sandwich_bias,
    t5_bias,
    t5_relative_bucket,
)
from pe_jax.nn._base import Encoding
from pe_jax.nn._declare import register_encoding


def _params(arrays: dict[str, jax.Array]) -> nnx.Dict:
    return nnx.Dict({name: nnx.Param(value) for name, value in arrays.items()})


def _values(params: nnx.Dict) -> dict[str, jax.Array]:
    return {name: param[...] for name, param in params.items()}


@register_encoding
class ALiBi(Encoding):
    """Attention with linear biases (Press et al. 2022, "Train Short, Test Long: Attention with
    Linear Biases Enables Input Length Extrapolation"): b_h(i, j) = -m_h (i - j), with the
    geometric head slopes m_h = 2^(-8h/H).

    `causal` comes from the model: causal uses -m_h max(i - j, 0) (keys after the query are
    masked anyway). Bidirectional models (the encoder protocol) use by default the form of
    Ruoss et al. 2023's official code, -m_h |i - j| + 0.5 m_h for keys before the query, so
    that left and right differ; symmetric=True gives the symmetric -m_h |i - j| instead.

    Options: symmetric (False; bidirectional models only).
    """

    name = "alibi"
    place = "logits"
    takes_positions = True
    randomized_distances = True  # Ruoss et al.'s code samples distances

    # Ruoss et al.'s symmetry-breaking offset, in units of the head slope.
    LEFT_OFFSET = 0.5

    def __init__(self, num_heads: int, *, causal: bool = True, symmetric: bool = False):
        # Concrete even under nnx.eval_shape / jit, so the slopes can be a static attribute.
        with jax.ensure_compile_time_eval():
            self.slopes = tuple(float(m) for m in jax.device_get(alibi_slopes(num_heads)))
        self.causal = check_bool("causal", causal)
        symmetric = check_bool("symmetric", symmetric)
        self.left_offset = 0.0 if self.causal or symmetric else self.LEFT_OFFSET

    def bias(
        self, q_positions: jax.Array, k_positions: jax.Array, *, distances: jax.Array | None = None
    ) -> jax.Array:
        """The hook; `distances` (int [N], see `randomized_distances`) replaces index gaps by
        sampled distances (Ruoss et al.'s randomized ALiBi)."""
        return alibi_bias(
            q_positions,
            k_positions,
            slopes=jnp.asarray(self.slopes, jnp.float32),
            bidirectional=not self.causal,
            left_offset=self.left_offset,
            distances=distances,
        )


@register_encoding
class T5RelativeBias(Encoding):
    """T5 relative attention bias (Raffel et al. 2020, "Exploring the Limits of Transfer
    Learning with a Unified Text-to-Text Transformer"): a learned scalar per head and
    log-spaced bucket of k_pos - q_pos.

    Options: num_buckets (32), max_distance (128), stddev (normal init of the [num_buckets, H]
    table). `causal` comes from the model: bidirectional buckets (half per sign) when False.
    """

    name = "t5"
    place = "logits"
    takes_positions = True

    attention_params = True

    def __init__(
        self,
        num_heads: int,
        *,
        causal: bool = True,
        num_buckets: int = 32,
        max_distance: float = 128,
        stddev: float = 0.02,
        rngs: nnx.Rngs,
    ):
        self.causal = check_bool("causal", causal)
        self.max_distance = check_positive("max_distance", max_distance)
        num_buckets = check_positive_int("num_buckets", num_buckets)
        # Validates num_buckets / max_distance for this direction now rather than at first call
        # (abstractly: only the Python checks run, nothing is computed).
        jax.eval_shape(
            lambda n: t5_relative_bucket(
                n,
                bidirectional=not self.causal,
                num_buckets=num_buckets,
                max_distance=self.max_distance,
            ),
            jax.ShapeDtypeStruct((), jnp.int32),
        )
        stddev = check_positive("stddev", stddev)
        table = stddev * jax.random.normal(rngs.params(), (num_buckets, num_heads), jnp.float32)
        self.table = nnx.Param(table)

    def bias(self, q_positions: jax.Array, k_positions: jax.Array) -> jax.Array:
        return t5_bias(
            q_positions,
            k_positions,
            table=self.table[...],
            bidirectional=not self.causal,
            max_distance=self.max_distance,
        )


@register_encoding
class KerpleLog(Encoding):
    """Kerple logarithmic bias (Chi et al. 2022, "KERPLE: Kernelized Relative Positional
    Embedding for Length Extrapolation"): b_h(i, j) = -r1_h log(1 + r2_h |i - j|), with
    learned r1, r2 > 0 per head."""

    name = "kerple_log"
    place = "logits"
    takes_positions = True

    attention_params = True
    _kind = "log"

    def __init__(self, num_heads: int, *, rngs: nnx.Rngs):
        params = init_kerple_params(rngs.params(), num_heads, kind=self._kind)
        self.r1 = nnx.Param(params["r1"])
        self.r2 = nnx.Param(params["r2"])

    def bias(self, q_positions: jax.Array, k_positions: jax.Array) -> jax.Array:
        return kerple_log_bias(q_positions, k_positions, r1=self.r1[...], r2=self.r2[...])


@register_encoding
class KerplePower(KerpleLog):
    """Kerple power bias (Chi et al. 2022, "KERPLE: Kernelized Relative Positional Embedding
    for Length Extrapolation"): b_h(i, j) = -r1_h |i - j|^r2_h, learned r1 > 0, 0 < r2 <= 2."""

    name = "kerple_power"
    place = "logits"
    takes_positions = True

    _kind = "power"

    def bias(self, q_positions: jax.Array, k_positions: jax.Array) -> jax.Array:
        return kerple_power_bias(q_positions, k_positions, r1=self.r1[...], r2=self.r2[...])


@register_encoding
class Sandwich(Encoding):
    """Sandwich (Chi et al. 2023, "Dissecting Transformer Length Extrapolation via the Lens of
    Receptive Field Analysis"): the inner product of two sinusoidal embeddings of i and j,
    shifted to 0 at i = j and divided by a per-head ratio 8h/H, as a parameter-free bias.

    Options: dim (the sinusoid width d-bar, 128 in the paper), max_wavelength.
    """

    name = "sandwich"
    place = "logits"
    takes_positions = True

    def __init__(self, num_heads: int, *, dim: int = 128, max_wavelength: float = 10000.0):
        self.num_heads = check_positive_int("num_heads", num_heads)
        self.dim = check_positive_int("dim", dim)
        if self.dim % 2:
            raise ValueError(f"dim must be even, got {dim}.")
        self.max_wavelength = check_positive("max_wavelength", max_wavelength)

    def bias(self, q_positions: jax.Array, k_positions: jax.Array) -> jax.Array:
        return sandwich_bias(
            q_positions,
            k_positions,
            num_heads=self.num_heads,
            dim=self.dim,
            max_wavelength=self.max_wavelength,
        )


@register_encoding
class FIRE(Encoding):
    """Functional interpolation for relative positions (Li et al. 2023, "Functional
    Interpolation for Relative Positions Improves Long Context Transformers"):
    b(i, j) = MLP(psi(i - j) / psi(max(threshold, i))), psi(x) = log(c x + 1).

    Learns the MLP, c and threshold. Options: hidden (MLP width, 32), c (0.1), threshold
    (512). Normalising by the query position makes it not translation invariant.
    """

    name = "fire"
    place = "logits"
    takes_positions = True

    attention_params = True

    def __init__(
        self,
        num_heads: int,
        *,
        hidden: int = 32,
        c: float = 0.1,
        threshold: float = 512.0,
        rngs: nnx.Rngs,
    ):
        params = init_fire_params(rngs.params(), num_heads, hidden=hidden, c=c, threshold=threshold)
        self.params = _params(params)

    def bias(self, q_positions: jax.Array, k_positions: jax.Array) -> jax.Array:
        return fire_bias(q_positions, k_positions, params=_values(self.params))


@register_encoding
class DynamicPositionBias(Encoding):
    """Dynamic position bias (Wang et al. 2021, "CrossFormer: A Versatile Vision Transformer
    Hinging on Cross-scale Attention"): an MLP of the signed distance i - j, one output per head.

    Options: hidden (MLP width, 32), depth (hidden layers, 2), log_distance (feed
    sign(d) log(1 + |d|), True).
    """

    name = "dynamic_bias"
    place = "logits"
    takes_positions = True

    attention_params = True

    def __init__(
        self,
        num_heads: int,
        *,
        hidden: int = 32,
        depth: int = 2,
        log_distance: bool = True,
        rngs: nnx.Rngs,
    ):
        params = init_dynamic_bias_params(rngs.params(), num_heads, hidden=hidden, depth=depth)
        self.params = _params(params)
        self.log_distance = check_bool("log_distance", log_distance)

    def bias(self, q_positions: jax.Array, k_positions: jax.Array) -> jax.Array:
        return dynamic_position_bias(
            q_positions,
            k_positions,
            params=_values(self.params),
            log_distance=self.log_distance,
        )
