"""The statistical decisions of bisect_tool.stats, on synthetic samples with fixed seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bisect_tool import stats
from bisect_tool.stats import Verdict

ALPHA = stats.DEFAULT_ALPHA


def lognormal(seed: int, center: float, n: int, noise: float = 0.05) -> list[float]:
    """n samples around `center` with multiplicative noise (sigma of the log)."""
    rng = np.random.default_rng(seed)
    return list(center * np.exp(rng.normal(0.0, noise, n)))


def refs(seed: int = 0, good: float = 1.0, bad: float = 2.0, n: int = 10, noise: float = 0.05):
    return lognormal(seed, good, n, noise), lognormal(seed + 1000, bad, n, noise)


def classify(samples, good, bad, **cut_kw):
    cut = stats.cut_value(stats.median(good), stats.median(bad), **cut_kw)
    return stats.classify(samples, good, bad, cut, ALPHA)


# -- classify ----------------------------------------------------------------------------------


def test_clear_slow_commit_is_bad():
    good, bad = refs()
    c = classify(lognormal(7, 2.0, 5), good, bad)
    assert c.verdict is Verdict.BAD
    assert c.p_vs_good < ALPHA
    assert c.ratio_to_good == pytest.approx(2.0, rel=0.1)


def test_clear_fast_commit_is_good():
    good, bad = refs()
    c = classify(lognormal(7, 1.0, 5), good, bad)
    assert c.verdict is Verdict.GOOD
    assert c.p_vs_bad < ALPHA
    assert c.ratio_to_good == pytest.approx(1.0, rel=0.1)


def test_too_few_samples_is_unknown_even_on_the_bad_side():
    # Two samples can never give a rank-test p below 0.01 against ten: 2 / C(12, 2) = 0.03.
    good, bad = refs()
    c = classify([2.0, 2.01], good, bad)
    assert c.verdict is Verdict.UNKNOWN
    assert c.median > stats.cut_value(stats.median(good), stats.median(bad))
    assert c.p_vs_good >= ALPHA
    # ...and the same values with enough samples are decided.
    assert classify([2.0, 2.01, 1.99, 2.02, 1.98], good, bad).verdict is Verdict.BAD


def test_overlapping_distributions_are_unknown():
    # Noise (30%) much larger than the difference (1.15x): neither endpoint can be excluded.
    good, bad = refs(seed=3, good=1.0, bad=1.15, noise=0.3)
    c = classify(lognormal(11, 1.07, 5, noise=0.3), good, bad)
    assert c.verdict is Verdict.UNKNOWN
    assert c.p_vs_good >= ALPHA or c.p_vs_bad >= ALPHA


def test_far_beyond_bad_is_unknown():
    good, bad = refs()  # 1.0 and 2.0: anything beyond 4.0 is "far"
    c = classify(lognormal(5, 25.0, 10), good, bad)
    assert c.p_vs_good < ALPHA and c.p_vs_bad < ALPHA  # clearly unlike both...
    assert c.verdict is Verdict.UNKNOWN  # ...so it is noise or another change, not a verdict
    assert c.far_outside and "far beyond the bad reference" in c.reason


def test_far_below_good_is_good():
    good, bad = refs()  # a big improvement cannot be a burst of load
    c = classify(lognormal(5, 0.04, 10), good, bad)
    assert c.verdict is Verdict.GOOD and not c.far_outside


def test_faster_than_good_is_good():
    good, bad = refs()
    c = classify(lognormal(9, 0.8, 5), good, bad)  # 20% faster than good, not "far"
    assert c.p_vs_good < ALPHA
    assert c.verdict is Verdict.GOOD


def test_reversed_direction_throughput():
    # Higher is better: bad is lower than good.
    good, bad = refs(good=100.0, bad=60.0)
    assert classify(lognormal(21, 60.0, 5), good, bad).verdict is Verdict.BAD
    assert classify(lognormal(22, 100.0, 5), good, bad).verdict is Verdict.GOOD
    assert classify(lognormal(23, 115.0, 5), good, bad).verdict is Verdict.GOOD


def test_classify_uses_the_given_cut():
    # A commit at 1.3x good: below the default cut (sqrt(2) ~ 1.41), above a factor-1.2 cut.
    good, bad = refs(noise=0.01)
    samples = lognormal(4, 1.3, 8, noise=0.01)
    assert classify(samples, good, bad).verdict is Verdict.GOOD
    assert classify(samples, good, bad, factor=1.2).verdict is Verdict.BAD


def test_false_bad_rate_is_bounded():
    """Commit drawn from the good distribution: BAD (p < alpha) in well under 3% of seeds."""
    false_bad = correct = 0
    seeds = range(200)
    for seed in seeds:
        good, bad = refs(seed=seed, good=1.0, bad=1.5, noise=0.1)
        c = classify(lognormal(seed + 5000, 1.0, 5, noise=0.1), good, bad)
        false_bad += c.verdict is Verdict.BAD
        correct += c.verdict is Verdict.GOOD
    assert false_bad / len(seeds) < 0.03
    assert correct / len(seeds) > 0.8  # and the test is not vacuous: it does say GOOD


def test_false_good_rate_is_bounded():
    false_good = correct = 0
    seeds = range(200)
    for seed in seeds:
        good, bad = refs(seed=seed, good=1.0, bad=1.5, noise=0.1)
        c = classify(lognormal(seed + 7000, 1.5, 5, noise=0.1), good, bad)
        false_good += c.verdict is Verdict.GOOD
        correct += c.verdict is Verdict.BAD
    assert false_good / len(seeds) < 0.03
    assert correct / len(seeds) > 0.8


# -- far_outside ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1.5, False), (3.9, False), (4.1, True), (0.55, False), (0.45, True), (1.0, False)],
)
def test_far_outside_is_beyond_the_span_on_a_log_scale(value, expected):
    # good 1, bad 2: the span is a factor 2, so "far" is above 4 or below 0.5.
    assert stats.far_outside(value, 1.0, 2.0) is expected
    assert stats.far_outside(value, 2.0, 1.0) is expected  # symmetric in good/bad


def test_far_outside_ignores_non_positive_values():
    assert stats.far_outside(0.0, 1.0, 2.0) is False
    assert stats.far_outside(-5.0, 1.0, 2.0) is False


# -- cut_value -------------------------------------------------------------------------------


def test_cut_default_is_the_log_midpoint():
    assert stats.cut_value(1.0, 4.0) == pytest.approx(2.0)
    assert stats.cut_value(4.0, 1.0) == pytest.approx(2.0)
    assert stats.cut_value(10.0, 1000.0) == pytest.approx(100.0)


def test_cut_default_falls_back_to_arithmetic_midpoint_for_non_positive_values():
    assert stats.cut_value(-1.0, 3.0) == pytest.approx(1.0)
    assert stats.cut_value(0.0, 4.0) == pytest.approx(2.0)


def test_cut_factor_in_both_directions():
    assert stats.cut_value(10.0, 20.0, factor=1.2) == pytest.approx(12.0)
    assert stats.cut_value(20.0, 10.0, factor=1.25) == pytest.approx(16.0)


def test_cut_delta_in_both_directions():
    assert stats.cut_value(10.0, 20.0, delta=3.0) == pytest.approx(13.0)
    assert stats.cut_value(20.0, 10.0, delta=3.0) == pytest.approx(17.0)


# -- regression_reproduces ---------------------------------------------------------------------


def test_reproduces_for_a_real_shift():
    good, bad = lognormal(1, 1.0, 10), lognormal(2, 1.3, 10)
    ok, comp = stats.regression_reproduces(good, bad)
    assert ok
    assert comp.p_value < ALPHA
    assert comp.ratio == pytest.approx(1.3, rel=0.05)
    assert comp.ci_low > 1.0


def test_does_not_reproduce_for_identical_distributions():
    good, bad = lognormal(1, 1.0, 10), lognormal(2, 1.0, 10)
    ok, _ = stats.regression_reproduces(good, bad)
    assert not ok


def test_does_not_reproduce_below_the_minimum_effect():
    # A 2% shift measured so precisely that it is significant is still below the 5% floor.
    good, bad = lognormal(1, 1.0, 40, noise=0.002), lognormal(2, 1.02, 40, noise=0.002)
    ok, comp = stats.regression_reproduces(good, bad)
    assert comp.p_value < ALPHA  # significance is not what stops it
    assert not ok


def test_reproduces_respects_factor():
    good, bad = lognormal(1, 1.0, 10), lognormal(2, 1.3, 10)
    assert stats.regression_reproduces(good, bad, factor=1.2)[0]
    assert not stats.regression_reproduces(good, bad, factor=1.5)[0]


def test_reproduces_respects_delta():
    good, bad = lognormal(1, 10.0, 10), lognormal(2, 13.0, 10)
    assert stats.regression_reproduces(good, bad, delta=2.0)[0]
    assert not stats.regression_reproduces(good, bad, delta=4.0)[0]


def test_reproduces_in_the_declared_direction_only():
    # A 1.3x *increase* is a regression of a time, but an improvement of a throughput.
    good, bad = lognormal(1, 100.0, 10), lognormal(2, 130.0, 10)
    assert stats.regression_reproduces(good, bad, worse_is_higher=True)[0]
    assert not stats.regression_reproduces(good, bad, worse_is_higher=False)[0]
    assert stats.regression_reproduces(bad, good, worse_is_higher=False)[0]


# -- drifted -----------------------------------------------------------------------------------


def test_drifted_detects_a_20_percent_shift():
    assert stats.drifted(lognormal(1, 1.0, 10), lognormal(2, 1.2, 5))


def test_drifted_not_for_a_resample_of_the_same_distribution():
    flagged = sum(
        stats.drifted(lognormal(s, 1.0, 10), lognormal(s + 100, 1.0, 5)) for s in range(50)
    )
    assert flagged <= 3  # alpha = 1%: a handful at most in 50 resamples


# -- confirms ----------------------------------------------------------------------------------


def blocks(seed: int, center: float, k: int = 5, size: int = 3) -> list[list[float]]:
    return [lognormal(seed * 100 + i, center, size) for i in range(k)]


def test_confirms_a_consistent_culprit():
    ok, comp = stats.confirms(blocks(1, 1.0), blocks(2, 1.3), worse_is_higher=True)
    assert ok
    assert comp.ratio == pytest.approx(1.3, rel=0.05)
    assert comp.ci_low > 1.0
    assert comp.n_base == comp.n_other == 15


def test_does_not_confirm_a_single_slow_block():
    # One culprit block ran during a load burst (3x); the other four match the parent. The
    # burst is enough to make "all samples" look different, but not the block medians.
    parent = blocks(1, 1.0)
    culprit = blocks(2, 1.0)
    culprit[2] = [3.0 * x for x in culprit[2]]
    ok, comp = stats.confirms(parent, culprit, worse_is_higher=True)
    assert not ok
    assert comp.p_value >= ALPHA


def test_does_not_confirm_the_reverse_direction():
    ok, comp = stats.confirms(blocks(1, 1.3), blocks(2, 1.0), worse_is_higher=True)
    assert comp.p_value < ALPHA  # clearly different...
    assert not ok  # ...but faster, which is not the regression


def test_confirms_a_throughput_drop_when_lower_is_worse():
    assert stats.confirms(blocks(1, 100.0), blocks(2, 70.0), worse_is_higher=False)[0]
    assert not stats.confirms(blocks(1, 100.0), blocks(2, 70.0), worse_is_higher=True)[0]


# -- ratio_interval, rank_test, compare ----------------------------------------------------------


def test_ratio_interval_contains_the_true_ratio():
    base, other = lognormal(1, 2.0, 400), lognormal(2, 2.6, 400)
    low, high = stats.ratio_interval(base, other)
    assert low < 1.3 < high
    assert high - low < 0.05  # and it is informative at this sample size


def test_ratio_interval_is_degenerate_without_spread():
    assert stats.ratio_interval([2.0, 2.0, 2.0], [3.0, 3.0, 3.0]) == (1.5, 1.5)


def test_rank_test_identical_inputs():
    assert stats.rank_test([1.0] * 10, [1.0] * 10) == 1.0


def test_rank_test_constant_but_different_inputs_is_significant():
    p = stats.rank_test([1.0] * 10, [2.0] * 10)
    assert p < ALPHA
    # complete separation: the exact two-sided p-value is 2 / C(20, 10)
    assert p == pytest.approx(2 / math.comb(20, 10))


def test_rank_test_empty_input():
    assert stats.rank_test([], [1.0, 2.0]) == 1.0


def test_compare_reports_ratio_and_sizes():
    comp = stats.compare(lognormal(1, 4.0, 12), lognormal(2, 2.0, 8))
    assert comp.ratio == pytest.approx(0.5, rel=0.05)
    assert comp.n_base == 12 and comp.n_other == 8
    assert comp.ci_low <= comp.ratio <= comp.ci_high
    assert comp.p_value < ALPHA
    assert math.isfinite(comp.ci_low)
