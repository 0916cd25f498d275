"""Bench statistics: spreads, bootstrap coverage, paired tests, extrapolation length."""

import numpy as np
import pytest

from pe_jax.reporting._stats import (
    bootstrap_ci,
    extrapolation_length,
    ordering,
    paired_difference,
    sample_sd,
)


def test_sample_sd_is_ddof_1():
    assert sample_sd([1.0, 3.0]) == pytest.approx(np.sqrt(2.0))
    assert sample_sd([5.0]) == 0.0


def test_bootstrap_coverage_matches_its_level():
    # Normal data, 30 seeds: the percentile interval should cover the true mean ~95% of the
    # time. 400 trials: Monte-Carlo standard error sqrt(.95 * .05 / 400) = 1.1 points.
    rng = np.random.default_rng(1)
    covered = 0
    trials = 400
    for t in range(trials):
        values = rng.normal(0.7, 0.1, size=30)
        _, low, high = bootstrap_ci(values, num_resamples=1000, seed=t)
        covered += low <= 0.7 <= high
    rate = covered / trials
    assert 0.91 <= rate <= 0.98, rate  # 95% minus the percentile method's small-n bias, +-3 SE


def test_bootstrap_single_value_and_errors():
    assert bootstrap_ci([0.5]) == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([0.1, 0.2], confidence=1.5)
    with pytest.raises(ValueError, match="finite"):
        bootstrap_ci([0.1, np.nan])


def test_paired_test_finds_planted_difference_and_none_where_none():
    rng = np.random.default_rng(0)
    seeds, examples = 5, 200
    # Exact match per example; B is A's model with a 10-point lower success rate.
    a = (rng.random((seeds, examples)) < 0.9).astype(float)
    b = (rng.random((seeds, examples)) < 0.8).astype(float)
    planted = paired_difference(a, b, seed=0)
    assert planted["low"] > 0 and ordering(planted) == ">"
    assert planted["diff"] == pytest.approx(a.mean() - b.mean())
    assert planted["p"] < 0.1
    assert ordering(paired_difference(b, a, seed=0)) == "<"
    # No difference planted: the same success rate; over 100 draws the interval should exclude
    # zero in about 5% of them (allow up to 12%: binomial 95% upper bound at n=100).
    false_claims = 0
    for t in range(100):
        c = (rng.random((seeds, examples)) < 0.85).astype(float)
        d = (rng.random((seeds, examples)) < 0.85).astype(float)
        false_claims += ordering(paired_difference(c, d, num_resamples=500, seed=t)) != "~"
    assert false_claims <= 12, false_claims


def test_paired_difference_uses_seed_spread():
    # Models differ by seed (one seed of A failed entirely): the interval must be wide enough
    # to include the seed-to-seed variation, not only the example noise.
    a = np.ones((4, 100))
    a[0] = 0.0
    b = np.full((4, 100), 0.8)
    result = paired_difference(a, b, seed=0)
    assert result["low"] < 0 < result["high"]
    with pytest.raises(ValueError, match="one shape"):
        paired_difference(np.ones((2, 3)), np.ones((2, 4)))


def test_extrapolation_length():
    lengths = [10, 20, 30, 40, 50]
    assert extrapolation_length(lengths, [1.0, 0.95, 0.92, 0.5, 0.99]) == 30
    assert extrapolation_length(lengths, [1.0] * 5) == 50
    assert extrapolation_length(lengths, [0.2, 1.0, 1.0, 1.0, 1.0]) == 0
    assert extrapolation_length(lengths, [1, 1, 0.85, 0, 0], threshold=0.8) == 30
    with pytest.raises(ValueError, match="ascending"):
        extrapolation_length([3, 2], [1, 1])
