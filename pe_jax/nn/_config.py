"""TransformerConfig: the frozen, validated hyper-parameters of `pe_jax.nn.Transformer`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax.core import FrozenDict

NORMS = ("pre", "post")
ACTIVATIONS = ("gelu", "relu")


# Constructor arguments of an encoding that come from the config, not from its options.
STRUCTURAL_OPTIONS = ("width", "num_heads", "head_dim", "causal", "rngs")


def _is_mapping(value: Any) -> bool:
    # ml_collections.ConfigDict is not a collections.abc.Mapping but has items().
    return isinstance(value, Mapping) or callable(getattr(value, "items", None))


def _freeze(value: Any) -> Any:
    """Dicts -> FrozenDict and lists -> tuples, recursively, so options hash and stay frozen."""
    if _is_mapping(value):
        return FrozenDict({str(k): _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    """Inverse of `_freeze` for mappings: plain dicts for the encoding constructors."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    return value


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    return int(value)


def _float_dtype(name: str, value: Any) -> jnp.dtype:
    try:
        dtype = jnp.dtype(value)
    except TypeError:
        raise ValueError(f"{name} must be a floating dtype, got {value!r}.") from None
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"{name} must be a floating dtype (float32, bfloat16, ...), got {dtype}.")
    return dtype


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Hyper-parameters of a (decoder-only or encoder-only) transformer with one encoding.

    Validated on construction: every bad value raises ValueError naming its field. The
    encoding name and options are checked by building the encoding once (its parameters are
    small and discarded), so a config that constructs is a config that builds.

    Attributes:
      vocab_size: V, number of token ids.
      width: D, model width; must be divisible by num_heads.
      num_heads: H; head dim K = D // H.
      num_layers: number of transformer blocks.
      mlp_ratio: hidden width of the MLP as a multiple of D.
      dropout: rate in [0, 1) applied to the embeddings and to each residual branch.
      activation: the MLP's nonlinearity, "gelu" (default) or "relu" (Deletang et al. 2023).
      norm: "pre" (LayerNorm before each branch plus a final LayerNorm) or "post" (after the
        residual sum, as in Vaswani et al. 2017 and Deletang et al. 2023).
      causal: True for a decoder (causal mask), False for a bidirectional encoder.
      encoding: a name from `pe_jax.nn.list_encodings()`.
      encoding_options: keyword options of that encoding (stored frozen; see `options`).
      share_encoding: one set of attention-place encoding parameters for all layers (T5 style,
        bias computed once per forward pass) instead of one per layer. Only matters for
        encodings that learn attention parameters (T5, Kerple, FIRE, Shaw, ...).
      dtype: compute dtype of activations (float32 or bfloat16); attention logits, softmax and
        the output logits stay float32.
      param_dtype: dtype of the parameters.
      max_length: optional bound on sequence length (positions + 1); the model rejects longer
        inputs and `init_cache` longer caches.
    """

    vocab_size: int
    width: int
    num_heads: int
    num_layers: int
    mlp_ratio: int = 4
    dropout: float = 0.0
    norm: str = "pre"
    causal: bool = True
    encoding: str = "none"
    encoding_options: Mapping[str, Any] = dataclasses.field(default_factory=FrozenDict)
    share_encoding: bool = True
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    max_length: int | None = None
    activation: str = "gelu"

    def __post_init__(self):
        for name in ("vocab_size", "width", "num_heads", "num_layers", "mlp_ratio"):
            _positive_int(name, getattr(self, name))
        if self.width % self.num_heads:
            raise ValueError(
                f"width must be divisible by num_heads, got width={self.width}, "
                f"num_heads={self.num_heads}."
            )
        try:
            dropout = float(self.dropout)
        except (TypeError, ValueError):
            dropout = float("nan")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}.")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}.")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}.")
        for name in ("causal", "share_encoding"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}.")
        if not isinstance(self.encoding, str):
            raise ValueError(f"encoding must be a string name, got {self.encoding!r}.")
        if not _is_mapping(self.encoding_options):
            raise ValueError(f"encoding_options must be a mapping, got {self.encoding_options!r}.")
        structural = sorted(set(self.encoding_options) & set(STRUCTURAL_OPTIONS))
        if structural:
            raise ValueError(
                f"encoding_options must not set {structural}: they come from the config's own "
                "fields (width, num_heads, causal)."
            )
        if self.max_length is not None:
            _positive_int("max_length", self.max_length)
        object.__setattr__(self, "dropout", dropout)
        object.__setattr__(self, "encoding_options", _freeze(self.encoding_options))
        object.__setattr__(self, "dtype", _float_dtype("dtype", self.dtype))
        object.__setattr__(self, "param_dtype", _float_dtype("param_dtype", self.param_dtype))
        self._check_rotary_fraction()
        self._check_encoding()

    @property
    def head_dim(self) -> int:
        """K = width // num_heads."""
        return self.width // self.num_heads

    @property
    def options(self) -> dict[str, Any]:
        """The encoding options as a plain (mutable copy) dict."""
        return _thaw(self.encoding_options)

    def _check_rotary_fraction(self) -> None:
        fraction = self.encoding_options.get("rotary_fraction")
        if fraction is None:
            return
        try:
            fraction = float(fraction)
        except (TypeError, ValueError):
            fraction = float("nan")
        rotary = fraction * self.head_dim
        if not 0.0 < fraction <= 1.0 or rotary != round(rotary) or round(rotary) % 2:
            raise ValueError(
                "encoding_options['rotary_fraction'] must be in (0, 1] and give an even number "
                f"of rotated dims of head_dim={self.head_dim}, got "
                f"{self.encoding_options['rotary_fraction']!r} ({rotary} dims)."
            )

    def _check_encoding(self) -> None:
        """Builds the encoding so its own checks run (adapters compute static values such as RoPE
        frequencies with concrete arithmetic, so an abstract `nnx.eval_shape` build would fail)."""
        from flax import nnx

        from pe_jax.nn._registry import make_encoding

        try:
            encoding = make_encoding(
                self.encoding,
                width=self.width,
                num_heads=self.num_heads,
                head_dim=self.head_dim,
                rngs=nnx.Rngs(0),
                causal=self.causal,
                **self.options,
            )
        except ValueError as error:
            field = "encoding" if self.encoding not in _names() else "encoding_options"
            raise ValueError(f"{field} ({self.encoding!r}): {error}") from error
        if self.max_length is not None and encoding.max_length is not None:
            if self.max_length > encoding.max_length:
                raise ValueError(
                    f"max_length={self.max_length} exceeds the {self.encoding!r} encoding's "
                    f"max_length={encoding.max_length}."
                )


def _names() -> list[str]:
    from pe_jax.nn._registry import list_encodings

    return list_encodings()
