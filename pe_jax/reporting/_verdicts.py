"""The bench's rules applied to finished runs: learned-gate, learning-rate choice, statistics.

From results.json (and examples.npz where present) alone:

- Learned-gate: a model is learned when results.json says so ("learned"); otherwise when its
  exact match at the longest evaluated training length(s) reaches `gate_threshold`. Models that
  are not learned are shown, marked, and left out of every statistic below.
- Learning rate: with several rates per encoding, the rate with the best mean held-out exact
  match at the gate's (in-distribution) lengths is chosen; out-of-distribution scores never
  enter the choice.
- Statistics over the learned models of the chosen rate: sample SD, bootstrap CIs over seeds,
  extrapolation length, and paired comparisons between the encodings of a task on the same
  examples (per-example exact match pooled over the out-of-distribution lengths; per-seed means
  when a run has no per-example file).
- A task where no encoding beats the input-blind baseline in distribution is "not learned at
  this scale": it makes no ordering and enters no aggregate.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import numpy as np

from pe_jax.reporting._results import Run
from pe_jax.reporting._stats import (
    bootstrap_ci,
    extrapolation_length,
    ordering,
    paired_difference,
    sample_sd,
)


@dataclasses.dataclass(frozen=True)
class Rules:
    """The thresholds of the bench's rules.

    Attributes:
      gate_threshold: exact match a model needs at the gate lengths to count as learned.
      extrapolation_threshold: exact match that defines the extrapolation length.
      confidence: level of every interval.
      num_resamples: bootstrap resamples.
    """

    gate_threshold: float = 0.99
    extrapolation_threshold: float = 0.9
    confidence: float = 0.95
    num_resamples: int = 2000

    def __post_init__(self):
        for name in ("gate_threshold", "extrapolation_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}.")


DEFAULT_RULES = Rules()


def _ci(values: np.ndarray, rules: Rules) -> tuple[float, float, float]:
    if values.size == 0:
        return (float("nan"),) * 3
    return bootstrap_ci(values, confidence=rules.confidence, num_resamples=rules.num_resamples)


def _sd(values: np.ndarray) -> float:
    return sample_sd(values) if values.size else float("nan")


@dataclasses.dataclass(frozen=True)
class RunVerdict:
    """One run (an encoding in a task) under the rules. Arrays are over its M models.

    Attributes:
      run: the run.
      gate_lengths: the in-distribution lengths the gate and the validation read.
      validation: float [M] held-out exact match at the gate lengths.
      learned: bool [M] passed the gate.
      gate_source: "results.json" (the trainer's gate) or "report" (computed here).
      gate_threshold: the exact match the gate asked for (the trainer's, when it recorded one).
      rates: the learning-rate grid, ascending.
      rate_validation: mean validation per rate, aligned with `rates`.
      chosen_rate: the rate with the best validation.
      selected: bool [M] models trained at the chosen rate.
    """

    run: Run
    gate_lengths: tuple[int, ...]
    validation: np.ndarray
    learned: np.ndarray
    gate_source: str
    gate_threshold: float
    rates: tuple
    rate_validation: tuple[float, ...]
    chosen_rate: object
    selected: np.ndarray
    rules: Rules

    @property
    def counted(self) -> np.ndarray:
        """bool [M]: the models every statistic uses (chosen rate, learned)."""
        return self.selected & self.learned

    @property
    def any_learned(self) -> bool:
        return bool(self.counted.any())

    @property
    def shown(self) -> np.ndarray:
        """bool [M]: the models a row's numbers describe: the counted ones, else (a run that
        is not learned, shown marked) every model at the chosen rate."""
        return self.counted if self.any_learned else self.selected

    @property
    def gate_label(self) -> str:
        """ "k/n" learned models at the chosen rate, with a mark when none is."""
        text = f"{int(self.counted.sum())}/{int(self.selected.sum())}"
        return text if self.any_learned else f"✗ not learned ({text})"

    def seeds(self, mask: np.ndarray | None = None) -> list[int]:
        models = self.run.models
        mask = self.counted if mask is None else mask
        return [models[m]["seed"] for m in np.flatnonzero(mask)]

    def split_mean(self, metric: str, split: str, mask: np.ndarray | None = None) -> np.ndarray:
        """float [k]: per model of `mask` (default `shown`), the mean of `metric` over the
        in-distribution ("in") or out-of-distribution ("out") lengths."""
        run = self.run
        sel = run.lengths <= run.train_max_length
        sel = sel if split == "in" else ~sel
        values = run.metric(metric)[self.shown if mask is None else mask]
        return values[:, sel].mean(1) if sel.any() else np.full(len(values), np.nan)

    def spread(self, metric: str, split: str) -> tuple[float, float, float, float]:
        """(mean, sample SD, CI low, CI high) over the shown models."""
        values = self.split_mean(metric, split)
        values = values[np.isfinite(values)]
        mean, low, high = _ci(values, self.rules)
        return mean, _sd(values), low, high

    def extrapolation(self) -> tuple[float, float, float]:
        """(mean, CI low, CI high) of the extrapolation length over the shown models, as a
        multiple of the training length."""
        run = self.run
        em = run.metric("exact_match")[self.shown]
        factors = np.array(
            [
                extrapolation_length(run.lengths, row, threshold=self.rules.extrapolation_threshold)
                / run.train_max_length
                for row in em
            ]
        )
        return _ci(factors, self.rules)


def _gate_lengths(run: Run) -> tuple[int, ...]:
    gate = run.results.gate or {}
    named = [int(t) for t in gate.get("lengths") or [] if t in set(run.lengths.tolist())]
    if named:
        return tuple(named)
    inside = run.lengths[run.lengths <= run.train_max_length]
    return (int(inside.max()),) if inside.size else (int(run.lengths.min()),)


def judge_run(run: Run, rules: Rules = DEFAULT_RULES) -> RunVerdict:
    """The run's learned-gate and learning-rate choice (see the module docstring)."""
    lengths = _gate_lengths(run)
    em = run.metric("exact_match")
    num_models = em.shape[0]
    gate = run.results.gate or {}
    held_out = gate.get("exact_match")
    if isinstance(held_out, list) and len(held_out) == num_models:
        validation = np.asarray(held_out, np.float64)
    else:
        validation = em[:, np.isin(run.lengths, lengths)].mean(1)
    threshold = rules.gate_threshold
    if run.results.learned is not None and len(run.results.learned) == num_models:
        learned, source = np.asarray(run.results.learned, bool), "results.json"
        threshold = gate.get("threshold", threshold)
    else:
        learned, source = validation >= threshold, "report"
    rate_of = [m["learning_rate"] for m in run.models]
    rates = tuple(sorted(set(rate_of), key=lambda r: (r is None, r or 0.0)))
    per_rate = tuple(float(np.mean(validation[[r == rate for r in rate_of]])) for rate in rates)
    chosen = rates[int(np.argmax(per_rate))]  # first (smallest) rate on a tie
    selected = np.array([r == chosen for r in rate_of])
    return RunVerdict(
        run=run,
        gate_lengths=lengths,
        validation=validation,
        learned=learned,
        gate_source=source,
        gate_threshold=threshold,
        rates=rates,
        rate_validation=per_rate,
        chosen_rate=chosen,
        selected=selected,
        rules=rules,
    )


MIN_SEEDS_WITHOUT_EXAMPLES = 3


@dataclasses.dataclass(frozen=True)
class Comparison:
    """A paired comparison of two encodings of one task on out-of-distribution exact match.

    `stats` is `paired_difference`'s dict for a - b; `order` is '>', '<' or '~'; `unit` says
    what was paired ("examples" or "seed means"); em_a / em_b are the means compared. Paired
    on seed means (runs without per-example scores), fewer than MIN_SEEDS_WITHOUT_EXAMPLES
    shared seeds give no interval worth the name, so no ordering is claimed ('~').
    """

    a: str
    b: str
    em_a: float
    em_b: float
    stats: dict
    order: str
    unit: str


def _ood_scores(verdict: RunVerdict, seeds: Sequence[int], per_example: bool) -> np.ndarray:
    """[len(seeds), E]: per-example exact match pooled over OOD lengths (or [.., 1] means)."""
    run = verdict.run
    index = [
        next(m for m in np.flatnonzero(verdict.counted) if run.models[m]["seed"] == s)
        for s in seeds
    ]
    ood = run.lengths > run.train_max_length
    if per_example:
        em = np.asarray(run.examples["exact_match"], np.float64)[index][:, ood]
        return em.reshape(len(index), -1)
    return run.metric("exact_match")[index][:, ood].mean(1, keepdims=True)


def _same_examples(a: Run, b: Run) -> bool:
    ea, eb = a.examples, b.examples
    return (
        ea is not None
        and eb is not None
        and ea["eval_seed"] == eb["eval_seed"]
        and np.array_equal(ea["lengths"], eb["lengths"])
        and ea["exact_match"].shape[1:] == eb["exact_match"].shape[1:]
        and np.array_equal(ea["lengths"], a.lengths)
    )


def compare(a: RunVerdict, b: RunVerdict) -> Comparison | None:
    """a vs b on OOD exact match over the seeds both learned, or None when they share no
    learned seed or the task has no out-of-distribution length."""
    seeds = sorted(set(a.seeds()) & set(b.seeds()))
    if not seeds or not (a.run.lengths > a.run.train_max_length).any():
        return None
    per_example = _same_examples(a.run, b.run)
    sa, sb = _ood_scores(a, seeds, per_example), _ood_scores(b, seeds, per_example)
    rules = a.rules
    stats = paired_difference(
        sa, sb, confidence=rules.confidence, num_resamples=rules.num_resamples
    )
    order = ordering(stats)
    if not per_example and len(seeds) < MIN_SEEDS_WITHOUT_EXAMPLES:
        order = "~"
    return Comparison(
        a=a.run.encoding,
        b=b.run.encoding,
        em_a=float(sa.mean()),
        em_b=float(sb.mean()),
        stats=stats,
        order=order,
        unit="examples" if per_example else "seed means",
    )


@dataclasses.dataclass(frozen=True)
class TaskVerdict:
    """The runs of one task under the rules.

    Attributes:
      task: the task label.
      runs: one verdict per run, in report order.
      baselines: the task's baselines (from the first run that recorded them), or None.
      learned_at_scale: False when no encoding beats the input-blind baseline in
        distribution (the lower end of its in-distribution exact-match CI is not above the
        baseline's), None when no baselines were recorded, else True.
      best: (encoding, in-distribution exact match) of the best encoding in distribution.
      comparisons: every pair of runs with shared learned seeds (none when not learned at
        this scale).
    """

    task: str
    runs: list[RunVerdict]
    baselines: dict | None
    learned_at_scale: bool | None
    best: tuple[str, float]
    comparisons: list[Comparison]

    @property
    def in_aggregates(self) -> bool:
        return self.learned_at_scale is not False

    def baseline_mean(self, rule: str, metric: str, split: str) -> float:
        """A baseline's mean of `metric` over the in- or out-of-distribution lengths."""
        if not self.baselines:
            return float("nan")
        lengths = np.asarray(self.baselines["lengths"])
        train_max = self.runs[0].run.train_max_length
        sel = lengths <= train_max if split == "in" else lengths > train_max
        values = np.asarray(self.baselines[rule][metric], np.float64)
        return float(values[sel].mean()) if sel.any() else float("nan")


def judge_task(task: str, runs: Sequence[Run], rules: Rules = DEFAULT_RULES) -> TaskVerdict:
    """The verdicts of one task's runs, its baselines test and its paired comparisons."""
    verdicts = [judge_run(run, rules) for run in runs]
    baselines = next((r.baselines for r in runs if r.baselines), None)
    in_dist = {
        v.run.encoding: _ci(v.split_mean("exact_match", "in", v.selected), rules) for v in verdicts
    }
    best = max(in_dist.items(), key=lambda kv: np.nan_to_num(kv[1][0], nan=-1.0))
    partial = TaskVerdict(task, verdicts, baselines, None, (best[0], best[1][0]), [])
    learned_at_scale = None
    if baselines:
        bar = partial.baseline_mean("input_blind", "exact_match", "in")
        learned_at_scale = any(low > bar for _, low, _ in in_dist.values())
    comparisons = []
    if learned_at_scale is not False:
        for a, b in itertools.combinations(verdicts, 2):
            comparison = compare(a, b)
            if comparison is not None:
                comparisons.append(comparison)
    return dataclasses.replace(partial, learned_at_scale=learned_at_scale, comparisons=comparisons)


def judge(runs: Sequence[Run], rules: Rules = DEFAULT_RULES) -> dict[str, TaskVerdict]:
    """{task: TaskVerdict} for runs grouped by task label, in their order."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.task, []).append(run)
    return {task: judge_task(task, group, rules) for task, group in groups.items()}
