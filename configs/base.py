"""The fields every experiment config has, with defaults sized for a 2-core CPU.

Not a config file itself: each task file (configs/copy.py, ...) calls `base_config` and
`apply_arg`. Published-scale values are noted beside the laptop defaults.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from pe_jax.config_fields import set_field

PRESETS = ("smoke", "published")


def task_config(
    task: str,
    arg: str | None,
    *,
    task_options: dict,
    lengths: dict,
    decoder_task_options: dict | None = None,
) -> ml_collections.ConfigDict:
    """The config of a task file: base fields, the task's options, its per-protocol lengths.

    Args:
      task: the task name.
      arg: the text after ":" in --config=file.py:arg; "protocol=decoder" picks the protocol
        (default encoder), the rest goes to `apply_arg`.
      task_options: the task's options.
      decoder_task_options: options that replace those in the decoder protocol.
      lengths: {protocol: (train_min, train_max, eval_min, eval_max)}, laptop scale.

    Raises:
      ValueError: a protocol the task has no lengths for, or a bad `arg`.
    """
    items = [i for i in (arg or "").split(",") if i]
    chosen = [i.split("=", 1)[1] for i in items if i.startswith("protocol=")]
    protocol = chosen[-1] if chosen else "encoder"
    if protocol not in lengths:
        raise ValueError(f"protocol must be one of {tuple(lengths)} for {task}, got {protocol!r}.")
    config = base_config(task=task, protocol=protocol)
    config.task_options.update(task_options)
    if protocol == "decoder":
        config.task_options.update(decoder_task_options or {})
    lo, hi, eval_lo, eval_hi = lengths[protocol]
    config.train.min_length, config.train.max_length = lo, hi
    config.eval.min_length, config.eval.max_length = eval_lo, eval_hi
    rest = ",".join(i for i in items if not i.startswith("protocol="))
    return apply_arg(config, rest)


def base_config(*, task: str, protocol: str) -> ml_collections.ConfigDict:
    """Every field of an experiment config, commented."""
    c = ml_collections.ConfigDict()
    c.task = task  # a name from pe_jax.tasks.list_tasks() (or registered by `imports`)
    c.task_options = ml_collections.ConfigDict()  # keyword options of that task
    c.protocol = protocol  # "encoder" (Deletang/Ruoss) or "decoder" (Kazemnejad)
    # c.imports (optional; absent = none, so older runs' configs are unchanged): modules
    # imported before the config is checked, where encodings and tasks of your own are
    # registered: dotted module names, or .py paths from the working directory ("a.py;b.py").
    c.seeds = (0,)  # seeds trained together in one vmapped program
    # (seeds, data) device mesh; unset = (1, all devices)
    c.mesh_shape = config_dict.placeholder(tuple)

    c.model = ml_collections.ConfigDict()
    c.model.encoding = "rope"  # a name from pe_jax.nn.list_encodings() (or from `imports`)
    # Keyword options of the encoding, e.g. model.encoding_options.base=500 (each checked by
    # the encoding itself before anything is written).
    c.model.encoding_options = ml_collections.ConfigDict()
    c.model.width = 64  # model width D (published encoder protocol: 64)
    c.model.num_heads = 4  # heads H (published: 8)
    c.model.num_layers = 2  # blocks (published: 5)
    c.model.mlp_ratio = 4  # MLP hidden width = mlp_ratio * D (published: 4)
    c.model.dropout = 0.0  # dropout rate (published encoder protocol: 0.1)
    c.model.activation = "gelu"  # MLP nonlinearity, "gelu" or "relu" (published encoder: relu)
    # Attention kernel: "auto" (custom-gradient einsum on CPU, jax.nn.dot_product_attention on
    # GPU/TPU), or force "cpu" / "xla". Same values and gradients either way.
    c.model.attention_impl = "auto"
    c.model.norm = "post" if protocol == "encoder" else "pre"  # LayerNorm placement
    c.model.share_encoding = True  # one set of attention-place encoding params for all layers
    c.model.dtype = "float32"  # compute dtype: "float32" or "bfloat16"

    c.train = ml_collections.ConfigDict()
    c.train.steps = 2000  # optimizer steps (published: 2M encoder / 40k decoder)
    c.train.batch_size = 32  # examples per seed per step (published: 128 / 64)
    c.train.min_length = 1  # shortest training input length
    c.train.max_length = 16  # longest training input length (published: 40 / 20)
    c.train.learning_rate = 1e-3  # peak learning rate (published: 1e-4..5e-4 / 3e-5)
    # Peak rates trained side by side in the same program, every seed at every rate (seeds x
    # rates models); empty = learning_rate alone. The schedule is scaled per model.
    c.train.learning_rates = ()
    c.train.warmup_steps = 100  # linear warmup steps
    c.train.schedule = "cosine"  # "constant" or "cosine" decay after warmup
    c.train.optimizer = "adam"  # "adam" or "adamw"
    c.train.weight_decay = 0.0  # decoupled weight decay (adamw only)
    c.train.clip_norm = 1.0  # global gradient-norm clip (None = off)
    c.train.log_every = 100  # steps between log lines / metrics.jsonl records
    c.train.checkpoint_every = 500  # steps between Orbax checkpoints
    # Seeds of one device: "vmap" (batched), "map" (one after the other in the same
    # program), "auto" = "map" on CPU (faster there), "vmap" on GPU/TPU.
    c.train.seed_loop = "auto"
    # The learned gate: held-out exact match at the longest training lengths, on examples from
    # eval.seed (not training data), every gate_every steps and at the end.
    c.train.gate_lengths = 3  # how many of the longest training lengths the gate measures
    c.train.gate_samples = 128  # held-out examples per gate length
    c.train.gate_every = 100  # steps between gate evaluations (metrics.jsonl "gate" records)
    c.train.gate_threshold = 0.99  # gate exact match a model needs to count as learned
    # Train to criterion: a model whose gate exact match reaches `until` stops (its params are
    # kept), the run stops when all have; train.steps stays the cap. None or 0 = off.
    c.train.until = config_dict.placeholder(float)
    # Training lengths: "per_batch" = one length per step for the whole batch, drawn from the
    # step alone, each step run at its length's padded width (the encoder protocol's official
    # trainer); "per_example" = a length per example, all padded to the longest (one program).
    c.train.length_sampling = "per_batch" if protocol == "encoder" else "per_example"
    # per_batch: widths are rounded up to a multiple of this (one compiled program per width
    # used, capped at the training width); larger = fewer programs, more padding. 0 = chosen
    # from the run's planned steps x models (pe_jax.training._lengths.choose_bucket_multiple).
    c.train.bucket_multiple = 0

    c.eval = ml_collections.ConfigDict()
    # Explicit input lengths; empty = min_length..max_length by stride (stride 1 = dense:
    # every length, each weighing the same in the means, as published).
    c.eval.lengths = ()
    c.eval.min_length = 1  # first evaluated length
    c.eval.max_length = 64  # last evaluated length (published: 500 / 40)
    c.eval.stride = 1  # step of the length grid
    c.eval.samples = 64  # examples per length (published encoder protocol: 512)
    # Examples per evaluation call (published: 64); eval.samples must be a multiple when it
    # is larger. Bounds memory at long lengths; None = all samples in one call.
    c.eval.batch_size = 64
    c.eval.seed = 0  # evaluation seed: the same examples for every encoding and seed
    return c


def apply_arg(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
    """Applies a comma-separated `arg`: presets ("smoke", "published") and key=value pairs.

    `smoke` runs in seconds (tiny model, few steps); `published` sets the published protocol's
    scale. key=value pairs set dotted fields, e.g. "smoke,model.encoding=alibi,seeds=0;1".

    Each value is parsed by the field's type with `pe_jax.config_fields.set_field`, the same setter
    that `--config.key=value` flags and sweep overrides use.

    Raises:
      ValueError: an unknown preset or field, or a value the field does not allow (naming the
        field, the value and what is allowed).
    """
    for item in filter(None, (arg or "").split(",")):
        if "=" in item:
            key, value = item.split("=", 1)
            set_field(config, key.strip(), value.strip())
        elif item == "smoke":
            _smoke(config)
        elif item == "published":
            _published(config)
        else:
            raise ValueError(f"config argument {item!r} must be one of {PRESETS} or key=value.")
    return config


def _smoke(c) -> None:
    c.model.width, c.model.num_heads, c.model.num_layers = 16, 2, 1
    c.train.steps, c.train.batch_size, c.train.warmup_steps = 20, 8, 0
    c.train.max_length = 4
    c.train.log_every, c.train.checkpoint_every = 10, 10
    c.train.gate_every, c.train.gate_samples = 10, 16
    c.eval.lengths, c.eval.samples = (1, 2, 4, 8), 8


def _published(c) -> None:
    if c.protocol == "encoder":  # Deletang et al. 2023 / Ruoss et al. 2023
        c.model.width, c.model.num_heads, c.model.num_layers = 64, 8, 5
        c.model.dropout, c.model.norm, c.model.activation = 0.1, "post", "relu"
        c.train.steps, c.train.batch_size = 2_000_000, 128
        c.train.learning_rate, c.train.max_length = 1e-4, 40
        c.train.schedule, c.train.warmup_steps = "constant", 0  # constant Adam rate
        c.eval.min_length, c.eval.max_length = 1, 500
    else:  # Kazemnejad et al. 2023 (their model is T5-base sized, ~107M parameters)
        c.model.width, c.model.num_heads, c.model.num_layers = 768, 12, 12
        c.train.steps, c.train.batch_size, c.train.learning_rate = 40_000, 64, 3e-5
        c.train.min_length, c.train.max_length = 2, 20
        c.eval.min_length, c.eval.max_length = 2, 40
