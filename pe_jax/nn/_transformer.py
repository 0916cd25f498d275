"""The Transformer: token embedding, one positional encoding at its place(s), blocks, logits."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pe_jax._validate import check_int_positions
from pe_jax.nn._attention import Attention, causal_mask, combine_masks, over_tokens
from pe_jax.nn._base import Encoding, default_positions
from pe_jax.nn._config import TransformerConfig
from pe_jax.nn._registry import make_encoding

# Per block {"k", "v": [B, S, H, K]}: rotated keys and values, slot j holding position j.
Cache = list[dict[str, jax.Array]]


class MLP(nnx.Module):
    """Position-wise feed-forward network: Linear(D, r D) -> GELU or ReLU -> Linear(r D, D)."""

    def __init__(self, config: TransformerConfig, *, rngs: nnx.Rngs):
        hidden = config.mlp_ratio * config.width
        kwargs = dict(dtype=config.dtype, param_dtype=config.param_dtype, rngs=rngs)
        self.up = nnx.Linear(config.width, hidden, **kwargs)
        self.down = nnx.Linear(hidden, config.width, **kwargs)
        self.relu = config.activation == "relu"

    def __call__(self, x: jax.Array) -> jax.Array:
        h = over_tokens(self.up, x)
        return over_tokens(self.down, jax.nn.relu(h) if self.relu else jax.nn.gelu(h))


class Block(nnx.Module):
    """One transformer block, pre-LN (x + f(LN(x))) or post-LN (LN(x + f(x)))."""

    def __init__(self, config: TransformerConfig, *, rngs: nnx.Rngs):
        kwargs = dict(dtype=config.dtype, param_dtype=config.param_dtype, rngs=rngs)
        self.pre_norm = config.norm == "pre"
        self.attention_norm = nnx.LayerNorm(config.width, **kwargs)
        self.attention = Attention(config, rngs=rngs)
        self.mlp_norm = nnx.LayerNorm(config.width, **kwargs)
        self.mlp = MLP(config, rngs=rngs)
        self.dropout = nnx.Dropout(config.dropout)

    def __call__(
        self,
        x: jax.Array,
        *,
        encoding: Encoding,
        positions: jax.Array,
        bias: jax.Array | None,
        layer_bias: bool,
        mask: jax.Array | None,
        is_causal: bool,
        cache: dict[str, jax.Array] | None,
        cache_index: jax.Array | None,
        deterministic: bool,
        keys: tuple[jax.Array, jax.Array] | None,
    ) -> tuple[jax.Array, dict[str, jax.Array] | None]:
        """x [B, L, D] -> (x' [B, L, D], updated KV cache or None).

        encoding, positions, bias, layer_bias, mask, is_causal, cache, cache_index: as in
        `Attention.__call__`; keys: dropout keys of the attention and MLP branches (None when
        deterministic).
        """
        key_attention, key_mlp = (None, None) if keys is None else keys
        y, cache = self.attention(
            self.attention_norm(x) if self.pre_norm else x,
            encoding=encoding,
            positions=positions,
            bias=bias,
            layer_bias=layer_bias,
            mask=mask,
            is_causal=is_causal,
            cache=cache,
            cache_index=cache_index,
        )
        x = x + self.dropout(y, deterministic=deterministic, rngs=key_attention)
        if not self.pre_norm:
            x = self.attention_norm(x)
        y = self.mlp(self.mlp_norm(x) if self.pre_norm else x)
        x = x + self.dropout(y, deterministic=deterministic, rngs=key_mlp)
        if not self.pre_norm:
            x = self.mlp_norm(x)
        return x, cache


class Transformer(nnx.Module):
    """Decoder-only (causal) or encoder-only transformer with a positional encoding by name.

    tokens -> Embed -> encoding.embed -> dropout -> blocks -> (final LayerNorm if pre-LN)
    -> Linear -> float32 logits. Attention hooks (rotate, bias, content) come from
    `self.encoding` when `config.share_encoding` or when the encoding learns no attention
    parameters, in which case its bias is computed once per forward pass; otherwise block i
    uses `self.layer_encodings[i]` (block 0 uses `self.encoding` itself). Encodings that draw
    per layer get each block's own key through `layer_encoding` (bias computed per block).
    """

    def __init__(self, config: TransformerConfig, *, rngs: nnx.Rngs):
        self.config = config
        kwargs = dict(dtype=config.dtype, param_dtype=config.param_dtype, rngs=rngs)
        self.embedder = nnx.Embed(config.vocab_size, config.width, **kwargs)
        self.encoding = self._make_encoding(rngs)
        per_layer = not config.share_encoding and self.encoding.attention_params
        self.per_layer = per_layer
        self.layer_encodings = nnx.List(
            [self.encoding] + [self._make_encoding(rngs) for _ in range(config.num_layers - 1)]
            if per_layer
            else []
        )
        self.dropout = nnx.Dropout(config.dropout)
        self.blocks = nnx.List([Block(config, rngs=rngs) for _ in range(config.num_layers)])
        self.final_norm = nnx.LayerNorm(config.width, **kwargs) if config.norm == "pre" else None
        self.head = nnx.Linear(config.width, config.vocab_size, **kwargs)

    def _make_encoding(self, rngs: nnx.Rngs) -> Encoding:
        config = self.config
        return make_encoding(
            config.encoding,
            width=config.width,
            num_heads=config.num_heads,
            head_dim=config.head_dim,
            rngs=rngs,
            causal=config.causal,
            **config.options,
        )

    def layer_encoding(self, layer: int, key: jax.Array | None) -> Encoding:
        """The encoding whose attention hooks block `layer` uses in a pass keyed by `key`.

        For encodings that draw per layer (`draws_per_layer`, e.g. randomized_alibi), its
        `for_layer` view with the layer's key fold_in(key, 2 * num_layers + 2 + layer), an index
        that the positions (0) and dropout (1 .. 2 * num_layers + 1) keys do not use.
        """
        encoding = self.layer_encodings[layer] if self.per_layer else self.encoding
        if not encoding.draws_per_layer:
            return encoding
        index = 2 * len(self.blocks) + 2 + layer
        return encoding.for_layer(None if key is None else jax.random.fold_in(key, index))

    def embed_tokens(self, tokens: jax.Array) -> jax.Array:
        """Token embeddings [B, L, D] (compute dtype) of int tokens [B, L], before any encoding."""
        if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
            raise ValueError(
                f"tokens must be an int array [B, L], got {tokens.dtype}{tokens.shape}."
            )
        return self.embedder(tokens)

    def __call__(
        self,
        tokens: jax.Array,
        *,
        positions: jax.Array | None = None,
        mask: jax.Array | None = None,
        cache: Cache | None = None,
        cache_index: int | jax.Array | None = None,
        deterministic: bool = True,
        key: jax.Array | None = None,
    ) -> tuple[jax.Array, Cache | None]:
        """The model's one forward pass: training, evaluation, decoding and inspection call it.

        Without a cache (a full pass) the L tokens sit at `positions` and attend to each other
        (causally, by index, for a decoder). With a KV cache (see `init_cache`), they sit at
        positions cache_index .. cache_index + L - 1: their rotated keys and values are written
        into those slots, and each attends to every slot at or before its own position.

        Attention probabilities are recorded only on request: on a copy made with
        `nnx.with_attributes(model, sow_attention_probs=True)`, each block sows its float32
        [B, H, L, S] probabilities as an `nnx.Intermediate`, read back with `nnx.capture`:

            probe = nnx.with_attributes(model, sow_attention_probs=True)
            (logits, _), sown = nnx.capture(probe, nnx.Intermediate)(tokens)
            (probs,) = sown["blocks"][i]["attention"]["attention_probs"].get_value()

        Args:
          tokens: int [B, L].
          positions: full pass only: int [L] or [B, L]; default arange(L) (1-D, so relative
            biases carry a leading 1 instead of a batch axis). Passed through
            `encoding.positions`, which randomized encodings replace by a sample.
          mask: full pass only: bool [B, L] padding mask, True = real token. Padded keys are
            never attended; outputs at padded queries are finite but meaningless.
          cache: per block {"k", "v": [B, S, H, K]}, slot j holding position j, or None for a
            full pass. Needs a causal model whose encoding supports decoding.
          cache_index: with a cache, int scalar or [B]: the position (= slot) of the first new
            token of every example / of each; a scalar keeps biases free of a batch axis.
            cache_index + L must not exceed S (checked when concrete; under jit the write
            would be clamped).
          deterministic: False enables dropout (needs `key`).
          key: PRNG key for dropout and randomized positions.

        Returns:
          (float32 logits [B, L, V], the updated cache, or None without one).

        Raises:
          ValueError: bad shapes/dtypes, a missing key, L above config.max_length, or a cache
            with a model that cannot decode, a bad cache_index, or positions / mask.
        """
        return self.forward_embeddings(
            self.embed_tokens(tokens),
            positions=positions,
            mask=mask,
            cache=cache,
            cache_index=cache_index,
            deterministic=deterministic,
            key=key,
        )

    def input_positions(
        self,
        batch: int,
        length: int,
        *,
        positions: jax.Array | None = None,
        mask: jax.Array | None = None,
        key: jax.Array | None = None,
    ) -> jax.Array:
        """The positions a full pass over [batch, length] tokens feeds the encoding's hooks.

        arange(L) (or the given `positions`), passed through the encoding's `positions` hook
        with `fold_in(key, 0)`; for encodings that draw positions, a padding `mask` gives each
        example's real length so its sample is drawn as for the unpadded input ([B, L] then).

        Raises:
          ValueError: bad positions / mask shapes, or L beyond the encoding's max_length.
        """
        encoding = self.encoding
        if mask is not None and mask.shape != (batch, length):
            raise ValueError(f"mask must have shape [{batch}, {length}], got {mask.shape}.")
        if positions is None and encoding.randomizes_positions:
            positions = default_positions(batch, length)  # [B, L]: a sample per example
        elif positions is None:
            limit = encoding.max_length
            if limit is not None and length > limit:
                raise ValueError(
                    f"sequence length {length} exceeds the {self.config.encoding!r} encoding's "
                    f"max_length={limit} (positions 0..{length - 1})."
                )
            positions = jnp.arange(length, dtype=jnp.int32)
        else:
            positions = check_int_positions("positions", positions)
            if positions.shape[-1] != length or positions.shape[:-1] not in ((), (batch,)):
                raise ValueError(
                    f"positions must have shape [{length}] or [{batch}, {length}], got "
                    f"{positions.shape}."
                )
        lengths = None
        if encoding.randomizes_positions and mask is not None:
            lengths = jnp.sum(mask.astype(jnp.int32), axis=-1)
            positions = jnp.broadcast_to(positions, (batch, length))
        return encoding.positions(
            positions, key=None if key is None else jax.random.fold_in(key, 0), lengths=lengths
        )

    def forward_embeddings(
        self,
        x: jax.Array,
        *,
        positions: jax.Array | None = None,
        mask: jax.Array | None = None,
        cache: Cache | None = None,
        cache_index: int | jax.Array | None = None,
        deterministic: bool = True,
        key: jax.Array | None = None,
    ) -> tuple[jax.Array, Cache | None]:
        """`__call__` from token embeddings, e.g. to differentiate w.r.t. the inputs.

        Args:
          x: token embeddings [B, L, D] in the compute dtype (see `embed_tokens`), before the
            encoding's embed hook.
          positions, mask, cache, cache_index, deterministic, key: as in `__call__`.

        Returns:
          (float32 logits [B, L, V], the updated cache or None), as `__call__`.
        """
        batch, length, _ = x.shape
        config = self.config
        if config.max_length is not None and length > config.max_length:
            raise ValueError(f"sequence length {length} exceeds max_length={config.max_length}.")
        if cache is not None:
            check_decodable(self)
        needs_dropout_key = not deterministic and config.dropout > 0
        if key is None and (needs_dropout_key or self.encoding.randomizes_positions):
            raise ValueError(
                "key is required for dropout (deterministic=False) and for encodings with "
                f"randomized positions ({config.encoding!r})."
            )
        if cache is None:
            if cache_index is not None:
                raise ValueError(f"cache_index needs a cache, got cache_index={cache_index!r}.")
            positions = self.input_positions(batch, length, positions=positions, mask=mask, key=key)
            k_positions = positions
            # Causality is by index in a full pass (positions may be randomized or shifted).
            index = jnp.arange(length, dtype=jnp.int32)
            attn_mask, is_causal = self._attention_mask(index, index, mask, full_pass=True)
        else:
            positions, cache_index = self._cache_positions(
                cache, cache_index, batch, length, positions=positions, mask=mask
            )
            k_positions = jnp.arange(cache[0]["k"].shape[1], dtype=jnp.int32)
            attn_mask, is_causal = self._attention_mask(
                positions, k_positions, None, full_pass=False
            )

        def dropout_key(i):
            if deterministic or key is None:
                return None
            return jax.random.fold_in(key, i)

        x = self.encoding.embed(x, positions)
        x = self.dropout(x, deterministic=deterministic, rngs=dropout_key(1))
        layer_bias = self.per_layer or self.encoding.draws_per_layer
        shared_bias = None if layer_bias else self.encoding.bias(positions, k_positions)
        new_cache = []
        for i, block in enumerate(self.blocks):
            keys = None
            if not deterministic and key is not None:
                keys = (dropout_key(2 + 2 * i), dropout_key(3 + 2 * i))
            x, layer_cache = block(
                x,
                encoding=self.layer_encoding(i, key),
                positions=positions,
                bias=shared_bias,
                layer_bias=layer_bias,
                mask=attn_mask,
                is_causal=is_causal,
                cache=None if cache is None else cache[i],
                cache_index=cache_index,
                deterministic=deterministic,
                keys=keys,
            )
            new_cache.append(layer_cache)
        if self.final_norm is not None:
            x = self.final_norm(x)
        logits = over_tokens(self.head, x).astype(jnp.float32)
        return logits, (None if cache is None else new_cache)

    def _attention_mask(
        self,
        q_index: jax.Array,
        k_index: jax.Array,
        padding: jax.Array | None,
        *,
        full_pass: bool,
    ) -> tuple[jax.Array | None, bool]:
        """The attention mask of a pass, built here only: (bool [1|B, 1, L, S] or None, is_causal).

        Padded keys (padding bool [B, S], False = padding) are masked; a decoder also masks
        key index > query index. In a full pass (query i is key i) without padding, that is
        left to the attention kernel (is_causal=True); with a cache, indices are positions
        (slot j holds position j), so slots above a query's position, not yet written or
        stale, are masked.
        """
        mask = None if padding is None else padding.astype(bool)[:, None, None, :]
        if not self.config.causal:
            return mask, False
        if full_pass and mask is None:
            return None, True
        return combine_masks(mask, causal_mask(q_index, k_index)), False

    def _cache_positions(
        self,
        cache: Cache,
        cache_index: int | jax.Array | None,
        batch: int,
        length: int,
        *,
        positions: jax.Array | None,
        mask: jax.Array | None,
    ) -> tuple[jax.Array, jax.Array]:
        """Checks a cached pass's arguments; returns (query positions int [L] or [B, L], the
        int [B] first slot written per example)."""
        if positions is not None or mask is not None:
            raise ValueError(
                "positions and mask must be None with a cache (slot j holds position j, the "
                "queries sit at cache_index + arange(L)), got "
                f"positions={positions!r}, mask={mask!r}."
            )
        slots = cache[0]["k"].shape[1]
        if cache_index is None:
            raise ValueError("cache_index (the offset of the first new token) is required.")
        cache_index = jnp.asarray(cache_index)
        if (
            not jnp.issubdtype(cache_index.dtype, jnp.integer)
            or cache_index.ndim > 1
            or (cache_index.ndim == 1 and cache_index.shape[0] != batch)
        ):
            raise ValueError(
                f"cache_index (the offset) must be an int scalar or have shape [{batch}], got "
                f"{cache_index.dtype}{cache_index.shape}."
            )
        cache_index = cache_index.astype(jnp.int32)
        values = _concrete(cache_index)
        if values is not None and (values.min() < 0 or values.max() + length > slots):
            raise ValueError(
                f"cache_index (the offset) + L must lie in [L, {slots}] (the cache length), got "
                f"offset {values} and L={length}."
            )
        arange = jnp.arange(length, dtype=jnp.int32)
        positions = cache_index[:, None] + arange if cache_index.ndim else cache_index + arange
        return positions, jnp.broadcast_to(cache_index, (batch,))


def check_decodable(model: Transformer) -> None:
    """Raises ValueError unless `model` is causal and its encoding supports KV-cache decoding.

    Encodings with randomized positions are rejected too: the cache maps slot j to position j.
    """
    if not model.config.causal:
        raise ValueError("model.config.causal must be True for KV-cache decoding, got False.")
    encoding = model.encoding
    if not encoding.supports_decoding or encoding.randomizes_positions:
        # Randomized positions are drawn per sequence; the cache assumes slot j = position j.
        raise ValueError(
            f"encoding {model.config.encoding!r} does not support KV-cache decoding "
            "(supports_decoding is False or its positions are randomized)."
        )


def _concrete(x: jax.Array) -> np.ndarray | None:
    """x as a NumPy array when concrete, None under tracing."""
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None
