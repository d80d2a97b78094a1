"""waterfall.py on plain data: segment verdicts in both directions, shares, the hiding rule."""

from __future__ import annotations

import math

import pytest

from bisect_tool import policy as pol
from bisect_tool import waterfall as wf
from bisect_tool.policy import Policy, Scale, Spent
from bisect_tool.waterfall import IMPROVEMENT, REGRESSION, Change, Segment

THR = math.log(1.05)


def diff(low: list[float], high: list[float], sigma: float = 0.02) -> pol.Difference:
    return pol.unpaired([math.log(x) for x in low], [math.log(x) for x in high], Scale(sigma, 40))


def test_a_segment_judged_in_both_directions() -> None:
    policy = wf.segment_policy(Policy())
    up = diff([1.0] * 5, [1.5] * 5)
    assert wf.judge_segment(up, THR, policy, Spent(), True)[0] is Segment.REGRESSION
    assert wf.judge_segment(up, THR, policy, Spent(), False)[0] is Segment.IMPROVEMENT
    down = diff([1.0] * 5, [0.7] * 5)
    assert wf.judge_segment(down, THR, policy, Spent(), True)[0] is Segment.IMPROVEMENT
    flat = diff([1.0] * 5, [1.01] * 5)
    assert wf.judge_segment(flat, THR, policy, Spent(), True)[0] is Segment.NONE


def test_a_suggested_change_is_measured_more_until_the_segment_budget() -> None:
    policy = wf.segment_policy(Policy())
    unsure = diff([1.0] * 4, [1.1] * 4, sigma=0.3)
    assert wf.judge_segment(unsure, THR, policy, Spent(runs=2), True)[0] is Segment.MORE
    spent = Spent(runs=Policy().segment_runs)
    # the budget is spent with the estimate still beyond the threshold: may be a change
    assert wf.judge_segment(unsure, THR, policy, spent, True)[0] is Segment.UNCLEAR
    small = diff([1.0] * 4, [1.03] * 4, sigma=0.3)
    assert wf.judge_segment(small, THR, policy, spent, True)[0] is Segment.NONE
    few = diff([1.0, 1.0], [1.5, 1.5])
    assert wf.judge_segment(few, THR, policy, Spent(), True)[0] is Segment.MORE


def test_none_needs_an_interval_that_rules_out_a_material_change() -> None:
    """A real 1.5x segment measured on 3 runs a side at 25% noise can read 1.02x: that is not
    evidence of no change, so the check measures on (issue 9: such segments were called "none"
    and a change went missing at exit 0)."""
    policy = wf.segment_policy(Policy())
    wide = diff([1.0] * 3, [1.02] * 3, sigma=0.25)
    assert not wf.rules_out(wide, wf.material(THR, True, policy), policy)
    assert wf.judge_segment(wide, THR, policy, Spent(runs=3), True)[0] is Segment.MORE
    # the same estimate on many runs: the interval is within 20%, so no change
    narrow = diff([1.0] * 40, [1.02] * 40, sigma=0.25)
    assert wf.judge_segment(narrow, THR, policy, Spent(runs=40), True)[0] is Segment.NONE
    # an estimate beyond the threshold that is neither shown nor ruled out, budget spent
    spent = Spent(runs=policy.budget.runs_per_commit)
    assert wf.judge_segment(wide, THR, policy, spent, True)[0] is Segment.NONE
    beyond = diff([1.0] * 3, [1.15] * 3, sigma=0.25)
    assert wf.judge_segment(beyond, THR, policy, spent, True)[0] is Segment.UNCLEAR
    # on the raw scale the bound is the threshold times a factor, not a log ratio
    assert wf.material(2.0, False, policy) == 2.0 * policy.segment_material_factor
    assert wf.material(THR, True, policy) == policy.segment_material
    # next to a 237x change, a tenth of the whole log change: 1.73x
    huge = math.log(237.0)
    assert wf.material(THR, True, policy, huge) == pytest.approx(0.1 * huge)
    assert wf.material(THR, True, policy, -huge) == pytest.approx(0.1 * huge)
    assert wf.material(THR, True, policy, math.log(3.0)) == policy.segment_material


def test_shares_are_signed_and_the_residual_is_what_is_left() -> None:
    parts, rest = wf.shares(math.log(2.4), [math.log(1.5), math.log(0.8), math.log(2.0)])
    assert sum(parts) + rest == pytest.approx(1.0)
    assert parts[1] < 0 < parts[0] < parts[2]
    assert rest == pytest.approx(0.0, abs=1e-9)
    nan_parts, nan_rest = wf.shares(0.0, [0.1])
    assert math.isnan(nan_parts[0]) and math.isnan(nan_rest)


def test_a_speedup_is_bisected_only_when_it_hides_a_regression_larger_than_the_net() -> None:
    net = math.log(1.8)
    assert wf.hides_regression([math.log(3.0)], net, THR)  # 3x, then 0.6x: 1.8x net
    assert not wf.hides_regression([math.log(1.5), math.log(2.0)], math.log(2.4), THR)
    assert not wf.hides_regression([], net, THR)


def change(sha: str, ratio: float, kind: str = REGRESSION) -> Change:
    return Change(kind, "g", "b", ratio, ratio * 0.9, ratio * 1.1, 0.001, sha=sha)


def test_the_waterfall_is_in_history_order_and_largest_first_ranks_regressions() -> None:
    changes = [change("c9", 2.0), change("c2", 1.5), change("c5", 0.8, IMPROVEMENT)]
    w = wf.build(1.0, 2.4, changes, ["g", "c2", "c5", "c9", "b"])
    assert [c.sha for c in w.changes] == ["c2", "c5", "c9"]
    assert w.residual == pytest.approx(1.0)
    assert w.total == pytest.approx(2.4)
    ranked = wf.largest_first(changes)
    assert [c.sha for c in ranked] == ["c9", "c2", "c5"]
