"""Building blocks of the sweep configs (not a sweep config itself)."""

from __future__ import annotations

import ml_collections


def encoding(label: str, name: str, **options) -> dict:
    """One entry of `sweep.encodings`: a folder-safe label, a registry name, its options."""
    return dict(label=label, name=name, options=options)


def published(better: str, worse: str, source: str, tasks: tuple[str, ...] = ("*",)) -> dict:
    """One ordering a paper reports (`better` generalizes further than `worse`), judged by the
    report on each of `tasks` ("*" = every task of the sweep): reproduced, contradicted or
    cannot tell (see pe_jax/reporting/_published.py)."""
    return dict(better=better, worse=worse, source=source, tasks=list(tasks))


def sweep_config(
    *,
    name: str,
    tasks: list[dict],
    encodings: list[dict],
    seeds: tuple[int, ...],
    published_orderings: tuple[dict, ...] = (),
) -> ml_collections.ConfigDict:
    """The fields every sweep config has (see pe_jax/training/_sweep.py)."""
    c = ml_collections.ConfigDict()
    c.name = name  # the report's title
    c.tasks = tasks  # [{"label", "config": experiment ConfigDict from configs/<task>.py}]
    c.encodings = encodings  # [{"label", "name", "options"}]: one run per task and encoding
    c.seeds = seeds  # seeds of every run, trained together in one program
    # Nested {section: {field: value}} set in every run's config after the task's own
    # fields; a field present here can also be changed on the command line,
    # e.g. --config.overrides.train.steps=100.
    c.overrides = ml_collections.ConfigDict()
    c.metric = ""  # metric of the report's tables and plots; "" = per protocol
    # Orderings the published papers report ({"better", "worse", "source", "tasks"}), which
    # the report judges against these runs; facts from the papers, each with its source.
    c.published = list(published_orderings)
    return c
