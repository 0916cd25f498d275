"""Encodings by name: `make_encoding`, `check_options`, `list_encodings`, `encoding_doc`.

Names map to adapter classes. Which positions are fed is orthogonal to the encoding, so the
randomized (Ruoss et al. 2023) and shifted variants of every 1-D position-based encoding are
not classes of their own: "randomized_<name>" and "shifted_<name>" wrap the "<name>" adapter
in `RandomizedPositions`, which only replaces the `positions` hook.

Exception: "randomized_alibi" and "randomized_transformer_xl" are the method of Ruoss et al.'s
official code for relative encodings, which samples the relative distances in every layer
(`RandomizedDistances`); the sampled-positions variants of these two are
"randomized_positions_alibi" and "randomized_positions_transformer_xl".
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import jax
from flax import nnx

from pe_jax._validate import check_choice, check_positive_int
from pe_jax.encodings import randomized_positions, shifted_positions
from pe_jax.nn._adapters_bias import (
    FIRE,
    ALiBi,
    DynamicPositionBias,
    KerpleLog,
    KerplePower,
    Sandwich,
    T5RelativeBias,
)
from pe_jax.nn._adapters_content import CoPE, ShawRelative, TransformerXLRelative
from pe_jax.nn._adapters_gated import ForgettingGate, PaTH
from pe_jax.nn._adapters_input import (
    BinaryEncoding,
    IntegerEncoding,
    LearnedEncoding,
    NoPE,
    NormalizedEncoding,
    ScaledSinusoidalEncoding,
    SinusoidalEncoding,
)
from pe_jax.nn._adapters_pope import PoPE
from pe_jax.nn._adapters_qk import AxialRoPE, RoPE, RoPE2D, RoPEComplex, RoPEMixed, XPos
from pe_jax.nn._adapters_rope_variants import HoPE, MRoPE
from pe_jax.nn._base import Delegating, Encoding
from pe_jax.nn._randomized_distances import RandomizedDistances

DEFAULT_RANDOMIZED_MAX_LENGTH = 2048  # Ruoss et al. 2023 sample from [0, 2048).

_ADAPTERS: dict[str, type[Encoding]] = {
    # input
    "none": NoPE,
    "integer": IntegerEncoding,
    "normalized": NormalizedEncoding,
    "binary": BinaryEncoding,
    "sinusoidal": SinusoidalEncoding,
    "learned": LearnedEncoding,
    "scaled_sinusoidal": ScaledSinusoidalEncoding,
    # query/key
    "rope": RoPE,
    "rope_complex": RoPEComplex,
    "xpos": XPos,
    "rope_2d": RoPE2D,
    "axial": AxialRoPE,
    "rope_mixed": RoPEMixed,
    "mrope": MRoPE,
    "hope": HoPE,
    "pope": PoPE,
    # logits
    "alibi": ALiBi,
    "t5": T5RelativeBias,
    "kerple_log": KerpleLog,
    "kerple_power": KerplePower,
    "sandwich": Sandwich,
    "fire": FIRE,
    "dynamic_bias": DynamicPositionBias,
    # content x position
    "shaw": ShawRelative,
    "transformer_xl": TransformerXLRelative,
    "cope": CoPE,
    # data-dependent (from the layer input x, through the `input_bias` hook)
    "forgetting_gate": ForgettingGate,
    "path": PaTH,
}

# Encodings of 1-D integer positions. Excluded: "none", "cope", "forgetting_gate" and "path" (no
# integer positions), the grid encodings (a random subset of flat positions is no longer a grid)
# and "mrope" (on 1-D positions it is "rope").
_POSITION_BASED = (
    "integer",
    "normalized",
    "binary",
    "sinusoidal",
    "learned",
    "scaled_sinusoidal",
    "rope",
    "rope_complex",
    "xpos",
    "hope",
    "pope",
    "alibi",
    "t5",
    "kerple_log",
    "kerple_power",
    "sandwich",
    "fire",
    "dynamic_bias",
    "shaw",
    "transformer_xl",
)
_MODES = {"randomized": "sorted", "shifted": "shift"}
# Relative encodings whose official randomization (Ruoss et al. 2023's code) samples distances:
# "randomized_<name>" is that method, "randomized_positions_<name>" samples positions.
_DISTANCE_BASED = ("alibi", "transformer_xl")
_POSITIONS_PREFIX = "randomized_positions_"

# Constructor arguments supplied by the model rather than by options.
STRUCTURAL = ("width", "num_heads", "head_dim", "causal", "rngs")


class RandomizedPositions(Delegating):
    """Feeds an encoding random positions instead of 0..L-1; every other hook is the inner one.

    mode="sorted": randomized positional encodings (Ruoss et al. 2023, "Randomized Positional
    Encodings Boost Length Generalization of Transformers"): each example gets a sorted sample
    of L distinct positions from [0, max_length), at training and at evaluation alike.
    mode="shift": a random global offset per example (Kiyono et al. 2021, "SHAPE: Shifted
    Absolute Position Embedding"): consecutive positions starting in [0, max_length - L].

    `positions` needs a PRNG key and only uses the shape of the positions it is given, so it
    must be called once per sequence (for decoding: once for the whole length, then sliced).
    With `lengths` (real tokens per example of a padded batch, which the Transformer passes
    whenever it gets a padding mask), each example's sample is of its own length, as unpadded.
    Inputs longer than max_length raise ValueError.
    """

    randomizes_positions = True

    def __init__(self, inner: Encoding, *, max_length: int, mode: str = "sorted"):
        super().__init__(inner)
        self.max_length = check_positive_int("max_length", max_length)
        self.mode = check_choice("mode", mode, ("sorted", "shift"))
        self.supports_decoding = False  # a sample per sequence; a decode step sees one position

    def positions(
        self,
        positions: jax.Array,
        *,
        key: jax.Array | None = None,
        lengths: jax.Array | None = None,
    ) -> jax.Array:
        if key is None:
            raise ValueError(
                "key must be a PRNG key for randomized positions (Ruoss et al. 2023 sample them "
                "at training and evaluation alike), got None."
            )
        length = positions.shape[-1]
        batch_size = positions.shape[0] if positions.ndim == 2 else None
        if self.mode == "sorted":
            return randomized_positions(
                key, length, max_length=self.max_length, batch_size=batch_size, lengths=lengths
            )
        if length > self.max_length:
            raise ValueError(f"max_length must be >= length ({length}), got {self.max_length}.")
        return shifted_positions(
            key,
            length,
            max_shift=self.max_length - length,
            batch_size=batch_size,
            lengths=lengths,
        )


def _split_name(name: str) -> tuple[str | None, str]:
    """'randomized_rope' -> ('sorted', 'rope'); 'randomized_alibi' -> ('distances', 'alibi');
    'randomized_positions_alibi' -> ('sorted', 'alibi'); 'rope' -> (None, 'rope')."""
    if name.startswith(_POSITIONS_PREFIX) and name[len(_POSITIONS_PREFIX) :] in _DISTANCE_BASED:
        return "sorted", name[len(_POSITIONS_PREFIX) :]
    prefix, _, base = name.partition("_")
    if prefix in _MODES and base in _POSITION_BASED:
        mode = _MODES[prefix]
        return ("distances" if mode == "sorted" and base in _DISTANCE_BASED else mode), base
    return None, name


def list_encodings() -> list[str]:
    """All registered encoding names, sorted."""
    names = list(_ADAPTERS)
    names += [f"{prefix}_{base}" for prefix in _MODES for base in _POSITION_BASED]
    names += [_POSITIONS_PREFIX + base for base in _DISTANCE_BASED]
    return sorted(names)


def _lookup(name) -> tuple[str | None, type[Encoding]]:
    mode, base = _split_name(name) if isinstance(name, str) else (None, None)
    if base not in _ADAPTERS:
        raise ValueError(f"name must be one of {list_encodings()}, got {name!r}.")
    return mode, _ADAPTERS[base]


def _parameters(cls: type[Encoding]) -> dict[str, inspect.Parameter]:
    params = inspect.signature(cls.__init__).parameters
    return {
        n: p
        for n, p in params.items()
        if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def _option_defaults(mode: str | None, cls: type[Encoding]) -> dict[str, object]:
    options = {n: p.default for n, p in _parameters(cls).items() if n not in STRUCTURAL}
    if mode is not None:
        options["max_length"] = DEFAULT_RANDOMIZED_MAX_LENGTH
    return options


def encoding_doc(name: str) -> str:
    """The documentation of encoding `name`: its paper, formula and options with defaults.

    Raises:
      ValueError: unknown name (the message lists the valid ones).
    """
    mode, cls = _lookup(name)
    doc = inspect.cleandoc(cls.__doc__ or "")
    if mode == "distances":
        doc = inspect.cleandoc(RandomizedDistances.__doc__) + "\n\nOver:\n" + doc
    elif mode is not None:
        doc = inspect.cleandoc(RandomizedPositions.__doc__) + f'\n\nmode="{mode}" over:\n' + doc
    options = ", ".join(f"{n}={d!r}" for n, d in _option_defaults(mode, cls).items())
    return f"{name}: {doc}\n\nOptions: {options or '(none)'}"


def make_encoding(
    name: str,
    *,
    width: int,
    num_heads: int,
    head_dim: int,
    rngs: nnx.Rngs,
    causal: bool = True,
    **options,
) -> Encoding:
    """Builds the encoding adapter registered as `name`.

    Args:
      name: one of `list_encodings()`.
      width: model width D (used by input-place encodings and Transformer-XL).
      num_heads: H (attention-place encodings).
      head_dim: K (query/key and content encodings).
      rngs: NNX rngs; `rngs.params()` initialises learned parameters.
      causal: whether the model's attention is causal (T5 buckets, ALiBi, CoPE use it).
      **options: the encoding's own options (see `encoding_doc(name)`); "randomized_*" and
        "shifted_*" names also take max_length (default 2048; for randomized distances, the
        L_max of [1, L_max)), which a learned table shares.

    Returns:
      An `Encoding` (nnx.Module).

    Raises:
      ValueError: unknown name (listing the valid names), unknown option (naming it and
        listing the allowed ones), or an invalid option value (raised by the adapter).
    """
    mode, cls = _lookup(name)
    allowed = _option_defaults(mode, cls)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for encoding {name!r}; allowed options: "
            f"{sorted(allowed) or 'none'}."
        )
    structural = dict(width=width, num_heads=num_heads, head_dim=head_dim, causal=causal)
    structural["rngs"] = rngs
    parameters = _parameters(cls)
    kwargs = {n: v for n, v in structural.items() if n in parameters}
    if mode is None:
        return cls(**kwargs, **options)
    max_length = options.pop("max_length", DEFAULT_RANDOMIZED_MAX_LENGTH)
    if "max_length" in parameters:
        # A learned table must cover every position the sampler can draw.
        options["max_length"] = max_length
    if mode == "distances":
        return RandomizedDistances(cls(**kwargs, **options), max_length=max_length)
    return RandomizedPositions(cls(**kwargs, **options), max_length=max_length, mode=mode)


def check_options(
    name: str,
    options: Mapping[str, Any],
    *,
    width: int,
    num_heads: int,
    head_dim: int,
    causal: bool = True,
) -> int | None:
    """Checks encoding `name` with `options` exactly as `make_encoding` does, building nothing.

    `make_encoding` runs abstractly (`nnx.eval_shape`): the registry checks the name and the
    option names, the adapter's constructor (and the pure functions it calls) check the values,
    but no parameter is initialised and nothing is computed on a device. So each rule stays
    written once, where the adapter uses it.

    Returns:
      The largest position + 1 the encoding supports (its `max_length`; None = unbounded).

    Raises:
      ValueError: what `make_encoding` raises for the same arguments.
    """
    dims = dict(width=width, num_heads=num_heads, head_dim=head_dim, causal=causal)
    abstract = nnx.eval_shape(
        lambda: make_encoding(name, **dims, rngs=nnx.Rngs(0), **dict(options))
    )
    return abstract.max_length
