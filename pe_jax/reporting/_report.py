"""Everything a sweep folder reports, rebuilt from its results.json files alone."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from pe_jax.reporting._findings import findings, findings_markdown, gains, sensitivity
from pe_jax.reporting._pilot import write_pilot_report
from pe_jax.reporting._plots import plot_accuracy_vs_length, plot_ood_vs_cost
from pe_jax.reporting._published import published_section, published_sentences
from pe_jax.reporting._results import load_runs, missing_runs, read_manifest
from pe_jax.reporting._tables import markdown_report, write_csv
from pe_jax.reporting._verdicts import Rules, judge, judge_task, other_gate_rules
from pe_jax.runfiles import write_text_atomic

REPORT = "report.md"
CSV = "results.csv"
FINDINGS = "findings.md"
ACCURACY_PLOT = "accuracy_vs_length.png"
COST_PLOT = "ood_vs_cost.png"


def write_report(
    workdir: str | os.PathLike,
    *,
    out_dir: str | os.PathLike | None = None,
    metric: str | None = None,
    title: str | None = None,
    gate_threshold: float | None = None,
    extrapolation_threshold: float = 0.9,
    log: Callable[[str], None] = print,
) -> dict[str, Path]:
    """Writes report.md, findings.md, results.csv and the two PNG plots of `workdir`'s runs.

    Reads only results.json files (and the sweep manifest for order and unfinished runs), so a
    sweep can be re-reported at any time without retraining.

    Args:
      workdir: the sweep folder (<workdir>/<task>/<encoding>/results.json).
      out_dir: where to write; default `workdir`.
      metric: the metric of tables and plots; None = the manifest's choice, else per protocol
        (per-token accuracy for the encoder protocol, exact match for the decoder protocol).
      title: the report's first heading; default the manifest's name or the folder name.
      gate_threshold: the gate's bar in its metric; None = the sweep config's `gate` (in
        sweep.json), else the protocol's declared gate (`pe_jax.rules.GATES`).
      extrapolation_threshold: the exact match that defines the extrapolation length.
      log: where the summary line goes.

    Returns:
      {"report": ..., "findings": ..., "csv": ..., "accuracy_plot": ..., "cost_plot": ...}
      paths written. findings.md holds the findings, for docs to quote: report.md's Findings
      section, then the verdict on each claim the sweep config says a paper published
      (`sweep.published`: reproduced, contradicted or cannot tell, with its test).

    Raises:
      ValueError: `workdir` is not a folder or holds no finished run.
    """
    runs = load_runs(workdir)
    if not runs:
        raise ValueError(f"workdir {str(workdir)!r} holds no finished run (no results.json).")
    manifest = read_manifest(workdir) or {}
    metric = metric or manifest.get("metric") or None
    out = Path(out_dir or workdir)
    out.mkdir(parents=True, exist_ok=True)
    sweep = manifest.get("sweep_config") or {}
    gate = sweep.get("gate") or {}
    rules = Rules(
        metric=metric if metric in ("exact_match", "token_accuracy") else None,
        gate_metric=gate.get("metric") or None,
        gate_threshold=gate_threshold if gate_threshold is not None else gate.get("threshold"),
        extrapolation_threshold=extrapolation_threshold,
    )
    verdicts = judge(runs, rules)
    other = {
        task: judge_task(
            task, [v.run for v in tv.runs], other_gate_rules(rules, tv.runs[0].run.protocol)
        )
        for task, tv in verdicts.items()
    }
    sensitive = sensitivity(verdicts, other)
    paths = {
        "report": out / REPORT,
        "findings": out / FINDINGS,
        "csv": out / CSV,
        "accuracy_plot": out / ACCURACY_PLOT,
        "cost_plot": out / COST_PLOT,
    }
    write_csv(runs, paths["csv"], verdicts=verdicts)
    plot_accuracy_vs_length(runs, paths["accuracy_plot"], metric=metric, verdicts=verdicts)
    plot_ood_vs_cost(runs, paths["cost_plot"], metric=metric, verdicts=verdicts)
    spec = sweep.get("published")
    spec = spec if isinstance(spec, dict) else None  # a list: the older per-pair format
    published = published_sentences(spec, verdicts, min_seeds=rules.min_seeds)
    text = markdown_report(
        runs,
        title=title or manifest.get("name") or Path(workdir).resolve().name,
        metric=metric,
        images=[ACCURACY_PLOT, COST_PLOT],
        missing=missing_runs(workdir, runs),
        verdicts=verdicts,
        rules=rules,
        extra_findings=published,
        extra_sections=[
            published_section(spec, verdicts, min_seeds=rules.min_seeds),
            "## Gate sensitivity\n\nThe same runs with the gate in the other metric (the other "
            "protocol's declared gate):\n\n" + "\n".join(f"- {line}" for line in sensitive),
        ],
    )
    write_text_atomic(paths["report"], text)
    items = [*findings(verdicts, gains(verdicts)), *published]
    write_text_atomic(
        paths["findings"], findings_markdown(items, heading="# Findings", rules=rules) + "\n"
    )
    if sweep.get("pilot"):
        paths["pilot"] = write_pilot_report(
            runs,
            out,
            title=title or manifest.get("name") or "",
            rules=rules,
            missing=missing_runs(workdir, runs),
        )
    log(f"report of {len(runs)} runs written to {paths['report']}")
    return paths
