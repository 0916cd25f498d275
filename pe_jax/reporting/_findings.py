"""What the report concludes, generated from the verdicts: findings, gains, comparison tables.

Every sentence is built from a number computed here, with its statistic: orderings only where
the Holm-adjusted p of a seed-level t test is below alpha with enough seeds a side, among
learned models; "not learned" statements; the baseline comparison on the interval's lower
end; gains per task, and their mean over the tasks where both models are learned with an
interval over seeds (`pe_jax.reporting._stats.aggregate_difference`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from pe_jax.reporting._format import below, format_rate, interval, num, p_is, pvalue
from pe_jax.reporting._stats import TTest, aggregate_difference
from pe_jax.reporting._verdicts import DEFAULT_RULES, Comparison, Rules, RunVerdict, TaskVerdict

RANDOMIZED_PREFIXES = ("randomized_", "shifted_")
BASELINE_TITLES = {"uniform": "uniform", "majority": "majority", "input_blind": "input-blind"}
METRIC_NAMES = {"exact_match": "EM", "token_accuracy": "tok. acc."}


def metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric)


def oriented(c: Comparison, first: str) -> TTest:
    """The comparison's test as `first` minus the other encoding."""
    t = c.test
    if c.a == first:
        return t
    return dataclasses.replace(t, estimate=-t.estimate, low=-t.high, high=-t.low)


def test_phrase(c: Comparison, first: str) -> str:
    """ "diff 0.12 [0.05, 0.19], paired t over 5 seeds, Holm-adjusted p = 0.004 (6 pairs)"."""
    t = oriented(c, first)
    sides = f"{t.n_a} seeds" if t.test == "paired t" else f"{t.n_a} and {t.n_b} seeds"
    return (
        f"diff {num(t.estimate)} {interval(t.low, t.high)}, {t.test} over {sides}, "
        f"{p_is(c.p_adjusted, 'Holm-adjusted p')} ({c.family} pair{'s' if c.family != 1 else ''})"
    )


def ordered(c: Comparison) -> tuple[str, str, float, float]:
    """(winner, loser, mean of winner, mean of loser) of a comparison that states an order."""
    if c.order == "<":
        return c.b, c.a, c.mean_b, c.mean_a
    return c.a, c.b, c.mean_a, c.mean_b


def ordering_sentence(task: str, c: Comparison, metric: str) -> str:
    win, lose, m_win, m_lose = ordered(c)
    return (
        f"{win} > {lose} on {task}: OOD {metric_name(metric)} {num(m_win)} vs {num(m_lose)}, "
        f"{test_phrase(c, win)}"
    )


@dataclasses.dataclass(frozen=True)
class Gain:
    """`variant` (e.g. randomized_rope) minus `base` (rope) on the OOD score in one task."""

    task: str
    variant: str
    base: str
    status: str  # "both learned", or why the task does not count
    comparison: Comparison | None

    @property
    def counts(self) -> bool:
        return self.status == "both learned" and self.comparison is not None

    @property
    def test(self) -> TTest | None:
        return None if self.comparison is None else oriented(self.comparison, self.variant)

    @property
    def diff(self) -> tuple[float, float, float]:
        t = self.test
        return (float("nan"),) * 3 if t is None else (t.estimate, t.low, t.high)


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
            comparison = tv.comparison(label, base)
            if status == "both learned" and comparison is None:
                status = "no out-of-distribution length"
            out.append(Gain(task, label, base, status, comparison))
    return out


def gains_section(items: Sequence[Gain], metric: str) -> str:
    """## Gains: one row per (variant, task), then the mean over the tasks that count."""
    if not items:
        return ""
    lines = [
        "## Gains",
        "",
        f"OOD {metric_name(metric)} of each randomized/shifted variant minus its base encoding, "
        "per task (seed-level t test, 95% CI). The mean over tasks counts only tasks where "
        "both passed the gate and the task is learned at this scale; its interval treats the "
        "tasks as fixed and the seeds as random.",
        "",
        "| variant | base | task | status | gain [95% CI] | p (unadjusted) |",
        "|---|---|---|---|---|---|",
    ]
    for g in items:
        t = g.test
        cell = f"{t.estimate:+.2f} {interval(t.low, t.high)}" if g.counts else "—"
        p = pvalue(t.p) if g.counts else "—"
        lines.append(f"| {g.variant} | {g.base} | {g.task} | {g.status} | {cell} | {p} |")
    lines.append("")
    lines += [f"- {sentence}" for sentence in mean_gains(items, metric)]
    return "\n".join(lines)


def mean_gains(items: Sequence[Gain], metric: str = "") -> list[str]:
    """Per (variant, base): the mean gain over the tasks where both are learned, with its
    interval over seeds (tasks fixed), or why there is none."""
    out = []
    what = f" in OOD {metric_name(metric)}" if metric else ""
    for variant, base in dict.fromkeys((g.variant, g.base) for g in items):
        counted = [g for g in items if (g.variant, g.base) == (variant, base) and g.counts]
        if counted:
            agg = aggregate_difference([g.test for g in counted])
            out.append(
                f"{variant} vs {base}: mean gain{what} {agg.estimate:+.2f} "
                f"{interval(agg.low, agg.high)} ({p_is(agg.p)}) over {len(counted)} "
                f"task(s) where both are learned ({', '.join(g.task for g in counted)})."
            )
        else:
            out.append(f"{variant} vs {base}: no task where both are learned; no mean.")
    return out


def comparisons_table(tv: TaskVerdict) -> str:
    """The task's family of comparisons, or a line saying why there is none."""
    if not tv.comparisons:
        return "No comparison: fewer than two encodings have learned models."
    name = metric_name(tv.metric)
    lines = [
        f"Family: the {len(tv.comparisons)} pairs of learned encodings of {tv.task}, "
        "Holm-adjusted; an ordering needs adjusted p < "
        f"{tv.runs[0].rules.alpha:g} and >= {tv.runs[0].rules.min_seeds} learned seeds a side.",
        "",
        f"| A vs B | OOD {name} A | OOD {name} B | diff A − B [95% CI] | test | seeds A, B | "
        "p | adjusted p | ordering |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in tv.comparisons:
        t = c.test
        order = {">": f"{c.a} > {c.b}", "<": f"{c.b} > {c.a}"}.get(c.order, f"no claim: {c.reason}")
        lines.append(
            f"| {c.a} vs {c.b} | {num(c.mean_a)} | {num(c.mean_b)} | {num(t.estimate)} "
            f"{interval(t.low, t.high)} | {t.test} | {t.n_a}, {t.n_b} | {pvalue(t.p)} | "
            f"{pvalue(c.p_adjusted)} | {order} |"
        )
    return "\n".join(lines)


def rate_grid_table(tv: TaskVerdict) -> str:
    """The learning-rate grid of every encoding: validation (in distribution, the gate's
    metric), the OOD score, the chosen rate, and the published aggregation (max over seeds and
    rates) labelled as such."""
    gate = metric_name(tv.runs[0].gate_metric)
    name = metric_name(tv.metric)
    lines = [
        f"Rule: the rate with the best mean pooled in-distribution {gate}; a tie goes to the "
        "rate with more learned models, then to the smaller rate; OOD never enters.",
        "",
        f"| encoding | learning rate | models | learned | validation {gate} % (in-dist., "
        f"pooled) | OOD {name} % (mean) | chosen |",
        "|---|---|---|---|---|---|---|",
    ]
    published = []
    for v in tv.runs:
        rate_of = [m["learning_rate"] for m in v.run.models]
        for rate, val in zip(v.rates, v.rate_validation, strict=True):
            mask = np.array([r == rate for r in rate_of])
            ood = v.split_mean(tv.metric, "out", mask)
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


def _baseline_phrase(tv: TaskVerdict, metric: str) -> str:
    parts = [
        f"{BASELINE_TITLES[r]} {num(tv.baseline_mean(r, metric, 'out'))}"
        for r in ("input_blind", "majority", "uniform")
    ]
    return ", ".join(parts)


def gate_phrase(v: RunVerdict) -> str:
    """ "EM >= 0.95 pooled over T <= 20 and at T=18,19,20"."""
    return (
        f"{metric_name(v.gate_metric)} >= {v.gate_threshold:g} pooled over T <= "
        f"{v.run.train_max_length} and at T={','.join(map(str, v.gate_lengths))}"
    )


def steps_phrase(v: RunVerdict) -> str:
    """The budget, then steps-to-gate over the shown models where the trainer recorded it."""
    text = f"trained {v.budget()}"
    if v.steps_to_gate is not None:
        reached = v.steps_to_gate[v.shown]
        done = reached[np.isfinite(reached)]
        if done.size:
            text += (
                f"; steps-to-gate (trainer's gate, longest lengths) median {np.median(done):.0f}"
                f" ({done.size}/{reached.size} reached it)"
            )
        else:
            text += "; no model reached the trainer's gate"
    return text


def _run_sentences(tv: TaskVerdict, v: RunVerdict) -> list[str]:
    run, rules, metric = v.run, v.rules, tv.metric
    name = metric_name(metric)
    rate = ""
    if len(v.rates) > 1:
        grid = ", ".join(format_rate(r) for r in v.rates)
        rate = f"; learning rate {format_rate(v.chosen_rate)} chosen of [{grid}] by the fixed rule"
    if not v.any_learned:
        # Descriptive only (how far from the gate, what it scores): never an ordering.
        closest = float(np.max(np.minimum(v.validation, v.longest)[v.selected]))
        ood = float(np.mean(v.split_mean(metric, "out")))
        scores = f"OOD {name} {num(ood)}"
        if tv.baselines:
            scores += f" (input-blind {num(tv.baseline_mean('input_blind', metric, 'out'))})"
        return [
            f"{run.encoding} on {tv.task}: not learned ({v.gate_label.split('(')[-1].rstrip(')')}"
            f" models pass {gate_phrase(v)}){rate}; closest model's gate score "
            f"{below(closest, v.gate_threshold)}; {scores}, descriptive only; "
            f"{steps_phrase(v)}; left out of orderings and aggregates."
        ]
    n, total = int(v.counted.sum()), int(v.selected.sum())
    mean, _, low, high = v.spread(metric, "out")
    ext, ext_low, ext_high = v.extrapolation()
    text = (
        f"{run.encoding} on {tv.task}: learned by {n}/{total} models ({gate_phrase(v)}){rate}; "
        f"OOD {name} {num(mean)} {interval(low, high)} (t interval over {n} seed"
        f"{'s' if n != 1 else ''})"
    )
    if tv.baselines:
        bar = tv.baseline_mean("input_blind", metric, "out")
        if np.isnan(low):
            verdict = "no interval (one seed) to compare with"
        else:
            verdict = "above" if low > bar else "not above"
        text += f", {verdict} the input-blind baseline ({_baseline_phrase(tv, metric)})"
    text += (
        f"; extrapolates to {ext:.2f}x {interval(ext_low, ext_high)} the training length "
        f"(EM >= {rules.extrapolation_threshold:g} at every length up to it); "
        f"{steps_phrase(v)}."
    )
    return [text]


def findings(tasks: dict[str, TaskVerdict], gain_items: Sequence[Gain] = ()) -> list[str]:
    """The report's findings, one sentence each, in task order."""
    out = []
    metric = ""
    for task, tv in tasks.items():
        metric = tv.metric
        name = metric_name(metric)
        bar = tv.baseline_mean("input_blind", metric, "in")
        if tv.learned_at_scale is False:
            out.append(
                f"{task}: not learned at this scale — no encoding is above the input-blind "
                f"baseline in distribution (best in-dist. {name} {num(tv.best[1])} by "
                f"{tv.best[0]} vs input-blind {num(bar)}); kept out of every ordering and "
                "aggregate."
            )
        elif tv.learned_at_scale:
            out.append(
                f"{task}: above the input-blind baseline in distribution — best in-dist. {name} "
                f"{num(tv.best[1])} by {tv.best[0]} vs input-blind {num(bar)} (majority "
                f"{num(tv.baseline_mean('majority', metric, 'in'))}, uniform "
                f"{num(tv.baseline_mean('uniform', metric, 'in'))})."
            )
        else:
            out.append(f"{task}: no baselines recorded; not tested against the input-blind one.")
        for v in tv.runs:
            out += _run_sentences(tv, v)
        claims = [ordering_sentence(task, c, metric) for c in tv.comparisons if c.order != "~"]
        if claims:
            out += claims
        elif tv.comparisons:
            reasons = sorted({c.reason.split(" (")[0].split(" =")[0] for c in tv.comparisons})
            out.append(
                f"{task}: no ordering among the {len(tv.comparisons)} pairs of learned "
                f"encodings ({'; '.join(reasons)})."
            )
    for g in gain_items:
        if g.counts:
            t = g.test
            out.append(
                f"{g.variant} vs {g.base} on {g.task}: gain in OOD {metric_name(metric)} "
                f"{t.estimate:+.2f} {interval(t.low, t.high)} ({p_is(t.p)}, unadjusted)."
            )
    return out + mean_gains(gain_items, metric)


def sensitivity(tasks: dict[str, TaskVerdict], other: dict[str, TaskVerdict]) -> list[str]:
    """Which verdicts change when the gate is in the other metric (`other`: the same runs
    judged by `other_gate_rules`): learned counts, then the stated orderings."""
    out = []
    for task, tv in tasks.items():
        alt = other[task]
        first = alt.runs[0]
        gate = f"{metric_name(first.gate_metric)} >= {first.gate_threshold:g}"
        changes = []
        for v, w in zip(tv.runs, alt.runs, strict=True):
            if v.gate_label != w.gate_label:
                changes.append(f"{v.run.encoding} learned {w.gate_label} (now {v.gate_label})")
        before = {frozenset((c.a, c.b)): c for c in tv.comparisons}
        after = {frozenset((c.a, c.b)): c for c in alt.comparisons}
        for pair in dict.fromkeys([*before, *after]):
            b, a = before.get(pair), after.get(pair)
            said_b = ordered(b)[:2] if b is not None and b.order != "~" else None
            said_a = ordered(a)[:2] if a is not None and a.order != "~" else None
            if said_b != said_a:
                now = f"{said_b[0]} > {said_b[1]}" if said_b else "no ordering"
                then = f"{said_a[0]} > {said_a[1]}" if said_a else "no ordering"
                changes.append(f"{' vs '.join(sorted(pair))}: {then} (now {now})")
        if changes:
            out.append(f"{task}, under a gate of {gate}: " + "; ".join(changes) + ".")
        else:
            out.append(f"{task}: no verdict changes under a gate of {gate}.")
    return out


def findings_markdown(
    items: Sequence[str], *, heading: str = "## Findings", rules: Rules = DEFAULT_RULES
) -> str:
    """The findings as a markdown section (also written alone as findings.md)."""
    body = "\n".join(f"- {item}" for item in items) or "- No run finished."
    return (
        f"{heading}\n\nGenerated by pe_jax.reporting from the runs' results. The seed is the "
        "unit: intervals are t intervals over seeds; an ordering is stated only where a "
        f"seed-level t test's Holm-adjusted p < {rules.alpha:g} with >= {rules.min_seeds} "
        "learned seeds a side.\n\n" + body
    )
