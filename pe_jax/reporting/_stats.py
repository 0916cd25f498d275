"""Statistics of the bench: sample spread, bootstrap intervals, paired tests, extrapolation length.

Every function is plain NumPy on host arrays, deterministic for a given `seed`.

- Spread over seeds is the sample standard deviation (ddof=1).
- Intervals are percentile bootstrap intervals (Efron & Tibshirani 1993, ch. 13).
- Two encodings evaluated on the same examples are compared pairwise: the difference is taken
  per (seed, example) pair, and the bootstrap resamples seeds and then examples within the
  resampled seeds (a two-level bootstrap, Davison & Hinkley 1997, sec. 3.8), so both the spread
  between trained models and the spread between examples enter the interval. A sign-flip
  permutation test on the per-seed mean differences gives a p-value.
- An ordering A > B is claimed only when the paired interval lies above zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_RESAMPLES = 4000
_CHUNK_ELEMENTS = 8_000_000


def _as_1d(name: str, values) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
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


def bootstrap_ci(
    values,
    *,
    confidence: float = 0.95,
    num_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(mean, low, high): the mean of `values` and its percentile bootstrap interval.

    Args:
      values: one number per seed (e.g. a run's exact match per seed), shape [N].
      confidence: two-sided level of the interval.
      num_resamples: bootstrap resamples.
      seed: NumPy RNG seed.

    With one value the interval is that value (no spread can be estimated).

    Raises:
      ValueError: empty or non-finite values, a confidence outside (0, 1).
    """
    array = _as_1d("values", values)
    confidence = _check_confidence(confidence)
    mean = float(array.mean())
    if array.size == 1:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    index = rng.integers(0, array.size, size=(num_resamples, array.size))
    means = array[index].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return mean, float(low), float(high)


def paired_difference(
    a,
    b,
    *,
    confidence: float = 0.95,
    num_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> dict[str, float]:
    """Mean of a - b over paired (seed, example) scores, its two-level bootstrap interval, p.

    Args:
      a, b: scores [S, E] of two models on the same E examples, one row per seed (seed s of A
        is paired with seed s of B: same data order and initial draw where the runs share
        seeds); e.g. per-example exact match (0/1). Rows may also be per-seed summaries [S, 1].
      confidence: two-sided level of the interval.
      num_resamples: bootstrap resamples (also used for the permutation test).
      seed: NumPy RNG seed.

    Returns:
      {"diff": mean difference, "low", "high": the interval, "p": two-sided sign-flip
       permutation p-value over seeds (1.0 with a single seed), "seeds": S, "examples": E}.

    Raises:
      ValueError: shapes that differ or are not [S, E], non-finite scores, a bad confidence.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape or a.size == 0:
        raise ValueError(
            f"a and b must be score arrays of one shape [seeds, examples], got {a.shape}, "
            f"{b.shape}."
        )
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("a and b must be finite.")
    confidence = _check_confidence(confidence)
    diff = a - b  # [S, E]
    seeds, examples = diff.shape
    rng = np.random.default_rng(seed)
    # Level 1: seeds with replacement; level 2: examples with replacement within each seed.
    means = np.empty(num_resamples)
    chunk = max(1, _CHUNK_ELEMENTS // (seeds * examples))  # bounds memory to ~64 MB
    for start in range(0, num_resamples, chunk):
        count = min(chunk, num_resamples - start)
        seed_index = rng.integers(0, seeds, size=(count, seeds, 1))
        example_index = rng.integers(0, examples, size=(count, seeds, examples))
        means[start : start + count] = diff[seed_index, example_index].mean(axis=(1, 2))
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    per_seed = diff.mean(axis=1)
    observed = abs(per_seed.mean())
    if seeds == 1:
        p = 1.0
    else:
        signs = rng.choice((-1.0, 1.0), size=(num_resamples, seeds))
        flipped = np.abs((signs * per_seed).mean(axis=1))
        p = float((1 + np.sum(flipped >= observed - 1e-12)) / (num_resamples + 1))
    return {
        "diff": float(diff.mean()),
        "low": float(low),
        "high": float(high),
        "p": p,
        "seeds": seeds,
        "examples": examples,
    }


def ordering(comparison: dict[str, float]) -> str:
    """'>' when the interval of a - b lies above zero, '<' below zero, '~' (no claim) otherwise."""
    if comparison["low"] > 0:
        return ">"
    if comparison["high"] < 0:
        return "<"
    return "~"


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
