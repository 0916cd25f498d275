"""Attention maps of a trained Transformer: the probabilities of one layer, for plots.

`attention_maps` runs the model's own forward pass with its attention layers recording their
probabilities (`sow_attention_probs`, read back with `nnx.capture`) and returns one layer's.
`sample_attention` does it on one task example of a given length, e.g. at the training length
and at 4x it (explorer figure 9).
"""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from pe_jax.nn import Transformer
from pe_jax.tasks import Task


def attention_maps(
    model: Transformer,
    tokens: jax.Array,
    *,
    layer: int = 0,
    mask: jax.Array | None = None,
    key: jax.Array | None = None,
) -> jax.Array:
    """Attention probabilities of every head of block `layer` for a full (non-cached) pass.

    The probabilities are those the model's own forward pass (`Transformer.__call__`,
    deterministic: no dropout) records: positions are those the evaluation feeds (arange(L),
    or the encoding's sample from it for randomized encodings, which needs `key`), padding
    and, for a causal model, causality are masked.

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
    num_layers = len(model.blocks)
    if (
        isinstance(layer, bool)
        or not isinstance(layer, int)
        or not -num_layers <= layer < num_layers
    ):
        raise ValueError(f"layer must be an int in [{-num_layers}, {num_layers}), got {layer!r}.")
    probe = nnx.with_attributes(model, sow_attention_probs=True)
    _, sown = nnx.capture(probe, nnx.Intermediate)(tokens, mask=mask, key=key)
    (probs,) = sown["blocks"][layer % num_layers]["attention"]["attention_probs"].get_value()
    return probs


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
