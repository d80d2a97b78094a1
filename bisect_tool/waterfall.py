"""Every change between good and bad, with its share: the pure half of attribution.

After a culprit is confirmed, the two segments around it (good to the culprit's parent, and the
culprit to bad) are judged: does the benchmark still change across one, beyond the threshold
and the noise? `judge_segment` answers from numbers, in either direction, so a speedup inside
the range counts as well as a second slowdown. `shares` splits the total log change between good
and bad among the changes found, and leaves the rest as the residual nobody explains. No git, no
processes: the session measures (attribution.py) and this module decides and adds up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import Enum

from .policy import (
    Budget,
    Decision,
    Difference,
    Judgement,
    Policy,
    Spent,
    budget_spent,
    judge_endpoints,
)

REGRESSION = "regression"
IMPROVEMENT = "improvement"


class Segment(str, Enum):
    REGRESSION = "regression"  # the newer end is worse beyond the threshold, significantly
    IMPROVEMENT = "improvement"  # the newer end is better beyond the threshold, significantly
    NONE = "none"  # no significant change beyond the threshold
    # the estimate lies beyond the threshold, but the budget was spent before it was shown
    # significant: reported as a change that may be there, never counted or bisected
    UNCLEAR = "unclear"
    MORE = "more"  # measure both ends once more


@dataclass(frozen=True)
class Change:
    """One change of the benchmark inside the range: a bisected commit, or a segment whose
    change was found but not bisected (an improvement without --improvements, or a change left
    over when --max-culprits was spent)."""

    kind: str  # REGRESSION or IMPROVEMENT
    low: str  # the segment it was found in: older end ...
    high: str  # ... newer end
    ratio: float  # over its parent (a commit) or across its segment; >1 is slower for time
    ci_low: float
    ci_high: float
    p_value: float
    sha: str | None = None  # the commit, when bisected
    parent: str | None = None
    confirmed: bool = False
    bisected: bool = False
    steps: int = 0
    share: float = math.nan  # of the total log change between good and bad (signed)
    primary: bool = False  # the first culprit, found by the main bisect
    bisect_log: str = ""  # `git bisect log` of the segment's own bisect

    @property
    def log_ratio(self) -> float:
        return math.log(self.ratio) if self.ratio > 0 else math.nan


@dataclass(frozen=True)
class Waterfall:
    """good, each change in history order, bad, and what is left."""

    good: float  # the benchmark's value at good (median of its runs)
    bad: float
    changes: tuple[Change, ...]
    residual: float  # ratio left unexplained: (bad/good) / product of the changes' ratios
    residual_share: float
    open_segments: tuple[tuple[str, str, str], ...] = ()  # (low, high, why) left unattributed

    @property
    def total(self) -> float:
        return self.bad / self.good if self.good else math.nan


def material(threshold: float, log_scale: bool, policy: Policy, total: float = 0.0) -> float:
    """The smallest segment change a check must not call "none": a log ratio of
    `policy.segment_material`, or `policy.segment_share` of the whole log change `total`, or the
    threshold, whichever is largest; on the raw scale the threshold times
    `policy.segment_material_factor`."""
    if log_scale:
        return max(threshold, policy.segment_material, policy.segment_share * abs(total))
    return threshold * policy.segment_material_factor


def rules_out(d: Difference, bound: float, policy: Policy) -> bool:
    """Does the estimate +- `segment_none_z` standard errors lie within +-bound?"""
    if d.n < 1 or not math.isfinite(d.se) or not math.isfinite(d.diff):
        return False
    return abs(d.diff) + policy.segment_none_z * d.se <= bound


def judge_segment(
    d: Difference,
    threshold: float,
    policy: Policy,
    spent: Spent,
    worse_is_higher: bool,
    bound: float | None = None,
) -> tuple[Segment, Judgement]:
    """Has the benchmark changed across this segment (newer - older = `d`)?

    The endpoints' test, in both directions: a change must exceed the threshold and be
    significant at the endpoints' error rate. "No change" (NONE) needs evidence too: the
    interval must rule out a change of `bound` (`material`). Until one or the other, more runs,
    up to the (small) budget in `policy`; then a segment whose estimate is still beyond the
    threshold is UNCLEAR, and one within it NONE (its estimate goes to the residual)."""
    bound = material(threshold, True, policy) if bound is None else bound
    up = judge_endpoints(d, threshold, policy, spent, worse_is_higher)
    if d.n < policy.min_reference_runs and up.decision is Decision.MORE:
        return Segment.MORE, up
    if up.decision is Decision.REGRESSED:
        return Segment.REGRESSION, up
    down = judge_endpoints(d, threshold, policy, spent, not worse_is_higher)
    if down.decision is Decision.REGRESSED:
        return Segment.IMPROVEMENT, down
    if rules_out(d, bound, policy):
        return Segment.NONE, up
    if not budget_spent(policy, spent):
        return Segment.MORE, up
    return (Segment.UNCLEAR if abs(d.diff) > threshold else Segment.NONE), up


def segment_policy(policy: Policy) -> Policy:
    """The policy for a segment check: the endpoints' error rate, a budget of a few runs."""
    return replace(
        policy,
        budget=Budget(
            seconds_per_commit=policy.budget.seconds_per_commit,
            seconds_total=policy.budget.seconds_total,
            runs_per_commit=policy.segment_runs,
        ),
    )


def hides_regression(regressions: Sequence[float], total: float, threshold: float) -> bool:
    """Is one regression found (log ratios, positive = worse) larger than the whole net change
    by more than the threshold? Then a speedup in the range hides part of it, and the speedup
    is needed to explain the numbers: it is bisected too. Otherwise it is reported only."""
    return max(regressions, default=0.0) > total + threshold


def shares(total: float, parts: Sequence[float]) -> tuple[list[float], float]:
    """Each part's share of the total log change (signed: a speedup inside a slowdown has a
    negative share), and the residual's. With no net change the shares are undefined (nan)."""
    explained = sum(parts)
    if not math.isfinite(total) or abs(total) < 1e-12:
        return [math.nan for _ in parts], math.nan
    return [p / total for p in parts], (total - explained) / total


def build(
    good: float,
    bad: float,
    changes: Sequence[Change],
    order: Sequence[str],
    open_segments: Sequence[tuple[str, str, str]] = (),
) -> Waterfall:
    """The waterfall: changes in history order (by their commit, or their segment's newer end,
    in `order`, oldest first), each with its share, and the residual."""
    position = {sha: i for i, sha in enumerate(order)}

    def where(c: Change) -> int:
        return position.get(c.sha or c.high, len(position))

    ordered = sorted(changes, key=where)
    total = math.log(bad / good) if good > 0 and bad > 0 else math.nan
    logs = [c.log_ratio for c in ordered]
    parts, rest = shares(total, logs)
    with_shares = tuple(replace(c, share=s) for c, s in zip(ordered, parts, strict=True))
    explained = sum(logs)
    residual = math.exp(total - explained) if math.isfinite(total) else math.nan
    return Waterfall(good, bad, with_shares, residual, rest, tuple(open_segments))


def largest_first(changes: Sequence[Change]) -> list[Change]:
    """Regressions first, the largest first; then improvements, the largest first."""
    return sorted(
        changes,
        key=lambda c: (c.kind != REGRESSION, -abs(c.log_ratio) if c.ratio > 0 else 0.0),
    )
