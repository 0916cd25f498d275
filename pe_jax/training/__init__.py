"""Training: one run — optimizer, mesh, the seed-vmapped step, and the resumable run."""

from pe_jax.config_fields import parse_field, set_field
from pe_jax.training._config_fields import define_config_file
from pe_jax.training._distributed import initialize_distributed, is_primary
from pe_jax.training._load import LoadedRun, load_run
from pe_jax.training._mesh import make_mesh
from pe_jax.training._optim import make_optimizer, make_schedule
from pe_jax.training._run import (
    NonFiniteError,
    RunInterrupted,
    check_config,
    format_eta,
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

__all__ = [
    "LoadedRun",
    "NonFiniteError",
    "RunInterrupted",
    "Settings",
    "TrainProgram",
    "abstract_state",
    "check_config",
    "define_config_file",
    "format_eta",
    "initialize_distributed",
    "is_primary",
    "load_run",
    "make_mesh",
    "make_optimizer",
    "make_schedule",
    "make_train_program",
    "model_keys",
    "parse_field",
    "seed_keys",
    "set_field",
    "settings_from_config",
    "train_and_evaluate",
]
