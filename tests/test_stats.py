"""bisect_tool.stats: the median and the rank test `smbisect compare` uses."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bisect_tool import stats

ALPHA = stats.DEFAULT_ALPHA


def test_median_of_an_even_count_is_the_mean_of_the_middle_two():
    assert stats.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert stats.median([3.0, 1.0, 2.0]) == 2.0


def test_rank_test_identical_inputs():
    assert stats.rank_test([1.0] * 10, [1.0] * 10) == 1.0


def test_rank_test_constant_but_different_inputs_is_significant():
    p = stats.rank_test([1.0] * 10, [2.0] * 10)
    assert p < ALPHA
    # complete separation: the exact two-sided p-value is 2 / C(20, 10)
    assert p == pytest.approx(2 / math.comb(20, 10))


def test_rank_test_empty_input():
    assert stats.rank_test([], [1.0, 2.0]) == 1.0


def test_rank_test_tells_a_shift_from_a_resample():
    rng = np.random.default_rng(7)
    base = list(rng.lognormal(0.0, 0.05, 12))
    same = list(rng.lognormal(0.0, 0.05, 12))
    slower = list(rng.lognormal(math.log(1.3), 0.05, 12))
    assert stats.rank_test(base, slower) < ALPHA
    assert stats.rank_test(base, same) > ALPHA
