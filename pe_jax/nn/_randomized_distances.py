"""Randomized relative encodings as Ruoss et al. 2023's official code has them: the relative
distances are sampled, afresh in every attention layer.

Which positions are fed stays the plain arange; a per-layer PRNG key reaches the attention
hooks through `Encoding.for_layer`, which the Transformer calls with a key of each layer's own.
"""

from __future__ import annotations

from typing import NoReturn

import jax

from pe_jax._validate import check_positive_int
from pe_jax.encodings import randomized_distances
from pe_jax.nn._base import Delegating, Encoding


class RandomizedDistances(Delegating):
    """Randomized relative encoding (Ruoss et al. 2023, "Randomized Positional Encodings Boost
    Length Generalization of Transformers") as the paper's official code does it for ALiBi and
    Transformer-XL (google-deepmind/randomized_positional_encodings): the relative distances,
    not the positions, are random. In every forward pass (training and evaluation alike) each
    attention layer draws L - 1 distinct distances from [1, max_length), sorted,
    d_1 < ... < d_{L-1}, shared by the batch; the n-th neighbour on either side of a query is
    then at distance d_n, and the inner encoding's bias or content terms are those of the
    sampled distances.

    Needs a PRNG key: the model calls `for_layer(key)` with each layer's own key and uses the
    returned hooks in that layer. With a padded batch, an example of n real tokens sees the
    n - 1 smallest of the L - 1 distances drawn for the padded width L. Inputs longer than
    max_length raise ValueError.
    """

    draws_per_layer = True
    supports_decoding = False  # a draw per layer and pass; a decode step would redraw

    def __init__(self, inner: Encoding, *, max_length: int):
        super().__init__(inner)
        self.max_length = check_positive_int("max_length", max_length)

    def for_layer(self, key: jax.Array | None) -> Encoding:
        if key is None:
            raise ValueError(
                "key must be a PRNG key for randomized distances (Ruoss et al. 2023 draw them in "
                "every layer, at training and evaluation alike), got None."
            )
        return _LayerDraw(self.inner, key=key, max_length=self.max_length)

    def _unbound(self, *args, **kwargs) -> NoReturn:
        """The distance-aware hooks exist only on a layer's view, which holds its draw."""
        del args, kwargs
        raise ValueError(
            "randomized distances are drawn per layer: call the attention hooks on "
            "encoding.for_layer(key), with the layer's PRNG key."
        )

    bias = content_logits = _unbound


class _LayerDraw(Delegating):
    """One layer's view of a `RandomizedDistances`: the inner hooks at that layer's draw."""

    supports_decoding = False

    def __init__(self, inner: Encoding, *, key: jax.Array, max_length: int):
        super().__init__(inner)
        self.key = key
        self.max_length = max_length

    def distances(self, q_positions: jax.Array, k_positions: jax.Array) -> jax.Array:
        """This layer's draw for L queries and S keys: int32 [max(L, S)], gap n -> distance."""
        length = max(q_positions.shape[-1], k_positions.shape[-1])
        return randomized_distances(self.key, length, max_length=self.max_length)

    # The inner encoding's distance-aware hook takes the draw: the bias of a logits-place
    # encoding (ALiBi), the content logits of a content one (Transformer-XL).
    def bias(self, q_positions: jax.Array, k_positions: jax.Array) -> jax.Array | None:
        if self.inner.uses_content:
            return self.inner.bias(q_positions, k_positions)
        distances = self.distances(q_positions, k_positions)
        return self.inner.bias(q_positions, k_positions, distances=distances)

    def content_logits(
        self,
        q: jax.Array,
        k: jax.Array,
        q_positions: jax.Array,
        k_positions: jax.Array,
        *,
        mask: jax.Array | None = None,
    ) -> jax.Array | None:
        if not self.inner.uses_content:
            return self.inner.content_logits(q, k, q_positions, k_positions, mask=mask)
        distances = self.distances(q_positions, k_positions)
        return self.inner.content_logits(
            q, k, q_positions, k_positions, mask=mask, distances=distances
        )
