"""Tables from finished runs: one row per (task, encoding) and per baseline, report.md, CSV."""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pe_jax.reporting._findings import (
    BASELINE_TITLES,
    comparisons_table,
    findings,
    findings_markdown,
    gains,
    gains_section,
    gate_phrase,
    rate_grid_table,
)
from pe_jax.reporting._format import format_rate
from pe_jax.reporting._results import METRICS, Run, default_metric, nearest_length, tidy_rows
from pe_jax.reporting._verdicts import DEFAULT_RULES, Rules, TaskVerdict, judge, judge_task
from pe_jax.runfiles import write_text_atomic

BASELINES = ("uniform", "majority", "input_blind")  # the rules of pe_jax.tasks.task_baselines
SPLITS = ("in", "out")

# Named lengths of the table: multiples of the longest training length.
LENGTH_FACTORS = (1, 2, 4)
METRIC_TITLES = {
    "token_accuracy": "per-token accuracy",
    "exact_match": "exact match",
    "loss": "loss",
}


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of a task's table: an encoding (its shown models) or a baseline rule.

    Accuracies are fractions in [0, 1]. `em` and `tok` map "in"/"out" to (mean, sample SD,
    CI low, CI high) over the shown models (a baseline has one value, SD 0, no CI);
    `at_length` maps a factor of the training length to (the nearest evaluated length, EM,
    token accuracy there). Baselines leave the model-only fields None.
    """

    task: str
    encoding: str
    kind: str  # "model" | "baseline"
    em: dict[str, tuple[float, float, float, float]]
    tok: dict[str, tuple[float, float, float, float]]
    at_length: dict[int, tuple[int, float, float]]
    gate: str = "—"
    learned: bool = True
    extrapolation: tuple[float, float, float] | None = None
    learning_rate: str = "—"
    relative_step_time: float | None = None
    num_params: int | None = None


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


def _named_lengths(lengths: np.ndarray, train_max: int) -> dict[int, int]:
    return {f: nearest_length(lengths, f * train_max) for f in LENGTH_FACTORS}


def _baseline_rows(tv: TaskVerdict, named: dict[int, int]) -> list[Row]:
    rows = []
    lengths = np.asarray(tv.baselines["lengths"])
    for rule in BASELINES:
        values = tv.baselines[rule]
        at_length = {}
        for factor, length in named.items():
            i = np.flatnonzero(lengths == length)
            at = (
                (values["exact_match"][i[0]], values["token_accuracy"][i[0]])
                if i.size
                else (
                    float("nan"),
                    float("nan"),
                )
            )
            at_length[factor] = (length, *at)
        em, tok = (
            {s: (tv.baseline_mean(rule, m, s), 0.0, float("nan"), float("nan")) for s in SPLITS}
            for m in ("exact_match", "token_accuracy")
        )
        rows.append(
            Row(tv.task, f"baseline: {BASELINE_TITLES[rule]}", "baseline", em, tok, at_length)
        )
    return rows


def summarize_task(
    runs: Sequence[Run], *, verdict: TaskVerdict | None = None, rules: Rules = DEFAULT_RULES
) -> list[Row]:
    """Summary rows of the runs of one task, in the given order, then its baselines.

    Numbers are over each run's counted models (learned, at the chosen learning rate); a run
    with none is shown over its models at the chosen rate, marked not learned.

    Raises:
      ValueError: a run lacks exact_match or token_accuracy.
    """
    for run in runs:
        missing = [m for m in ("exact_match", "token_accuracy") if m not in run.results.metrics]
        if missing:
            have = sorted(run.results.metrics)
            raise ValueError(f"metrics {missing} are not in {run.path}; it has {have}.")
    verdict = verdict or judge_task(runs[0].task, runs, rules)
    reference, _ = time_reference(runs)
    named = _named_lengths(runs[0].lengths, runs[0].train_max_length)
    rows = []
    for v in verdict.runs:
        run = v.run
        em, tok = run.metric("exact_match")[v.shown], run.metric("token_accuracy")[v.shown]
        at_length = {}
        for factor in LENGTH_FACTORS:
            length = nearest_length(run.lengths, factor * run.train_max_length)
            sel = run.lengths == length
            at_length[factor] = (length, float(em[:, sel].mean()), float(tok[:, sel].mean()))
        rate = format_rate(v.chosen_rate)
        rows.append(
            Row(
                task=run.task,
                encoding=run.encoding,
                kind="model",
                em={s: v.spread("exact_match", s) for s in SPLITS},
                tok={s: v.spread("token_accuracy", s) for s in SPLITS},
                at_length=at_length,
                gate=v.gate_label,
                learned=v.any_learned,
                extrapolation=v.extrapolation(),
                learning_rate=rate if len(v.rates) == 1 else f"{rate} (of {len(v.rates)})",
                relative_step_time=run.time_per_step_s / reference.time_per_step_s,
                num_params=run.num_params,
            )
        )
    if verdict.baselines:
        rows += _baseline_rows(verdict, named)
    return rows


def _pct(x: float) -> str:
    return "—" if x is None or math.isnan(x) else f"{100 * x:.1f}"


def _spread(cell: tuple[float, float, float, float], kind: str) -> str:
    mean, sd, _, _ = cell
    return _pct(mean) if kind == "baseline" else f"{_pct(mean)} ± {_pct(sd)}"


def _ci_cell(cell: tuple[float, float, float, float]) -> str:
    _, _, low, high = cell
    return "—" if math.isnan(low) else f"[{_pct(low)}, {_pct(high)}]"


def markdown_table(rows: Sequence[Row]) -> str:
    """A markdown table of summary rows; the best OOD EM mean among learned runs is in bold.

    Columns: encoding, gate (learned models, or ✗ not learned), exact match in distribution,
    OOD mean ± sample SD and its 95% bootstrap CI over seeds, per-token accuracy in
    distribution and OOD, EM / token accuracy at the lengths nearest 1x/2x/4x the training
    length, extrapolation length (x training length, 95% CI), learning rate, relative step
    time, parameter count. Baseline rows fill the metric columns only.
    """
    first = rows[0]
    seen, named = set(), []  # drop a factor whose nearest length repeats (grid too short)
    for f in LENGTH_FACTORS:
        length = first.at_length[f][0]
        if length not in seen:
            seen.add(length)
            named.append(f)
    header = (
        ["encoding", "gate", "EM in-dist. %", "EM OOD % (mean ± sd)", "EM OOD 95% CI"]
        + ["tok. in-dist. %", "tok. OOD % (mean ± sd)"]
        + [f"T={first.at_length[f][0]} ({f}x) EM / tok. %" for f in named]
        + ["extrap. (x train) [95% CI]", "lr", "step time (rel.)", "params"]
    )
    learned = [r.em["out"][0] for r in rows if r.kind == "model" and r.learned]
    learned = [x for x in learned if not math.isnan(x)]
    best = _pct(max(learned)) if learned else None
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for r in rows:
        ood = _spread(r.em["out"], r.kind)
        if r.kind == "model" and r.learned and _pct(r.em["out"][0]) == best:
            ood = f"**{ood}**"
        ext = "—"
        if r.extrapolation is not None:
            mean, low, high = r.extrapolation
            ext = f"{mean:.2f}x [{low:.2f}, {high:.2f}]"
        model = r.kind == "model"
        cells = (
            [r.encoding, r.gate, _pct(r.em["in"][0]), ood, _ci_cell(r.em["out"])]
            + [_pct(r.tok["in"][0]), _spread(r.tok["out"], r.kind)]
            + [f"{_pct(r.at_length[f][1])} / {_pct(r.at_length[f][2])}" for f in named]
            + [ext, r.learning_rate]
            + ([f"{r.relative_step_time:.2f}x", f"{r.num_params:,}"] if model else ["—", "—"])
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _model_line(run: Run, budgets: str) -> str:
    config = run.results.config
    model, train = config.get("model", {}), config.get("train", {})
    grid = list(dict.fromkeys(m["learning_rate"] for m in run.models))
    rates = format_rate(grid[0]) if len(grid) == 1 else "s " + ", ".join(map(format_rate, grid))
    return (
        f"{run.protocol} protocol; model of depth {model.get('num_layers')}, width "
        f"{model.get('width')}, {model.get('num_heads')} heads; batch "
        f"{train.get('batch_size')} at learning rate {rates}; steps trained: {budgets}; "
        f"trained on lengths {train.get('min_length')}..{run.train_max_length}, evaluated on "
        f"{int(run.lengths.min())}..{int(run.lengths.max())} ({len(run.lengths)} lengths, "
        f"{config.get('eval', {}).get('samples')} examples each); seeds {run.seeds}."
    )


def _budgets(verdict: TaskVerdict) -> str:
    """The steps the shown models trained, per encoding when they differ."""
    texts = {v.run.encoding: v.budget() for v in verdict.runs}
    if len(set(texts.values())) == 1:
        return next(iter(texts.values()))
    return "; ".join(f"{enc} {text}" for enc, text in texts.items())


def task_section(
    task: str,
    runs: Sequence[Run],
    *,
    metric: str | None = None,
    verdict: TaskVerdict | None = None,
    rules: Rules = DEFAULT_RULES,
) -> str:
    """The report.md section of one task: heading, setup, table, notes, rates, comparisons."""
    verdict = verdict or judge_task(task, runs, rules)
    metric = task_metric(runs, metric)
    rows = summarize_task(runs, verdict=verdict, rules=rules)
    ref, ref_name = time_reference(runs)
    first = runs[0]
    rules = verdict.runs[0].rules
    gate_v = verdict.runs[0]
    small = [
        v.run.encoding
        for v in verdict.runs
        if v.gate_examples is not None and v.gate_examples < rules.min_gate_examples
    ]
    notes = [
        "Exact match (EM) first, per-token accuracy (tok.) beside it, in percent. In-dist. = "
        f"mean over lengths <= {first.train_max_length}; OOD = mean over the longer evaluated "
        "lengths; then mean ± sample SD (ddof=1) over the learned models and a 95% t interval "
        "over seeds (the seed is the unit). Best OOD EM mean among learned encodings in bold.",
        f"Gate: a model is learned when its {gate_phrase(gate_v)} (the final evaluation's "
        "held-out examples); ✗ marks a run with no learned model, whose numbers are over all its "
        "models at the chosen rate and which enters no ordering or aggregate."
        + (
            f" The pooled test reads fewer than {rules.min_gate_examples:,} examples per model "
            f"for {', '.join(small)}."
            if small
            else ""
        ),
        f"Comparisons: each model's OOD mean of {METRIC_TITLES.get(verdict.metric)}, one t test "
        "over seeds per pair (paired when both sides hold the same learned seeds, Welch "
        "otherwise), Holm over the task's pairs.",
        f"Extrap.: the largest evaluated length up to which EM >= "
        f"{rules.extrapolation_threshold:g} at every length, divided by the training length "
        "(mean over learned models, 95% t interval).",
        "Baseline rows: no learning (uniform answer tokens; the majority input symbol; the "
        "best input-blind rule), Monte Carlo from the task's sampler.",
        f"Plotted metric: {METRIC_TITLES.get(metric, metric)} (`{metric}`).",
        "Step time: steady-state time per training step (all seeds in one program) relative "
        f"to {ref_name}, which took {1000 * ref.time_per_step_s:.1f} ms per step on "
        f"{ref.results.device_kind or '?'} ({ref.results.backend or '?'}); wall clock.",
    ]
    if verdict.learned_at_scale is False:
        notes.insert(
            0,
            "**Not learned at this scale**: no encoding beats the input-blind "
            "baseline in distribution; this task enters no ordering or aggregate.",
        )
    bullets = "\n".join(f"- {n}" for n in notes)
    parts = [f"## {task}", _model_line(first, _budgets(verdict)), markdown_table(rows), bullets]
    if any(len(v.rates) > 1 for v in verdict.runs):
        parts += [f"### Learning rates ({task})", rate_grid_table(verdict)]
    parts += [f"### Comparisons ({task})", comparisons_table(verdict)]
    return "\n\n".join(parts)


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
    verdicts: dict[str, TaskVerdict] | None = None,
    rules: Rules = DEFAULT_RULES,
    extra_findings: Sequence[str] = (),
    extra_sections: Sequence[str] = (),
) -> str:
    """The whole report.md: title, findings, one section per task, gains, images, unfinished.

    Args:
      runs: finished runs (see `load_runs`).
      title: the first heading.
      metric: the plotted metric; None = per protocol (`default_metric`).
      images: relative paths of PNGs to embed.
      missing: "task/encoding" names of planned runs without results.
      verdicts: `judge(runs, rules)`, if already computed.
      rules: the gate and extrapolation thresholds.
      extra_findings: sentences appended to the findings (the published claims' verdicts).
      extra_sections: markdown sections placed after the tasks (the published claims).
    """
    verdicts = verdicts or judge(runs, rules)
    gain_items = gains(verdicts)
    parts = [f"# {title}", "Generated from the runs' result files by pe_jax.reporting."]
    parts.append(findings_markdown([*findings(verdicts, gain_items), *extra_findings], rules=rules))
    parts += [
        task_section(t, rs, metric=metric, verdict=verdicts[t], rules=rules)
        for t, rs in group_by_task(runs).items()
    ]
    if gain_items:
        parts.append(gains_section(gain_items, next(iter(verdicts.values())).metric))
    parts += [section for section in extra_sections if section]
    if images:
        parts.append("## Plots")
        parts += [f"![{Path(p).stem}]({p})" for p in images]
    if missing:
        parts.append("## Not finished\n\n" + "\n".join(f"- {m}" for m in missing))
    return "\n\n".join(parts) + "\n"


def _gate_step(v, m: int):
    """A model's steps-to-gate for the CSV: the step, "never", or "" when not recorded."""
    if v.steps_to_gate is None:
        return ""
    value = v.steps_to_gate[m]
    return "never" if np.isnan(value) else int(value)


def write_csv(
    runs: Sequence[Run],
    path: str | os.PathLike,
    *,
    verdicts: dict[str, TaskVerdict] | None = None,
    rules: Rules = DEFAULT_RULES,
) -> Path:
    """Writes results.csv: one row per (task, encoding, model, length) (see `tidy_rows`) with
    kind "model", learned and selected (trained at the chosen learning rate) columns, then one
    row per (task, baseline rule, length) with kind "baseline"."""
    verdicts = verdicts or judge(runs, rules)
    rows = []
    for task, tv in verdicts.items():
        for v in tv.runs:
            for row in tidy_rows([v.run]):
                m = next(
                    i
                    for i, model in enumerate(v.run.models)
                    if (model["seed"], model["learning_rate"])
                    == (row["seed"], row["learning_rate"])
                )
                rows.append(
                    {"kind": "model", **row, "learned": bool(v.learned[m]),
                     "selected": bool(v.selected[m]), "steps_to_gate": _gate_step(v, m)}
                )  # fmt: skip
        if tv.baselines:
            train_max = tv.runs[0].run.train_max_length
            for rule in BASELINES:
                for i, length in enumerate(tv.baselines["lengths"]):
                    rows.append(
                        {
                            "kind": "baseline",
                            "task": task,
                            "encoding": f"baseline:{rule}",
                            "length": length,
                            "train_max_length": train_max,
                            "split": "in" if length <= train_max else "out",
                            **{m: tv.baselines[rule][m][i] for m in METRICS[:2]},
                        }
                    )
    path = Path(path)
    fields = list(rows[0]) if rows else ["kind", "task", "encoding", "seed", "length"]
    for row in rows:  # a run may lack a metric the first one has, or have one more
        fields += [k for k in row if k not in fields]
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())
    return path
