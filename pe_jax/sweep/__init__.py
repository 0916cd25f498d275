"""Sweeps: many runs of `pe_jax.training` — expansion, claims, executors (local, workers, Ray),
shards."""

from pe_jax.sweep._claims import Claim, ClaimLostError, read_claim, try_claim
from pe_jax.sweep._executors import LocalExecutor
from pe_jax.sweep._plan import PlannedRun, plan_markdown, plan_sweep, total_core_hours
from pe_jax.sweep._ray_executor import RayExecutor
from pe_jax.sweep._runner import Outcome
from pe_jax.sweep._runs import SweepRun, expand_sweep, parse_shard, select_runs
from pe_jax.sweep._stop import StopOnSignals
from pe_jax.sweep._sweep import make_executor, refresh_manifest, run_sweep

__all__ = [
    "Claim",
    "ClaimLostError",
    "LocalExecutor",
    "Outcome",
    "PlannedRun",
    "RayExecutor",
    "StopOnSignals",
    "SweepRun",
    "expand_sweep",
    "make_executor",
    "parse_shard",
    "plan_markdown",
    "plan_sweep",
    "read_claim",
    "refresh_manifest",
    "run_sweep",
    "select_runs",
    "total_core_hours",
    "try_claim",
]
