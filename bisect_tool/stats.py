"""Shared statistics types and small helpers: samples in, numbers out. No git, no processes, no
printing.

The bisect's decisions live in policy.py (sequential t-tests on one log value per run). What is
here is shared around it: the verdict of a commit (`Verdict`), how two commits compare as a
report shows it (`Comparison`), the median, and the rank test `smbisect compare` uses between
two asv result sets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

DEFAULT_ALPHA = 0.01


class Verdict(str, Enum):
    GOOD = "good"
    BAD = "bad"
    UNKNOWN = "unknown"
    SKIP = "skip"


@dataclass(frozen=True)
class Comparison:
    """How `other` differs from `base`: the ratio with its 95% interval, and a p-value."""

    p_value: float
    ratio: float
    ci_low: float
    ci_high: float
    n_base: int
    n_other: int


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
