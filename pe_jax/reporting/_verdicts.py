"""The bench's rules applied to finished runs: learned-gate, learning-rate choice, comparisons.

From results.json (or results.csv) alone. Every rule is fixed here, before any result is seen:

- **Metric.** Each protocol's own: per-token accuracy for the encoder protocol (Delétang et
  al. 2023; Ruoss et al. 2023), exact match of the whole answer for the decoder protocol
  (Kazemnejad et al. 2023). The gate, the learning-rate choice and every comparison use it.
- **Learned-gate.** A model is learned when its held-out score reaches `gate_threshold` both
  pooled over every training length (all in-distribution examples of the final evaluation,
  which are drawn from the evaluation seed, never trained on) and at the `gate_longest` longest
  training lengths. A model that fails a shorter training length is not learned. Models that
  are not learned are shown, marked, and left out of every statistic below.
- **Learning rate** (per encoding): the rate whose models have the best mean pooled
  in-distribution score; a tie (equal to 1e-9) goes to the rate with more learned models, then
  to the smaller rate. Out-of-distribution scores never enter the choice.
- **The seed is the unit.** A model's score is its mean over the out-of-distribution lengths,
  on the examples every model shares. Means carry a t interval over seeds; two encodings are
  compared by one t test (`pe_jax.reporting._stats.compare_seeds`), paired when both sides
  hold the same learned seeds (seed i of every run of a task draws the same training batches),
  Welch's otherwise.
- **Family and claims.** The comparisons of a task form one family, adjusted by Holm's method.
  An ordering is stated only when the adjusted p < `alpha` and each side has >= `min_seeds`
  learned seeds; otherwise the comparison says why it makes no claim.
- **Baselines.** "Above the input-blind baseline" only when the interval's lower end is above
  it. A task where no encoding is above it in distribution is "not learned at this scale".
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import numpy as np

from pe_jax.reporting._results import Run, default_metric
from pe_jax.reporting._stats import (
    TTest,
    compare_seeds,
    extrapolation_length,
    holm,
    sample_sd,
    t_interval,
)
from pe_jax.rules import ALPHA, GATES, MIN_GATE_EXAMPLES, MIN_SEEDS
from pe_jax.runfiles import read_gate_records

RATE_TIE = 1e-9


@dataclasses.dataclass(frozen=True)
class Rules:
    """The thresholds of the bench's rules.

    Attributes:
      metric: the score of every comparison; None = the protocol's own.
      gate_metric: the gate's metric; None = the protocol's own.
      gate_threshold: the score a model needs (pooled and at the longest training lengths);
        None = the protocol's declared gate (`pe_jax.rules.GATES`).
      gate_longest: how many of the longest training lengths the second gate test reads.
      min_gate_examples: fewer pooled held-out examples than this is flagged in the report.
      min_seeds: learned seeds each side needs before an ordering is stated.
      alpha: family-wise error rate of a task's orderings (Holm-adjusted p < alpha).
      extrapolation_threshold: exact match that defines the extrapolation length.
      confidence: level of every interval.
    """

    metric: str | None = None
    gate_metric: str | None = None
    gate_threshold: float | None = None
    gate_longest: int = 3
    min_gate_examples: int = MIN_GATE_EXAMPLES
    min_seeds: int = MIN_SEEDS
    alpha: float = ALPHA
    extrapolation_threshold: float = 0.9
    confidence: float = 0.95

    def __post_init__(self):
        for name in ("gate_threshold", "extrapolation_threshold"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}.")
        for name in ("metric", "gate_metric"):
            value = getattr(self, name)
            if value not in (None, "exact_match", "token_accuracy"):
                raise ValueError(
                    f"{name} must be 'exact_match', 'token_accuracy' or None, got {value!r}."
                )
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha!r}.")
        if self.min_seeds < 2 or self.gate_longest < 1:
            raise ValueError(
                f"min_seeds must be >= 2 and gate_longest >= 1, got {self.min_seeds}, "
                f"{self.gate_longest}."
            )

    def score_metric(self, protocol: str) -> str:
        return self.metric or default_metric(protocol)

    def gate(self, protocol: str) -> tuple[str, float]:
        """(metric, threshold) of the gate for runs of `protocol`."""
        gate = GATES.get(protocol, GATES["decoder"])
        metric, threshold = gate["metric"], gate["threshold"]
        return self.gate_metric or metric, (
            threshold if self.gate_threshold is None else self.gate_threshold
        )


DEFAULT_RULES = Rules()


def other_gate_rules(rules: Rules, protocol: str) -> Rules:
    """`rules` with the gate of the other metric (the other protocol's declared gate): the
    report's sensitivity line says which verdicts change under it."""
    metric, _ = rules.gate(protocol)
    other = next(g for g in GATES.values() if g["metric"] != metric)
    return dataclasses.replace(
        rules, gate_metric=other["metric"], gate_threshold=other["threshold"]
    )


def seed_interval(
    values: np.ndarray, rules: Rules, support: tuple[float, float] = (0.0, 1.0)
) -> tuple[float, float, float]:
    """(mean, low, high): the t interval over seeds, cut to the quantity's `support` (a mean
    of scores in [0, 1] lies in it, so the cut loses no coverage); NaN for no values, NaN
    bounds for one."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (float("nan"),) * 3
    t = t_interval(values, confidence=rules.confidence)
    low, high = np.clip([t.low, t.high], *support)
    return t.estimate, float(low), float(high)


def _sd(values: np.ndarray) -> float:
    return sample_sd(values) if values.size else float("nan")


@dataclasses.dataclass(frozen=True)
class RunVerdict:
    """One run (an encoding in a task) under the rules. Arrays are over its M models.

    Attributes:
      run: the run.
      gate_metric, gate_threshold: the gate's metric and bar.
      gate_lengths: the longest training lengths of the gate's second test.
      gate_examples: held-out examples the pooled test reads per model (None: not recorded).
      validation: float [M] the pooled in-distribution score (gate metric).
      longest: float [M] the score at `gate_lengths`.
      learned: bool [M] passed both tests.
      rates: the learning-rate grid, ascending.
      rate_validation: mean validation per rate, aligned with `rates`.
      chosen_rate: the rate chosen by the rule.
      selected: bool [M] models trained at the chosen rate.
      steps_trained: int [M] optimizer steps each model took, or None (not recorded).
      steps_to_gate: float [M] the first trainer gate step where the model's gate metric
        reached the bar (NaN: never), or None (no gate records).
      until: the trainer's train-to-criterion bar (None: every model trained the fixed budget).
    """

    run: Run
    gate_metric: str
    gate_threshold: float
    gate_lengths: tuple[int, ...]
    gate_examples: int | None
    validation: np.ndarray
    longest: np.ndarray
    learned: np.ndarray
    rates: tuple
    rate_validation: tuple[float, ...]
    chosen_rate: object
    selected: np.ndarray
    steps_trained: np.ndarray | None
    steps_to_gate: np.ndarray | None
    until: float | None
    rules: Rules

    @property
    def metric(self) -> str:
        """The score of comparisons (the protocol's own unless the rules say otherwise)."""
        return self.rules.score_metric(self.run.protocol)

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

    def scores(self) -> np.ndarray:
        """float [k]: each counted model's score: its OOD mean of the comparison metric."""
        return self.split_mean(self.metric, "out", self.counted)

    def spread(self, metric: str, split: str) -> tuple[float, float, float, float]:
        """(mean, sample SD, t interval low, high) over the shown models."""
        values = self.split_mean(metric, split)
        values = values[np.isfinite(values)]
        mean, low, high = seed_interval(values, self.rules)
        return mean, _sd(values), low, high

    def extrapolation(self) -> tuple[float, float, float]:
        """(mean, t interval low, high) of the extrapolation length over the shown models, as
        a multiple of the training length."""
        run = self.run
        em = run.metric("exact_match")[self.shown]
        factors = np.array(
            [
                extrapolation_length(run.lengths, row, threshold=self.rules.extrapolation_threshold)
                / run.train_max_length
                for row in em
            ]
        )
        return seed_interval(
            factors, self.rules, (0.0, float(run.lengths.max()) / run.train_max_length)
        )

    def budget(self) -> str:
        """The steps the shown models trained, said plainly."""
        cap = int(self.run.results.steps)
        if self.steps_trained is None:
            if self.until is None:
                return f"{cap} steps (fixed budget)"
            return (
                f"to criterion (gate >= {self.until:g}), at most {cap} steps; steps per model "
                "not recorded"
            )
        steps = self.steps_trained[self.shown]
        low, high = int(steps.min()), int(steps.max())
        if self.until is None and low == high == cap:
            return f"{cap} steps (fixed budget)"
        span = f"{low}" if low == high else f"{low}–{high}"
        return f"{span} steps (to criterion, cap {cap}; budgets differ)"


def _gate_lengths(run: Run, rules: Rules) -> tuple[int, ...]:
    inside = np.sort(run.lengths[run.lengths <= run.train_max_length])
    if inside.size == 0:
        return (int(run.lengths.min()),)
    return tuple(int(t) for t in inside[-rules.gate_longest :])


def _gate_examples(run: Run) -> int | None:
    samples = (run.results.config.get("eval") or {}).get("samples")
    if not isinstance(samples, int):
        return None
    return samples * int((run.lengths <= run.train_max_length).sum())


def _steps_to_gate(run: Run, metric: str, threshold: float) -> np.ndarray | None:
    records = read_gate_records(run.path.parent)
    if not records:
        return None
    first = np.full(len(run.models), np.nan)
    for record in records:
        values = np.asarray(record.get(metric) or [], np.float64)
        if values.shape != first.shape:
            continue
        first = np.where(np.isnan(first) & (values >= threshold), record["step"], first)
    return first


def choose_rate(rates: tuple, rate_validation: Sequence[float], rate_learned: Sequence[int]):
    """The learning rate by the fixed rule: best mean in-distribution validation; on a tie
    (within RATE_TIE) the rate with more learned models; then the smaller rate."""
    best = max(rate_validation)
    tied = [i for i, v in enumerate(rate_validation) if v >= best - RATE_TIE]
    most = max(rate_learned[i] for i in tied)
    return rates[next(i for i in tied if rate_learned[i] == most)]


def judge_run(run: Run, rules: Rules = DEFAULT_RULES) -> RunVerdict:
    """The run's learned-gate and learning-rate choice (see the module docstring)."""
    metric, threshold = rules.gate(run.protocol)
    lengths = _gate_lengths(run, rules)
    values = run.metric(metric)
    inside = run.lengths <= run.train_max_length
    validation = values[:, inside].mean(1) if inside.any() else values.mean(1)
    longest = values[:, np.isin(run.lengths, lengths)].mean(1)
    learned = (validation >= threshold) & (longest >= threshold)
    rate_of = [m["learning_rate"] for m in run.models]
    rates = tuple(sorted(set(rate_of), key=lambda r: (r is None, r or 0.0)))
    masks = [np.array([r == rate for r in rate_of]) for rate in rates]
    per_rate = tuple(float(np.mean(validation[mask])) for mask in masks)
    chosen = choose_rate(rates, per_rate, [int((mask & learned).sum()) for mask in masks])
    trained = run.results.steps_trained
    steps_trained = (
        np.asarray(trained, np.int64) if trained and len(trained) == len(run.models) else None
    )
    return RunVerdict(
        run=run,
        gate_metric=metric,
        gate_threshold=threshold,
        gate_lengths=lengths,
        gate_examples=_gate_examples(run),
        validation=validation,
        longest=longest,
        learned=learned,
        rates=rates,
        rate_validation=per_rate,
        chosen_rate=chosen,
        selected=np.array([r == chosen for r in rate_of]),
        steps_trained=steps_trained,
        steps_to_gate=(
            np.asarray(run.steps_to_gate, np.float64)
            if run.steps_to_gate is not None
            else _steps_to_gate(run, metric, threshold)
        ),
        until=run.results.until,
        rules=rules,
    )


@dataclasses.dataclass(frozen=True)
class Comparison:
    """a vs b on the task's score (each model's OOD mean), over each side's learned seeds.

    Attributes:
      a, b: encoding labels.
      mean_a, mean_b: the means compared.
      test: the t test of a - b (`compare_seeds`).
      p_adjusted: Holm-adjusted p over the task's family (NaN: untestable).
      family: how many comparisons the task's family holds.
      order: '>' (a better), '<' (b better) or '~' (no claim).
      reason: why there is no claim ("" when there is one).
    """

    a: str
    b: str
    mean_a: float
    mean_b: float
    test: TTest
    p_adjusted: float
    family: int
    order: str
    reason: str

    @property
    def seeds(self) -> tuple[int, int]:
        return self.test.n_a, self.test.n_b


def _raw_comparison(a: RunVerdict, b: RunVerdict) -> tuple[TTest, float, float] | None:
    if not (a.any_learned and b.any_learned):
        return None
    if not (a.run.lengths > a.run.train_max_length).any():
        return None
    seeds_a, seeds_b = a.seeds(), b.seeds()
    sa, sb = a.scores(), b.scores()
    paired = sorted(seeds_a) == sorted(seeds_b) and len(seeds_a) >= 2
    if paired:
        sb = sb[[seeds_b.index(s) for s in seeds_a]]
    test = compare_seeds(sa, sb, paired=paired, confidence=a.rules.confidence)
    return test, float(sa.mean()), float(sb.mean())


def _decide(test: TTest, p_adjusted: float, rules: Rules) -> tuple[str, str]:
    if min(test.n_a, test.n_b) < rules.min_seeds:
        return "~", (f"too few seeds ({test.n_a} and {test.n_b}; {rules.min_seeds} a side needed)")
    if not np.isfinite(p_adjusted):
        return "~", "no test possible"
    if p_adjusted >= rules.alpha:
        return "~", f"adjusted p = {p_adjusted:.3g} >= {rules.alpha:g}"
    return (">" if test.estimate > 0 else "<"), ""


def compare_family(verdicts: Sequence[RunVerdict]) -> list[Comparison]:
    """Every pair of learned runs of one task, tested and Holm-adjusted as one family."""
    raw = []
    for a, b in itertools.combinations(verdicts, 2):
        result = _raw_comparison(a, b)
        if result is not None:
            raw.append((a, b, *result))
    adjusted = holm([r[2].p for r in raw])
    out = []
    for (a, b, test, mean_a, mean_b), p_adj in zip(raw, adjusted, strict=True):
        order, reason = _decide(test, float(p_adj), a.rules)
        out.append(
            Comparison(
                a=a.run.encoding,
                b=b.run.encoding,
                mean_a=mean_a,
                mean_b=mean_b,
                test=test,
                p_adjusted=float(p_adj),
                family=len(raw),
                order=order,
                reason=reason,
            )
        )
    return out


@dataclasses.dataclass(frozen=True)
class TaskVerdict:
    """The runs of one task under the rules.

    Attributes:
      task: the task label.
      runs: one verdict per run, in report order.
      baselines: the task's baselines (from the first run that recorded them), or None.
      learned_at_scale: False when no encoding beats the input-blind baseline in
        distribution (the lower end of its t interval is not above the baseline's), None when
        no baselines were recorded, else True.
      best: (encoding, in-distribution score) of the best encoding in distribution.
      comparisons: the task's family of comparisons (none when not learned at this scale).
    """

    task: str
    runs: list[RunVerdict]
    baselines: dict | None
    learned_at_scale: bool | None
    best: tuple[str, float]
    comparisons: list[Comparison]

    @property
    def metric(self) -> str:
        return self.runs[0].metric

    @property
    def in_aggregates(self) -> bool:
        return self.learned_at_scale is not False

    def comparison(self, a: str, b: str) -> Comparison | None:
        return next((c for c in self.comparisons if {c.a, c.b} == {a, b}), None)

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
    """The verdicts of one task's runs, its baselines test and its family of comparisons."""
    verdicts = [judge_run(run, rules) for run in runs]
    baselines = next((r.baselines for r in runs if r.baselines), None)
    metric = verdicts[0].metric
    in_dist = {
        v.run.encoding: seed_interval(v.split_mean(metric, "in", v.selected), rules)
        for v in verdicts
    }
    best = max(in_dist.items(), key=lambda kv: np.nan_to_num(kv[1][0], nan=-1.0))
    partial = TaskVerdict(task, verdicts, baselines, None, (best[0], best[1][0]), [])
    learned_at_scale = None
    if baselines:
        bar = partial.baseline_mean("input_blind", metric, "in")
        learned_at_scale = any(low > bar for _, low, _ in in_dist.values())
    comparisons = compare_family(verdicts) if learned_at_scale is not False else []
    return dataclasses.replace(partial, learned_at_scale=learned_at_scale, comparisons=comparisons)


def judge(runs: Sequence[Run], rules: Rules = DEFAULT_RULES) -> dict[str, TaskVerdict]:
    """{task: TaskVerdict} for runs grouped by task label, in their order."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.task, []).append(run)
    return {task: judge_task(task, group, rules) for task, group in groups.items()}
