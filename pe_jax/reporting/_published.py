"""The papers' claims as they were made, judged against ours.

A sweep config carries the published numbers (`sweep.published`, facts carried over from the
papers, each with its source; see `configs/sweeps/common.published`):

- **Per-task numbers** ({"task", "encoding", "mean", "sd", "seeds", "source"}). The pairs a
  paper orders on a task are read from its own numbers: A > B when Welch's test on the printed
  mean ± sd over its seeds gives p < 0.05 (`_stats.published_difference`); other pairs are
  published ties, shown beside ours and not judged. Each ordered pair is judged with the
  task's own comparison (seed-level t test, Holm over the task's pairs): reproduced,
  contradicted, or cannot tell (with the reason).
- **Aggregate claims** ({"kind", ..., "source"}), judged as aggregates over the tasks where
  both sides are learned (at least `pe_jax.rules.MIN_AGGREGATE_TASKS` of them), with an
  interval over seeds (tasks fixed, `_stats.aggregate_difference`):
  - "mean_reciprocal_rank" ({"values": {encoding: MRR}}): every pair the published MRRs
    order is judged by the mean over tasks of the per-task difference.
  - "mean_gain" ({"prefix": "randomized_", "value": published mean gain}): each variant
    against its base encoding, by the mean over tasks of the per-task gain.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import numpy as np

from pe_jax.reporting._findings import metric_name, oriented, test_phrase
from pe_jax.reporting._format import interval, num, p_is
from pe_jax.reporting._stats import aggregate_difference, published_difference
from pe_jax.reporting._verdicts import TaskVerdict
from pe_jax.rules import MIN_AGGREGATE_TASKS

VERDICTS = ("reproduced", "contradicted", "cannot tell")
AGGREGATE_KINDS = ("mean_reciprocal_rank", "mean_gain")


@dataclasses.dataclass(frozen=True)
class Claim:
    """One ordering a paper reports: `better` > `worse` on `task` ("" = an aggregate).

    Attributes:
      published: the paper's evidence, as a phrase with its numbers (and, per task, the
        Welch test of its printed mean ± sd).
    """

    task: str
    better: str
    worse: str
    source: str
    published: str
    kind: str = "per task"


@dataclasses.dataclass(frozen=True)
class Judged:
    claim: Claim
    verdict: str  # one of VERDICTS
    evidence: str


def _check_spec(spec: dict) -> None:
    numbers = spec.get("numbers") or []
    for i, entry in enumerate(numbers):
        missing = [
            k for k in ("task", "encoding", "mean", "sd", "seeds", "source") if k not in entry
        ]
        if missing:
            raise ValueError(f"published.numbers[{i}] lacks {missing}; got {dict(entry)!r}.")
    for i, entry in enumerate(spec.get("aggregates") or []):
        if entry.get("kind") not in AGGREGATE_KINDS:
            raise ValueError(
                f"published.aggregates[{i}].kind must be one of {AGGREGATE_KINDS}, got "
                f"{entry.get('kind')!r}."
            )
        if not entry.get("source"):
            raise ValueError(f"published.aggregates[{i}] lacks a source; got {dict(entry)!r}.")


def per_task_claims(spec: dict) -> tuple[list[Claim], list[Claim]]:
    """(ordered pairs, published ties) read from the per-task numbers of `spec`."""
    _check_spec(spec)
    by_task: dict[str, list[dict]] = {}
    for entry in spec.get("numbers") or []:
        by_task.setdefault(entry["task"], []).append(entry)
    ordered, ties = [], []
    for task, entries in by_task.items():
        for x, y in itertools.combinations(entries, 2):
            test = published_difference(
                x["mean"], x["sd"], y["mean"], y["sd"], seeds=min(x["seeds"], y["seeds"])
            )
            better, worse = (x, y) if test.estimate >= 0 else (y, x)
            phrase = (
                f"{better['encoding']} {better['mean']:.3f} ± {better['sd']:.3f} vs "
                f"{worse['encoding']} {worse['mean']:.3f} ± {worse['sd']:.3f} over "
                f"{min(x['seeds'], y['seeds'])} seeds, Welch {p_is(test.p)}"
            )
            claim = Claim(task, better["encoding"], worse["encoding"], x["source"], phrase)
            (ordered if test.p < 0.05 else ties).append(claim)
    return ordered, ties


def judge_per_task(claim: Claim, tv: TaskVerdict | None) -> Judged:
    """One per-task claim against our runs of its task."""
    if tv is None:
        return Judged(claim, "cannot tell", "task not run")
    by_label = {v.run.encoding: v for v in tv.runs}
    absent = [x for x in (claim.better, claim.worse) if x not in by_label]
    if absent:
        return Judged(claim, "cannot tell", f"{' and '.join(absent)} not run")
    if not tv.in_aggregates:
        return Judged(claim, "cannot tell", "task not learned at this scale")
    unlearned = [x for x in (claim.better, claim.worse) if not by_label[x].any_learned]
    if unlearned:
        return Judged(claim, "cannot tell", f"{' and '.join(unlearned)} not learned (gate)")
    c = tv.comparison(claim.better, claim.worse)
    if c is None:
        return Judged(claim, "cannot tell", "no out-of-distribution length")
    ours = (
        f"ours {claim.better} {num(c.mean_a if c.a == claim.better else c.mean_b)} vs "
        f"{claim.worse} {num(c.mean_b if c.a == claim.better else c.mean_a)}, "
        f"{test_phrase(c, claim.better)}"
    )
    if c.order == "~":
        return Judged(claim, "cannot tell", f"{ours}; {c.reason}")
    winner = c.a if c.order == ">" else c.b
    return Judged(claim, "reproduced" if winner == claim.better else "contradicted", ours)


def _tasks_for(pair: tuple[str, str], tasks: dict[str, TaskVerdict], min_seeds: int):
    """[(task, test of a - b)] over the tasks where both are learned with enough seeds."""
    a, b = pair
    out = []
    for task, tv in tasks.items():
        c = tv.comparison(a, b) if tv.in_aggregates else None
        if c is not None and min(c.seeds) >= min_seeds and np.isfinite(c.test.low):
            out.append((task, oriented(c, a)))
    return out


def _judge_aggregate(claim: Claim, tasks: dict[str, TaskVerdict], min_seeds: int) -> Judged:
    counted = _tasks_for((claim.better, claim.worse), tasks, min_seeds)
    if not counted:
        return Judged(
            claim,
            "cannot tell",
            f"no task where both are learned with >= {min_seeds} seeds a side",
        )
    if len(counted) < MIN_AGGREGATE_TASKS:
        return Judged(
            claim,
            "cannot tell",
            f"{len(counted)} task where both are learned with >= {min_seeds} seeds a side "
            f"({', '.join(t for t, _ in counted)}; its per-task result is above); an aggregate "
            f"needs >= {MIN_AGGREGATE_TASKS}",
        )
    agg = aggregate_difference([t for _, t in counted])
    metric = metric_name(next(iter(tasks.values())).metric)
    evidence = (
        f"ours: mean over {len(counted)} task(s) ({', '.join(t for t, _ in counted)}) of "
        f"{claim.better} − {claim.worse} in OOD {metric} {num(agg.estimate)} "
        f"{interval(agg.low, agg.high)}, {p_is(agg.p)}"
    )
    if not np.isfinite(agg.p) or agg.p >= 0.05:
        return Judged(claim, "cannot tell", evidence + " (interval includes zero)")
    return Judged(claim, "reproduced" if agg.estimate > 0 else "contradicted", evidence)


def aggregate_claims(spec: dict, tasks: dict[str, TaskVerdict]) -> list[Claim]:
    """The pairwise claims of `spec`'s aggregates."""
    _check_spec(spec)
    out = []
    for entry in spec.get("aggregates") or []:
        if entry["kind"] == "mean_reciprocal_rank":
            values = dict(entry["values"])
            for x, y in itertools.combinations(values, 2):
                if values[x] == values[y]:
                    continue
                better, worse = (x, y) if values[x] > values[y] else (y, x)
                phrase = (
                    f"mean reciprocal rank {better} {values[better]:.3f} vs {worse} "
                    f"{values[worse]:.3f} ({entry.get('over', 'over the paper tasks')})"
                )
                out.append(Claim("", better, worse, entry["source"], phrase, kind="aggregate"))
        else:
            prefix = entry.get("prefix", "randomized_")
            labels = [v.run.encoding for tv in tasks.values() for v in tv.runs]
            for variant in dict.fromkeys(x for x in labels if x.startswith(prefix)):
                base = variant.removeprefix(prefix)
                if base not in labels:
                    continue
                phrase = (
                    f"mean gain {entry['value']:+.3f} of randomized positions "
                    f"({entry.get('over', 'over the paper tasks')})"
                )
                out.append(Claim("", variant, base, entry["source"], phrase, kind="aggregate"))
    return out


def our_mrr(tasks: dict[str, TaskVerdict], encodings: Sequence[str]) -> tuple[dict, list[str]]:
    """Descriptive: our mean reciprocal rank of `encodings` over the tasks where every one is
    learned (ranked by mean OOD score), and those tasks."""
    ranks: dict[str, list[float]] = {e: [] for e in encodings}
    used = []
    for task, tv in tasks.items():
        by_label = {v.run.encoding: v for v in tv.runs}
        if not tv.in_aggregates or not all(
            e in by_label and by_label[e].any_learned for e in encodings
        ):
            continue
        means = {e: float(np.mean(by_label[e].scores())) for e in encodings}
        order = sorted(encodings, key=lambda e: -means[e])
        for position, e in enumerate(order):
            ranks[e].append(1.0 / (position + 1))
        used.append(task)
    return {e: float(np.mean(r)) for e, r in ranks.items() if r}, used


def judge_published(
    spec: dict | None, tasks: dict[str, TaskVerdict], *, min_seeds: int = 5
) -> tuple[list[Judged], list[tuple[Claim, str]]]:
    """(judged claims, published ties with our numbers beside them)."""
    if not spec:
        return [], []
    ordered, ties = per_task_claims(spec)
    judged = [judge_per_task(claim, tasks.get(claim.task)) for claim in ordered]
    judged += [_judge_aggregate(c, tasks, min_seeds) for c in aggregate_claims(spec, tasks)]
    tie_rows = []
    for claim in ties:
        tv = tasks.get(claim.task)
        c = tv.comparison(claim.better, claim.worse) if tv is not None else None
        ours = "not judged: no comparison of learned models here"
        if c is not None:
            ours = f"ours {test_phrase(c, claim.better)}; {c.reason or 'ours orders them'}"
        tie_rows.append((claim, ours))
    return judged, tie_rows


def published_sentences(
    spec: dict | None, tasks: dict[str, TaskVerdict], *, min_seeds: int = 5
) -> list[str]:
    """One finding per published claim, then the tally per kind."""
    judged, _ = judge_published(spec, tasks, min_seeds=min_seeds)
    out = []
    for j in judged:
        c = j.claim
        where = f"on {c.task}" if c.task else "as an aggregate"
        out.append(
            f"published {c.better} > {c.worse} {where} ({c.source}: {c.published}): "
            f"{j.verdict} — {j.evidence}."
        )
    for kind in ("per task", "aggregate"):
        mine = [j for j in judged if j.claim.kind == kind]
        if mine:
            tally = {v: sum(j.verdict == v for j in mine) for v in VERDICTS}
            out.append(
                f"published {kind} orderings: "
                + ", ".join(f"{n} {v}" for v, n in tally.items())
                + f" of {len(mine)}."
            )
    return out


def published_section(
    spec: dict | None, tasks: dict[str, TaskVerdict], *, min_seeds: int = 5
) -> str:
    """## Published claims: every claim with the paper's number, ours and the verdict; the
    published ties with ours beside them; our descriptive MRR beside the paper's."""
    judged, ties = judge_published(spec, tasks, min_seeds=min_seeds)
    if not judged and not ties:
        return ""
    lines = [
        "## Published claims",
        "",
        "Per-task claims are the pairs a paper's own numbers order (Welch p < 0.05 on its "
        "printed mean ± sd); each is judged by the task's comparison. Aggregate claims are "
        "judged as aggregates: the mean over the tasks where both are learned, tasks fixed.",
        "",
        "| claim | where | paper | ours | verdict |",
        "|---|---|---|---|---|",
    ]
    for j in judged:
        c = j.claim
        lines.append(
            f"| {c.better} > {c.worse} | {c.task or 'aggregate'} | {c.published} "
            f"({c.source}) | {j.evidence} | {j.verdict} |"
        )
    if ties:
        lines += ["", "Published ties (the paper's seeds do not separate them; not judged):", ""]
        lines += [f"- {c.task}: {c.published}; {ours}." for c, ours in ties]
    for entry in (spec or {}).get("aggregates") or []:
        if entry.get("kind") == "mean_reciprocal_rank":
            ours, used = our_mrr(tasks, list(entry["values"]))
            if ours:
                text = ", ".join(f"{e} {v:.3f}" for e, v in ours.items())
                lines += [
                    "",
                    f"- Our mean reciprocal rank (descriptive) over {', '.join(used)}: {text}.",
                ]
            else:
                lines += [
                    "",
                    "- Our mean reciprocal rank: no task where every encoding is learned.",
                ]
    return "\n".join(lines)
