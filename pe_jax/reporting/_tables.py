"""Tables from finished runs: one summary row per (task, encoding), report.md and results.csv."""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pe_jax.reporting._results import Run, default_metric, nearest_length, tidy_rows

# Named lengths of the table: multiples of the longest training length.
LENGTH_FACTORS = (1, 2, 4)
METRIC_TITLES = {
    "token_accuracy": "per-token accuracy",
    "exact_match": "exact match",
    "loss": "loss",
}


@dataclasses.dataclass(frozen=True)
class Row:
    """The numbers of one encoding in one task (means and spreads over seeds).

    Accuracies are fractions in [0, 1]; `at_length` maps a factor of the training length to
    (the nearest evaluated length, the mean over seeds there).
    """

    task: str
    encoding: str
    encoding_name: str
    num_seeds: int
    in_distribution: float
    ood_per_seed: tuple[float, ...]
    at_length: dict[int, tuple[int, float]]
    time_per_step_s: float
    relative_step_time: float
    num_params: int

    @property
    def ood_mean(self) -> float:
        return float(np.mean(self.ood_per_seed))

    @property
    def ood_std(self) -> float:
        """Population standard deviation over seeds (ddof=0; 0 for one seed)."""
        return float(np.std(self.ood_per_seed))


def task_metric(runs: Sequence[Run], metric: str | None) -> str:
    """`metric`, or the metric the runs' protocol publishes when None."""
    return metric or default_metric(runs[0].protocol)


def time_reference(runs: Sequence[Run]) -> tuple[Run, str]:
    """The run step times are divided by: NoPE ("none") if present, else the fastest run.

    Returns:
      (the reference run, a phrase naming it for the table's note).
    """
    nope = [r for r in runs if r.encoding_name == "none" and not r.encoding_options]
    if nope:
        return nope[0], f"NoPE ({nope[0].encoding})"
    fastest = min(runs, key=lambda r: r.time_per_step_s)
    return fastest, f"the fastest encoding ({fastest.encoding}; no NoPE run in this task)"


def summarize_task(runs: Sequence[Run], *, metric: str) -> list[Row]:
    """Summary rows of the runs of one task, in the given order.

    Raises:
      ValueError: a run lacks `metric`.
    """
    reference, _ = time_reference(runs)
    rows = []
    for run in runs:
        if metric not in run.results.metrics:
            have = sorted(run.results.metrics)
            raise ValueError(f"metric {metric!r} is not in {run.path}; it has {have}.")
        values = run.metric(metric)  # [S, n]
        lengths = run.lengths
        at_length = {}
        for factor in LENGTH_FACTORS:
            length = nearest_length(lengths, factor * run.train_max_length)
            at_length[factor] = (length, float(values[:, lengths == length].mean()))
        rows.append(
            Row(
                task=run.task,
                encoding=run.encoding,
                encoding_name=run.encoding_name,
                num_seeds=len(run.seeds),
                in_distribution=float(np.mean(run.summary(metric, "in_distribution"))),
                ood_per_seed=tuple(run.summary(metric, "out_of_distribution").tolist()),
                at_length=at_length,
                time_per_step_s=run.time_per_step_s,
                relative_step_time=run.time_per_step_s / reference.time_per_step_s,
                num_params=run.num_params,
            )
        )
    return rows


def _pct(x: float) -> str:
    return "—" if math.isnan(x) else f"{100 * x:.1f}"


def markdown_table(rows: Sequence[Row]) -> str:
    """A markdown table of summary rows; the best mean OOD value is in bold.

    Columns: encoding, in-distribution %, OOD % (mean ± std over seeds), the metric at the
    lengths nearest 1x/2x/4x the training length, relative step time, parameter count.
    """
    first = rows[0]
    # Drop a factor whose nearest evaluated length repeats an earlier one (grid too short).
    seen, named = set(), []
    for f in LENGTH_FACTORS:
        length = first.at_length[f][0]
        if length not in seen:
            seen.add(length)
            named.append(f)
    header = (
        ["encoding", "in-dist. %", "OOD % (mean ± std)"]
        + [f"T={first.at_length[f][0]} ({f}x) %" for f in named]
        + ["step time (rel.)", "params"]
    )
    ood = [r.ood_mean for r in rows if not math.isnan(r.ood_mean)]
    best = _pct(max(ood)) if ood else None
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for r in rows:
        cell = f"{_pct(r.ood_mean)} ± {_pct(r.ood_std)}"
        if best is not None and _pct(r.ood_mean) == best:
            cell = f"**{cell}**"
        cells = (
            [r.encoding, _pct(r.in_distribution), cell]
            + [_pct(r.at_length[f][1]) for f in named]
            + [f"{r.relative_step_time:.2f}x", f"{r.num_params:,}"]
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _model_line(run: Run) -> str:
    config = run.results.config
    model, train = config.get("model", {}), config.get("train", {})
    return (
        f"{run.protocol} protocol; model of depth {model.get('num_layers')}, width "
        f"{model.get('width')}, {model.get('num_heads')} heads; {train.get('steps')} steps of "
        f"batch {train.get('batch_size')} at learning rate {train.get('learning_rate')}; "
        f"trained on lengths {train.get('min_length')}..{run.train_max_length}, evaluated on "
        f"{int(run.lengths.min())}..{int(run.lengths.max())} ({len(run.lengths)} lengths, "
        f"{config.get('eval', {}).get('samples')} examples each); seeds {run.seeds}."
    )


def task_section(task: str, runs: Sequence[Run], *, metric: str | None = None) -> str:
    """The report.md section of one task: a heading, the setup, the table and its notes."""
    metric = task_metric(runs, metric)
    rows = summarize_task(runs, metric=metric)
    ref, ref_name = time_reference(runs)
    first = runs[0]
    notes = [
        f"Metric: {METRIC_TITLES.get(metric, metric)} (`{metric}`), in percent. In-dist. = mean "
        f"over lengths <= {first.train_max_length}; OOD = mean over the longer evaluated "
        "lengths, then mean ± standard deviation (ddof=0) over seeds; best OOD mean in bold.",
        "Step time: steady-state time per training step (all seeds in one program) relative "
        f"to {ref_name}, which took {1000 * ref.time_per_step_s:.1f} ms per step on "
        f"{ref.results.device_kind or '?'} ({ref.results.backend or '?'}).",
    ]
    bullets = "\n".join(f"- {n}" for n in notes)
    return f"## {task}\n\n{_model_line(first)}\n\n{markdown_table(rows)}\n\n{bullets}"


def group_by_task(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Runs grouped by task label, keeping their order."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.task, []).append(run)
    return groups


def markdown_report(
    runs: Sequence[Run],
    *,
    title: str,
    metric: str | None = None,
    images: Sequence[str] = (),
    missing: Sequence[str] = (),
) -> str:
    """The whole report.md: a title, one section per task, the images, unfinished runs.

    Args:
      runs: finished runs (see `load_runs`).
      title: the first heading.
      metric: the metric of every table; None = per protocol (`default_metric`).
      images: relative paths of PNGs to embed.
      missing: "task/encoding" names of planned runs without results.
    """
    parts = [f"# {title}", "Generated from the runs' results.json files by pe_jax.reporting."]
    parts += [task_section(t, rs, metric=metric) for t, rs in group_by_task(runs).items()]
    if images:
        parts.append("## Plots")
        parts += [f"![{Path(p).stem}]({p})" for p in images]
    if missing:
        parts.append("## Not finished\n\n" + "\n".join(f"- {m}" for m in missing))
    return "\n\n".join(parts) + "\n"


def write_csv(runs: Sequence[Run], path: str | os.PathLike) -> Path:
    """Writes results.csv: one row per (task, encoding, seed, length); see `tidy_rows`."""
    rows = tidy_rows(list(runs))
    path = Path(path)
    fields = list(rows[0]) if rows else ["task", "encoding", "seed", "length"]
    for row in rows:  # a run may lack a metric the first one has, or have one more
        fields += [k for k in row if k not in fields]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path
