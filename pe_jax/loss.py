"""The model's logits on a task batch, and the loss and metrics of training and evaluation.

One small module that training (`pe_jax.training`) and evaluation (`pe_jax.evaluation`) both
import, as nanodo keeps its `loss.py`: what a step minimises and what evaluation reports are
computed by the same functions. It sits above `pe_jax.tasks` (it reads a `Batch`) and below
training and evaluation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import optax

from pe_jax.tasks import Batch

if TYPE_CHECKING:
    from pe_jax.nn import Transformer


def logits(
    model: Transformer, batch: Batch, key: jax.Array | None, *, deterministic: bool = True
) -> jax.Array:
    """float32 [B, W, V] logits of `model` on `batch` (inputs [B, W]), padding masked.

    Positions are arange(W) as a 1-D array, so relative biases stay [1, H, W, W] (every row
    of a batch has the same positions); randomized encodings draw theirs from `key`, as does
    dropout when `deterministic` is False.
    """
    out, _ = model(
        batch.inputs,
        positions=jnp.arange(batch.inputs.shape[1], dtype=jnp.int32),
        mask=batch.valid,
        deterministic=deterministic,
        key=key,
    )
    return out


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


def example_scores(logits: jax.Array, batch: Batch) -> dict[str, jax.Array]:
    """Each example's exact match (bool [B]) and token accuracy (float32 [B]) on its answer slots.

    An example without answer slots scores 0 on both.
    """
    mask = batch.loss_mask
    right = (jnp.argmax(logits, -1) == batch.targets) & mask
    slots = mask.sum(-1)
    return {
        "exact_match": (right.sum(-1) == slots) & (slots > 0),
        "token_accuracy": right.sum(-1) / jnp.maximum(slots, 1).astype(jnp.float32),
    }


def per_example_metrics(logits: jax.Array, batch: Batch) -> dict[str, jax.Array]:
    """The evaluation's metrics: `masked_metrics`, but token accuracy averaged per example.

    Each example's accuracy over its own answer slots, then the mean over examples: every
    example of a length counts equally, also for tasks whose answers end early with END
    (Deletang et al. 2023). exact_match and loss are those of `masked_metrics`.
    """
    pooled = masked_metrics(logits, batch)
    return {
        "token_accuracy": example_scores(logits, batch)["token_accuracy"].mean(),
        "exact_match": pooled["exact_match"],
        "loss": pooled["loss"],
    }
