"""Run a sweep (tasks x encodings, seeds together), then write its report; or only report.

  python -m experiments.sweep --config=configs/sweeps/quick.py --workdir=runs/quick
  python -m experiments.sweep --config=configs/sweeps/quick.py --workdir=runs/quick \
      --only=reverse/rope,*/alibi
  python -m experiments.sweep report --workdir=runs/quick

Rerunning skips finished runs and resumes partial ones. `report` rebuilds report.md, findings.md,
results.csv and the PNG plots from the runs' results.json files without training.
"""

import sys

from absl import app, flags, logging

from pe_jax import runtime
from pe_jax.reporting import write_report
from pe_jax.training import define_config_file, initialize_distributed, is_primary, run_sweep

_CONFIG = define_config_file("config", None, "Sweep config file (configs/sweeps/).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Sweep folder: <workdir>/<task>/<encoding>.")
_ONLY = flags.DEFINE_list("only", [], "Run only these runs: patterns over task/encoding.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Restart runs started with another config.")
_METRIC = flags.DEFINE_string(
    "metric", None, "Report metric; default: the sweep config's, else per protocol."
)
flags.mark_flag_as_required("workdir")


def main(argv):
    runtime.configure()  # CPU XLA flags unless XLA_FLAGS is set; persistent compile cache
    logging.set_verbosity(logging.WARNING)  # Orbax logs every checkpoint step at INFO
    initialize_distributed()  # no-op unless the environment describes several processes
    command = argv[1:]
    if command == ["report"]:
        if is_primary():
            write_report(_WORKDIR.value, metric=_METRIC.value)
        return
    if command:
        raise app.UsageError(f"unknown command {command}; the only command is 'report'.")
    if _CONFIG.value is None:
        raise app.UsageError("--config is required to run a sweep (or use the 'report' command).")
    outcome = run_sweep(_CONFIG.value, _WORKDIR.value, only=_ONLY.value, overwrite=_OVERWRITE.value)
    if is_primary():
        write_report(_WORKDIR.value, metric=_METRIC.value)
    if outcome["failed"]:
        sys.exit(f"runs failed: {sorted(outcome['failed'])}")


if __name__ == "__main__":
    app.run(main)
