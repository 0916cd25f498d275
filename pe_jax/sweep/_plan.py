"""A sweep's compute plan, before any long run: runs, models, steps, lengths, core-hours.

The estimate multiplies each run's steps by a measured CPU cost per training step
(`results.json`'s `cpu_seconds_per_step`: process CPU seconds of a step, all threads, without
compilation or pauses), so core-hours are what the run costs whatever else the machine does:

- from a calibration folder of finished runs (e.g. a pilot), matched by task then encoding
  label, scaled by the ratio of models (a step of M models costs about M / M' of one of M');
- else measured here: for each task, the first encoding's run config trains `measure_steps`
  steps in a temporary folder, evaluated at one length, and its results give the cost.

Compilation and evaluation are not in the estimate; the plan says so.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import ml_collections

from pe_jax.runfiles import RESULTS, DamagedFileError, read_results
from pe_jax.sweep._runs import SweepRun, expand_sweep
from pe_jax.training import settings_from_config, train_and_evaluate


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    """One run of the plan; `cpu_s_per_step` None when nothing measured it."""

    name: str
    models: int
    steps: int
    train_lengths: tuple[int, int]
    eval_lengths: tuple[int, int, int]  # count, min, max
    cpu_s_per_step: float | None
    source: str

    @property
    def core_hours(self) -> float | None:
        if self.cpu_s_per_step is None:
            return None
        return self.steps * self.cpu_s_per_step / 3600.0


def _shape(run: SweepRun) -> tuple[int, int, tuple[int, int], tuple[int, int, int]]:
    s = settings_from_config(run.config)
    lengths = tuple(s.eval_lengths)
    return (
        len(s.models),
        s.steps,
        (s.min_length, s.max_length),
        (len(lengths), min(lengths), max(lengths)),
    )


def _calibration(folder: str | os.PathLike | None) -> dict[tuple[str, str], tuple[float, int]]:
    """{(task, encoding): (CPU seconds per step, models)} of the finished runs under `folder`."""
    out = {}
    if folder is None:
        return out
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"calibration folder {str(root)!r} is not a folder.")
    for path in sorted(root.rglob(RESULTS)):
        try:
            results = read_results(path)
        except DamagedFileError:
            continue
        cost = results.cpu_seconds_per_step
        if cost is None:
            continue
        rel = path.parent.relative_to(root).parts
        if len(rel) >= 2:
            models = len(results.models or results.seeds)
            out[(rel[0], "/".join(rel[1:]))] = (float(cost), models)
    return out


def measure_cost(run: SweepRun, *, steps: int = 20, log: Callable[[str], None] = print) -> float:
    """CPU seconds per training step of `run`'s config, measured over `steps` steps (after the
    first, which compiles) in a temporary folder, evaluated at one length only."""
    config = ml_collections.ConfigDict(run.config.to_dict())
    config.train.steps = steps + 1
    config.train.gate_every = steps + 1
    config.train.log_every = steps + 1
    config.train.checkpoint_every = steps + 1
    config.eval.lengths = (int(config.train.max_length),)
    with tempfile.TemporaryDirectory() as tmp:
        results = train_and_evaluate(config, Path(tmp) / "run", log=lambda _: None)
    cost = results.get("cpu_seconds_per_step")
    if cost is None:
        raise ValueError(f"run {run.name}: no CPU time per step was recorded in {steps} steps.")
    log(f"measured {run.name}: {cost:.3f} CPU s per step ({steps} steps)")
    return float(cost)


def plan_sweep(
    sweep: ml_collections.ConfigDict,
    *,
    calibration: str | os.PathLike | None = None,
    measure_steps: int = 0,
    only: Sequence[SweepRun] | None = None,
    log: Callable[[str], None] = print,
) -> list[PlannedRun]:
    """The plan of `sweep`'s runs (or `only` of them): shape and estimated CPU cost of each.

    Args:
      sweep: a sweep config.
      calibration: a folder of finished runs whose measured costs the plan scales.
      measure_steps: > 0: measure each task's cost (its first run) where no calibration
        covers it; 0: leave such runs unestimated.
      only: the runs to plan; default every run of the sweep.
    """
    runs = list(only) if only is not None else expand_sweep(sweep)
    known = _calibration(calibration)
    measured: dict[str, tuple[float, int]] = {}
    out = []
    for run in runs:
        models, steps, train, evaluation = _shape(run)
        cost, source = None, "not measured"
        same_task = [v for (t, _), v in known.items() if t == run.task]
        if (run.task, run.encoding) in known:
            cost, source = known[(run.task, run.encoding)], "calibration: this run"
        elif same_task:
            mean = sum(c for c, _ in same_task) / len(same_task)
            cost = (mean, round(sum(m for _, m in same_task) / len(same_task)))
            source = "calibration: mean of the task's runs"
        elif measure_steps > 0:
            if run.task not in measured:
                measured[run.task] = (measure_cost(run, steps=measure_steps, log=log), models)
            cost, source = measured[run.task], "measured here: the task's first run"
        per_step = None if cost is None else cost[0] * models / cost[1]
        out.append(PlannedRun(run.name, models, steps, train, evaluation, per_step, source))
    return out


def plan_markdown(plan: Sequence[PlannedRun], *, workers: int = 1) -> str:
    """The plan as a table and a total: core-hours and wall hours on `workers` cores."""
    lines = [
        "| run | models | steps | train lengths | eval lengths (n, min..max) | CPU s/step | "
        "core-hours | source |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in plan:
        cost = "—" if p.cpu_s_per_step is None else f"{p.cpu_s_per_step:.3f}"
        hours = "—" if p.core_hours is None else f"{p.core_hours:.2f}"
        lines.append(
            f"| {p.name} | {p.models} | {p.steps} | {p.train_lengths[0]}..{p.train_lengths[1]} | "
            f"{p.eval_lengths[0]}, {p.eval_lengths[1]}..{p.eval_lengths[2]} | {cost} | {hours} | "
            f"{p.source} |"
        )
    known = [p.core_hours for p in plan if p.core_hours is not None]
    total = sum(known)
    missing = len(plan) - len(known)
    lines += [
        "",
        f"Total: {len(plan)} runs, {sum(p.models for p in plan)} models, "
        f"{sum(p.models * p.steps for p in plan):,} model-steps; training "
        f"{total:.2f} core-hours"
        + (f" for the {len(known)} runs measured ({missing} not measured)" if missing else "")
        + f", {total / max(workers, 1):.2f} h on {workers} core(s); compilation and "
        "evaluation not included.",
    ]
    return "\n".join(lines)


def total_core_hours(plan: Sequence[PlannedRun]) -> float:
    return math.fsum(p.core_hours for p in plan if p.core_hours is not None)
