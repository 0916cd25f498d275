"""Sweeps: every run of a sweep config (`_runs`) trained by `train_and_evaluate` under its
claim, by the chosen executor, with the manifest sweep.json written first.

Nothing here reports: pe_jax.reporting.write_report(workdir) reads the results afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import ml_collections

from pe_jax import runfiles
from pe_jax.runfiles import CONFIG, DamagedFileError, read_json, read_results
from pe_jax.sweep._claims import STALE_AFTER_S
from pe_jax.sweep._executors import LocalExecutor
from pe_jax.sweep._ray_executor import RayExecutor
from pe_jax.sweep._runner import (
    ClaimOptions,
    Outcome,
    Progress,
    known_failures,
    pending,
    settled,
    train_together,
)
from pe_jax.sweep._runs import (
    SweepRun,
    config_json,
    expand_sweep,
    is_finished,
    select_runs,
    take_shard,
)
from pe_jax.training import check_config, is_primary


def _conflicts(runs: Sequence[SweepRun], root: Path) -> list[str]:
    """Runs whose folder already holds a different config (train_and_evaluate would refuse).

    A damaged config.json is no conflict here: that run alone is reported as damaged.
    """
    bad = []
    for run in runs:
        saved = run.workdir(root) / CONFIG
        try:
            if saved.exists() and read_json(saved) != config_json(run.config):
                bad.append(run.name)
        except DamagedFileError:
            continue
    return bad


def _check_configs(runs: Sequence[SweepRun]) -> None:
    """Validates every run's config (settings, optimizer, mesh) before anything is written."""
    for run in runs:
        try:
            check_config(run.config)
        except ValueError as error:
            raise ValueError(f"run {run.name}: {error}") from error


def write_manifest(sweep: ml_collections.ConfigDict, runs: Sequence[SweepRun], root: Path) -> None:
    """<workdir>/sweep.json: the sweep's name, label order, planned runs, report metric.

    Only process 0 writes (the others of a multi-process run share the folder).
    """
    if not is_primary():
        return
    manifest = {
        "name": sweep.get("name") or root.resolve().name,
        "tasks": list(dict.fromkeys(r.task for r in runs)),
        "encodings": list(dict.fromkeys(r.encoding for r in runs)),
        "runs": [r.name for r in runs],
        "seeds": [int(s) for s in sweep.seeds],
        "metric": sweep.get("metric") or "",
        "sweep_config": json.loads(sweep.to_json()),
    }
    runfiles.write_manifest(root, manifest)


# The fields of a sweep config that only the report reads: `refresh_manifest` updates them.
REPORT_FIELDS = ("name", "metric", "gate", "published")


def refresh_manifest(sweep: ml_collections.ConfigDict, workdir: str | os.PathLike) -> None:
    """Updates the report fields (`REPORT_FIELDS`: name, metric, gate, published claims) of
    <workdir>/sweep.json from `sweep` without training, keeping the rest as the runs were
    planned (their config, tasks and encodings); writes the whole manifest when there is none.

    Raises:
      ValueError: a bad sweep config, or `workdir` is not a folder.
    """
    root = Path(workdir)
    if not root.is_dir():
        raise ValueError(f"workdir {str(workdir)!r} is not a folder.")
    runs = expand_sweep(sweep)
    old = runfiles.read_manifest(root)
    if old is None:
        write_manifest(sweep, runs, root)
        return
    if not is_primary():
        return
    fresh = json.loads(sweep.to_json())
    config = {**(old.get("sweep_config") or {}), **{k: fresh.get(k) for k in REPORT_FIELDS}}
    manifest = {
        **old,
        "name": sweep.get("name") or old.get("name"),
        "metric": sweep.get("metric") or "",
        "sweep_config": config,
    }
    runfiles.write_manifest(root, manifest)


def _silent(_: str) -> None:
    pass


def make_executor(
    name: str = "local",
    *,
    workers: int = 1,
    ray_address: str | None = None,
    ray_cpus_per_run: float = 1,
    ray_gpus_per_run: float = 0,
):
    """The executor called `name` ("local" or "ray"); for "ray" without an address, a local
    cluster of `workers * ray_cpus_per_run` CPUs when workers > 1, else of all CPUs.

    Raises:
      ValueError: an unknown name, or workers < 1.
    """
    if name == "local":
        return LocalExecutor(workers)
    if name == "ray":
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an int >= 1, got {workers!r}.")
        num_cpus = int(workers * ray_cpus_per_run) if workers > 1 else None
        return RayExecutor(
            address=ray_address or None,
            cpus_per_run=ray_cpus_per_run,
            gpus_per_run=ray_gpus_per_run,
            num_cpus=num_cpus,
        )
    raise ValueError(f'executor must be "local" or "ray", got {name!r}.')


def run_sweep(
    sweep: ml_collections.ConfigDict,
    workdir: str | os.PathLike,
    *,
    only: str | Sequence[str] | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
    executor: LocalExecutor | RayExecutor | None = None,
    shard: str | Sequence[int] | None = None,
    stale_after_s: float = STALE_AFTER_S,
    retry_failed: bool = False,
    stop: Callable[[], bool] | None = None,
) -> dict:
    """Trains and evaluates every run of `sweep` not finished yet, each in its own folder.

    Finished runs (results.json of the same config) are skipped without loading anything;
    partial runs resume from their last checkpoint. A run that raises (a NaN loss, a dead
    worker, a damaged config.json or results.json without `overwrite`) is recorded as failed
    (<run>/failed.json) and the sweep goes on; a damaged claim.json or failed.json fails that
    run alone, naming the file. Runs whose failed.json was there when the sweep started are
    retried; a failure recorded during the sweep (by a peer) is reported, not retried, unless
    `retry_failed`. Progress lines give runs done / total and an ETA
    from the throughput of the runs trained so far. In a multi-process JAX job every process
    calls this with the same arguments (each run is one global program, trained without
    claims); process 0 writes and logs.

    Args:
      sweep: a sweep config (module docstring).
      workdir: the sweep folder; runs go to <workdir>/<task>/<encoding>.
      only: patterns selecting a subset of runs (see `select_runs`).
      overwrite: restart runs whose folder holds a different config instead of refusing.
      log: where progress lines go.
      executor: who trains (`pe_jax.sweep.make_executor`); None = this process, one run
        at a time. Every run is trained under its claim (<run>/claim.json), so several sweep
        processes on one workdir split the runs; runs another live process holds are left to it.
      shard: "i/n": only the selected runs whose index mod n is i (e.g. one SLURM array task).
      stale_after_s: a claim without heartbeat for this long is taken over.
      retry_failed: retry failed runs also when a peer failed them during this sweep.
      stop: polled between runs and steps; once True, no run starts, queued runs are
        cancelled and running ones checkpoint and stop (`StopOnSignals` for SIGINT/SIGTERM).

    Returns:
      {"trained": [names], "skipped": [names], "failed": {name: message},
       "claimed": [names held by other processes, or lost to them while training],
       "interrupted": [names stopped after a checkpoint], "cancelled": [names never started],
       "results": {name: results dict},
       "complete": whether every selected run of every shard is now finished or failed,
       "pending": {name: why it is not settled (who holds it)} for the selected runs}.

    Raises:
      ValueError: a bad sweep config, run config or `only`, or (without `overwrite`) selected
        runs whose folders hold a different config, before anything is written.
    """
    if not is_primary():  # every process runs the sweep; process 0 alone speaks
        log = _silent
    root = Path(workdir)
    runs = expand_sweep(sweep)
    selected = select_runs(runs, only)
    _check_configs(selected)
    conflicts = [] if overwrite else _conflicts(selected, root)
    if conflicts:
        raise ValueError(
            f"runs {conflicts} in {root} were started with a different config; use another "
            "workdir or pass overwrite=True (--overwrite) to restart them."
        )
    write_manifest(sweep, runs, root)

    # --- executors and claims (pe_jax.sweep._executors) ---
    in_shard = take_shard(selected, shard)
    multi_process = jax.process_count() > 1
    if multi_process and executor is not None:
        raise ValueError("executor: a multi-process JAX job trains every run together; omit it.")
    out = {
        "trained": [],
        "skipped": [],
        "failed": {},
        "claimed": [],
        "interrupted": [],
        "cancelled": [],
        "results": {},
    }
    to_train = []
    for run in in_shard:
        if is_finished(run, root):
            out["skipped"].append(run.name)
            out["results"][run.name] = read_results(run.workdir(root)).to_json()
        else:
            to_train.append(run)
    log(
        f"sweep {root}: {len(in_shard)} runs selected of {len(runs)}"
        + (f" (shard {shard})" if shard else "")
        + f", {len(out['skipped'])} finished earlier (skipped), {len(to_train)} to train"
    )
    progress = Progress(len(in_shard), len(out["skipped"]), len(to_train), log)
    claims = ClaimOptions(stale_after_s=stale_after_s, retry_failed=retry_failed)
    if multi_process:  # every process of the job trains every run together, unclaimed
        outcomes = train_together(to_train, root, overwrite, progress.started, log)
    else:
        executor = executor or LocalExecutor()
        # The failures there now are retried; those recorded later by peers are not.
        ids, damaged = known_failures(to_train, root)
        claims = dataclasses.replace(claims, known_failures=ids)
        for name, error in damaged.items():
            out["failed"][name] = error
            progress.record(Outcome(name, "failed", error))
        to_train = [run for run in to_train if run.name not in damaged]
        kwargs = {"stop": stop} if stop is not None else {}
        outcomes = executor.run(
            to_train,
            root,
            overwrite=overwrite,
            claims=claims,
            started=progress.started,
            log=log,
            **kwargs,
        )
    for outcome in outcomes:
        progress.record(outcome)
        if outcome.status == "trained" or outcome.status == "finished":
            key = "trained" if outcome.status == "trained" else "skipped"
            out[key].append(outcome.name)
            out["results"][outcome.name] = read_results(root / outcome.name).to_json()
        elif outcome.status == "failed":
            out["failed"][outcome.name] = outcome.error
        elif outcome.status in ("interrupted", "cancelled"):
            out[outcome.status].append(outcome.name)
        else:
            out["claimed"].append(outcome.name)
    out["complete"] = all(settled(run, root) for run in selected)
    out["pending"] = {
        run.name: why for run in in_shard if (why := pending(run, root, claims)) is not None
    }
    log(
        f"sweep {root}: {len(out['trained'])} trained, {len(out['skipped'])} skipped, "
        f"{len(out['failed'])} failed"
        + (f", {len(out['claimed'])} left to other processes" if out["claimed"] else "")
        + (f", {len(out['interrupted'])} interrupted" if out["interrupted"] else "")
        + (f", {len(out['cancelled'])} cancelled" if out["cancelled"] else "")
    )
    for name, why in out["pending"].items():
        log(f"  pending {name}: {why}")
    return out
