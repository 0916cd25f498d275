"""What the report concludes, generated from the verdicts: findings, gains, comparison tables.

Every sentence is built from a number computed here, with its statistic: orderings only where
a paired interval excludes zero and only among learned models; "not learned" statements; the
baseline comparison; gains per task, averaged only over tasks where both models are learned.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from pe_jax.reporting._format import below, format_rate, interval, num
from pe_jax.reporting._verdicts import (
    MIN_SEEDS_WITHOUT_EXAMPLES,
    Comparison,
    RunVerdict,
    TaskVerdict,
)

RANDOMIZED_PREFIXES = ("randomized_", "shifted_")
BASELINE_TITLES = {"uniform": "uniform", "majority": "majority", "input_blind": "input-blind"}


def ordered(comparison: Comparison) -> tuple[str, str, float, float, dict]:
    """(winner, loser, em of winner, em of loser, stats of winner - loser)."""
    c = comparison
    if c.order == "<":
        flipped = {**c.stats, "diff": -c.stats["diff"]}
        flipped["low"], flipped["high"] = -c.stats["high"], -c.stats["low"]
        return c.b, c.a, c.em_b, c.em_a, flipped
    return c.a, c.b, c.em_a, c.em_b, c.stats


def ordering_sentence(task: str, comparison: Comparison) -> str:
    win, lose, em_win, em_lose, stats = ordered(comparison)
    unit = "" if comparison.unit == "examples" else " (per-seed means: no per-example scores)"
    return (
        f"{win} > {lose} on {task}: OOD EM {num(em_win)} vs {num(em_lose)}, paired diff "
        f"{num(stats['diff'])} {interval(stats['low'], stats['high'])}, {stats['seeds']} "
        f"seed{'s' if stats['seeds'] != 1 else ''}{unit}"
    )


@dataclasses.dataclass(frozen=True)
class Gain:
    """`variant` (e.g. randomized_rope) minus `base` (rope) on OOD exact match in one task."""

    task: str
    variant: str
    base: str
    status: str  # "both learned", or why the task does not count
    comparison: Comparison | None

    @property
    def counts(self) -> bool:
        return self.status == "both learned" and self.comparison is not None

    @property
    def diff(self) -> tuple[float, float, float]:
        if self.comparison is None:
            return (float("nan"),) * 3
        s = self.comparison.stats
        if self.comparison.a == self.variant:
            return s["diff"], s["low"], s["high"]
        return -s["diff"], -s["high"], -s["low"]


def gains(tasks: dict[str, TaskVerdict]) -> list[Gain]:
    """Every randomized/shifted variant against its base encoding, per task."""
    out = []
    for task, tv in tasks.items():
        by_label = {v.run.encoding: v for v in tv.runs}
        for label, verdict in by_label.items():
            base = label
            for prefix in RANDOMIZED_PREFIXES:
                base = base.removeprefix(prefix)
            if base == label or base not in by_label:
                continue
            if not tv.in_aggregates:
                status = "task not learned at this scale"
            elif not (verdict.any_learned and by_label[base].any_learned):
                missing = [x for x in (label, base) if not by_label[x].any_learned]
                status = f"{' and '.join(missing)} not learned"
            else:
                status = "both learned"
            comparison = next((c for c in tv.comparisons if {c.a, c.b} == {label, base}), None)
            if status == "both learned" and comparison is None:
                status = "no shared learned seed"
            out.append(Gain(task, label, base, status, comparison))
    return out


def gains_section(items: Sequence[Gain]) -> str:
    """## Gains: one row per (variant, task), then the mean over the tasks that count."""
    if not items:
        return ""
    lines = [
        "## Gains",
        "",
        "OOD exact match of each randomized/shifted variant minus its base encoding, per task "
        "(paired difference, 95% CI). Averaged only over tasks where both passed the gate "
        "and the task is learned at this scale.",
        "",
        "| variant | base | task | status | gain in OOD EM [95% CI] |",
        "|---|---|---|---|---|",
    ]
    for g in items:
        diff, low, high = g.diff
        cell = f"{diff:+.2f} {interval(low, high)}" if g.counts else "—"
        lines.append(f"| {g.variant} | {g.base} | {g.task} | {g.status} | {cell} |")
    lines.append("")
    lines += [f"- {sentence}" for sentence in mean_gains(items)]
    return "\n".join(lines)


def mean_gains(items: Sequence[Gain]) -> list[str]:
    """Per (variant, base): the mean gain over the tasks where both are learned, or why none."""
    out = []
    for variant, base in dict.fromkeys((g.variant, g.base) for g in items):
        counted = [g for g in items if (g.variant, g.base) == (variant, base) and g.counts]
        if counted:
            mean = float(np.mean([g.diff[0] for g in counted]))
            out.append(
                f"{variant} vs {base}: mean gain {mean:+.2f} over {len(counted)} task(s) "
                f"where both are learned ({', '.join(g.task for g in counted)})."
            )
        else:
            out.append(f"{variant} vs {base}: no task where both are learned; no mean.")
    return out


def comparisons_table(tv: TaskVerdict) -> str:
    """Every paired comparison of the task's learned encodings, or a line saying why none."""
    if not tv.comparisons:
        return "No paired comparison: fewer than two encodings share learned seeds."
    lines = [
        "| A vs B | OOD EM A | OOD EM B | paired diff A − B [95% CI] | p | seeds | paired on | "
        "ordering |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in tv.comparisons:
        s = c.stats
        unit = f"{s['examples']} examples" if c.unit == "examples" else "seed means"
        order = {">": f"{c.a} > {c.b}", "<": f"{c.b} > {c.a}", "~": "no claim"}[c.order]
        if c.order == "~" and c.unit == "seed means" and s["seeds"] < MIN_SEEDS_WITHOUT_EXAMPLES:
            order = "no claim (too few seeds without per-example scores)"
        lines.append(
            f"| {c.a} vs {c.b} | {num(c.em_a)} | {num(c.em_b)} | {num(s['diff'])} "
            f"{interval(s['low'], s['high'])} | {s['p']:.3f} | {s['seeds']} | {unit} | "
            f"{order} |"
        )
    return "\n".join(lines)


def rate_grid_table(tv: TaskVerdict) -> str:
    """The learning-rate grid of every encoding: validation (in distribution), OOD EM, the
    chosen rate, and the published aggregation (max over seeds and rates) labelled as such."""
    lines = [
        "| encoding | learning rate | models | learned | validation EM % (in-dist., gate "
        "lengths) | OOD EM % (mean) | chosen |",
        "|---|---|---|---|---|---|---|",
    ]
    published = []
    for v in tv.runs:
        rate_of = [m["learning_rate"] for m in v.run.models]
        for rate, val in zip(v.rates, v.rate_validation, strict=True):
            mask = np.array([r == rate for r in rate_of])
            ood = v.split_mean("exact_match", "out", mask)
            lines.append(
                f"| {v.run.encoding} | {format_rate(rate)} | {int(mask.sum())} | "
                f"{int((mask & v.learned).sum())} | {100 * val:.1f} | "
                f"{100 * np.mean(ood):.1f} | {'✓' if rate == v.chosen_rate else ''} |"
            )
        every = np.ones(len(rate_of), bool)
        em, tok = (np.max(v.split_mean(m, "out", every)) for m in ("exact_match", "token_accuracy"))
        published.append(f"| {v.run.encoding} | {100 * em:.1f} | {100 * tok:.1f} |")
    lines += [
        "",
        f"### Published aggregation ({tv.task})",
        "",
        "Max over seeds and learning rates, as Delétang et al. 2023 report it: not a selection "
        "on validation, and used by no verdict.",
        "",
        "| encoding | max OOD EM % | max OOD tok. % |",
        "|---|---|---|",
        *published,
    ]
    return "\n".join(lines)


def _baseline_phrase(tv: TaskVerdict) -> str:
    parts = [
        f"{BASELINE_TITLES[r]} {num(tv.baseline_mean(r, 'exact_match', 'out'))}"
        for r in ("input_blind", "majority", "uniform")
    ]
    return ", ".join(parts)


def _run_sentences(tv: TaskVerdict, v: RunVerdict) -> list[str]:
    rules, run = v.rules, v.run
    gate = f"EM >= {rules.gate_threshold:g} at T={','.join(map(str, v.gate_lengths))}"
    if v.gate_source == "results.json":
        gate = "the trainer's gate"
    rate = ""
    if len(v.rates) > 1:
        grid = ", ".join(format_rate(r) for r in v.rates)
        chosen = format_rate(v.chosen_rate)
        rate = f"; learning rate {chosen} chosen of [{grid}] on in-dist. validation"
    if not v.any_learned:
        # Descriptive only (how far from the gate, what it scores): never an ordering.
        closest = float(np.max(v.validation[v.selected]))
        ood_em, ood_tok = (
            float(np.mean(v.split_mean(m, "out"))) for m in ("exact_match", "token_accuracy")
        )
        scores = f"OOD EM {num(ood_em)}, tok. acc. {num(ood_tok)}"
        if tv.baselines:
            blind = (
                tv.baseline_mean("input_blind", m, "out") for m in ("exact_match", "token_accuracy")
            )
            scores += " (input-blind EM {}, tok. acc. {})".format(*map(num, blind))
        closest_em = below(closest, v.gate_threshold)
        return [
            f"{run.encoding} on {tv.task}: not learned ({v.gate_label.split('(')[-1].rstrip(')')}"
            f" models pass {gate}){rate}; closest model's validation EM {closest_em}; "
            f"{scores}, descriptive only; shown marked, left out of orderings and aggregates."
        ]
    n, total = int(v.counted.sum()), int(v.selected.sum())
    mean, _, low, high = v.spread("exact_match", "out")
    ext, ext_low, ext_high = v.extrapolation()
    text = (
        f"{run.encoding} on {tv.task}: learned by {n}/{total} models ({gate}){rate}; "
        f"OOD EM {num(mean)} {interval(low, high)}"
    )
    if tv.baselines:
        bar = tv.baseline_mean("input_blind", "exact_match", "out")
        verdict = "above" if low > bar else "not above"
        text += f", {verdict} the input-blind baseline ({_baseline_phrase(tv)})"
    text += (
        f"; extrapolates to {ext:.2f}x {interval(ext_low, ext_high)} the training length "
        f"(EM >= {rules.extrapolation_threshold:g} at every length up to it)."
    )
    return [text]


def findings(tasks: dict[str, TaskVerdict], gain_items: Sequence[Gain] = ()) -> list[str]:
    """The report's findings, one sentence each, in task order."""
    out = []
    for task, tv in tasks.items():
        if tv.learned_at_scale is False:
            bar = tv.baseline_mean("input_blind", "exact_match", "in")
            out.append(
                f"{task}: not learned at this scale — no encoding beats the input-blind baseline "
                f"in distribution (best in-dist. EM {num(tv.best[1])} by {tv.best[0]} vs "
                f"input-blind {num(bar)}); kept out of every ordering and aggregate."
            )
        elif tv.learned_at_scale:
            bar = tv.baseline_mean("input_blind", "exact_match", "in")
            out.append(
                f"{task}: above the input-blind baseline in distribution — best in-dist. EM "
                f"{num(tv.best[1])} by {tv.best[0]} vs input-blind {num(bar)} (majority "
                f"{num(tv.baseline_mean('majority', 'exact_match', 'in'))}, uniform "
                f"{num(tv.baseline_mean('uniform', 'exact_match', 'in'))})."
            )
        elif tv.learned_at_scale is None:
            out.append(f"{task}: no baselines recorded; not tested against the input-blind one.")
        for v in tv.runs:
            out += _run_sentences(tv, v)
        claims = [ordering_sentence(task, c) for c in tv.comparisons if c.order != "~"]
        learned = [v for v in tv.runs if v.any_learned]
        if claims:
            out += claims
        elif tv.in_aggregates and len(learned) >= 2:
            out.append(
                f"{task}: no ordering among the {len(learned)} learned encodings — every paired "
                "interval includes zero."
            )
    for g in gain_items:
        if g.counts:
            diff, low, high = g.diff
            out.append(
                f"{g.variant} vs {g.base} on {g.task}: gain in OOD EM {diff:+.2f} "
                f"{interval(low, high)}."
            )
    return out + mean_gains(gain_items)


def findings_markdown(items: Sequence[str], *, heading: str = "## Findings") -> str:
    """The findings as a markdown section (also written alone as findings.md)."""
    body = "\n".join(f"- {item}" for item in items) or "- No run finished."
    return (
        f"{heading}\n\nGenerated by pe_jax.reporting from the runs' results; orderings only where "
        "the paired 95% interval excludes zero, among learned models.\n\n" + body
    )
