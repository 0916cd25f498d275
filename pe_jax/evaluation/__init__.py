"""Evaluation: per-length (and per-example) metrics in padded buckets, their summaries,
the task's baselines, attention maps."""

from pe_jax.evaluation._attention_maps import attention_maps, offset_concentration, sample_attention
from pe_jax.evaluation._evaluate import (
    MODEL_LOOPS,
    baselines,
    bucket_means,
    evaluate,
    make_eval_program,
    summarize,
)

__all__ = [
    "MODEL_LOOPS",
    "attention_maps",
    "baselines",
    "bucket_means",
    "evaluate",
    "make_eval_program",
    "offset_concentration",
    "sample_attention",
    "summarize",
]
