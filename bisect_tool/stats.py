"""Pure statistics: samples in, verdicts out. No git, no processes, no printing.

A commit is classified by which endpoint it resembles. The threshold (a "cut" value between the
good and the bad reference medians) says on which side its median lies; a Mann-Whitney U test
says whether its samples are distinguishable from the endpoint it is *not* like. When the side
and the test disagree, or the test is not yet significant, the verdict is UNKNOWN, which tells the
session to measure more rather than guess (the Pinpoint approach, not asv find's single timing).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

DEFAULT_ALPHA = 0.01
DEFAULT_MIN_EFFECT = 1.05  # below a 5% change between endpoints we do not call it a regression


class Verdict(str, Enum):
    GOOD = "good"
    BAD = "bad"
    UNKNOWN = "unknown"
    SKIP = "skip"


@dataclass(frozen=True)
class Comparison:
    """How `other` differs from `base`: rank-test p-value and ratio of medians with its CI."""

    p_value: float
    ratio: float
    ci_low: float
    ci_high: float
    n_base: int
    n_other: int


@dataclass(frozen=True)
class Classification:
    verdict: Verdict
    median: float
    ratio_to_good: float
    p_vs_good: float
    p_vs_bad: float
    reason: str
    far_outside: bool = False


def median(samples: Sequence[float]) -> float:
    return float(np.median(np.asarray(samples, dtype=float)))


def rank_test(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Mann-Whitney U p-value; 1.0 when the test is undefined (too few or all tied)."""
    if len(a) < 1 or len(b) < 1:
        return 1.0
    xa = np.asarray(a, dtype=float)
    xb = np.asarray(b, dtype=float)
    if np.all(xa == xa[0]) and np.all(xb == xb[0]):
        return 1.0 if xa[0] == xb[0] else _min_exact_p(len(a), len(b))
    from scipy import stats as sps  # on first use: importing it takes a second

    p = float(sps.mannwhitneyu(xa, xb, alternative="two-sided").pvalue)
    return 1.0 if math.isnan(p) else p


def _min_exact_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided p-value a rank test can give for these sample sizes."""
    return min(1.0, 2.0 / math.comb(n_a + n_b, n_a))


def ratio_interval(
    base: Sequence[float],
    other: Sequence[float],
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Bootstrap percentile interval of median(other) / median(base)."""
    xa = np.asarray(base, dtype=float)
    xb = np.asarray(other, dtype=float)
    if len(xa) < 2 or len(xb) < 2 or np.ptp(np.concatenate([xa, xb])) == 0:
        r = _safe_ratio(median(xb), median(xa))
        return r, r

    def ratio_of_medians(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        mx = np.median(x, axis=axis)
        my = np.median(y, axis=axis)
        with np.errstate(divide="ignore", invalid="ignore"):
            return my / mx

    from scipy import stats as sps  # on first use: importing it takes a second

    res = sps.bootstrap(
        (xa, xb),
        ratio_of_medians,
        n_resamples=2000,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return low, high


def _safe_ratio(num: float, den: float) -> float:
    if den == 0:
        return math.inf if num > 0 else 1.0
    return num / den


def compare(base: Sequence[float], other: Sequence[float], confidence: float = 0.95) -> Comparison:
    low, high = ratio_interval(base, other, confidence)
    return Comparison(
        p_value=rank_test(base, other),
        ratio=_safe_ratio(median(other), median(base)),
        ci_low=low,
        ci_high=high,
        n_base=len(base),
        n_other=len(other),
    )


def cut_value(
    good_median: float,
    bad_median: float,
    factor: float | None = None,
    delta: float | None = None,
) -> float:
    """The value separating good from bad.

    Default: the geometric midpoint of the two reference medians (the midpoint on a log scale, so
    a 4x regression cuts at 2x). `factor` is a fixed ratio to good and `delta` a fixed absolute
    difference from good, both applied in the direction in which bad differs from good.
    """
    worse_is_higher = bad_median >= good_median
    if factor is not None:
        return good_median * factor if worse_is_higher else good_median / factor
    if delta is not None:
        return good_median + delta if worse_is_higher else good_median - delta
    if good_median > 0 and bad_median > 0:
        return math.sqrt(good_median * bad_median)
    return (good_median + bad_median) / 2


def classify(
    samples: Sequence[float],
    good: Sequence[float],
    bad: Sequence[float],
    cut: float,
    alpha: float = DEFAULT_ALPHA,
) -> Classification:
    """Say whether `samples` look like the good or the bad reference, or that we cannot tell yet."""
    m = median(samples)
    g, b = median(good), median(bad)
    p_good = rank_test(samples, good)
    p_bad = rank_test(samples, bad)
    ratio = _safe_ratio(m, g)
    worse_is_higher = b >= g
    on_bad_side = m > cut if worse_is_higher else m < cut
    if p_good < alpha and p_bad < alpha and on_bad_side and far_outside(m, g, b):
        return Classification(
            Verdict.UNKNOWN,
            m,
            ratio,
            p_good,
            p_bad,
            f"far beyond the bad reference ({ratio:.3g}x good): noise or another change",
            far_outside=True,
        )
    if on_bad_side and p_good < alpha:
        verdict, reason = Verdict.BAD, f"beyond the cut and unlike good (p={p_good:.2g})"
    elif not on_bad_side and p_bad < alpha:
        verdict, reason = Verdict.GOOD, f"within the cut and unlike bad (p={p_bad:.2g})"
    elif on_bad_side:
        verdict, reason = (
            Verdict.UNKNOWN,
            f"beyond the cut but not yet unlike good (p={p_good:.2g})",
        )
    else:
        verdict, reason = Verdict.UNKNOWN, f"within the cut but not yet unlike bad (p={p_bad:.2g})"
    return Classification(verdict, m, ratio, p_good, p_bad, reason)


def far_outside(value: float, good: float, bad: float) -> bool:
    """Beyond either reference by more than the good-to-bad distance, on a log scale.

    Such a commit resembles neither endpoint; on a loaded machine a commit far *beyond bad* is
    usually a burst of noise (a descheduled BLAS thread turns 20 us into 15 ms), so it is
    measured again before it is classified. Far on the good side cannot be load: it is good.
    """
    if min(value, good, bad) <= 0:
        return False
    lo, hi = min(good, bad), max(good, bad)
    span = math.log(hi / lo)
    return math.log(value / hi) > span or math.log(lo / value) > span


def beyond_threshold(
    good_median: float,
    value_median: float,
    factor: float | None = None,
    delta: float | None = None,
    worse_is_higher: bool = True,
) -> bool:
    """Is value worse than good by more than the threshold (default: a 5% change)?"""
    diff = value_median - good_median if worse_is_higher else good_median - value_median
    if delta is not None:
        return diff > delta
    need = factor if factor is not None else DEFAULT_MIN_EFFECT
    ratio = (
        _safe_ratio(value_median, good_median)
        if worse_is_higher
        else _safe_ratio(good_median, value_median)
    )
    return ratio > need


def regression_reproduces(
    good: Sequence[float],
    bad: Sequence[float],
    alpha: float = DEFAULT_ALPHA,
    factor: float | None = None,
    delta: float | None = None,
    worse_is_higher: bool = True,
) -> tuple[bool, Comparison]:
    """Is bad really worse than good, significantly and by at least the threshold?"""
    comp = compare(good, bad)
    big_enough = beyond_threshold(median(good), median(bad), factor, delta, worse_is_higher)
    return (big_enough and comp.p_value < alpha), comp


def drifted(old: Sequence[float], new: Sequence[float], alpha: float = DEFAULT_ALPHA) -> bool:
    """Did a reference re-measured later come out significantly different from before?"""
    return rank_test(old, new) < alpha


def confirms(
    parent_blocks: Sequence[Sequence[float]],
    culprit_blocks: Sequence[Sequence[float]],
    worse_is_higher: bool,
    alpha: float = DEFAULT_ALPHA,
) -> tuple[bool, Comparison]:
    """Is the culprit worse than its parent, judged on independently measured blocks?

    Blocks are measured alternately (parent, culprit, culprit, parent, ...). Samples inside one
    block share a process and a moment of machine load, so they are not independent: the rank
    test runs on block medians (one per process), which a burst of load during one block cannot
    sway; the ratio and its interval use every sample.
    """
    parent = [x for blk in parent_blocks for x in blk]
    culprit = [x for blk in culprit_blocks for x in blk]
    ci_low, ci_high = ratio_interval(parent, culprit)
    p_med = [median(b) for b in parent_blocks if len(b)]
    c_med = [median(b) for b in culprit_blocks if len(b)]
    comp = Comparison(
        p_value=rank_test(p_med, c_med),
        ratio=_safe_ratio(median(culprit), median(parent)) if parent and culprit else math.nan,
        ci_low=ci_low,
        ci_high=ci_high,
        n_base=len(parent),
        n_other=len(culprit),
    )
    worse = comp.ratio > 1 if worse_is_higher else comp.ratio < 1
    return (worse and comp.p_value < alpha), comp
