"""What a model scores without learning the task: baselines per task, layout and length.

Estimated by Monte Carlo from the task's own sampler (so they follow the task definition
exactly, whatever its options), with the same metrics as evaluation: per-token accuracy is the
mean over examples of the fraction of answer slots right; exact match is the fraction of
examples with every answer slot right (the answer slots are `Batch.loss_mask`: the answer, and
the END terminator where the layout has one).

Rules (none of them reads the model):
- "uniform": a uniformly random answer token at each slot, among the K tokens the task ever
  puts at answer slots (measured on the pooled sample). Computed exactly given K:
  per token 1/K, exact match (1/K)^n for an answer of n slots.
- "majority": every slot answered with the most frequent symbol of the example's input (ties
  go to the smaller token id). Reads the input, not the position.
- "input_blind": the best rule that sees only the length and the answer slot, never the input.
  Per token: the most frequent target at each (length, slot), fitted on one half of the sample
  and scored on the other. Exact match: the most frequent whole answer at that length, fitted
  and scored the same way.

Each estimate comes with its Monte-Carlo standard error (the spread over scored examples /
sqrt(count)).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import jax
import numpy as np

from pe_jax._validate import check_choice, check_positive_int
from pe_jax.tasks._base import FIRST_SYMBOL, LAYOUTS, Task

BASELINES = ("uniform", "majority", "input_blind")


def _sample(task: Task, layout: str, length: int, samples: int, key: jax.Array):
    batch = task.sample(key, batch_size=samples, length=length, layout=layout)
    return (
        np.asarray(batch.inputs),
        np.asarray(batch.targets),
        np.asarray(batch.loss_mask, bool),
        np.asarray(batch.valid, bool),
    )


def _scores(predictions: np.ndarray, targets: np.ndarray, mask: np.ndarray):
    """Per-example token accuracy and exact match of predictions [N, W] on masked slots."""
    right = (predictions == targets) & mask
    slots = np.maximum(mask.sum(-1), 1)
    return right.sum(-1) / slots, (right.sum(-1) == mask.sum(-1)).astype(np.float64)


def _estimate(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(values.size))


def _majority_symbol(inputs: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Most frequent input symbol (token >= FIRST_SYMBOL) per example; FIRST_SYMBOL if none."""
    symbols = np.where(valid & (inputs >= FIRST_SYMBOL), inputs, -1)
    top = int(inputs.max(initial=FIRST_SYMBOL)) + 1
    counts = np.stack([(symbols == s).sum(-1) for s in range(top)], axis=-1)  # [N, V]
    counts[:, :FIRST_SYMBOL] = -1
    return np.argmax(counts, axis=-1)  # argmax takes the first, i.e. the smallest id, on ties


def _answer_key(targets_row: np.ndarray, mask_row: np.ndarray) -> tuple:
    return tuple(targets_row[mask_row].tolist())


def task_baselines(
    task: Task,
    *,
    layout: str,
    lengths: Sequence[int],
    samples: int = 2048,
    seed: int = 0,
) -> dict:
    """Monte-Carlo baselines of `task` in `layout` at each input length.

    Args:
      task: a task from `pe_jax.tasks.get_task`.
      layout: "encoder" or "decoder".
      lengths: input lengths T >= 1.
      samples: examples drawn per length (even: half fit, half score for "input_blind").
      seed: sampling seed.

    Returns:
      {"lengths": [n], "samples": int, "answer_tokens": K, rule: {"token_accuracy": [n],
       "exact_match": [n], "token_accuracy_se": [n], "exact_match_se": [n]} for each rule in
       BASELINES}.

    Raises:
      ValueError: a bad layout, lengths or samples (fewer than 4).
    """
    check_choice("layout", layout, LAYOUTS)
    samples = check_positive_int("samples", samples)
    if samples < 4:
        raise ValueError(f"samples must be >= 4, got {samples}.")
    lengths = [check_positive_int("lengths[i]", int(t)) for t in lengths]
    if not lengths:
        raise ValueError("lengths must not be empty.")
    key = jax.random.key(seed)
    draws = [_sample(task, layout, t, samples, jax.random.fold_in(key, t)) for t in lengths]
    answer_tokens = len(set().union(*(set(np.unique(tg[m]).tolist()) for _, tg, m, _ in draws)))
    out = {name: {k: [] for k in _FIELDS} for name in BASELINES}
    half = samples // 2
    for inputs, targets, mask, valid in draws:
        n_slots = mask.sum(-1)
        uniform_token = np.full(samples, 1.0 / answer_tokens)
        uniform_exact = (1.0 / answer_tokens) ** n_slots
        _append(out["uniform"], (uniform_token, 0.0), (uniform_exact, 0.0))

        majority = np.broadcast_to(_majority_symbol(inputs, valid)[:, None], targets.shape)
        token, exact = _scores(majority, targets, mask)
        _append(out["majority"], _estimate(token), _estimate(exact))

        fit, score = slice(0, half), slice(half, samples)
        slot_mode = np.zeros(targets.shape[1], targets.dtype)
        for j in range(targets.shape[1]):
            column = targets[fit, j][mask[fit, j]]
            if column.size:
                slot_mode[j] = np.bincount(column).argmax()
        token, _ = _scores(
            np.broadcast_to(slot_mode, targets[score].shape), targets[score], mask[score]
        )
        answers = Counter(_answer_key(targets[i], mask[i]) for i in range(half))
        modal = answers.most_common(1)[0][0]
        exact = np.array(
            [_answer_key(targets[i], mask[i]) == modal for i in range(half, samples)], np.float64
        )
        _append(out["input_blind"], _estimate(token), _estimate(exact))
    result = {"lengths": lengths, "samples": samples, "answer_tokens": answer_tokens}
    for name in BASELINES:
        result[name] = {k: [float(x) for x in v] for k, v in out[name].items()}
    return result


_FIELDS = ("token_accuracy", "exact_match", "token_accuracy_se", "exact_match_se")


def _append(store: dict, token, exact) -> None:
    (token_value, token_se), (exact_value, exact_se) = token, exact
    store["token_accuracy"].append(float(np.mean(token_value)))
    store["exact_match"].append(float(np.mean(exact_value)))
    store["token_accuracy_se"].append(float(token_se))
    store["exact_match_se"].append(float(exact_se))
