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


def to_criterion(*, learning_rates: tuple[float, ...], warmup_steps: int, **extra) -> dict:
    """The `train` overrides of a reproduction rerun: every seed at each of `learning_rates`
    in one program (the report picks a rate per encoding on in-distribution validation),
    trained to criterion (a model stops once the learned-gate's held-out exact match reaches
    0.99, checked every 100 steps) with a cap of 1,000 steps, batch 32; `extra` adds or
    replaces fields (e.g. `steps`, the cap)."""
    return {
        "steps": 1000,  # the cap, sized to this 2-core machine
        "batch_size": 32,
        "learning_rates": tuple(learning_rates),
        "learning_rate": learning_rates[-1],  # unused when learning_rates is set
        "warmup_steps": warmup_steps,  # linear warmup, then the schedule's decay
        "until": 0.99,  # stop a model once the gate's exact match reaches 0.99
        "gate_every": 100,  # steps between gate evaluations
        "log_every": 100,  # steps between progress lines
        "checkpoint_every": 200,  # steps between checkpoints (resume points)
        **extra,
    }


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
