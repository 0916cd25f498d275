"""Evaluation: per-length metrics in padded buckets, their summaries, attention maps."""

from pe_jax.evaluation._attention_maps import attention_maps, offset_concentration, sample_attention
from pe_jax.evaluation._evaluate import bucket_means, bucket_width, evaluate, summarize
from pe_jax.evaluation._metrics import masked_metrics

__all__ = [
    "attention_maps",
    "bucket_means",
    "bucket_width",
    "evaluate",
    "masked_metrics",
    "offset_concentration",
    "sample_attention",
    "summarize",
]
