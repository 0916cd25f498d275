"""Evaluation: per-length metrics in padded buckets, and their summaries."""

from pe_jax.evaluation._evaluate import bucket_means, bucket_width, evaluate, summarize
from pe_jax.evaluation._metrics import masked_metrics

__all__ = ["bucket_means", "bucket_width", "evaluate", "masked_metrics", "summarize"]
