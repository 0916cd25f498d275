"""Benchmark: every hot path measured against this device's floors.

Imports training, evaluation, nn and encodings; nothing in the library imports it.
"""

from pe_jax.benchmark._config import (
    DEFAULT_SECTIONS,
    PRESETS,
    SECTIONS,
    BenchmarkConfig,
    ScienceConfig,
    base_encodings,
)
from pe_jax.benchmark._model import ReferenceModel
from pe_jax.benchmark._run import check_sections, run_benchmark, write_results
from pe_jax.benchmark._science_runs import check_device
from pe_jax.benchmark._summary import check_targets, format_table
from pe_jax.benchmark._timing import machine_info

__all__ = [
    "DEFAULT_SECTIONS",
    "PRESETS",
    "SECTIONS",
    "check_sections",
    "BenchmarkConfig",
    "ScienceConfig",
    "check_device",
    "ReferenceModel",
    "base_encodings",
    "check_targets",
    "format_table",
    "machine_info",
    "run_benchmark",
    "write_results",
]
