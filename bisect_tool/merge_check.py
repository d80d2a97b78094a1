"""A merge named as the culprit: is the change its own, or did its branches bring it?

Two branches that each carry a slowdown, merged: the merge M is worse than its first parent
P1 by the second branch's change and worse than P2 by the first's, so it passes "worse than
every parent" while it changes nothing itself. A bisect names it when both parents sit near
the cut (two equal changes put them at its midpoint) and are judged good. Its own change is
the part its parents' branches do not explain; on the log scale, with B their merge base,

    own = (M - P1) - (P2 - B) = M - P1 - P2 + B,

which is the merge's change for a merge that changes the code itself (its branches unchanged
from B) and 0 for the two branches above. For an octopus merge of k parents, with B the merge
base of all of them (`git merge-base --octopus`), it is the same sum:

    own = M - (P1 + ... + Pk) + (k-1) B.

A merge is confirmed only if `own` is, too
(policy.judge_confirm on this contrast: worse by more than 0 at alpha_confirm); shown below
the threshold, it is rejected, and the careful pass cuts between good and the branches, so
that the bisect ends at a commit on one of them (docs/policy.md, "Two merged branches").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from . import policy as pol
from .judge import PAIRED_FROM, Judge
from .policy import Decision, Difference, Judgement, Scale


@dataclass(frozen=True)
class OwnChange:
    """The merge's own change for one benchmark: the verdict, and the ratio with its 95%
    interval (on the benchmark's scale: exp of the log contrast, or the difference)."""

    judgement: Judgement
    ratio: float
    low: float
    high: float
    runs: int  # fresh runs of each of the merge, its parents and their merge base
    log_scale: bool = True  # False: ratio, low and high are differences in the unit


def terms(merge: str, parents: Sequence[str], base: str) -> list[tuple[str, int]]:
    """The commits of own = M - (P1 + ... + Pk) + (k-1) B with their weights; a commit that is
    both a parent and the base (a branch that did not move since the others forked) once,
    with the weights added, and left out at weight 0."""
    weights: dict[str, int] = {merge: 1}
    for sha in parents:
        weights[sha] = weights.get(sha, 0) - 1
    weights[base] = weights.get(base, 0) + len(parents) - 1
    return [(sha, w) for sha, w in weights.items() if w]


def contrast(groups: Sequence[Sequence[float]], signs: Sequence[int], scale: Scale) -> Difference:
    """own = the weighted sum of the commits' locations (`terms`), from their runs, unpaired,
    on the runs' `scale`."""
    diff = sum(sign * pol.location(xs, scale) for sign, xs in zip(signs, groups, strict=True))
    se = scale.sigma * math.sqrt(
        sum(sign * sign / len(xs) for sign, xs in zip(signs, groups, strict=True))
    )
    return Difference(diff, se, scale.df, min(len(xs) for xs in groups), scale.sigma)


def round_contrast(rounds: Sequence[Sequence[float]], signs: Sequence[int]) -> Difference | None:
    """own from the rounds measured back to back (one run of each commit of `terms`), one
    value a round: a burst of load that hits a whole round cancels out. None before the
    rounds' own spread is known well enough (PAIRED_FROM rounds, 4 degrees of freedom)."""
    if len(rounds) < PAIRED_FROM:
        return None
    v = [sum(w * x for w, x in zip(signs, row, strict=True)) for row in rounds]
    scale = pol.pooled_scale([v])
    if not scale.known or scale.df < 4:
        return None
    return pol.paired(v, scale)


def check_own_change(
    judge: Judge,
    merge: str,
    parents: Sequence[str],
    base: str,
    names: Sequence[str],
    early_reject: bool = False,
) -> dict[str, OwnChange]:
    """Measure the merge, its parents and their merge base in rounds (the order reversed every
    two rounds) until each benchmark decides whether the merge's own change is worse than
    nothing (CONFIRMED), within the threshold (REJECTED), or the budget runs out (UNCLEAR).
    Only the check's own runs count, as in Judge.confirm (a count's earlier runs count too).
    `early_reject` (the first confirmation only): an own change of nothing is also rejected as
    soon as the runs favour it over a third of the good-to-bad change (Judge.confirm's early
    rejection), which two branches that each brought half the change show within a few
    rounds, where "within the threshold" takes hundreds of runs at 25% noise per run."""
    shas, signs = zip(*terms(merge, parents, base), strict=True)
    todo = [n for n in names if not any(judge.m.error(s, n) for s in shas)]
    start = {(s, n): 0 if judge.counted(n) else len(judge.m.runs(s, n)) for s in shas for n in todo}
    since = judge.snapshot(*shas)
    rows: dict[str, list[tuple[float, ...]]] = {n: [] for n in todo}  # one per whole round
    found: dict[str, OwnChange] = {}
    rounds = 0
    while todo:
        before = {(s, n): len(judge.m.runs(s, n)) for s in shas for n in todo}
        # forward for two rounds, then backward for two (pol.base_first): the merge's runs
        # are never back to back in the first two rounds, where one burst could hit both
        for sha in shas if pol.base_first(rounds) else shas[::-1]:
            judge.m.add(sha, todo, 1)
        rounds += 1
        for n in list(todo):
            if any(judge.m.error(s, n) for s in shas):
                todo.remove(n)
                continue
            if all(len(judge.m.runs(s, n)) == before[(s, n)] + 1 for s in shas):
                rows[n].append(tuple(judge.logs_from(s, n, before[(s, n)])[0] for s in shas))
            spent = judge.spent(*shas, since=since)
            policy = judge.policy_for(n)
            if not (pol.is_look(rounds) or pol.budget_spent(policy, spent)):
                continue
            runs = [judge.logs_from(s, n, start[(s, n)]) for s in shas]
            if not all(runs):  # no run of some commit yet (a run that failed and left none)
                if pol.budget_spent(policy, spent):
                    todo.remove(n)
                continue
            d = round_contrast(rows[n], signs) or contrast(
                runs, signs, scale=judge.wider_scale(n, runs)
            )
            span = judge.span_bound(n) if early_reject and not judge.counted(n) else 0.0
            j = pol.judge_confirm(
                d, judge.threshold(n), policy, spent, judge.worse_high.get(n, True), span
            )
            if j.decision is not Decision.MORE:
                todo.remove(n)
                found[n] = _own(j, d, judge.log_scale.get(n, True), min(len(r) for r in runs))
    return found


def _own(j: Judgement, d: Difference, log_scale: bool, runs: int) -> OwnChange:
    q = pol.t_quantile(0.025, d.df) if d.df >= 1 else math.inf
    lo, hi = d.diff - q * d.se, d.diff + q * d.se
    if log_scale:
        return OwnChange(j, math.exp(d.diff), _exp(lo), _exp(hi), runs)
    return OwnChange(j, d.diff, lo, hi, runs, log_scale=False)


def _exp(x: float) -> float:
    return math.exp(min(max(x, -700.0), 700.0)) if math.isfinite(x) else math.nan


def describe(merge: str, own: OwnChange) -> str:
    """One line for the report and the event log."""
    what = {
        Decision.CONFIRMED: "changes the benchmark itself",
        Decision.REJECTED: "adds no change of its own: each merged branch carries part of it",
    }.get(own.judgement.decision, "cannot be told apart from what its branches brought")
    fmt, x = (".3f", "x") if own.log_scale else (".3g", "")  # a ratio, or a difference
    return (
        f"the merge {merge[:10]} {what} (its own change {own.ratio:{fmt}}{x} "
        f"[{own.low:{fmt}}, {own.high:{fmt}}] beyond its parents' branches, {own.runs} runs "
        "of each of the merge, its parents and their merge base)"
    )


def cut_below_branches(judge: Judge, name: str, parents: Sequence[str]) -> str | None:
    """After a merge was rejected as adding no change of its own: when two or more of its
    parents sit apart from good by more than the threshold (both, for a merge of two), the
    careful pass cuts halfway between good and the nearer of them. The commits that brought
    each branch's change then cross the cut while the merge's parents are above it, so the
    bisect ends on one of the branches and attribution finds the others. None (the cut stays)
    when that is not shown. A parent shown no further from good than that (an octopus merge's
    line that changed nothing) is left out."""
    if judge.cut_offset(name) is not None:
        return None
    scale = judge.scale(name)
    good = judge.logs(judge.good, name)
    sides = [judge.logs(p, name) for p in parents]
    if not scale.known or len(good) < 2 or any(len(v) < 2 for v in sides):
        return None
    sign = 1.0 if judge.worse_high.get(name, True) else -1.0
    g = pol.location(good, scale)
    q = pol.t_quantile(judge.policy.alpha_step, scale.df)
    thr = judge.threshold(name)
    apart = [
        level
        for level, v in ((sign * (pol.location(v, scale) - g), v) for v in sides)
        if level - q * scale.sigma * math.sqrt(1 / len(v) + 1 / len(good)) >= thr
    ]
    if len(apart) < 2:
        return None
    judge.move_cut(name, min(apart) / 2)
    return (
        f"{len(apart)} parents of the merge sit apart from good: bisected again with the cut "
        "between good and them, to find the commit on one of the branches"
    )
