"""Train one (task, encoding) run, several seeds in one program, and evaluate it per length.

  python -m experiments.train --config=configs/copy.py --workdir=runs/copy_rope \
      --config.model.encoding=rope

  python -m experiments.train --config=configs/copy.py:smoke --workdir=runs/smoke
  pe-jax-train --config=copy:smoke --workdir=runs/smoke   # installed: a config by name
  python -m experiments.train --config=copy:smoke --workdir=runs/mine \
      --config.imports=my_encoding.py --config.model.encoding=my_bias

Rerunning the same command resumes from the last checkpoint (or does nothing if finished).
"""

from absl import flags, logging

from experiments import _cli
from pe_jax import runtime
from pe_jax.training import (
    check_config,
    define_config_file,
    initialize_distributed,
    train_and_evaluate,
)

_CONFIG = define_config_file(
    "config", None, "Experiment config: a file, or a name in configs/ (copy:smoke)."
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for checkpoints, logs and results.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Start afresh if workdir holds another config.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    runtime.configure()  # CPU XLA flags unless XLA_FLAGS is set; persistent compile cache
    del argv
    initialize_distributed()  # no-op unless the environment describes several processes
    logging.set_verbosity(logging.WARNING)  # Orbax logs every checkpoint step at INFO
    with _cli.user_errors():  # the config's own checks, before anything is written
        check_config(_CONFIG.value)
    train_and_evaluate(_CONFIG.value, _WORKDIR.value, overwrite=_OVERWRITE.value)


def run() -> None:
    """The `pe-jax-train` console script."""
    _cli.run(main)


if __name__ == "__main__":
    run()
