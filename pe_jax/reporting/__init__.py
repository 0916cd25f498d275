"""Reporting: tables and plots from results.json files, and the explorer's figures.

Imports nothing above it but `pe_jax.encodings` (whose pure functions the explorer plots).
"""

from pe_jax.reporting._explorer import (
    FIGURES,
    ExplorerFigure,
    WrittenFigure,
    explorer_pixels,
    plot_attention_maps,
    select_figures,
    write_explorer,
    write_index,
)
from pe_jax.reporting._plots import figure_pixels, plot_accuracy_vs_length, plot_ood_vs_cost
from pe_jax.reporting._report import write_report
from pe_jax.reporting._results import (
    Run,
    default_metric,
    load_runs,
    missing_runs,
    nearest_length,
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

__all__ = [
    "FIGURES",
    "ExplorerFigure",
    "WrittenFigure",
    "explorer_pixels",
    "plot_attention_maps",
    "select_figures",
    "write_explorer",
    "write_index",
    "Row",
    "Run",
    "default_metric",
    "figure_pixels",
    "load_runs",
    "markdown_report",
    "markdown_table",
    "missing_runs",
    "nearest_length",
    "plot_accuracy_vs_length",
    "plot_ood_vs_cost",
    "read_manifest",
    "summarize_task",
    "tidy_rows",
    "write_csv",
    "write_report",
]
