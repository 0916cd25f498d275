"""Reporting: tables, plots and findings from results.json files (and examples.npz).

Imports nothing else from pe_jax: it reads result files only.
"""

from pe_jax.reporting._findings import Gain, findings, findings_markdown, gains
from pe_jax.reporting._plots import accuracy_figure, plot_accuracy_vs_length, plot_ood_vs_cost
from pe_jax.reporting._quotes import quote_findings, quote_paths, quoted, stale_quotes
from pe_jax.reporting._report import write_report
from pe_jax.reporting._results import (
    Run,
    load_runs,
    missing_runs,
    read_manifest,
    tidy_rows,
)
from pe_jax.reporting._tables import (
    Row,
    markdown_report,
    markdown_table,
    summarize_task,
    write_csv,
)
from pe_jax.reporting._verdicts import (
    Comparison,
    Rules,
    RunVerdict,
    TaskVerdict,
    judge,
    judge_run,
    judge_task,
)

__all__ = [
    "Comparison",
    "Gain",
    "Row",
    "Rules",
    "RunVerdict",
    "TaskVerdict",
    "accuracy_figure",
    "findings",
    "findings_markdown",
    "gains",
    "judge",
    "judge_run",
    "judge_task",
    "Run",
    "load_runs",
    "markdown_report",
    "markdown_table",
    "missing_runs",
    "plot_accuracy_vs_length",
    "plot_ood_vs_cost",
    "quote_findings",
    "quote_paths",
    "quoted",
    "read_manifest",
    "stale_quotes",
    "summarize_task",
    "tidy_rows",
    "write_csv",
    "write_report",
]
