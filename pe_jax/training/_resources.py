"""The memory a run needs, estimated from its config alone, against the memory there is.

Refusing a run that cannot fit before anything is written (or compiled) is the point: a width,
vocabulary, batch or evaluation length that is orders of magnitude too large would otherwise
pass validation and fail minutes later, or make validation itself slow. The estimate is an
order of magnitude, not an allocator's account: it counts

- parameters, their gradients and two Adam moments (4 float32 copies) per model;
- training activations kept for the backward pass at the longest training width: per layer
  and example, the residual stream and MLP hidden units (W x D x (8 + 2 x mlp_ratio) values),
  the attention scores (H x W^2) and the output logits (W x V);
- evaluation activations of one layer (the forward pass keeps none) at the longest evaluated
  width, for a batch of `eval.batch_size` (or all `eval.samples`);

all times M = seeds x learning rates models, which train and evaluate side by side. It is
compared with the whole memory of the accelerators, or of the host on CPU (not with what is
free at the moment, which other processes change): a guard against sizes that cannot fit,
not a scheduler.
"""

from __future__ import annotations

import math
import os

from pe_jax._validate import check_int
from pe_jax.tasks import bucket_width

_PARAM_COPIES = 4  # parameters, gradients, Adam's two moments (float32)


def _gib(size: float) -> str:
    return f"{size / 2**30:.3g} GiB"


def available_memory() -> tuple[int, str]:
    """Bytes the run may use and where they are: the accelerators' memory (the sum over this
    process's devices) or, on CPU, the host's physical memory."""
    import jax

    devices = jax.local_devices()
    if devices[0].platform != "cpu":
        limits = [(d.memory_stats() or {}).get("bytes_limit") for d in devices]
        if all(limits):
            kind = devices[0].device_kind
            return int(sum(limits)), f"{len(devices)} x {kind} device memory"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024, "host memory"
    except OSError:
        pass
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return int(pages), "host memory"


def estimate_memory(
    *,
    vocab_size: int,
    width: int,
    num_heads: int,
    num_layers: int,
    mlp_ratio: int,
    models: int,
    batch_size: int,
    train_width: int,
    eval_batch: int,
    eval_width: int,
    activation_bytes: int = 4,
) -> dict[str, float]:
    """The bytes of each part of a run (module docstring) and their "total"; pure arithmetic.

    Args:
      vocab_size, width (D), num_heads (H), num_layers, mlp_ratio: the model.
      models: M models trained side by side (seeds x learning rates).
      batch_size: training examples per step and model.
      train_width, eval_width: the longest padded sequence width W of training and evaluation.
      eval_batch: examples per evaluation batch and model.
      activation_bytes: 4 for float32 compute, 2 for bfloat16.
    """
    d, v = float(width), float(vocab_size)
    params = 2 * v * d + num_layers * ((4 + 2 * mlp_ratio) * d * d + (8 + mlp_ratio) * d)

    def layer(batch: int, w: int) -> float:
        return batch * (w * d * (8 + 2 * mlp_ratio) + num_heads * float(w) ** 2 + w * v)

    parts = {
        "parameters and optimizer state": models * params * _PARAM_COPIES * 4,
        f"training activations at width {train_width}": models
        * num_layers
        * layer(batch_size, train_width)
        * activation_bytes,
        f"evaluation activations at width {eval_width}": models
        * layer(eval_batch, eval_width)
        * activation_bytes,
    }
    return {**parts, "total": sum(parts.values())}


def _count(items) -> int:
    """How many items a list field holds (1 when it is empty or not a list: checked later)."""
    return len(items) if isinstance(items, list | tuple) and items else 1


def check_resources(config, *, task, protocol: str, train_max: int, eval_max: int) -> None:
    """Refuses a run whose estimated memory exceeds what is available, before anything else
    costly (the model's config check builds its encoding abstractly, in time that grows with
    the width) or any write.

    Args:
      config: the experiment config (model.*, seeds, train.batch_size, train.learning_rates,
        eval.*); the fields read here are checked to be positive integers.
      task: the `Task`; protocol: "encoder" | "decoder".
      train_max, eval_max: the longest training and evaluated lengths.

    Raises:
      ValueError: naming the estimate, its parts, the memory available and the config fields
        that drive it.
    """
    model = {
        name: check_int(f"config.model.{name}", config.model.get(name))
        for name in ("width", "num_heads", "num_layers", "mlp_ratio")
    }
    seeds, rates = (_count(config.get("seeds")), _count(config.train.get("learning_rates")))
    batch = check_int("config.train.batch_size", config.train.get("batch_size"))
    samples = check_int("config.eval.samples", config.eval.get("samples"))
    eval_batch = config.eval.get("batch_size") or samples
    eval_batch = min(check_int("config.eval.batch_size", eval_batch), samples)
    multiple = config.train.get("bucket_multiple", 16)
    multiple = max(int(multiple), 1)  # 0 = auto: at most the task's width
    train_width = math.ceil(task.width(train_max, protocol) / multiple) * multiple
    eval_width = bucket_width(task.width(eval_max, protocol))
    parts = estimate_memory(
        vocab_size=task.vocab_size,
        **model,
        models=seeds * rates,
        batch_size=batch,
        train_width=train_width,
        eval_batch=eval_batch,
        eval_width=eval_width,
        activation_bytes=2 if str(config.model.get("dtype", "float32")) == "bfloat16" else 4,
    )
    available, where = available_memory()
    if parts["total"] <= available:
        return
    detail = ", ".join(f"{name} {_gib(size)}" for name, size in parts.items() if name != "total")
    raise ValueError(
        f"config: the run needs about {_gib(parts['total'])} of memory ({detail}), but "
        f"{_gib(available)} is available ({where}). It is driven by "
        + ", ".join(f"model.{name}={value}" for name, value in model.items())
        + f", the vocabulary of {task.vocab_size} tokens "
        f"(task_options), train.batch_size={batch}, train.max_length={train_max}, "
        f"eval lengths up to {eval_max} (eval.lengths / eval.max_length), eval batches of "
        f"{eval_batch} (eval.batch_size / eval.samples) and {seeds * rates} models (seeds x "
        "train.learning_rates); lower the largest of them."
    )
