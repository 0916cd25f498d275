"""Training: optimizer, mesh, the seed-vmapped step, and the resumable run."""

from pe_jax.training._claims import Claim, ClaimLostError, read_claim, try_claim
from pe_jax.training._config_fields import define_config_file, parse_field, set_field
from pe_jax.training._distributed import initialize_distributed, is_primary
from pe_jax.training._executors import (
    LocalExecutor,
    Outcome,
    StopOnSignals,
    make_executor,
    parse_shard,
)
from pe_jax.training._load import LoadedRun, load_run
from pe_jax.training._mesh import make_mesh
from pe_jax.training._optim import make_optimizer, make_schedule
from pe_jax.training._ray_executor import RayExecutor
from pe_jax.training._run import (
    NonFiniteError,
    RunInterrupted,
    check_config,
    train_and_evaluate,
)
from pe_jax.training._settings import Settings, settings_from_config
from pe_jax.training._step import (
    TrainProgram,
    abstract_state,
    make_train_program,
    model_keys,
    seed_keys,
)
from pe_jax.training._sweep import (
    SweepRun,
    expand_sweep,
    refresh_manifest,
    run_sweep,
    select_runs,
)

__all__ = [
    "Claim",
    "ClaimLostError",
    "LoadedRun",
    "LocalExecutor",
    "NonFiniteError",
    "Outcome",
    "RayExecutor",
    "RunInterrupted",
    "Settings",
    "StopOnSignals",
    "SweepRun",
    "TrainProgram",
    "abstract_state",
    "check_config",
    "define_config_file",
    "expand_sweep",
    "initialize_distributed",
    "is_primary",
    "load_run",
    "make_executor",
    "make_mesh",
    "make_optimizer",
    "make_schedule",
    "make_train_program",
    "model_keys",
    "parse_field",
    "parse_shard",
    "read_claim",
    "refresh_manifest",
    "run_sweep",
    "seed_keys",
    "select_runs",
    "set_field",
    "settings_from_config",
    "train_and_evaluate",
    "try_claim",
]
