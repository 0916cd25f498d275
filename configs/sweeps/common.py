"""Building blocks of the sweep configs (not a sweep config itself)."""

from __future__ import annotations

import ml_collections

from pe_jax.rules import GATES


def encoding(label: str, name: str, **options) -> dict:
    """One entry of `sweep.encodings`: a folder-safe label, a registry name, its options."""
    return dict(label=label, name=name, options=options)


def published_numbers(
    table: dict[str, dict[str, tuple[float, float]]], *, seeds: int, source: str
) -> list[dict]:
    """Per-task published numbers, {task: {encoding: (mean, sd)}} over `seeds` seeds, as the
    entries of `sweep.published.numbers` (see pe_jax/reporting/_published.py): the report
    reads which pairs the paper orders on each task from them and judges each pair."""
    return [
        dict(task=task, encoding=enc, mean=mean, sd=sd, seeds=seeds, source=source)
        for task, row in table.items()
        for enc, (mean, sd) in row.items()
    ]


def fixed_budget(*, steps: int, learning_rates: tuple[float, ...], warmup_steps: int, **extra):
    """The `train` overrides of a reproduction rerun: every model trains `steps` steps (a fixed
    budget, as both papers train; `until` off), every seed at each of `learning_rates` in one
    program (the report picks a rate per encoding on in-distribution validation by its fixed
    rule), batch 32. The trainer's held-out gate runs every 100 steps and gives steps-to-gate,
    a metric that stops nothing. `extra` adds or replaces fields."""
    return {
        "steps": steps,  # the budget of every model
        "batch_size": 32,
        "learning_rates": tuple(learning_rates),
        "learning_rate": learning_rates[-1],  # unused when learning_rates is set
        "warmup_steps": warmup_steps,  # linear warmup, then the schedule's decay
        "until": None,  # fixed budget: the gate measures, it stops nothing
        "gate_every": 100,  # steps between gate evaluations (steps-to-gate)
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
    protocol: str | None = None,
    published: dict | None = None,
) -> ml_collections.ConfigDict:
    """The fields every sweep config has (see pe_jax/sweep/_sweep.py)."""
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
    # The report's learned-gate, declared before the runs: the protocol's own metric and bar
    # (pe_jax.rules.GATES), pooled over every training length and at the longest ones;
    # empty (a sweep over both protocols): each run's protocol's gate.
    c.gate = dict(GATES[protocol]) if protocol else {}
    # What the papers published, judged by the report: {"numbers": per-task numbers
    # (`published_numbers`), "aggregates": [{"kind", ..., "source"}]}; facts from the papers,
    # each with its source.
    c.published = published or {"numbers": [], "aggregates": []}
    # A pilot sweep (one seed per learning rate, the gate over the whole training range every
    # `gate_every` steps): its report adds steps-to-gate and each task's proposed budget.
    c.pilot = False
    return c


def pilot_gate(protocol: str) -> dict:
    """A pilot's `train` fields: the gate over every training length (the trainer clips the
    count to the training range), 128 held-out examples each (>= 1,000 in all for a range of 8
    lengths or more), every 250 steps. A pilot is no comparison: a model stops once its gate
    exact match reaches the protocol's bar (`until`), which saves the steps past
    steps-to-gate. Exact match >= t implies per-token accuracy >= t, so for the encoder
    protocol's per-token gate the stop is never early."""
    return {
        "gate_lengths": 1000,
        "gate_samples": 128,
        "gate_every": 250,
        "until": GATES[protocol]["threshold"],
    }
