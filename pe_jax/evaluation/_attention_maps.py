"""Attention maps of a trained Transformer: the probabilities of one layer, for plots.

`attention_maps` replays the model's forward pass up to a layer (the same hooks, positions,
masks and blocks as `Transformer.__call__`) and returns that layer's attention probabilities
from `pe_jax.nn._attention.attention_probs`. `sample_attention` does it on one task example
of a given length, e.g. at the training length and at 4x it (explorer figure 9).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pe_jax.nn._attention import attention_probs, causal_mask, combine_bias
from pe_jax.nn._transformer import Transformer
from pe_jax.tasks._base import Task


def attention_maps(
    model: Transformer,
    tokens: jax.Array,
    *,
    layer: int = 0,
    mask: jax.Array | None = None,
    key: jax.Array | None = None,
) -> jax.Array:
    """Attention probabilities of every head of block `layer` for a full (non-cached) pass.

    Positions are those the evaluation feeds (arange(L), or the encoding's sample from it for
    randomized encodings, which needs `key`); padding and, for a causal model, causality are
    masked as in `Transformer.__call__` (deterministic: no dropout).

    Args:
      model: a Transformer.
      tokens: int [B, L].
      layer: block index in [-num_layers, num_layers).
      mask: bool [B, L] padding mask (True = real token) or None.
      key: PRNG key for randomized positions (folded in as the model does).

    Returns:
      float32 [B, H, L, L]: rows are queries, columns keys; each row sums to 1.

    Raises:
      ValueError: a layer out of range, bad tokens / mask shapes, a missing key, or a length
        beyond what the encoding addresses.
    """
    config = model.config
    num_layers = len(model.blocks)
    if (
        isinstance(layer, bool)
        or not isinstance(layer, int)
        or not -num_layers <= layer < num_layers
    ):
        raise ValueError(f"layer must be an int in [{-num_layers}, {num_layers}), got {layer!r}.")
    layer %= num_layers
    x = model.embed_tokens(tokens)
    batch, length = tokens.shape
    encoding = model.encoding
    positions = model.input_positions(batch, length, mask=mask, key=key)  # as the model does
    attn_mask = None if mask is None else mask.astype(bool)[:, None, None, :]
    if config.causal:
        # By index, as the model does: positions may be randomized or shifted.
        index = jnp.arange(length, dtype=jnp.int32)
        causal = causal_mask(index, index)
        attn_mask = causal if attn_mask is None else jnp.logical_and(attn_mask, causal)

    def encoding_of(i):
        return model.layer_encoding(i, key)

    layer_bias = model.per_layer or encoding.draws_per_layer
    x = encoding.embed(x, positions)
    shared_bias = None if layer_bias else encoding.bias(positions, positions)
    for i in range(layer):
        x, _ = model.blocks[i](
            x,
            deterministic=True,
            keys=None,
            encoding=encoding_of(i),
            positions=positions,
            bias=shared_bias,
            layer_bias=layer_bias,
            mask=attn_mask,
        )
    block = model.blocks[layer]
    h = block.attention_norm(x) if block.pre_norm else x
    attention = block.attention
    shape = (batch, length, attention.num_heads, attention.head_dim)
    q = attention.query(h).reshape(shape)
    k = attention.key(h).reshape(shape)
    q, k = encoding_of(layer).rotate(q, k, positions, positions)
    bias = shared_bias
    if layer_bias:
        bias = combine_bias(bias, encoding_of(layer).bias(positions, positions))
    return attention_probs(
        q,
        k,
        encoding=encoding_of(layer),
        q_positions=positions,
        k_positions=positions,
        bias=bias,
        mask=attn_mask,
    )


_attention_maps_jit = nnx.jit(attention_maps, static_argnames="layer")


def sample_attention(
    model: Transformer,
    *,
    task: Task,
    layout: str,
    length: int,
    layer: int = 0,
    seed: int = 0,
) -> np.ndarray:
    """Attention probabilities of block `layer` on one example of `task` at input length T.

    The example is drawn with `jax.random.key(seed)` (the same tokens for every model), and
    the maps are cropped to its real (unpadded) tokens.

    Args:
      model: a Transformer trained on `task` in `layout`.
      task, layout: the task and its layout ("encoder" or "decoder").
      length: input length T >= 1.
      layer: see `attention_maps`.
      seed: example and randomized-position seed.

    Returns:
      float32 numpy [H, W, W], W = the example's number of real tokens.

    Raises:
      ValueError: see `attention_maps` and `Task.sample`.
    """
    key = jax.random.key(seed)
    batch = task.sample(jax.random.fold_in(key, 0), batch_size=1, length=length, layout=layout)
    width = int(batch.valid.sum())
    probs = _attention_maps_jit(
        model, batch.inputs, layer=layer, mask=batch.valid, key=jax.random.fold_in(key, 1)
    )
    return np.asarray(probs[0, :, :width, :width])


def offset_concentration(probs) -> np.ndarray:
    """Per head, the largest mean attention any one relative offset receives: a positional score.

    score_h = max over d of (1 / W) sum_i P_h[i, i + d]. A head that reads a fixed offset
    (the previous token, the prompt slot T back, ...) scores near 1 on the rows that do so;
    a head that reads by content, or spreads out, scores low.

    Args:
      probs: float [H, W, W] attention probabilities (rows are queries).

    Returns:
      float64 numpy [H].

    Raises:
      ValueError: probs not of shape [H, W, W].
    """
    probs = np.asarray(probs, np.float64)
    if probs.ndim != 3 or probs.shape[1] != probs.shape[2]:
        raise ValueError(f"probs must have shape [H, W, W], got {probs.shape}.")
    width = probs.shape[-1]
    sums = [np.trace(probs, offset=d, axis1=1, axis2=2) for d in range(1 - width, width)]
    return np.max(np.stack(sums, axis=-1), axis=-1) / width
