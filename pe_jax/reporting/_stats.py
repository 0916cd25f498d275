"""Statistics of the bench: the seed is the unit of inference.

Every function is plain NumPy/SciPy on host arrays, and deterministic.

- A trained model (one seed) contributes one number: its mean score over the
  out-of-distribution lengths, on the examples every model shares. Examples are not
  independent replicates of the experiment (they are scored by the same weights), so they never
  enter a standard error.
- A mean over seeds gets a Student t interval (sample SD, ddof=1, n - 1 degrees of freedom).
- Two encodings are compared by one t test, which gives both the interval and the p-value, so
  the two cannot disagree: paired over seeds when both sides hold the same seeds and seed i of
  each draws the same training batches (Student 1908), Welch's unequal-variance test otherwise
  (Welch 1947).
- The comparisons of a task form one family; Holm's step-down method adjusts their p-values
  (Holm 1979), which controls the family-wise error rate under any dependence.
- An aggregate over a fixed set of tasks (a paper's "mean over tasks") is the mean of the
  per-task means; its variance is the sum of the per-task variances over T^2, with
  Welch-Satterthwaite degrees of freedom (Satterthwaite 1946). Tasks are fixed, seeds random.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy import stats as _scipy_stats


def _as_1d(name: str, values) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got {array}.")
    return array


def _check_confidence(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}.")
    return float(confidence)


def sample_sd(values) -> float:
    """Sample standard deviation (ddof=1); 0.0 for a single value."""
    array = _as_1d("values", values)
    return float(np.std(array, ddof=1)) if array.size > 1 else 0.0


@dataclasses.dataclass(frozen=True)
class TTest:
    """A mean (or difference of means) with its t interval and two-sided p-value against 0.

    Attributes:
      estimate: the mean (of one side) or the difference a - b.
      low, high: the interval at the test's confidence (NaN with fewer than 2 seeds a side).
      p: two-sided p-value of "estimate = 0" (NaN where no test is possible).
      df: degrees of freedom (NaN where no test is possible).
      n_a, n_b: seeds on each side (n_b = 0 for a one-sample interval).
      test: "one-sample t", "paired t", "Welch t" or "aggregate t".
    """

    estimate: float
    low: float
    high: float
    p: float
    df: float
    n_a: int
    n_b: int
    test: str

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _t_result(estimate, se, df, confidence, n_a, n_b, test) -> TTest:
    """The interval and p of `estimate` with standard error `se` on `df` degrees of freedom.

    A zero standard error (every seed gave the same value) makes the interval a point; the p
    is then 1 for a zero estimate and 0 otherwise, the limit of the t test as the spread
    vanishes.
    """
    nan = float("nan")
    if not np.isfinite(df) or df <= 0:
        return TTest(float(estimate), nan, nan, nan, nan, n_a, n_b, test)
    if se == 0.0:
        p = 1.0 if estimate == 0.0 else 0.0
        return TTest(
            float(estimate), float(estimate), float(estimate), p, float(df), n_a, n_b, test
        )
    quantile = float(_scipy_stats.t.ppf(0.5 + confidence / 2.0, df))
    p = float(2.0 * _scipy_stats.t.sf(abs(estimate) / se, df))
    return TTest(
        float(estimate),
        float(estimate - quantile * se),
        float(estimate + quantile * se),
        p,
        float(df),
        n_a,
        n_b,
        test,
    )


def t_interval(values, *, confidence: float = 0.95) -> TTest:
    """The mean of one value per seed, its Student t interval, and p against 0.

    Args:
      values: one number per seed, shape [N].
      confidence: two-sided level of the interval.

    Returns:
      A `TTest` ("one-sample t"); with one seed the interval and p are NaN: no spread can be
      estimated from one model.

    Raises:
      ValueError: empty or non-finite values, a confidence outside (0, 1).
    """
    array = _as_1d("values", values)
    confidence = _check_confidence(confidence)
    n = array.size
    se = sample_sd(array) / np.sqrt(n)
    return _t_result(array.mean(), se, n - 1 if n > 1 else np.nan, confidence, n, 0, "one-sample t")


def compare_seeds(a, b, *, paired: bool, confidence: float = 0.95) -> TTest:
    """a - b: one t test over seeds, giving the interval and the p-value together.

    Args:
      a, b: one score per seed (e.g. each model's mean OOD exact match), shapes [Na], [Nb].
      paired: True when a[i] and b[i] come from the same seed (same training batches): the
        paired t test on the differences (Na must equal Nb). False: Welch's test.
      confidence: two-sided level of the interval.

    Returns:
      A `TTest` of the difference of means ("paired t" or "Welch t"). Fewer than 2 seeds on a
      side (or 2 pairs) leave the interval and p NaN.

    Raises:
      ValueError: empty or non-finite scores, paired scores of different lengths, a bad
        confidence.
    """
    a, b = _as_1d("a", a), _as_1d("b", b)
    confidence = _check_confidence(confidence)
    if paired:
        if a.size != b.size:
            raise ValueError(f"paired scores need one seed each side, got {a.size} and {b.size}.")
        d = a - b
        n = d.size
        se = sample_sd(d) / np.sqrt(n)
        return _t_result(d.mean(), se, n - 1 if n > 1 else np.nan, confidence, n, n, "paired t")
    na, nb = a.size, b.size
    estimate = a.mean() - b.mean()
    if na < 2 or nb < 2:
        return _t_result(estimate, 0.0, np.nan, confidence, na, nb, "Welch t")
    va, vb = np.var(a, ddof=1) / na, np.var(b, ddof=1) / nb
    se = float(np.sqrt(va + vb))
    df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1)) if se > 0 else na + nb - 2
    return _t_result(estimate, se, df, confidence, na, nb, "Welch t")


def published_difference(
    mean_a: float, sd_a: float, mean_b: float, sd_b: float, *, seeds: int
) -> TTest:
    """Welch's test of a paper's two encodings from their printed mean ± sd over `seeds` seeds.

    Used to read which pairs a paper orders per task (p < 0.05) and which it leaves tied.
    """
    if seeds < 2:
        raise ValueError(f"seeds must be >= 2 to test printed means, got {seeds}.")
    va, vb = sd_a**2 / seeds, sd_b**2 / seeds
    se = float(np.sqrt(va + vb))
    df = (va + vb) ** 2 / ((va**2 + vb**2) / (seeds - 1)) if se > 0 else 2 * seeds - 2
    return _t_result(mean_a - mean_b, se, df, 0.95, seeds, seeds, "Welch t")


def aggregate_difference(per_task: Sequence[TTest], *, confidence: float = 0.95) -> TTest:
    """The mean over a fixed set of tasks of per-task differences, with its t interval.

    Args:
      per_task: one `TTest` per task (each a difference with its interval), tasks fixed.
      confidence: two-sided level.

    Returns:
      A `TTest` ("aggregate t") of the mean of the estimates. Each task's standard error is
      recovered from its interval and df; variances add and are divided by T^2; degrees of
      freedom by Welch-Satterthwaite. A task without an interval makes the aggregate NaN.

    Raises:
      ValueError: no tasks.
    """
    if not per_task:
        raise ValueError("aggregate_difference needs at least one task.")
    confidence = _check_confidence(confidence)
    count = len(per_task)
    estimate = float(np.mean([t.estimate for t in per_task]))
    n_a = sum(t.n_a for t in per_task)
    n_b = sum(t.n_b for t in per_task)
    variances, dfs = [], []
    for t in per_task:
        if not np.isfinite(t.df) or not np.isfinite(t.low):
            return _t_result(estimate, 0.0, np.nan, confidence, n_a, n_b, "aggregate t")
        quantile = float(_scipy_stats.t.ppf(0.5 + confidence / 2.0, t.df))
        variances.append(((t.high - t.estimate) / quantile) ** 2)
        dfs.append(t.df)
    variances = np.asarray(variances) / count**2
    total = float(variances.sum())
    if total == 0.0:
        df = float(min(dfs))
    else:
        df = total**2 / float(np.sum(variances**2 / np.asarray(dfs)))
    return _t_result(estimate, np.sqrt(total), df, confidence, n_a, n_b, "aggregate t")


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979), in the input order.

    The k-th smallest p (k = 0..m-1) becomes max over j <= k of (m - j) * p_(j), capped at 1.
    NaN p-values (comparisons that could not be tested) stay NaN and do not count in m.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(np.isfinite(p))
    m = valid.size
    if m == 0:
        return out
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for k, index in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[index]))
        out[index] = running
    return out


def extrapolation_length(lengths: Sequence[int], exact_match, *, threshold: float = 0.9) -> int:
    """The largest evaluated length up to which exact match stays >= threshold at every length.

    Args:
      lengths: evaluated lengths, ascending, shape [N].
      exact_match: exact match at each length, shape [N].
      threshold: the bar in [0, 1].

    Returns:
      That length, or 0 when the shortest evaluated length already misses the bar. Divide by
      the training length for "extrapolates to k x".

    Raises:
      ValueError: mismatched or unsorted lengths, a threshold outside [0, 1].
    """
    lengths = np.asarray(lengths)
    values = _as_1d("exact_match", exact_match)
    if lengths.shape != values.shape:
        raise ValueError(
            f"lengths and exact_match must have one shape, got {lengths.shape}, {values.shape}."
        )
    if np.any(np.diff(lengths) <= 0):
        raise ValueError(f"lengths must be strictly ascending, got {lengths.tolist()}.")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}.")
    below = np.flatnonzero(values < threshold)
    if below.size == 0:
        return int(lengths[-1])
    return 0 if below[0] == 0 else int(lengths[below[0] - 1])
