"""Input-place adapters: a vector per position added to the token embeddings, plus NoPE.

Each adapter wraps one pure function of `pe_jax.encodings._absolute` and, where the encoding
learns something (the learned table, the scale of scaled sinusoids), owns it as an nnx.Param.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pe_jax._validate import (
    check_even,
    check_int_positions,
    check_positive,
    check_positive_int,
)
from pe_jax.encodings import binary_positions, integer_positions, normalized_positions, sinusoidal
from pe_jax.nn._base import Encoding
from pe_jax.nn._declare import register_encoding


def _add(x: jax.Array, pe: jax.Array) -> jax.Array:
    """x [B, L, D] + pe [L, D] or [B, L, D], in x's dtype."""
    return x + pe.astype(x.dtype)


@register_encoding
class NoPE(Encoding):
    """No positional encoding (NoPE): every hook is the identity.

    Kazemnejad et al. 2023, "The Impact of Positional Encoding on Length Generalization in
    Transformers"; Haviv et al. 2022, "Transformer Language Models without Positional
    Encodings Still Learn Positional Information". A causal mask alone lets a decoder infer
    positions; a bidirectional encoder without positions is permutation-equivariant.
    """

    name = "none"
    place = "input"
    takes_positions = False  # no positions at all


@register_encoding
class IntegerEncoding(Encoding):
    """The raw integer position added to every embedding dimension: x + p.

    The first rung of the ladder in Fleetwood 2024, "You could have designed state of the art
    positional encoding"; unbounded, so it swamps the token embeddings as p grows.
    """

    name = "integer"
    place = "input"
    takes_positions = True

    def __init__(self, width: int):
        self.width = check_positive_int("width", width)

    def embed(self, x: jax.Array, positions: jax.Array) -> jax.Array:
        return _add(x, integer_positions(positions, self.width))


@register_encoding
class NormalizedEncoding(Encoding):
    """The position divided by a length added to every dimension: x + p / length.

    The second rung of the ladder in Fleetwood 2024, "You could have designed state of the art
    positional encoding". With `length=None` the normaliser is the current sequence length L,
    so the same offset means different values at different lengths; that normaliser is 1 at
    every KV-cache decode step, so only a fixed `length` supports decoding.
    """

    name = "normalized"
    place = "input"
    takes_positions = True

    def __init__(self, width: int, *, length: int | None = None):
        self.width = check_positive_int("width", width)
        self.length = None if length is None else check_positive_int("length", length)
        self.supports_decoding = self.length is not None

    def embed(self, x: jax.Array, positions: jax.Array) -> jax.Array:
        length = self.length or x.shape[-2]
        return _add(x, normalized_positions(positions, self.width, length=length))


@register_encoding
class BinaryEncoding(Encoding):
    """Binary digits of the position (least significant first) added to the embeddings.

    The third rung of the ladder in Fleetwood 2024, "You could have designed state of the art
    positional encoding". Only the first `bits` dimensions carry bits (default min(D, 31), the
    int32 limit); the remaining dimensions get 0.
    """

    name = "binary"
    place = "input"
    takes_positions = True

    def __init__(self, width: int, *, bits: int | None = None):
        self.width = check_positive_int("width", width)
        bits = min(self.width, 31) if bits is None else check_positive_int("bits", bits)
        if bits > min(self.width, 31):
            raise ValueError(f"bits must be <= min(width, 31) = {min(self.width, 31)}, got {bits}.")
        self.bits = bits

    def embed(self, x: jax.Array, positions: jax.Array) -> jax.Array:
        pe = binary_positions(positions, self.bits)
        pad = [(0, 0)] * (pe.ndim - 1) + [(0, self.width - self.bits)]
        return _add(x, jnp.pad(pe, pad))


@register_encoding
class SinusoidalEncoding(Encoding):
    """Fixed sinusoids added to the embeddings (Vaswani et al. 2017, "Attention Is All You
    Need", sec. 3.5): PE[p, 2i] = sin(p w_i), PE[p, 2i+1] = cos(p w_i), w_i = W^(-2i/D)."""

    name = "sinusoidal"
    place = "input"
    takes_positions = True

    def __init__(self, width: int, *, max_wavelength: float = 10000.0):
        self.width = check_even("width", width)
        self.max_wavelength = check_positive("max_wavelength", max_wavelength)

    def embed(self, x: jax.Array, positions: jax.Array) -> jax.Array:
        pe = sinusoidal(positions, self.width, max_wavelength=self.max_wavelength)
        return _add(x, pe)


@register_encoding
class ScaledSinusoidalEncoding(SinusoidalEncoding):
    """Sinusoids times one learned scalar: x + alpha * PE[p], alpha initialised to D^-1/2.

    Hua et al. 2022, "Transformer Quality in Linear Time" (FLASH), which uses scaled sinusoids
    as its absolute encoding; the D^-1/2 initial scale follows common re-implementations.
    """

    name = "scaled_sinusoidal"
    place = "input"
    takes_positions = True

    def __init__(
        self, width: int, *, max_wavelength: float = 10000.0, scale_init: float | None = None
    ):
        super().__init__(width, max_wavelength=max_wavelength)
        scale = self.width**-0.5 if scale_init is None else check_positive("scale_init", scale_init)
        self.scale = nnx.Param(jnp.asarray(scale, jnp.float32))

    def embed(self, x: jax.Array, positions: jax.Array) -> jax.Array:
        pe = sinusoidal(positions, self.width, max_wavelength=self.max_wavelength)
        return _add(x, self.scale[...] * pe)


def _concrete_max(positions: jax.Array) -> int | None:
    """Largest position when `positions` is concrete (eager), None under tracing."""
    try:
        values = np.asarray(positions)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None
    return int(values.max()) if values.size else None


@register_encoding
class LearnedEncoding(Encoding):
    """A learned table of absolute position embeddings, x + E[p], E ~ normal(0, 0.02).

    Gehring et al. 2017, "Convolutional Sequence to Sequence Learning"; Devlin et al. 2019
    (BERT) and Radford et al. 2019 (GPT-2). Positions must lie in [0, max_length): eager calls
    raise ValueError otherwise; under jit (where positions are abstract) rows outside the table
    read as NaN, so a model should check its lengths against `max_length` up front.
    """

    name = "learned"
    place = "input"
    takes_positions = True

    def __init__(self, width: int, *, max_length: int = 512, stddev: float = 0.02, rngs: nnx.Rngs):
        self.width = check_positive_int("width", width)
        self.max_length = check_positive_int("max_length", max_length)
        stddev = check_positive("stddev", stddev)
        table = stddev * jax.random.normal(rngs.params(), (self.max_length, self.width))
        self.table = nnx.Param(table.astype(jnp.float32))

    def embed(self, x: jax.Array, positions: jax.Array) -> jax.Array:
        positions = check_int_positions("positions", positions)
        largest = _concrete_max(positions)
        if largest is not None and largest >= self.max_length:
            raise ValueError(
                f"positions must be < max_length={self.max_length} for the learned table, got "
                f"position {largest}; raise max_length or shorten the input."
            )
        pe = jnp.take(self.table[...], positions, axis=0, mode="fill", fill_value=jnp.nan)
        return _add(x, pe)
