"""TransformerConfig: the frozen, validated hyper-parameters of `pe_jax.nn.Transformer`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
from flax.core import FrozenDict

from pe_jax._validate import check_bool, check_choice, check_positive_int, check_rate
from pe_jax.nn._declare import STRUCTURAL
from pe_jax.nn._registry import check_options, list_encodings

NORMS = ("pre", "post")
ACTIVATIONS = ("gelu", "relu")
ATTENTION_IMPLS = ("auto", "xla", "cpu")


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

    Plain data, validated on construction: every bad value raises ValueError naming its field.
    The encoding name and options are checked by the registry's `check_options`, which builds
    nothing, yet a config that constructs is a config that builds.

    Attributes:
      vocab_size: V, number of token ids.
      width: D, model width; must be divisible by num_heads.
      num_heads: H; head dim K = D // H.
      num_layers: number of transformer blocks.
      mlp_ratio: hidden width of the MLP as a multiple of D.
      dropout: rate in [0, 1) applied to the embeddings and to each residual branch.
      activation: the MLP's nonlinearity, "gelu" (default) or "relu" (Deletang et al. 2023).
      attention_impl: attention kernel for encodings without content terms: "xla"
        (`jax.nn.dot_product_attention`), "cpu" (custom-gradient einsum attention, faster on
        XLA:CPU) or "auto" (cpu on a CPU backend, xla elsewhere). Same values and gradients.
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
    attention_impl: str = "auto"

    def __post_init__(self):
        for name in ("vocab_size", "width", "num_heads", "num_layers", "mlp_ratio"):
            check_positive_int(name, getattr(self, name))
        if self.width % self.num_heads:
            raise ValueError(
                f"width must be divisible by num_heads, got width={self.width}, "
                f"num_heads={self.num_heads}."
            )
        dropout = check_rate("dropout", self.dropout)
        check_choice("norm", self.norm, NORMS)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("attention_impl", self.attention_impl, ATTENTION_IMPLS)
        for name in ("causal", "share_encoding"):
            check_bool(name, getattr(self, name))
        if not isinstance(self.encoding, str):
            raise ValueError(f"encoding must be a string name, got {self.encoding!r}.")
        if not _is_mapping(self.encoding_options):
            raise ValueError(f"encoding_options must be a mapping, got {self.encoding_options!r}.")
        structural = sorted(set(self.encoding_options) & set(STRUCTURAL))
        if structural:
            raise ValueError(
                f"encoding_options must not set {structural}: they come from the config's own "
                "fields (width, num_heads, causal)."
            )
        if self.max_length is not None:
            check_positive_int("max_length", self.max_length)
        object.__setattr__(self, "dropout", dropout)
        object.__setattr__(self, "encoding_options", _freeze(self.encoding_options))
        object.__setattr__(self, "dtype", _float_dtype("dtype", self.dtype))
        object.__setattr__(self, "param_dtype", _float_dtype("param_dtype", self.param_dtype))
        self._check_encoding()

    @property
    def head_dim(self) -> int:
        """K = width // num_heads."""
        return self.width // self.num_heads

    @property
    def options(self) -> dict[str, Any]:
        """The encoding options as a plain (mutable copy) dict."""
        return _thaw(self.encoding_options)

    def _check_encoding(self) -> None:
        """Checks the encoding and its options with the registry, building nothing."""
        try:
            reach = check_options(
                self.encoding,
                self.options,
                width=self.width,
                num_heads=self.num_heads,
                head_dim=self.head_dim,
                causal=self.causal,
            )
        except ValueError as error:
            field = "encoding" if self.encoding not in list_encodings() else "encoding_options"
            raise ValueError(f"{field} ({self.encoding!r}): {error}") from error
        if self.max_length is not None and reach is not None and self.max_length > reach:
            raise ValueError(
                f"max_length={self.max_length} exceeds the {self.encoding!r} encoding's "
                f"max_length={reach}."
            )
