"""The runs the science section trains: the encoder protocol's reference model and a run of
the decoder protocol's sweep config, as `Settings`; their description; the GPU check."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from pe_jax.benchmark._config import BenchmarkConfig, ScienceConfig
from pe_jax.benchmark._model import ReferenceModel
from pe_jax.config_files import load_config
from pe_jax.sweep import expand_sweep, select_runs
from pe_jax.training import Settings, set_field, settings_from_config


def encoder_settings(model: ReferenceModel, science: ScienceConfig) -> Settings:
    """The encoder protocol's run: `model` (dropout 0) with per-batch lengths, K models."""
    model = dataclasses.replace(model, dropout=0.0)
    s = model.settings(science.encoder_encoding, seed_loop=science.seed_loop)
    config = dataclasses.replace(s.model, dtype=jnp.dtype(science.dtype))
    return dataclasses.replace(
        s,
        model=config,
        seeds=tuple(science.seeds),
        learning_rates=tuple(science.learning_rates),
        length_sampling="per_batch",
    )


def decoder_settings(science: ScienceConfig) -> Settings:
    """The run `science.decoder_run` of the sweep config `science.decoder_sweep`, with the
    science seeds, seed loop, dtype and `decoder_overrides`, as `settings_from_config` reads it.

    Raises:
      ValueError: no such run, or a field the config does not allow.
    """
    runs = select_runs(expand_sweep(load_config(science.decoder_sweep)), science.decoder_run)
    if len(runs) != 1:
        raise ValueError(
            f"science.decoder_run must name one run of {science.decoder_sweep!r}, "
            f"got {science.decoder_run!r} ({len(runs)} runs match)."
        )
    config = runs[0].config
    fields = (
        ("seeds", tuple(science.seeds)),
        ("train.seed_loop", science.seed_loop),
        ("model.dtype", science.dtype),
        *science.decoder_overrides,
    )
    for path, value in fields:
        set_field(config, path, value, where="science")
    return settings_from_config(config)


def describe(settings: Settings) -> dict[str, Any]:
    """What a run trains: task, K, seeds, rates, architecture, dtype, batch and lengths."""
    m = settings.model
    return {
        "task": settings.task.name,
        "protocol": settings.protocol,
        "num_models": len(settings.models),
        "seeds": list(settings.seeds),
        "learning_rates": list(settings.rates),
        "num_layers": m.num_layers,
        "width": m.width,
        "num_heads": m.num_heads,
        "mlp_ratio": m.mlp_ratio,
        "norm": m.norm,
        "causal": m.causal,
        "encoding": m.encoding,
        "encoding_options": m.options,
        "dropout": m.dropout,
        "dtype": str(jnp.dtype(m.dtype)),
        "attention_impl": m.attention_impl,
        "batch_size": settings.batch_size,
        "min_length": settings.min_length,
        "max_length": settings.max_length,
        "train_width": settings.train_width,
        "length_sampling": settings.length_sampling,
        "bucket_multiple": settings.bucket_multiple,
        "seed_loop": settings.seed_loop,
    }


def check_device(config: BenchmarkConfig) -> None:
    """Refuses a GPU preset on a machine whose JAX (or PyTorch, when installed) has no GPU.

    Raises:
      ValueError: naming the preset and the backend found.
    """
    if not config.requires_gpu:
        return
    backend = jax.default_backend()
    if backend != "gpu":
        raise ValueError(
            f"preset {config.name!r} measures a GPU, but JAX's default backend here is "
            f"{backend!r} (install jax[cuda12] on a machine with an NVIDIA GPU, or use "
            "--preset=full)."
        )
    try:
        import torch
    except ImportError:
        return  # the peer side is skipped with its reason
    if not torch.cuda.is_available():
        raise ValueError(
            f"preset {config.name!r} times x-transformers on CUDA, but this PyTorch "
            f"({torch.__version__}) sees no GPU: install a CUDA build of torch."
        )
