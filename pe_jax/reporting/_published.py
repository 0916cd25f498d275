"""Published orderings against ours: reproduced, contradicted (with the interval), or cannot tell.

A sweep config lists what a paper orders (`sweep.published`, facts carried over from the
paper, each with its source); the report judges each pair on each task it names with the same
paired comparison that every other ordering uses, among learned models only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from pe_jax.reporting._format import interval, num
from pe_jax.reporting._verdicts import TaskVerdict

VERDICTS = ("reproduced", "contradicted", "cannot tell")


@dataclasses.dataclass(frozen=True)
class Published:
    """One ordering a paper reports: `better` generalizes further than `worse` on `task`."""

    task: str
    better: str
    worse: str
    source: str


def expand_published(spec: Sequence[dict], tasks: Sequence[str]) -> list[Published]:
    """The claims of `spec` ({"better", "worse", "tasks": [...] or ["*"], "source"} each), one
    per task ("*" = every task of the sweep), in spec order.

    Raises:
      ValueError: an entry without better, worse, tasks or source.
    """
    out = []
    for i, entry in enumerate(spec):
        missing = [k for k in ("better", "worse", "tasks", "source") if not entry.get(k)]
        if missing:
            raise ValueError(f"published[{i}] lacks {missing}; got {dict(entry)!r}.")
        names = list(tasks) if list(entry["tasks"]) == ["*"] else list(entry["tasks"])
        out += [Published(t, entry["better"], entry["worse"], entry["source"]) for t in names]
    return out


def judge_published(claim: Published, tv: TaskVerdict | None) -> tuple[str, str]:
    """(verdict, evidence) of one claim on our runs of its task."""
    if tv is None:
        return "cannot tell", "task not run"
    by_label = {v.run.encoding: v for v in tv.runs}
    absent = [x for x in (claim.better, claim.worse) if x not in by_label]
    if absent:
        return "cannot tell", f"{' and '.join(absent)} not run"
    if not tv.in_aggregates:
        return "cannot tell", "task not learned at this scale"
    unlearned = [x for x in (claim.better, claim.worse) if not by_label[x].any_learned]
    if unlearned:
        return "cannot tell", f"{' and '.join(unlearned)} not learned (gate)"
    pair = {claim.better, claim.worse}
    c = next((c for c in tv.comparisons if {c.a, c.b} == pair), None)
    if c is None:
        return "cannot tell", "no shared learned seed"
    s = c.stats
    diff, low, high = (s["diff"], s["low"], s["high"])
    if c.a != claim.better:
        diff, low, high = -diff, -high, -low
    evidence = (
        f"paired diff {claim.better} − {claim.worse} in OOD EM {num(diff)} "
        f"{interval(low, high)}, {s['seeds']} seed{'s' if s['seeds'] != 1 else ''}"
    )
    if c.order == "~":
        return "cannot tell", evidence + " (interval includes zero)"
    winner = c.a if c.order == ">" else c.b
    return ("reproduced" if winner == claim.better else "contradicted"), evidence


def published_sentences(claims: Sequence[Published], tasks: dict[str, TaskVerdict]) -> list[str]:
    """One finding per claim, then the tally."""
    out, tally = [], dict.fromkeys(VERDICTS, 0)
    for claim in claims:
        verdict, evidence = judge_published(claim, tasks.get(claim.task))
        tally[verdict] += 1
        out.append(
            f"published {claim.better} > {claim.worse} on {claim.task} ({claim.source}): "
            f"{verdict} — {evidence}."
        )
    if claims:
        out.append(
            "published orderings: "
            + ", ".join(f"{n} {verdict}" for verdict, n in tally.items())
            + f" of {len(claims)}."
        )
    return out
