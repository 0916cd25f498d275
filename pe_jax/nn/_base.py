"""The encoding adapter protocol: the four places an encoding acts at, as hooks on an NNX module."""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

# Where an encoding acts, each with the hook it overrides (see `Encoding`).
PLACES = ("input", "query_key", "logits", "content", "data_dependent")


class Encoding(nnx.Module):
    """Base class of every positional-encoding adapter; each hook defaults to "does nothing".

    A Transformer calls, in order:
      1. `positions(tokens_positions, key=...)`: which positions to feed (arange, randomized, ...).
      2. `embed(x, positions)` once, on the token embeddings (input place).
      3. per attention layer: `rotate(q, k, q_positions, k_positions)` (query/key place),
         `bias(q_positions, k_positions)` (logits place, [1|B, H, L, S] float32 or None) and,
         only when `uses_content` is True, `content_logits(q, k, q_positions, k_positions,
         mask=...)` ([B, H, L, S] float32, unscaled, added to q.k before 1/sqrt(K)) and
         `content_values(probs, q_positions, k_positions)` ([B, L, H, K] or None), then
         `input_bias(x, q, k, q_positions, k_positions)` (data-dependent logits place: computed
         from the layer's input x, e.g. forget gates or Householder vectors, [B, 1|H, L, S]
         float32 or None, added like `bias`).

    Class attributes declare the encoding (read by `register_encoding`, which builds the
    registry from them):
      name: its registry name (lower case, digits, "_"); declared by the class itself.
      place: where it acts, one of `PLACES`: "input" (`embed`), "query_key" (`rotate`),
        "logits" (`bias`), "content" (`content_logits`, `content_values`) or "data_dependent"
        (`input_bias`).
      takes_positions: it reads 1-D integer positions, so "randomized_<name>" (a sorted random
        sample of positions, Ruoss et al. 2023) and "shifted_<name>" (a random offset, Kiyono
        et al. 2021) are registered with it.
      randomized_distances: "randomized_<name>" samples relative distances in every layer
        instead (Ruoss et al.'s code for relative encodings); the sampled-positions variant is
        then "randomized_positions_<name>". Needs takes_positions.

    Class attributes describe the adapter so the model can pick fast paths:
      uses_content: needs the explicit einsum attention path.
      randomizes_positions: `positions` needs a PRNG key.
      max_length: largest position + 1 the encoding supports (None = unbounded).
      supports_decoding: works with the KV-cache decode step.
      attention_params: learns parameters used by the attention hooks (T5 table, Kerple, FIRE,
        ...); only such adapters get one instance per layer when the model does not share them.
      replaces_qk: `input_bias` is the whole logit (PoPE, PaTH): attention feeds zero queries,
        so q.k vanishes exactly and only the bias remains.
      draws_per_layer: the attention hooks draw random numbers afresh in every layer (Ruoss et
        al.'s randomized relative encodings): the model calls `for_layer(key)` with a key of
        its own for each layer and uses the returned encoding's hooks in that layer.
    """

    name: ClassVar[str | None] = None
    place: ClassVar[str | None] = None
    takes_positions: ClassVar[bool | None] = None
    randomized_distances: ClassVar[bool] = False

    uses_content: bool = False
    randomizes_positions: bool = False
    max_length: int | None = None
    supports_decoding: bool = True
    attention_params: bool = False
    replaces_qk: bool = False
    draws_per_layer: bool = False

    def positions(
        self,
        positions: jax.Array,
        *,
        key: jax.Array | None = None,
        lengths: jax.Array | None = None,
    ) -> jax.Array:
        """Positions to feed the model; `positions` is the default int32 [L] or [B, L] arange.

        `lengths` (int [B], real tokens per example of a padded batch) matters only to
        encodings that draw positions (`randomizes_positions`).
        """
        del key, lengths
        return positions

    def for_layer(self, key: jax.Array | None) -> Encoding:
        """The encoding whose attention hooks one layer uses; `key` is that layer's PRNG key.

        Itself, unless `draws_per_layer`: then a view of it bound to the layer's draw.
        """
        del key
        return self

    def embed(self, x: jax.Array, positions: jax.Array) -> jax.Array:
        """Input place: x [B, L, D] -> [B, L, D]."""
        del positions
        return x

    def rotate(
        self, q: jax.Array, k: jax.Array, q_positions: jax.Array, k_positions: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """Query/key place: q [B, L, H, K], k [B, S, H, K] -> same shapes."""
        del q_positions, k_positions
        return q, k

    def bias(self, q_positions: jax.Array, k_positions: jax.Array) -> jax.Array | None:
        """Logits place: float32 [1|B, H, L, S] added after scaling, or None."""
        del q_positions, k_positions
        return None

    def content_logits(
        self,
        q: jax.Array,
        k: jax.Array,
        q_positions: jax.Array,
        k_positions: jax.Array,
        *,
        mask: jax.Array | None = None,
    ) -> jax.Array | None:
        """Content x position place: float32 [B, H, L, S], unscaled, or None."""
        del q, k, q_positions, k_positions, mask
        return None

    def content_values(
        self, probs: jax.Array, q_positions: jax.Array, k_positions: jax.Array
    ) -> jax.Array | None:
        """Optional value-side term (Shaw et al.): [B, L, H, K] added to probs @ v, or None."""
        del probs, q_positions, k_positions
        return None

    def input_bias(
        self,
        x: jax.Array,
        q: jax.Array,
        k: jax.Array,
        q_positions: jax.Array,
        k_positions: jax.Array,
    ) -> jax.Array | None:
        """Data-dependent logits place: float32 [B, 1|H, L, S] added after scaling, or None.

        x [B, L, D] is the attention layer's input (after the pre-LN norm); q [B, L, H, K] and
        k [B, S, H, K] are the rotated queries and keys (with a KV cache: all S cached keys,
        at k_positions). With `replaces_qk` the result is the whole (scaled) logit.
        """
        del x, q, k, q_positions, k_positions
        return None


class Delegating(Encoding):
    """An encoding that is `inner` in every hook; a subclass overrides only what it changes.

    The attention flags (uses_content, attention_params, replaces_qk) are the inner ones; the
    others (max_length, supports_decoding, randomizes_positions, draws_per_layer) and
    `for_layer` are the wrapper's own, from its class or set by its constructor.
    """

    def __init__(self, inner: Encoding):
        self.inner = inner
        self.uses_content = inner.uses_content
        self.attention_params = inner.attention_params
        self.replaces_qk = inner.replaces_qk

    def positions(
        self,
        positions: jax.Array,
        *,
        key: jax.Array | None = None,
        lengths: jax.Array | None = None,
    ) -> jax.Array:
        return self.inner.positions(positions, key=key, lengths=lengths)

    def embed(self, x: jax.Array, positions: jax.Array) -> jax.Array:
        return self.inner.embed(x, positions)

    def rotate(
        self, q: jax.Array, k: jax.Array, q_positions: jax.Array, k_positions: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        return self.inner.rotate(q, k, q_positions, k_positions)

    def bias(self, q_positions: jax.Array, k_positions: jax.Array) -> jax.Array | None:
        return self.inner.bias(q_positions, k_positions)

    def content_logits(
        self,
        q: jax.Array,
        k: jax.Array,
        q_positions: jax.Array,
        k_positions: jax.Array,
        *,
        mask: jax.Array | None = None,
    ) -> jax.Array | None:
        return self.inner.content_logits(q, k, q_positions, k_positions, mask=mask)

    def content_values(
        self, probs: jax.Array, q_positions: jax.Array, k_positions: jax.Array
    ) -> jax.Array | None:
        return self.inner.content_values(probs, q_positions, k_positions)

    def input_bias(
        self,
        x: jax.Array,
        q: jax.Array,
        k: jax.Array,
        q_positions: jax.Array,
        k_positions: jax.Array,
    ) -> jax.Array | None:
        return self.inner.input_bias(x, q, k, q_positions, k_positions)


def default_positions(batch_size: int, length: int, offset: int | jax.Array = 0) -> jax.Array:
    """int32 [B, L] positions offset, offset + 1, ..., offset + L - 1."""
    return jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32) + offset, (batch_size, length))
