"""Train one (task, encoding) run, several seeds in one program, and evaluate it per length.

  python -m experiments.train --config=configs/copy.py --workdir=runs/copy_rope \
      --config.model.encoding=rope

  python -m experiments.train --config=configs/copy.py:smoke --workdir=runs/smoke

Rerunning the same command resumes from the last checkpoint (or does nothing if finished).
"""

from absl import app, flags, logging

from pe_jax import runtime
from pe_jax.training import define_config_file, initialize_distributed, train_and_evaluate

_CONFIG = define_config_file("config", None, "Experiment config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for checkpoints, logs and results.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Start afresh if workdir holds another config.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    runtime.configure()  # CPU XLA flags unless XLA_FLAGS is set; persistent compile cache
    del argv
    initialize_distributed()  # no-op unless the environment describes several processes
    logging.set_verbosity(logging.WARNING)  # Orbax logs every checkpoint step at INFO
    train_and_evaluate(_CONFIG.value, _WORKDIR.value, overwrite=_OVERWRITE.value)


if __name__ == "__main__":
    app.run(main)
