"""Training: optimizer, mesh, the seed-vmapped step, and the resumable run."""

from pe_jax.training._distributed import initialize_distributed, is_primary
from pe_jax.training._mesh import check_divisible, make_mesh
from pe_jax.training._optim import make_optimizer, make_schedule
from pe_jax.training._run import NonFiniteError, train_and_evaluate
from pe_jax.training._settings import Settings, settings_from_config
from pe_jax.training._step import TrainProgram, make_train_program, model_split

__all__ = [
    "NonFiniteError",
    "Settings",
    "TrainProgram",
    "check_divisible",
    "initialize_distributed",
    "is_primary",
    "make_mesh",
    "make_optimizer",
    "make_schedule",
    "make_train_program",
    "model_split",
    "settings_from_config",
    "train_and_evaluate",
]
