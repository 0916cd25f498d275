"""Evaluation: per-length metrics in padded buckets, their summaries, attention maps."""

from pe_jax.evaluation._attention_maps import attention_maps, offset_concentration, sample_attention
from pe_jax.evaluation._evaluate import bucket_means, evaluate, summarize

__all__ = [
    "attention_maps",
    "bucket_means",
    "evaluate",
    "offset_concentration",
    "sample_attention",
    "summarize",
]
