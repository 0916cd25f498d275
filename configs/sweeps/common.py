"""Building blocks of the sweep configs (not a sweep config itself)."""

from __future__ import annotations

import ml_collections


def encoding(label: str, name: str, **options) -> dict:
    """One entry of `sweep.encodings`: a folder-safe label, a registry name, its options."""
    return dict(label=label, name=name, options=options)


def sweep_config(
    *, name: str, tasks: list[dict], encodings: list[dict], seeds: tuple[int, ...]
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
    return c
