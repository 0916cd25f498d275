"""Per-length evaluation in a few padded buckets: one compiled model program per bucket width.

Every length T of the grid is evaluated on `samples` examples from a fixed evaluation key, the
same for every encoding and seed, so numbers are comparable across runs. The examples of all
lengths are drawn by one sampler program at the widest width, then cropped to the bucket width
of their length (`pe_jax.tasks.bucket_width`: the next power of two up to 256 slots, the next
multiple of 64 above): the examples do not depend on the bucketing, and bucketed evaluation
equals unpadded evaluation up to float rounding (padding is masked).

The S models of a run (seeds x learning rates, stacked on a leading axis) are evaluated by the
same program: one compilation per bucket whatever S. On a CPU the program loops over the
models (`lax.map`), so each model's [B, H, L, S] attention work stays one model wide; on GPU
and TPU it batches them (`vmap`).

Besides the per-length means, evaluation keeps every example's exact match and token accuracy
(for paired comparisons between encodings on the same examples), and `baselines` scores the
task's no-learning baselines at the same lengths.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pe_jax._validate import check_choice
from pe_jax.loss import example_scores, logits, per_example_metrics
from pe_jax.tasks import Task, bucket_width, task_baselines

METRICS = ("token_accuracy", "exact_match", "loss")
PER_EXAMPLE = ("exact_match", "token_accuracy")
BASELINE_SAMPLES = 256  # examples per length for the baselines: seconds on a CPU
MODEL_LOOPS = ("auto", "map", "vmap")


def make_eval_program(
    graphdef: nnx.GraphDef,
    *,
    width: int,
    model_loop: str = "auto",
    compiler_options: dict[str, str] | None = None,
):
    """A jitted function (params, rest, batch [B, W_max], key) -> metrics [S] over S models.

    The batch is cropped to the static `width` inside the program. Besides the means
    ("token_accuracy", "exact_match", "loss": [S]) it returns each example's scores
    "exact_match_per_example" (bool [S, B]) and "token_accuracy_per_example" (float32 [S, B]).
    `model_loop` is how the S models are computed: "map" one after another (`lax.map`),
    "vmap" batched, "auto" "map" on a CPU default backend and "vmap" elsewhere; every model
    sees the same batch and key either way. `compiler_options` go to XLA (`jax.jit`'s).

    Raises:
      ValueError: an unknown model_loop.
    """
    check_choice("model_loop", model_loop, MODEL_LOOPS)
    if model_loop == "auto":
        model_loop = "map" if jax.default_backend() == "cpu" else "vmap"

    def one(params, rest, batch, key):
        batch = jax.tree.map(lambda x: x[:, :width] if x.ndim == 2 else x, batch)
        model = nnx.merge(graphdef, params, rest)
        out = logits(model, batch, key)
        metrics = per_example_metrics(out, batch)
        metrics.update({f"{k}_per_example": v for k, v in example_scores(out, batch).items()})
        return metrics

    if model_loop == "vmap":
        over_models = jax.vmap(one, in_axes=(0, 0, None, None))
    else:

        def over_models(params, rest, batch, key):
            return jax.lax.map(lambda pr: one(pr[0], pr[1], batch, key), (params, rest))

    return jax.jit(over_models, compiler_options=compiler_options)


def evaluate(
    state: dict,
    graphdef: nnx.GraphDef,
    *,
    task: Task,
    layout: str,
    lengths: Sequence[int],
    samples: int,
    seed: int = 0,
    bucketed: bool = True,
    on_program: Callable[[int, Callable], Callable] | None = None,
    batch_size: int | None = None,
    model_loop: str = "auto",
    compiler_options: dict[str, str] | None = None,
) -> dict:
    """Per-length metrics of S models (a seed-stacked state) on `task`.

    Args:
      state: {"params", "rest", ...} with a leading seed axis S (as trained by the runner).
      graphdef: the model's graph definition.
      task, layout: what to evaluate; `lengths` are input lengths T (>= 1).
      samples: examples per length, weighted equally (so every length weighs the same).
      seed: the evaluation seed: the same examples for every model.
      bucketed: pad to `bucket_width`'s buckets (few programs); False compiles one program
        per distinct width (the unpadded reference).
      on_program: called as ``on_program(width, program)`` once per padded width, when its
        program is built; what it returns is called in the program's place (e.g. a wrapper
        that times each call). Programs are called as (params, rest, batch, key) -> metrics.
      batch_size: examples per program call (the published evaluation: sub-batches of 64);
        None = all `samples` at once. The examples do not depend on it (the `samples`
        examples of a length are drawn at once) and the sub-batches' metrics are pooled as one
        batch's would be, so the metrics do not either (up to float rounding), except for
        randomized encodings, which draw their positions per call.
      model_loop, compiler_options: how each bucket's program computes the S models and
        the XLA options it is compiled with (see `make_eval_program`).

    Returns:
      {"lengths": [n], "widths": [n], "metrics": {name: float array [S, n]},
       "examples": {"exact_match": bool [S, n, samples], "token_accuracy": float32
       [S, n, samples]} (the score of every example; the examples of a length are the same for
       every model evaluated with this `seed`), "num_compilations": int}.

    Raises:
      ValueError: empty or non-positive lengths, samples < 1, samples not a multiple of a
        smaller batch_size, or an unknown model_loop.
    """
    check_choice("model_loop", model_loop, MODEL_LOOPS)
    lengths = [int(t) for t in lengths]
    if not lengths or min(lengths) < 1:
        raise ValueError(f"lengths must be a non-empty list of ints >= 1, got {lengths[:5]}...")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}.")
    chunk = _chunk_size(samples, batch_size)
    widths = [task.width(t, layout) for t in lengths]
    padded = [bucket_width(w) if bucketed else w for w in widths]
    # The widest bucket whatever `bucketed` says: the sampled examples depend on the sampler's
    # width, so both modes must draw at the same one to see the same examples.
    max_width = bucket_width(max(widths))
    sampler = _FixedWidthSampler(task, layout=layout, width=max_width, samples=samples)
    programs: dict[int, object] = {}
    base_key = jax.random.key(seed)
    out = []  # per length: (sub-batch metrics, sub-batch answer tokens), fetched at the end
    for t, w in zip(lengths, padded, strict=True):
        key = jax.random.fold_in(base_key, t)
        batch = sampler.sample(
            jax.random.fold_in(key, 0), batch_size=samples, length=t, layout=layout
        )
        if w not in programs:
            programs[w] = make_eval_program(
                graphdef, width=w, model_loop=model_loop, compiler_options=compiler_options
            )
            if on_program is not None:
                programs[w] = on_program(w, programs[w])
        model_key = jax.random.fold_in(key, 1)
        parts, tokens = [], []
        for i, start in enumerate(range(0, samples, chunk)):
            part = batch if chunk == samples else _rows(batch, start, start + chunk)
            # Each call draws its own random positions (randomized encodings).
            part_key = model_key if i == 0 else jax.random.fold_in(model_key, i)
            parts.append(programs[w](state["params"], state["rest"], part, part_key))
            tokens.append(part.loss_mask.sum())
        out.append((parts, tokens))
    fetched = jax.device_get(out)
    pooled = [_pool(parts, tokens) for parts, tokens in fetched]
    metrics = {name: np.stack([p[name] for p in pooled], axis=-1) for name in METRICS}
    # Per-example scores [S, n, samples]: sub-batches joined along the example axis.
    examples = {
        name: np.stack(
            [
                np.concatenate([np.asarray(p[f"{name}_per_example"]) for p in parts], axis=1)
                for parts, _ in fetched
            ],
            axis=1,
        )
        for name in PER_EXAMPLE
    }
    return {
        "lengths": lengths,
        "widths": padded,
        "metrics": metrics,
        "examples": examples,
        "num_compilations": len(programs) + 1,
    }


class _FixedWidthSampler:
    """`task`, sampled by one jitted program at a fixed width whatever the length (the
    baselines' Monte Carlo then costs one compilation, not one per length)."""

    def __init__(self, task: Task, *, layout: str, width: int, samples: int):
        self._sample = jax.jit(
            lambda key, t: task.sample(
                key,
                batch_size=samples,
                length=jnp.full((samples,), t, jnp.int32),
                layout=layout,
                width=width,
            )
        )

    def sample(self, key, *, batch_size: int, length: int, layout: str):
        del batch_size, layout  # fixed at construction
        return self._sample(key, length)


def baselines(
    task: Task,
    *,
    layout: str,
    lengths: Sequence[int],
    samples: int = BASELINE_SAMPLES,
    seed: int = 0,
) -> dict:
    """The task's uniform, majority and input-blind baselines at `lengths` (host NumPy).

    `pe_jax.tasks.task_baselines` on examples drawn at the widest bucket width
    (padding slots are outside the answer mask, so the scores are those of unpadded examples).

    Returns:
      task_baselines' dict: {"lengths", "samples", "answer_tokens", rule: {"exact_match": [n],
      "token_accuracy": [n], "exact_match_se": [n], "token_accuracy_se": [n]}}.

    Raises:
      ValueError: empty or non-positive lengths, samples < 4.
    """
    lengths = [int(t) for t in lengths]
    if not lengths or min(lengths) < 1:
        raise ValueError(f"lengths must be a non-empty list of ints >= 1, got {lengths[:5]}...")
    samples = int(samples) + int(samples) % 2  # even: half fit, half score
    width = bucket_width(max(task.width(t, layout) for t in lengths))
    sampler = _FixedWidthSampler(task, layout=layout, width=width, samples=samples)
    return task_baselines(sampler, layout=layout, lengths=lengths, samples=samples, seed=seed)


def _chunk_size(samples: int, batch_size: int | None) -> int:
    if batch_size is None or batch_size >= samples:
        return samples
    if batch_size < 1 or samples % batch_size:
        raise ValueError(
            f"batch_size must be >= 1 and divide samples ({samples}) when smaller, got "
            f"{batch_size}."
        )
    return batch_size


def _rows(batch, start: int, stop: int):
    return jax.tree.map(lambda x: x[start:stop], batch)


def _pool(parts: list[dict], tokens: list) -> dict[str, np.ndarray]:
    """float64 [S] metrics of a length from its equal-sized sub-batches: the per-example means
    averaged, the loss (a mean over answer tokens) weighted by each sub-batch's tokens."""
    n = np.maximum(np.asarray(tokens, np.float64), 1.0)[:, None]
    stacked = {name: np.asarray([p[name] for p in parts], np.float64) for name in METRICS}
    pooled = {name: stacked[name].mean(0) for name in ("token_accuracy", "exact_match")}
    pooled["loss"] = (stacked["loss"] * n).sum(0) / n.sum()
    return pooled


def summarize(lengths: Sequence[int], values: np.ndarray, *, train_max: int) -> dict:
    """In-distribution (T <= train_max) and out-of-distribution (T > train_max) means.

    Args:
      lengths: [n] input lengths; values: [..., n] a metric per length.

    Returns:
      {"in_distribution": [...], "out_of_distribution": [...]} means over the last axis, as
      nested lists matching values' leading shape. A side with no evaluated length (e.g. every
      length at or below train_max: nothing out of distribution) holds None (JSON null) in
      every place, never NaN: "not evaluated" is not a number, and NaN is not JSON.
    """
    lengths = np.asarray(lengths)
    values = np.asarray(values, np.float64)
    summary = {}
    for name, sel in (
        ("in_distribution", lengths <= train_max),
        ("out_of_distribution", lengths > train_max),
    ):
        if sel.any():
            summary[name] = values[..., sel].mean(-1).tolist()
        else:
            summary[name] = np.full(values.shape[:-1], None, dtype=object).tolist()
    return summary


def bucket_means(lengths: Sequence[int], values: np.ndarray, widths: Sequence[int]) -> dict:
    """Means of a metric per padded-width bucket: {"<min>-<max>": mean array over [..., bucket]}."""
    lengths, widths = np.asarray(lengths), np.asarray(widths)
    values = np.asarray(values, np.float64)
    out = {}
    for w in sorted(set(widths.tolist())):
        sel = widths == w
        out[f"{lengths[sel].min()}-{lengths[sel].max()}"] = values[..., sel].mean(-1).tolist()
    return out
