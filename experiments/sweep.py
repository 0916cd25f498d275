"""Run a sweep (tasks x encodings, seeds together), then write its report; or only report.

  python -m experiments.sweep --config=configs/sweeps/quick.py --workdir=runs/quick
  python -m experiments.sweep --config=configs/sweeps/quick.py --workdir=runs/quick \
      --only=reverse/rope,*/alibi
  python -m experiments.sweep report --workdir=runs/quick
  pe-jax-sweep --config=sweeps/smoke --workdir=runs/smoke   # installed: a config by name
  python -m experiments.sweep report --workdir=runs/quick --config=configs/sweeps/quick.py
      # the same, after first rewriting sweep.json from the config (its report fields)
  python -m experiments.sweep --config=configs/sweeps/quick.py --workdir=runs/quick --workers=2
  python -m experiments.sweep --config=configs/sweeps/quick.py --workdir=runs/quick --shard=0/4
  python -m experiments.sweep --config=configs/sweeps/quick.py --workdir=runs/quick \
      --executor=ray --ray_address=auto
  python -m experiments.sweep --config=configs/sweeps/kazemnejad.py --workdir=runs/kz --plan \
      --plan_calibration=runs/kazemnejad_pilot   # the compute plan: runs, steps, core-hours

Rerunning skips finished runs and resumes partial ones. Each run is claimed
(<run>/claim.json) before it trains, so any number of these commands may share a workdir;
whichever finds the sweep complete writes the report. A rerun retries the runs that had failed
before it started; --retry_failed also retries those a concurrent sweep fails meanwhile.
SIGINT (Ctrl-C) or SIGTERM stops the sweep: no new run starts, running runs checkpoint and
release their claims, and the command exits with 130 or 143 (a rerun resumes); a second
Ctrl-C kills. Exit status 1: runs failed, or runs are left that nobody holds (they are named).
See docs/reliability.md. `report` rebuilds report.md, findings.md,
results.csv and the PNG plots from the runs' results.json files without training.
"""

import sys

from absl import app, flags, logging

from experiments import _cli
from pe_jax import runtime
from pe_jax._names import did_you_mean
from pe_jax.reporting import write_report
from pe_jax.sweep import (
    StopOnSignals,
    expand_sweep,
    make_executor,
    parse_shard,
    plan_markdown,
    plan_sweep,
    refresh_manifest,
    run_sweep,
    select_runs,
    try_claim,
)
from pe_jax.training import check_config, define_config_file, initialize_distributed, is_primary

_CONFIG = define_config_file(
    "config", None, "Sweep config: a file, or a name in configs/ (sweeps/smoke)."
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Sweep folder: <workdir>/<task>/<encoding>.")
_ONLY = flags.DEFINE_list("only", [], "Run only these runs: patterns over task/encoding.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Restart runs started with another config.")
_METRIC = flags.DEFINE_string(
    "metric", None, "Report metric; default: the sweep config's, else per protocol."
)
_EXECUTOR = flags.DEFINE_enum(
    "executor", "local", ["local", "ray"], "local: this host; ray: one Ray task per run."
)
_WORKERS = flags.DEFINE_integer(
    "workers", 1, "Runs at once: local worker processes (pinned to cores), or local Ray CPUs."
)
_SHARD = flags.DEFINE_string("shard", "", "i/n: only the runs whose index mod n is i.")
_RAY_ADDRESS = flags.DEFINE_string("ray_address", "", "Ray cluster address; empty = local.")
_RAY_CPUS = flags.DEFINE_float("ray_cpus_per_run", 1.0, "CPUs each Ray task asks for.")
_RAY_GPUS = flags.DEFINE_float("ray_gpus_per_run", 0.0, "GPUs each Ray task asks for.")
_STALE_MINUTES = flags.DEFINE_float(
    "stale_claim_minutes", 10.0, "A run claim without heartbeat for this long is taken over."
)
_RETRY_FAILED = flags.DEFINE_bool(
    "retry_failed", False, "Retry failed runs, also those another sweep fails meanwhile."
)
_PLAN = flags.DEFINE_bool(
    "plan", False, "Print the compute plan (runs, models, steps, lengths, core-hours); no training."
)
_PLAN_CALIBRATION = flags.DEFINE_string(
    "plan_calibration", None, "For --plan: a folder of finished runs whose CPU s/step it scales."
)
_PLAN_MEASURE_STEPS = flags.DEFINE_integer(
    "plan_measure_steps", 0, "For --plan: measure each uncalibrated task over this many steps."
)
flags.mark_flag_as_required("workdir")


def main(argv):
    runtime.configure()  # CPU XLA flags unless XLA_FLAGS is set; persistent compile cache
    logging.set_verbosity(logging.WARNING)  # Orbax logs every checkpoint step at INFO
    initialize_distributed()  # no-op unless the environment describes several processes
    command = argv[1:]
    if command == ["report"]:
        _cli.check_folder("--workdir", _WORKDIR.value)
        if is_primary():
            if _CONFIG.value is not None:  # the config's report fields may have changed
                with _cli.user_errors():
                    refresh_manifest(_CONFIG.value, _WORKDIR.value)
            with _cli.user_errors():  # e.g. a folder without a finished run
                write_report(_WORKDIR.value, metric=_METRIC.value)
        return
    if command:
        raise app.UsageError(f"unknown command {command}; the only command is 'report'.")
    if _CONFIG.value is None:
        raise app.UsageError("--config is required to run a sweep (or use the 'report' command).")
    with _cli.user_errors():  # a bad --shard, --only or run config fails before anything starts
        parse_shard(_SHARD.value)
        _check_runs(_CONFIG.value, _ONLY.value)
    if _PLAN.value:
        with _cli.user_errors():
            runs = select_runs(expand_sweep(_CONFIG.value), _ONLY.value)
            plan = plan_sweep(
                _CONFIG.value,
                calibration=_PLAN_CALIBRATION.value,
                measure_steps=_PLAN_MEASURE_STEPS.value,
                only=runs,
            )
        print(plan_markdown(plan, workers=_WORKERS.value))
        return
    executor = None
    if _EXECUTOR.value == "ray" or _WORKERS.value > 1:
        executor = make_executor(
            _EXECUTOR.value,
            workers=_WORKERS.value,
            ray_address=_RAY_ADDRESS.value,
            ray_cpus_per_run=_RAY_CPUS.value,
            ray_gpus_per_run=_RAY_GPUS.value,
        )
    with StopOnSignals() as stop:
        outcome = run_sweep(
            _CONFIG.value,
            _WORKDIR.value,
            only=_ONLY.value,
            overwrite=_OVERWRITE.value,
            executor=executor,
            shard=_SHARD.value,
            stale_after_s=60 * _STALE_MINUTES.value,
            retry_failed=_RETRY_FAILED.value,
            stop=stop,
        )
    if stop():
        left = outcome["interrupted"] + outcome["cancelled"]
        print(f"stopped by signal {stop.signum}; rerun to resume {sorted(left)}", file=sys.stderr)
        sys.exit(stop.exit_code)
    if is_primary():
        _report_if_complete(outcome)
    if outcome["failed"]:
        sys.exit(f"runs failed: {sorted(outcome['failed'])}")
    unheld = sorted(n for n, why in outcome["pending"].items() if not why.startswith("held"))
    if unheld:
        sys.exit(f"runs left undone that nobody holds: {unheld}; rerun the sweep.")


def _check_runs(config, patterns) -> None:
    """The checks `run_sweep` makes first, with --only's no-match named with the close run
    names and labels: the sweep config, the patterns (select_runs' rule) and each selected
    run's config (check_config)."""
    runs = expand_sweep(config)
    names = [r.name for r in runs] + [r.task for r in runs] + [r.encoding for r in runs]
    for pattern in patterns:
        try:
            select_runs(runs, [pattern])
        except ValueError:
            raise ValueError(
                f"--only={pattern} matches no run.{did_you_mean(pattern, dict.fromkeys(names))} "
                f"Runs: {', '.join(r.name for r in runs)}."
            ) from None
    for run in select_runs(runs, patterns):
        try:
            check_config(run.config)
        except ValueError as error:
            raise ValueError(f"run {run.name}: {error}") from None


def _report_if_complete(outcome) -> None:
    """Writes the report once every run is settled; of several processes finding it so, the
    one holding the sweep folder's claim writes it."""
    if not outcome["complete"]:
        print(
            "report deferred: runs of other processes or shards are not finished; the last "
            "to finish writes it (or: python -m experiments.sweep report)."
        )
        return
    claim = try_claim(_WORKDIR.value)
    if claim is None:
        print("report: another process is writing it.")
        return
    with claim:
        write_report(_WORKDIR.value, metric=_METRIC.value)


def run() -> None:
    """The `pe-jax-sweep` console script."""
    _cli.run(main)


if __name__ == "__main__":
    run()
