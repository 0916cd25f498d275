"""The Transformer: token embedding, one positional encoding at its place(s), blocks, logits."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from pe_jax._validate import check_int_positions
from pe_jax.nn._attention import Attention, causal_mask, combine_masks
from pe_jax.nn._base import Encoding, default_positions
from pe_jax.nn._config import TransformerConfig
from pe_jax.nn._registry import make_encoding


class MLP(nnx.Module):
    """Position-wise feed-forward network: Linear(D, r D) -> GELU -> Linear(r D, D)."""

    def __init__(self, config: TransformerConfig, *, rngs: nnx.Rngs):
        hidden = config.mlp_ratio * config.width
        kwargs = dict(dtype=config.dtype, param_dtype=config.param_dtype, rngs=rngs)
        self.up = nnx.Linear(config.width, hidden, **kwargs)
        self.down = nnx.Linear(hidden, config.width, **kwargs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.down(jax.nn.gelu(self.up(x)))


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
        deterministic: bool,
        keys: tuple[jax.Array, jax.Array] | None,
        **attention_kwargs,
    ) -> tuple[jax.Array, dict[str, jax.Array] | None]:
        """x [B, L, D] -> (x' [B, L, D], updated KV cache or None).

        keys: dropout keys of the attention and MLP branches (None when deterministic);
        attention_kwargs: passed to `Attention.__call__`.
        """
        key_attention, key_mlp = (None, None) if keys is None else keys
        y, cache = self.attention(
            self.attention_norm(x) if self.pre_norm else x, **attention_kwargs
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
        deterministic: bool = True,
        key: jax.Array | None = None,
    ) -> jax.Array:
        """Logits of a full (non-cached) pass.

        Args:
          tokens: int [B, L].
          positions: int [L] or [B, L]; default arange(L) (1-D, so relative biases carry a
            leading 1 instead of a batch axis). Passed through `encoding.positions`, which
            randomized encodings replace by a sample.
          mask: bool [B, L] padding mask, True = real token. Padded keys are never attended;
            outputs at padded queries are finite but meaningless.
          deterministic: False enables dropout (needs `key`).
          key: PRNG key for dropout and randomized positions.

        Returns:
          float32 logits [B, L, V].

        Raises:
          ValueError: bad shapes/dtypes, a missing key, or L above config.max_length.
        """
        return self.forward_embeddings(
            self.embed_tokens(tokens),
            positions=positions,
            mask=mask,
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
        deterministic: bool = True,
        key: jax.Array | None = None,
    ) -> jax.Array:
        """`__call__` from token embeddings, e.g. to differentiate w.r.t. the inputs.

        Args:
          x: token embeddings [B, L, D] in the compute dtype (see `embed_tokens`), before the
            encoding's embed hook.
          positions, mask, deterministic, key: as in `__call__`.

        Returns:
          float32 logits [B, L, V].
        """
        batch, length, _ = x.shape
        config = self.config
        if config.max_length is not None and length > config.max_length:
            raise ValueError(f"sequence length {length} exceeds max_length={config.max_length}.")
        needs_dropout_key = not deterministic and config.dropout > 0
        if key is None and (needs_dropout_key or self.encoding.randomizes_positions):
            raise ValueError(
                "key is required for dropout (deterministic=False) and for encodings with "
                f"randomized positions ({config.encoding!r})."
            )
        positions = self.input_positions(batch, length, positions=positions, mask=mask, key=key)
        attn_mask = None if mask is None else mask.astype(bool)[:, None, None, :]
        is_causal = config.causal and attn_mask is None
        if config.causal and attn_mask is not None:
            # Causality is by index in a full pass (positions may be randomized or shifted).
            index = jnp.arange(length, dtype=jnp.int32)
            attn_mask = combine_masks(attn_mask, causal_mask(index, index))
        logits, _ = self._run(
            x,
            positions=positions,
            k_positions=positions,
            mask=attn_mask,
            is_causal=is_causal,
            deterministic=deterministic,
            key=key,
        )
        return logits

    def _run(
        self,
        x: jax.Array,
        *,
        positions: jax.Array,
        k_positions: jax.Array,
        mask: jax.Array | None,
        is_causal: bool,
        deterministic: bool,
        key: jax.Array | None,
        caches: list | None = None,
        cache_index: jax.Array | None = None,
    ) -> tuple[jax.Array, list | None]:
        """Shared by full passes and `decode_step`: embed hook, blocks, head.

        Args:
          x: token embeddings [B, L, D].
          positions: int [L] or [B, L] of the L queries (after `encoding.positions`).
          k_positions: int [S] or [B, S] of the keys the queries see (positions itself, or
            arange(S_max) with a cache).
          mask, is_causal: see `attend`.
          caches: per-block {"k", "v"} or None; cache_index int [B].

        Returns:
          (float32 logits [B, L, V], updated caches or None).
        """

        def dropout_key(i):
            if deterministic or key is None:
                return None
            return jax.random.fold_in(key, i)

        x = self.encoding.embed(x, positions)
        x = self.dropout(x, deterministic=deterministic, rngs=dropout_key(1))
        layer_bias = self.per_layer or self.encoding.draws_per_layer
        shared_bias = None if layer_bias else self.encoding.bias(positions, k_positions)
        new_caches = []
        for i, block in enumerate(self.blocks):
            keys = None
            if not deterministic and key is not None:
                keys = (dropout_key(2 + 2 * i), dropout_key(3 + 2 * i))
            x, cache = block(
                x,
                deterministic=deterministic,
                keys=keys,
                encoding=self.layer_encoding(i, key),
                positions=positions,
                bias=shared_bias,
                layer_bias=layer_bias,
                mask=mask,
                is_causal=is_causal,
                cache=None if caches is None else caches[i],
                cache_index=cache_index,
            )
            new_caches.append(cache)
        if self.final_norm is not None:
            x = self.final_norm(x)
        logits = self.head(x).astype(jnp.float32)
        return logits, (None if caches is None else new_caches)
