"""Encodings by name: `make_encoding`, `check_options`, `list_encodings`, `encoding_doc`.

Names map to adapter classes, each registered by its own declaration (`register_encoding`, in
_declare.py). Which positions are fed is orthogonal to the encoding, so the randomized (Ruoss
et al. 2023) and shifted variants of every encoding declaring `takes_positions` are not classes
of their own: "randomized_<name>" and "shifted_<name>" wrap the "<name>" adapter in
`RandomizedPositions`, which only replaces the `positions` hook.

Exception: an encoding declaring `randomized_distances` ("alibi", "transformer_xl") follows
Ruoss et al.'s official code for relative encodings: "randomized_<name>" samples the relative
distances in every layer (`RandomizedDistances`), and "randomized_positions_<name>" is its
sampled-positions variant.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import jax
from flax import nnx

# The built-in adapters register themselves (`@register_encoding`) when their module loads;
# imported by module path, not through the package door that imports this module.
import pe_jax.nn._adapters_bias
import pe_jax.nn._adapters_content
import pe_jax.nn._adapters_gated
import pe_jax.nn._adapters_input
import pe_jax.nn._adapters_pope
import pe_jax.nn._adapters_qk
import pe_jax.nn._adapters_rope_variants  # noqa: F401
from pe_jax._names import did_you_mean
from pe_jax._validate import check_choice, check_positive_int
from pe_jax.encodings import randomized_positions, shifted_positions
from pe_jax.nn._base import Delegating, Encoding
from pe_jax.nn._declare import STRUCTURAL, lookup, option_parameters, registered_names
from pe_jax.nn._randomized_distances import RandomizedDistances

DEFAULT_RANDOMIZED_MAX_LENGTH = 2048  # Ruoss et al. 2023 sample from [0, 2048).


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


def list_encodings() -> list[str]:
    """All registered encoding names, sorted (the built-in ones and any `register_encoding`
    added)."""
    return registered_names()


def _lookup(name) -> tuple[str | None, type[Encoding]]:
    found = lookup(name)
    if found is None:
        names = registered_names()
        raise ValueError(
            f"unknown encoding {name!r}.{did_you_mean(name, names)} "
            f"pe_jax.nn.list_encodings() lists the {len(names)} names."
        )
    return found


def _option_defaults(mode: str | None, cls: type[Encoding]) -> dict[str, object]:
    options = {n: p.default for n, p in option_parameters(cls).items() if n not in STRUCTURAL}
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
        hint = did_you_mean(unknown[0], allowed) if len(unknown) == 1 else ""
        raise ValueError(
            f"unknown option(s) {unknown} for encoding {name!r}.{hint} Allowed options: "
            f"{sorted(allowed) or 'none'}."
        )
    structural = dict(width=width, num_heads=num_heads, head_dim=head_dim, causal=causal)
    structural["rngs"] = rngs
    parameters = option_parameters(cls)
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
