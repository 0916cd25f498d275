"""From an ml_collections config to validated, typed settings (modules never see a ConfigDict).

Every check runs before any training, and a bad value raises ValueError naming the config field
(`config.train.batch_size`, ...), the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import jax.numpy as jnp
import ml_collections
from flax import nnx

from pe_jax._names import did_you_mean
from pe_jax._validate import (
    check_choice,
    check_fraction,
    check_int,
    check_nonnegative,
    check_positive,
)
from pe_jax.nn import Transformer, TransformerConfig
from pe_jax.tasks import Task, bucket_width, get_task, list_tasks
from pe_jax.training._lengths import (
    LENGTH_SAMPLINGS,
    choose_bucket_multiple,
    default_length_sampling,
)
from pe_jax.training._optim import OPTIMIZERS, SCHEDULES, make_optimizer
from pe_jax.training._resources import check_resources
from pe_jax.user_modules import import_modules

PROTOCOLS = ("encoder", "decoder")
# How the training step runs its models axis (`pe_jax.training._step`): "auto" picks.
SEED_LOOPS = ("auto", "vmap", "map")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything a run needs, validated. See configs/copy.py for the meaning of each field."""

    task: Task
    protocol: str
    model: TransformerConfig
    seeds: tuple[int, ...]
    steps: int
    batch_size: int
    min_length: int
    max_length: int
    train_width: int
    optimizer: dict[str, Any]
    log_every: int
    checkpoint_every: int
    eval_lengths: tuple[int, ...]
    eval_samples: int
    eval_seed: int
    mesh_shape: tuple[int, int] | None
    seed_loop: str = "auto"
    learning_rates: tuple[float, ...] = ()  # empty: optimizer["learning_rate"] alone
    gate_lengths: tuple[int, ...] = ()  # the held-out gate's lengths; empty: (max_length,)
    gate_every: int = 100
    gate_samples: int = 128
    gate_threshold: float = 0.99
    until: float | None = None

    @property
    def rates(self) -> tuple[float, ...]:
        """[R] the peak learning rates trained side by side."""
        return self.learning_rates or (float(self.optimizer["learning_rate"]),)

    @property
    def models(self) -> tuple[tuple[int, float], ...]:
        """[M] (seed, peak learning rate) of each model, M = S x R: model m has seed
        seeds[m // R] and rate rates[m % R]; the order of every per-model axis."""
        return tuple((seed, rate) for seed in self.seeds for rate in self.rates)

    length_sampling: str = "per_example"
    bucket_multiple: int = 16
    eval_batch_size: int | None = None


def _get(config, path: str):
    node = config
    for part in path.split("."):
        if part not in node:
            raise ValueError(f"config.{path} is missing.")
        node = node[part]
    return node


def _int(config, path: str, *, minimum: int = 1) -> int:
    return check_int(f"config.{path}", _get(config, path), minimum=minimum)


# Integer fields of Settings and of TransformerConfig copied from the config as they are.
_SETTINGS_INTS = {
    "steps": "train.steps",
    "batch_size": "train.batch_size",
    "log_every": "train.log_every",
    "checkpoint_every": "train.checkpoint_every",
    "eval_samples": "eval.samples",
}
_MODEL_INTS = ("width", "num_heads", "num_layers", "mlp_ratio")


def _options(value) -> dict:
    if isinstance(value, ml_collections.ConfigDict):
        return value.to_dict()
    return dict(value or {})


def eval_lengths(config) -> tuple[int, ...]:
    """config.eval.lengths if given, else min_length..max_length with config.eval.stride."""
    explicit = config.eval.get("lengths")
    if explicit:
        lengths = tuple(check_int("config.eval.lengths", t) for t in explicit)
    else:
        lo, hi = _int(config, "eval.min_length"), _int(config, "eval.max_length")
        if hi < lo:
            raise ValueError(f"config.eval.max_length ({hi}) must be >= eval.min_length ({lo}).")
        lengths = tuple(range(lo, hi + 1, _int(config, "eval.stride")))
    if min(lengths) < 1:
        raise ValueError(f"config.eval.lengths must be >= 1, got {min(lengths)}.")
    return lengths


def settings_from_config(config: ml_collections.ConfigDict) -> Settings:
    """Validates `config` and returns typed `Settings`.

    Every field is checked here, the optimizer and its schedule included, so that a config that
    passes can be trained (the mesh is checked by `make_mesh` and `check_divisible`).

    The modules of config.imports are imported first: they register the config's own
    encodings and tasks.

    Raises:
      ValueError: a module of config.imports that is not there, unknown task / encoding /
        protocol, train_max < 1, eval lengths beyond what
        the encoding or the model supports, seeds not distinct, a bad learning rate, warmup or
        optimizer, a non-finite number anywhere, ... each naming the field.
    """
    check_finite_numbers(config)
    import_modules(tuple(config.get("imports") or ()), where="config.imports")
    name = _get(config, "task")
    if name not in list_tasks():
        raise ValueError(
            f"config.task: unknown task {name!r}.{did_you_mean(name, list_tasks())} "
            f"Tasks: {', '.join(list_tasks())}."
        )
    task = get_task(name, **_options(config.get("task_options")))
    protocol = _get(config, "protocol")
    if protocol not in PROTOCOLS:
        raise ValueError(f"config.protocol must be one of {PROTOCOLS}, got {protocol!r}.")

    min_length = _int(config, "train.min_length")
    max_length = _int(config, "train.max_length")
    if max_length < min_length:
        raise ValueError(
            f"config.train.max_length ({max_length}) must be >= train.min_length ({min_length})."
        )
    lengths = eval_lengths(config)
    longest = max(max(lengths), max_length)
    needed = task.width(longest, protocol)

    check_resources(
        config, task=task, protocol=protocol, train_max=max_length, eval_max=max(lengths)
    )
    m = config.model
    dtype = check_choice("config.model.dtype", m.get("dtype", "float32"), ("float32", "bfloat16"))
    try:
        model = TransformerConfig(
            vocab_size=task.vocab_size,
            **{name: _int(config, f"model.{name}") for name in _MODEL_INTS},
            dropout=m.dropout,
            activation=m.get("activation", "gelu"),
            attention_impl=m.get("attention_impl", "auto"),
            norm=m.norm,
            causal=protocol == "decoder",
            encoding=m.encoding,
            encoding_options=_options(m.get("encoding_options")),
            share_encoding=m.share_encoding,
            dtype=jnp.dtype(dtype),
        )
    except ValueError as error:
        raise ValueError(f"config.model: {error}") from error
    _check_encoding_reach(model, needed, longest)

    seeds = tuple(check_int("config.seeds", s, minimum=0) for s in _get(config, "seeds"))
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"config.seeds must be a non-empty list of distinct ints, got {seeds}.")
    ints = {name: _int(config, path) for name, path in _SETTINGS_INTS.items()}
    t = config.train
    optimizer = optimizer_settings(config, total_steps=ints["steps"])
    settings = Settings(
        task=task,
        protocol=protocol,
        model=model,
        seeds=seeds,
        min_length=min_length,
        max_length=max_length,
        train_width=task.width(max_length, protocol),
        optimizer=optimizer,
        eval_lengths=lengths,
        eval_seed=_int(config, "eval.seed", minimum=0),
        mesh_shape=parse_mesh_shape(config.get("mesh_shape")),
        seed_loop=check_choice("config.train.seed_loop", t.get("seed_loop", "auto"), SEED_LOOPS),
        **_gate_settings(t, min_length, max_length),
        **_length_fields(t, protocol),
        eval_batch_size=_eval_batch_size(config, ints["eval_samples"]),
        **ints,
    )
    return _resolve_buckets(settings)


def _gate_settings(t, min_length: int, max_length: int) -> dict:
    """The learning-rate axis, the held-out gate and train-to-criterion, from config.train.

    Fields absent from an older config.json take their defaults (configs/base.py).
    """
    rates = tuple(t.get("learning_rates") or ())
    rates = tuple(
        check_nonnegative(f"config.train.learning_rates[{i}]", r) for i, r in enumerate(rates)
    )
    if len(set(rates)) != len(rates):
        raise ValueError(f"config.train.learning_rates must be distinct, got {rates}.")
    count = check_int("config.train.gate_lengths", t.get("gate_lengths", 3), minimum=1)
    until = t.get("until")
    return dict(
        learning_rates=rates,
        gate_lengths=tuple(range(max(min_length, max_length - count + 1), max_length + 1)),
        gate_every=check_int("config.train.gate_every", t.get("gate_every", 100), minimum=1),
        gate_samples=check_int("config.train.gate_samples", t.get("gate_samples", 128)),
        gate_threshold=check_fraction("config.train.gate_threshold", t.get("gate_threshold", 0.99)),
        until=None if until in (None, 0) else check_fraction("config.train.until", until),
    )


def check_finite_numbers(config, where: str = "config") -> None:
    """Refuses inf and NaN in any field of `config` (nested mappings and sequences included).

    Raises:
      ValueError: naming the first such field, e.g. config.model.encoding_options.base.
    """
    items = config.items() if hasattr(config, "items") else enumerate(config)
    for key, value in items:
        name = f"{where}.{key}" if hasattr(config, "items") else f"{where}[{key}]"
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}.")
        if hasattr(value, "items") or isinstance(value, list | tuple):
            check_finite_numbers(value, name)


def optimizer_settings(config, *, total_steps: int) -> dict[str, Any]:
    """The keyword arguments of `make_optimizer` from config.train, each field checked.

    Raises:
      ValueError: naming config.train.<field>: a learning rate that is not a finite number
        >= 0, a clip_norm that is not a positive number, warmup_steps outside [0, steps), an
        unknown schedule or optimizer, a negative weight_decay or one with Adam.
    """
    t = config.train
    clip_norm = t.get("clip_norm")
    if clip_norm is not None:
        clip_norm = check_positive("config.train.clip_norm", clip_norm)
    optimizer = dict(
        # 0 is allowed: a control that cannot learn (the learned-gate marks it).
        learning_rate=check_nonnegative("config.train.learning_rate", t.learning_rate),
        total_steps=total_steps,
        warmup_steps=_int(config, "train.warmup_steps", minimum=0),
        schedule=check_choice("config.train.schedule", t.schedule, SCHEDULES),
        optimizer=check_choice("config.train.optimizer", t.optimizer, OPTIMIZERS),
        weight_decay=float(t.weight_decay),
        clip_norm=clip_norm,
    )
    if optimizer["warmup_steps"] >= total_steps:
        raise ValueError(
            f"config.train.warmup_steps must be in [0, train.steps={total_steps}), got "
            f"{optimizer['warmup_steps']}."
        )
    try:
        make_optimizer(**optimizer)  # its own checks (weight decay), before anything is written
    except ValueError as error:
        raise ValueError(f"config.train.{error}") from error
    return optimizer


def _length_fields(train, protocol: str) -> dict:
    """length_sampling and bucket_multiple of config.train; absent ones take their defaults."""
    sampling = train.get("length_sampling", default_length_sampling(protocol))
    return {
        "length_sampling": check_choice("config.train.length_sampling", sampling, LENGTH_SAMPLINGS),
        "bucket_multiple": _bucket_multiple(train.get("bucket_multiple", 16)),
    }


def _bucket_multiple(value) -> int:
    """config.train.bucket_multiple: a positive int, or 0 = chosen from the run's planned steps
    (`_resolve_buckets`)."""
    return check_int("config.train.bucket_multiple", value, minimum=0)


def _resolve_buckets(s: Settings) -> Settings:
    """`s` with bucket_multiple 0 ("auto") replaced by `choose_bucket_multiple`'s pick for its
    steps x models (a per-example run has one program: 16 is kept)."""
    if s.bucket_multiple != 0:
        return s
    multiple = 16
    if s.length_sampling == "per_batch":
        multiple = choose_bucket_multiple(
            s.task,
            s.protocol,
            min_length=s.min_length,
            max_length=s.max_length,
            cap=s.train_width,
            model_steps=s.steps * len(s.models),
        )
    return dataclasses.replace(s, bucket_multiple=multiple)


def _eval_batch_size(config, samples: int) -> int | None:
    """config.eval.batch_size (None or absent = all samples at once), checked against samples."""
    size = config.eval.get("batch_size")
    if size is None:
        return None
    size = check_int("config.eval.batch_size", size, minimum=1)
    if size < samples and samples % size:
        raise ValueError(
            f"config.eval.samples ({samples}) must be a multiple of config.eval.batch_size "
            f"({size}) when it is larger."
        )
    return size


def parse_mesh_shape(value) -> tuple[int, int] | None:
    """config.mesh_shape as (seeds, data): None, two ints, or text "2;4", "2,4", "2x4", "(2, 4)".

    Text is accepted because a command line sets the field from a string (`configs/<task>.py:
    mesh_shape=2;4`). Whether the shape fits the devices is checked by `make_mesh`.

    Raises:
      ValueError: naming config.mesh_shape, when it is not two positive integers.
    """
    if value is None:
        return None
    items = re.split(r"[;,x\s()\[\]]+", value.strip()) if isinstance(value, str) else value
    try:
        shape = tuple(_whole(v) for v in items if v != "")
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(
            f"config.mesh_shape must be (seeds, data): two positive integers, e.g. (1, 8) or "
            f'"2;4", or None for (1, all devices); got {value!r}.'
        )
    return shape


def _whole(v) -> int:
    if isinstance(v, bool) or (not isinstance(v, str) and int(v) != v):
        raise ValueError(v)
    return int(v)


def _check_encoding_reach(model: TransformerConfig, needed_width: int, longest: int) -> None:
    """Fails early when the longest padded sequence exceeds what the encoding can address."""
    padded = bucket_width(needed_width)
    abstract = nnx.eval_shape(lambda: Transformer(model, rngs=nnx.Rngs(0)))
    reach = abstract.encoding.max_length
    if reach is not None and padded > reach:
        raise ValueError(
            f"config.model.encoding_options.max_length: encoding {model.encoding!r} addresses "
            f"{reach} positions, but the longest length {longest} is evaluated at padded width "
            f"{padded}; raise max_length or lower config.eval.max_length."
        )
