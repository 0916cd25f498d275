"""KV-cache decoding for causal Transformers: init_cache, decode_step and greedy generate.

The cache of each block holds rotated keys and values, [B, S_max, H, K], and slot j always
holds position j. A step with tokens at positions offset .. offset + T - 1 writes its keys into
those slots, then attends with queries at those positions against all S_max slots, masking
slots whose position is above the query's (not yet written, or stale). Biases are computed
for q_positions = offset + arange(T) against k_positions = arange(S_max).

Prompts of different lengths share one batch by per-example offsets: a right-padded prompt
[B, P] is prefilled at positions 0 .. P - 1 (padding slots hold junk), then example b writes
its i-th generated token at slot prompt_lengths[b] + i, overwriting the junk before any query
can see it (a query at position p only sees slots <= p, all of which have been written by
then). Scalar offsets keep the biases free of a batch axis when all prompts share a length.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pe_jax._validate import check_positive_int
from pe_jax.nn._transformer import Cache, Transformer, check_decodable


def init_cache(
    model: Transformer, batch_size: int, max_length: int, dtype: jnp.dtype | None = None
) -> Cache:
    """An empty KV cache: per block {"k", "v"}: zeros [B, max_length, H, K].

    Args:
      model: a causal Transformer whose encoding supports decoding.
      batch_size: B.
      max_length: S_max, number of slots (positions 0 .. S_max - 1).
      dtype: cache dtype; default the model's compute dtype.

    Raises:
      ValueError: non-causal model, encoding without decoding, bad sizes, or S_max above the
        config's or the encoding's max_length.
    """
    check_decodable(model)
    batch_size = check_positive_int("batch_size", batch_size)
    max_length = check_positive_int("max_length", max_length)
    config = model.config
    for name, limit in (("config", config.max_length), ("encoding", model.encoding.max_length)):
        if limit is not None and max_length > limit:
            raise ValueError(f"max_length={max_length} exceeds the {name}'s max_length={limit}.")
    shape = (batch_size, max_length, config.num_heads, config.head_dim)
    dtype = config.dtype if dtype is None else dtype
    return [
        {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}
        for _ in range(config.num_layers)
    ]


def decode_step(
    model: Transformer, cache: Cache, tokens: jax.Array, offset: int | jax.Array
) -> tuple[jax.Array, Cache]:
    """Runs T new tokens through the model with the KV cache (prefill when T > 1).

    Args:
      model: a causal Transformer (see `init_cache`).
      cache: from `init_cache` or a previous step.
      tokens: int [B, T], at positions offset .. offset + T - 1.
      offset: int scalar (same for the batch) or int [B] (per example); offset + T must not
        exceed the cache length (checked when the offset is concrete; under jit
        `dynamic_update_slice` would clamp the write).

    Returns:
      (float32 logits [B, T, V], updated cache).

    Raises:
      ValueError: see `init_cache`; bad token shape; offset + T beyond the cache.
    """
    # The model's own forward pass with a cache checks the model, the tokens and the offset,
    # and builds the positions offset + arange(T) and the mask over the cache slots.
    return model(tokens, cache=cache, cache_index=offset)


def generate(
    model: Transformer,
    prompt: jax.Array,
    max_new_tokens: int,
    *,
    prompt_lengths: jax.Array | None = None,
) -> jax.Array:
    """Greedy decoding with a KV cache, compiled once per model structure and shape.

    Prefills the prompt in one step, then runs a `lax.fori_loop` of one-token steps, each
    taking the argmax of the last logits.

    Args:
      model: a causal Transformer whose encoding supports decoding.
      prompt: int [B, P], right-padded when `prompt_lengths` is given.
      max_new_tokens: N >= 1.
      prompt_lengths: optional int [B] in [1, P], real length of each prompt.

    Returns:
      int32 [B, N]: the N generated tokens of each example (continuation only).

    Raises:
      ValueError: see `init_cache`; bad prompt, max_new_tokens or prompt_lengths.
    """
    check_decodable(model)
    max_new_tokens = check_positive_int("max_new_tokens", max_new_tokens)
    prompt = jnp.asarray(prompt)
    if prompt.ndim != 2 or not jnp.issubdtype(prompt.dtype, jnp.integer):
        raise ValueError(f"prompt must be an int array [B, P], got {prompt.dtype}{prompt.shape}.")
    batch, length = prompt.shape
    init_cache(model, 1, length + max_new_tokens)  # Checks the lengths before compiling.
    if prompt_lengths is not None:
        prompt_lengths = jnp.asarray(prompt_lengths)
        is_int = jnp.issubdtype(prompt_lengths.dtype, jnp.integer)
        if prompt_lengths.shape != (batch,) or not is_int:
            raise ValueError(
                f"prompt_lengths must be an int array of shape [{batch}], got "
                f"{prompt_lengths.dtype}{prompt_lengths.shape}."
            )
        values = np.asarray(prompt_lengths)
        if values.min() < 1 or values.max() > length:
            raise ValueError(f"prompt_lengths must lie in [1, {length}], got {values}.")
        prompt_lengths = prompt_lengths.astype(jnp.int32)
    graphdef, state = nnx.split(model)
    return _generate(graphdef, state, prompt.astype(jnp.int32), prompt_lengths, max_new_tokens)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _generate(graphdef, state, prompt, prompt_lengths, max_new_tokens):
    model = nnx.merge(graphdef, state)
    batch, length = prompt.shape
    cache = init_cache(model, batch, length + max_new_tokens)
    logits, cache = decode_step(model, cache, prompt, 0)
    if prompt_lengths is None:
        first = jnp.argmax(logits[:, -1], axis=-1)
        offsets = jnp.asarray(length, jnp.int32)  # Scalar: biases keep a leading 1.
    else:
        first = jnp.argmax(logits[jnp.arange(batch), prompt_lengths - 1], axis=-1)
        offsets = prompt_lengths
    out = jnp.zeros((batch, max_new_tokens), jnp.int32)

    def step(i, carry):
        cache, out, token = carry
        out = out.at[:, i].set(token)
        logits, cache = decode_step(model, cache, token[:, None], offsets + i)
        return cache, out, jnp.argmax(logits[:, 0], axis=-1).astype(jnp.int32)

    _, out, last = jax.lax.fori_loop(
        0, max_new_tokens - 1, step, (cache, out, first.astype(jnp.int32))
    )
    return out.at[:, -1].set(last)
