"""Sweeps: the cross product tasks x encodings, each run (all seeds in one program) trained by
`train_and_evaluate` in its own folder <workdir>/<task>/<encoding>.

A sweep config (see configs/sweeps/quick.py) is an ml_collections ConfigDict with:
  name       the report's title.
  tasks      [{"label": str, "config": <experiment ConfigDict from configs/<task>.py>}].
  encodings  [{"label": str, "name": <registry name>, "options": {...}, "overrides": {...}}]
             ("options" and "overrides" optional).
  seeds      seeds of every run, trained together.
  overrides  nested {section: {field: value}} applied to every run's config.
  metric     the report's metric ("" = per protocol).
Nothing here reports: pe_jax.reporting.write_report(workdir) reads the results afterwards.
"""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import ml_collections

from pe_jax import runfiles
from pe_jax.runfiles import CONFIG, RESULTS, DamagedFileError, read_json, read_results
from pe_jax.sweep._claims import STALE_AFTER_S
from pe_jax.sweep._executors import (
    ClaimOptions,
    LocalExecutor,
    Outcome,
    Progress,
    known_failures,
    pending,
    settled,
    take_shard,
    train_together,
)
from pe_jax.sweep._ray_executor import RayExecutor
from pe_jax.training import check_config, is_primary, set_field

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=-]*$")


@dataclasses.dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: a task label, an encoding label and the full experiment config."""

    task: str
    encoding: str
    config: ml_collections.ConfigDict

    @property
    def name(self) -> str:
        """The run's sub-folder "task/encoding", also the name `--only` matches."""
        return f"{self.task}/{self.encoding}"

    def workdir(self, root: str | os.PathLike) -> Path:
        return Path(root) / self.task / self.encoding


def _check_label(where: str, label) -> str:
    if not isinstance(label, str) or not _LABEL.match(label):
        raise ValueError(
            f"{where} must be a folder-safe label (letters, digits, _ . + = -), got {label!r}."
        )
    return label


def _merge(config: ml_collections.ConfigDict, overrides, where: str) -> None:
    """Sets the fields of nested mapping `overrides` in `config` with `set_field`.

    task_options and encoding_options are free-form: an override replaces their entries.
    Unknown fields and values their field does not allow are errors naming `where`.
    """
    for key, value in overrides.items():
        current = config.get(key) if key in config else None
        if isinstance(current, ml_collections.ConfigDict) and hasattr(value, "items"):
            if key in ("task_options", "encoding_options"):
                value = {**current.to_dict(), **dict(value.items())}
            else:
                _merge(current, value, f"{where}.{key}")
                continue
        set_field(config, key, value, where=where)


def expand_sweep(sweep: ml_collections.ConfigDict) -> list[SweepRun]:
    """The runs of a sweep config, task-major in the listed order.

    Each run's config is a copy of its task's config with `sweep.overrides`, then the
    encoding's `overrides`, then model.encoding / model.encoding_options and seeds set.

    Raises:
      ValueError: a missing or empty field, a duplicate or unsafe label, an unknown field in
        an override; each naming where (e.g. `sweep.encodings[2].label`).
    """
    for field in ("tasks", "encodings", "seeds"):
        if field not in sweep or not sweep[field]:
            raise ValueError(f"sweep.{field} must be a non-empty list, got {sweep.get(field)!r}.")
    seeds = tuple(int(s) for s in sweep.seeds)
    common = sweep.get("overrides") or {}
    tasks = []
    for i, task in enumerate(sweep.tasks):
        label = _check_label(f"sweep.tasks[{i}].label", task.get("label"))
        if not isinstance(task.get("config"), ml_collections.ConfigDict):
            raise ValueError(
                f"sweep.tasks[{i}].config must be an experiment ConfigDict (from "
                f"configs/<task>.py get_config), got {type(task.get('config')).__name__}."
            )
        tasks.append((label, task["config"]))
    encodings = []
    for j, enc in enumerate(sweep.encodings):
        label = _check_label(f"sweep.encodings[{j}].label", enc.get("label"))
        if not isinstance(enc.get("name"), str):
            raise ValueError(f"sweep.encodings[{j}].name must be a registry name, got {enc!r}.")
        encodings.append((j, label, enc))
    for kind, labels in (
        ("tasks", [t for t, _ in tasks]),
        ("encodings", [e[1] for e in encodings]),
    ):
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(f"sweep.{kind} labels must be unique, got duplicates {dupes}.")

    runs = []
    for task_label, base in tasks:
        for j, label, enc in encodings:
            config = copy.deepcopy(base)
            _merge(config, common, "sweep.overrides")
            _merge(config, enc.get("overrides") or {}, f"sweep.encodings[{j}].overrides")
            where = f"sweep.encodings[{j}]"
            set_field(config, "model.encoding", enc["name"], where=where)
            set_field(config, "model.encoding_options", dict(enc.get("options") or {}), where=where)
            set_field(config, "seeds", seeds, where="sweep")
            runs.append(SweepRun(task=task_label, encoding=label, config=config))
    return runs


def select_runs(runs: Sequence[SweepRun], only: str | Sequence[str] | None) -> list[SweepRun]:
    """The runs matching any of the `only` patterns (all runs when None or empty).

    A pattern is an fnmatch pattern over "task/encoding" ("reverse/rope", "*/alibi"); one
    without "/" matches a run whose task label or encoding label matches it ("rope", "copy").

    Raises:
      ValueError: a pattern that matches no run (a typo would otherwise run nothing).
    """
    if isinstance(only, str):
        only = [p.strip() for p in only.split(",")]
    patterns = [p for p in (only or []) if p]
    if not patterns:
        return list(runs)

    def matches(run: SweepRun, pattern: str) -> bool:
        if "/" in pattern:
            return fnmatch.fnmatchcase(run.name, pattern)
        return fnmatch.fnmatchcase(run.task, pattern) or fnmatch.fnmatchcase(run.encoding, pattern)

    for pattern in patterns:
        if not any(matches(r, pattern) for r in runs):
            raise ValueError(
                f"only: pattern {pattern!r} matches no run; runs are {[r.name for r in runs]}."
            )
    return [r for r in runs if any(matches(r, p) for p in patterns)]


def _config_json(config: ml_collections.ConfigDict) -> dict:
    return json.loads(config.to_json())


def is_finished(run: SweepRun, root: str | os.PathLike) -> bool:
    """Whether the run's folder holds results.json of exactly this config (a damaged one is
    not finished: `train_and_evaluate` names it, or replaces it under overwrite)."""
    path = run.workdir(root) / RESULTS
    try:
        return path.exists() and read_results(path).config == _config_json(run.config)
    except DamagedFileError:
        return False


def _conflicts(runs: Sequence[SweepRun], root: Path) -> list[str]:
    """Runs whose folder already holds a different config (train_and_evaluate would refuse).

    A damaged config.json is no conflict here: that run alone is reported as damaged.
    """
    bad = []
    for run in runs:
        saved = run.workdir(root) / CONFIG
        try:
            if saved.exists() and read_json(saved) != _config_json(run.config):
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


def refresh_manifest(sweep: ml_collections.ConfigDict, workdir: str | os.PathLike) -> None:
    """Rewrites <workdir>/sweep.json from `sweep` without training: e.g. after the config's
    report fields (name, metric, published orderings) changed while its runs were training.

    Raises:
      ValueError: a bad sweep config, or `workdir` is not a folder.
    """
    root = Path(workdir)
    if not root.is_dir():
        raise ValueError(f"workdir {str(workdir)!r} is not a folder.")
    write_manifest(sweep, expand_sweep(sweep), root)


def _silent(_: str) -> None:
    pass


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
    # --- end executors and claims ---
