"""Pilot sweeps: steps-to-gate per run, curves, and each task's proposed fixed budget.

A pilot (a reproduction config's "pilot" arg) trains one seed per (task, encoding) at each
learning rate of the grid to a maximum budget, with the trainer's held-out gate measured every
`gate_every` steps over the whole training range (`train.gate_lengths` covers every training
length). From its gate records alone:

- steps-to-gate of each model: the first gate step whose score, in the protocol's own metric,
  reaches the gate's bar (`pe_jax.rules.GATES`);
- per (task, encoding): the fastest learning rate's steps-to-gate;
- per task: the proposed budget, the slowest encoding's steps-to-gate times `margin`, rounded
  up to the gate interval and capped by `max_steps` (the compute plan's cap);
- the encodings (and tasks) that stay out of reach within the pilot's budget, with the best
  score they reached and when.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pe_jax.reporting._format import format_rate
from pe_jax.reporting._plots import save_figure
from pe_jax.reporting._results import Run
from pe_jax.reporting._verdicts import DEFAULT_RULES, Rules
from pe_jax.runfiles import read_gate_records, write_text_atomic

PILOT = "pilot.md"
PILOT_PLOT = "pilot_curves"  # .png and .pdf


@dataclasses.dataclass(frozen=True)
class PilotRun:
    """One pilot run's gate curve per model.

    Attributes:
      run: the run.
      metric, threshold: the gate.
      steps: [G] the gate's steps.
      scores: [M, G] each model's gate score at those steps.
    """

    run: Run
    metric: str
    threshold: float
    steps: np.ndarray
    scores: np.ndarray

    def steps_to_gate(self) -> np.ndarray:
        """float [M]: the first gate step at or above the bar (NaN: never)."""
        passed = self.scores >= self.threshold
        first = np.argmax(passed, axis=1)
        return np.where(passed.any(1), self.steps[first], np.nan).astype(np.float64)

    def fastest(self) -> tuple[float, object]:
        """(steps-to-gate of the fastest model, its learning rate); NaN when none passes."""
        reached = self.steps_to_gate()
        if np.isnan(reached).all():
            return float("nan"), None
        m = int(np.nanargmin(reached))
        return float(reached[m]), self.run.models[m]["learning_rate"]

    def best(self) -> tuple[float, int, object]:
        """(best score any model reached, at which step, the model's learning rate)."""
        m, g = np.unravel_index(int(np.argmax(self.scores)), self.scores.shape)
        return float(self.scores[m, g]), int(self.steps[g]), self.run.models[m]["learning_rate"]


def pilot_runs(runs: Sequence[Run], rules: Rules = DEFAULT_RULES) -> list[PilotRun]:
    """The runs that have gate records, with their curves in the gate's metric."""
    out = []
    for run in runs:
        records = read_gate_records(run.path.parent)
        metric, threshold = rules.gate(run.protocol)
        records = [r for r in records if len(r.get(metric) or []) == len(run.models)]
        if not records:
            continue
        steps = np.array([r["step"] for r in records])
        scores = np.array([r[metric] for r in records], np.float64).T  # [M, G]
        out.append(PilotRun(run, metric, threshold, steps, scores))
    return out


@dataclasses.dataclass(frozen=True)
class Budget:
    """A task's proposed fixed budget and why."""

    task: str
    steps: int | None  # None: no encoding reached the gate
    slowest: str  # the encoding that sets it
    out_of_reach: list[str]  # "encoding: best 0.83 at step 3000 (lr 0.002)"
    cap: int


def propose_budgets(
    pilots: Sequence[PilotRun], *, margin: float = 1.25, max_steps: int | None = None
) -> list[Budget]:
    """Each task's budget: the slowest encoding's steps-to-gate x `margin`, rounded up to the
    gate interval, capped at `max_steps` (default: the pilot's own budget)."""
    if margin < 1.0:
        raise ValueError(f"margin must be >= 1, got {margin!r}.")
    tasks: dict[str, list[PilotRun]] = {}
    for p in pilots:
        tasks.setdefault(p.run.task, []).append(p)
    out = []
    for task, group in tasks.items():
        cap = max_steps or max(int(p.run.results.steps) for p in group)
        reached, missing = {}, []
        for p in group:
            steps, _ = p.fastest()
            if math.isnan(steps):
                score, step, rate = p.best()
                missing.append(
                    f"{p.run.encoding}: best {score:.3f} at step {step} (lr {format_rate(rate)})"
                )
            else:
                reached[p.run.encoding] = steps
        if not reached:
            out.append(Budget(task, None, "", missing, cap))
            continue
        slowest = max(reached, key=reached.get)
        interval = int(np.min(np.diff(group[0].steps))) if len(group[0].steps) > 1 else 1
        budget = math.ceil(reached[slowest] * margin / interval) * interval
        out.append(Budget(task, min(budget, cap), slowest, missing, cap))
    return out


def pilot_markdown(
    pilots: Sequence[PilotRun],
    budgets: Sequence[Budget],
    *,
    title: str,
    missing: Sequence[str] = (),
) -> str:
    """pilot.md: steps-to-gate per run and learning rate, the proposed budgets, out of reach."""
    lines = [
        f"# {title}: pilot",
        "",
        "Generated by pe_jax.reporting from the pilot runs' gate records (one seed per "
        "learning rate). Steps-to-gate: the first gate evaluation at which a model's held-out "
        "score, in the protocol's own metric, reached the gate's bar.",
        "",
        "| task | encoding | gate | learning rate | steps-to-gate | best score (step) |",
        "|---|---|---|---|---|---|",
    ]
    for p in pilots:
        reached = p.steps_to_gate()
        for m, model in enumerate(p.run.models):
            g = int(np.argmax(p.scores[m]))
            cell = "—" if np.isnan(reached[m]) else f"{int(reached[m])}"
            lines.append(
                f"| {p.run.task} | {p.run.encoding} | {p.metric} >= {p.threshold:g} | "
                f"{format_rate(model['learning_rate'])} | {cell} | "
                f"{p.scores[m, g]:.3f} ({int(p.steps[g])}) |"
            )
    lines += [
        "",
        "## Proposed budgets",
        "",
        "The slowest encoding's steps-to-gate (at its fastest learning rate) with a margin, "
        "rounded up to the gate interval and capped by the pilot's budget.",
        "",
    ]
    for b in budgets:
        left = [m.split("/", 1)[1] for m in missing if m.split("/", 1)[0] == b.task]
        partial = f" So far: {', '.join(left)} not finished yet." if left else ""
        if b.steps is None:
            lines.append(
                f"- {b.task}: out of reach at this scale — no encoding reached the gate within "
                f"{b.cap} steps ({'; '.join(b.out_of_reach)}).{partial}"
            )
            continue
        capped = " at the cap" if b.steps == b.cap else ""
        text = f"- {b.task}: {b.steps} steps{capped} (set by {b.slowest})"
        if b.out_of_reach:
            text += f"; never reached the gate within {b.cap} steps: " + "; ".join(b.out_of_reach)
        lines.append(text + "." + partial)
    done = {b.task for b in budgets}
    waiting = sorted({m.split("/", 1)[0] for m in missing} - done)
    if waiting:
        lines.append(f"- Not started or not finished: {', '.join(waiting)}.")
    return "\n".join(lines) + "\n"


def plot_pilot(pilots: Sequence[PilotRun], path: str | os.PathLike, *, dpi: int = 200) -> None:
    """One panel per task: each model's gate score against steps, the bar dashed; writes
    `path`.png and `path`.pdf."""
    tasks: dict[str, list[PilotRun]] = {}
    for p in pilots:
        tasks.setdefault(p.run.task, []).append(p)
    cols = min(3, max(1, len(tasks)))
    rows = math.ceil(len(tasks) / cols) if tasks else 1
    fig = Figure(figsize=(5.0 * cols, 3.6 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    for i, (task, group) in enumerate(tasks.items()):
        ax = fig.add_subplot(rows, cols, i + 1)
        for j, p in enumerate(group):
            color = f"C{j % 10}"
            for m, model in enumerate(p.run.models):
                ax.plot(
                    p.steps,
                    p.scores[m],
                    color=color,
                    linestyle=("-", "--", ":", "-.")[m % 4],
                    label=f"{p.run.encoding} lr {format_rate(model['learning_rate'])}",
                )
        ax.axhline(group[0].threshold, color="0.3", linestyle=(0, (1, 1)), lw=1.0)
        ax.set_title(f"{task} (gate {group[0].metric} >= {group[0].threshold:g})")
        ax.set_xlabel("training step")
        ax.set_ylabel(f"held-out {group[0].metric}")
        ax.set_ylim(0.0, 1.02)
        ax.legend(fontsize=6, ncols=2)
    save_figure(fig, Path(path).with_suffix(".png"), dpi=dpi)


def write_pilot_report(
    runs: Sequence[Run],
    out: str | os.PathLike,
    *,
    title: str,
    rules: Rules = DEFAULT_RULES,
    margin: float = 1.25,
    max_steps: int | None = None,
    missing: Sequence[str] = (),
) -> Path | None:
    """Writes pilot.md and the curves beside it; None when no run has gate records.
    `missing`: "task/encoding" of the planned runs not finished yet (said per task)."""
    pilots = pilot_runs(runs, rules)
    if not pilots:
        return None
    out = Path(out)
    budgets = propose_budgets(pilots, margin=margin, max_steps=max_steps)
    path = out / PILOT
    write_text_atomic(path, pilot_markdown(pilots, budgets, title=title, missing=missing))
    plot_pilot(pilots, out / PILOT_PLOT)
    return path
