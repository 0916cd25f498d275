"""The seed as the unit of inference: coverage, power, false claims, Holm, aggregates."""

import numpy as np
import pytest
from scipy import stats as scipy_stats

from pe_jax.reporting._stats import (
    aggregate_difference,
    compare_seeds,
    extrapolation_length,
    holm,
    published_difference,
    sample_sd,
    t_interval,
)
from pe_jax.reporting._verdicts import Rules, _decide

EXAMPLES = 64
SEED_SD = 0.08  # spread of a trained model's true OOD score around its encoding's mean


def _models(rng, mean, seeds):
    """Per-example 0/1 scores [seeds, EXAMPLES]: each seed's true rate varies around `mean`
    (the spread between trained models), then each example is drawn from the seed's rate."""
    rates = np.clip(rng.normal(mean, SEED_SD, size=(seeds, 1)), 0.0, 1.0)
    return (rng.uniform(size=(seeds, EXAMPLES)) < rates).astype(np.float64)


def _two_level_bootstrap(a, b, rng, resamples=200):
    """The interval this bench used before: resample seeds, then examples within each seed."""
    diff = a - b
    seeds, examples = diff.shape
    seed_index = rng.integers(0, seeds, size=(resamples, seeds, 1))
    example_index = rng.integers(0, examples, size=(resamples, seeds, examples))
    means = diff[seed_index, example_index].mean(axis=(1, 2))
    return np.quantile(means, [0.025, 0.975])


@pytest.mark.parametrize("seeds", [5, 10])
def test_seed_level_t_interval_covers_and_the_old_bootstrap_does_not(seeds):
    rng = np.random.default_rng(seeds)
    trials, truth = 300, 0.10
    t_hits, boot_hits = 0, 0
    for _ in range(trials):
        # Each side's seeds are drawn around its mean; the true difference is `truth`.
        a, b = _models(rng, 0.6 + truth, seeds), _models(rng, 0.6, seeds)
        t = compare_seeds(a.mean(1), b.mean(1), paired=False)
        t_hits += t.low <= truth <= t.high
        low, high = _two_level_bootstrap(a, b, rng)
        boot_hits += low <= truth <= high
    assert t_hits / trials >= 0.93
    # The bootstrap over 5-10 seeds underestimates the spread between models.
    assert boot_hits / trials < t_hits / trials


def test_a_planted_difference_is_found_at_five_seeds():
    rng = np.random.default_rng(1)
    found = 0
    for _ in range(100):
        a, b = _models(rng, 0.8, 5).mean(1), _models(rng, 0.5, 5).mean(1)
        t = compare_seeds(a, b, paired=False)
        found += t.p < 0.05 and t.low > 0
    assert found >= 95


def test_with_nothing_planted_at_most_five_percent_of_sweeps_claim_an_ordering():
    rng = np.random.default_rng(2)
    rules = Rules()
    sweeps, false_sweeps = 300, 0
    for _ in range(sweeps):
        scores = [_models(rng, 0.5, 5).mean(1) for _ in range(4)]  # 4 encodings, 6 pairs
        tests = [
            compare_seeds(scores[i], scores[j], paired=False)
            for i in range(4)
            for j in range(i + 1, 4)
        ]
        adjusted = holm([t.p for t in tests])
        orders = [_decide(t, p, rules)[0] for t, p in zip(tests, adjusted, strict=True)]
        false_sweeps += any(o != "~" for o in orders)
    assert false_sweeps / sweeps <= 0.05


def test_interval_and_p_come_from_one_test_and_agree():
    rng = np.random.default_rng(3)
    for _ in range(200):
        a, b = rng.normal(0.5, 0.1, 5), rng.normal(0.55, 0.1, 5)
        for paired in (True, False):
            t = compare_seeds(a, b, paired=paired)
            assert (t.p < 0.05) == (t.low > 0 or t.high < 0)


def test_paired_and_welch_match_scipy():
    a = np.array([0.61, 0.72, 0.55, 0.68, 0.70])
    b = np.array([0.50, 0.66, 0.49, 0.61, 0.52])
    paired = compare_seeds(a, b, paired=True)
    assert paired.p == pytest.approx(scipy_stats.ttest_rel(a, b).pvalue)
    assert paired.df == 4 and paired.test == "paired t"
    welch = compare_seeds(a, b, paired=False)
    assert welch.p == pytest.approx(scipy_stats.ttest_ind(a, b, equal_var=False).pvalue)
    with pytest.raises(ValueError, match="one seed each side"):
        compare_seeds(a, b[:4], paired=True)


def test_three_seeds_never_give_an_ordering_whatever_the_gap():
    # The main job's old "rope > sinusoidal": per-seed differences [.008, .092, .016].
    t = compare_seeds([0.008, 0.092, 0.016], [0.0, 0.0, 0.0], paired=True)
    assert t.low < 0 < t.high  # the t interval includes zero
    order, reason = _decide(t, t.p, Rules())
    assert order == "~" and reason.startswith("too few seeds (3 and 3")
    huge = compare_seeds([0.9, 0.91, 0.92], [0.0, 0.01, 0.0], paired=True)
    assert _decide(huge, huge.p, Rules())[0] == "~"


def test_holm_matches_a_hand_computed_case():
    # m = 4: sorted p = .01, .02, .03, .04 -> 4*.01=.04, 3*.02=.06, 2*.03=.06, 1*.04=.04 ->
    # running max .04, .06, .06, .06.
    np.testing.assert_allclose(holm([0.03, 0.01, 0.04, 0.02]), [0.06, 0.04, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.001]), [0.5, 0.002])
    out = holm([np.nan, 0.02, 0.5])  # an untested pair does not count in m
    assert np.isnan(out[0]) and out[1] == pytest.approx(0.04) and out[2] == pytest.approx(0.5)


def test_one_sample_interval_and_degenerate_cases():
    t = t_interval([0.2, 0.4, 0.6])
    assert t.estimate == pytest.approx(0.4)
    half = scipy_stats.t.ppf(0.975, 2) * 0.2 / np.sqrt(3)
    assert (t.low, t.high) == pytest.approx((0.4 - half, 0.4 + half))
    one = t_interval([0.5])
    assert np.isnan(one.low) and np.isnan(one.p)  # no spread from one model
    same = compare_seeds([0.0] * 5, [0.0] * 5, paired=True)
    assert same.p == 1.0 and same.low == same.high == 0.0
    with pytest.raises(ValueError, match="confidence"):
        t_interval([0.1, 0.2], confidence=1.5)
    with pytest.raises(ValueError, match="finite"):
        t_interval([0.1, np.nan])
    assert sample_sd([1.0]) == 0.0


def test_aggregate_over_fixed_tasks_adds_the_variances():
    rng = np.random.default_rng(4)
    per_task = [
        compare_seeds(rng.normal(m, 0.05, 5), rng.normal(0.0, 0.05, 5), paired=False)
        for m in (0.1, 0.2, 0.3)
    ]
    agg = aggregate_difference(per_task)
    assert agg.estimate == pytest.approx(np.mean([t.estimate for t in per_task]))
    ses = [(t.high - t.estimate) / scipy_stats.t.ppf(0.975, t.df) for t in per_task]
    se = np.sqrt(np.sum(np.square(ses))) / 3
    assert (agg.high - agg.estimate) / scipy_stats.t.ppf(0.975, agg.df) == pytest.approx(se)
    assert agg.p < 0.05 and agg.test == "aggregate t"
    # Coverage of the aggregate over simulated sweeps of 3 tasks x 5 seeds.
    hits = 0
    for _ in range(300):
        tests = [
            compare_seeds(
                _models(rng, 0.5 + d, 5).mean(1), _models(rng, 0.5, 5).mean(1), paired=False
            )  # fmt: skip
            for d in (0.05, 0.1, 0.15)
        ]
        a = aggregate_difference(tests)
        hits += a.low <= 0.1 <= a.high
    assert hits / 300 >= 0.93


def test_published_difference_reads_the_papers_orders_and_ties():
    # Kazemnejad et al. copy rsc: NoPE .986 ± .005 vs T5 .771 ± .043 over 3 seeds: ordered.
    assert published_difference(0.986, 0.005, 0.771, 0.043, seeds=3).p < 0.05
    # reverse mc: T5 .242 ± .019 vs NoPE .230 ± .008: a tie.
    assert published_difference(0.242, 0.019, 0.230, 0.008, seeds=3).p >= 0.05
    # rope .000 ± .000 vs sinusoidal .000 ± .000: equal, no order.
    assert published_difference(0.0, 0.0, 0.0, 0.0, seeds=3).p == 1.0


def test_extrapolation_length():
    assert extrapolation_length([1, 2, 4, 8], [1.0, 0.95, 0.92, 0.5], threshold=0.9) == 4
    assert extrapolation_length([1, 2], [0.5, 1.0]) == 0
    assert extrapolation_length([1, 2], [1.0, 1.0]) == 2
    with pytest.raises(ValueError, match="ascending"):
        extrapolation_length([2, 1], [1.0, 1.0])
