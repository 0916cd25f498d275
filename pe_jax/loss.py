"""Masked token metrics shared by training and evaluation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from pe_jax.tasks._base import Batch


def masked_metrics(logits: jax.Array, batch: Batch) -> dict[str, jax.Array]:
    """Token cross-entropy and accuracy over `batch.loss_mask`; float32 scalars.

    loss: mean cross-entropy over answer slots; token_accuracy: fraction of answer slots whose
    argmax is the target; exact_match: fraction of examples with every answer slot right.
    """
    mask = batch.loss_mask.astype(jnp.float32)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), batch.targets)
    correct = (jnp.argmax(logits, axis=-1) == batch.targets).astype(jnp.float32) * mask
    n_tokens = jnp.maximum(mask.sum(), 1.0)
    per_example = mask.sum(-1)
    exact = jnp.where(per_example > 0, correct.sum(-1) == per_example, False)
    return {
        "loss": (ce * mask).sum() / n_tokens,
        "token_accuracy": correct.sum() / n_tokens,
        "exact_match": exact.astype(jnp.float32).mean(),
    }
