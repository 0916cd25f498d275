"""Sweeps: many runs of `pe_jax.training` — expansion, claims, executors (local, workers, Ray),
shards."""

from pe_jax.sweep._claims import Claim, ClaimLostError, read_claim, try_claim
from pe_jax.sweep._executors import (
    LocalExecutor,
    Outcome,
    StopOnSignals,
    make_executor,
    parse_shard,
)
from pe_jax.sweep._ray_executor import RayExecutor
from pe_jax.sweep._sweep import (
    SweepRun,
    expand_sweep,
    refresh_manifest,
    run_sweep,
    select_runs,
)

__all__ = [
    "Claim",
    "ClaimLostError",
    "LocalExecutor",
    "Outcome",
    "RayExecutor",
    "StopOnSignals",
    "SweepRun",
    "expand_sweep",
    "make_executor",
    "parse_shard",
    "read_claim",
    "refresh_manifest",
    "run_sweep",
    "select_runs",
    "try_claim",
]
