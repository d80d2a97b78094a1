"""Every culprit in the range, with its share (issue 9): the measuring half of attribution.

Once a benchmark's culprit is confirmed, the two segments around it (good to the culprit's
parent, the culprit to bad) are checked: a few interleaved runs of their ends on top of what the
bisect and the confirmation already measured, judged in both directions (waterfall.py). A
segment that still changes is bisected through git like the whole range, between its own ends,
and its culprit confirmed the same way; then the segments around that culprit are checked, until
none changes or `max_culprits` is spent. A speedup is reported; it is bisected with
--improvements, or when the regressions found exceed the net change (it hides part of them).
Every measurement is the session's: the same Measurer, so nothing is measured twice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from . import waterfall as wf
from .errors import EnvironmentProblem, UsageError
from .judge import Judge
from .measure import Event
from .policy import Decision
from .stats import Comparison, median
from .waterfall import IMPROVEMENT, REGRESSION, Change, Segment

if TYPE_CHECKING:
    from .session import BenchmarkOutcome, BisectWorktree, Session


def attribute(
    session: Session, judge: Judge, wt: BisectWorktree, outcomes: Sequence[BenchmarkOutcome]
) -> None:
    for out in outcomes:
        if out.culprit and out.confirmed and not session.opt.attribution:
            out.notes.append(
                "the rest of the range was not checked for more changes (--no-attribution): "
                "the residual below is an estimate, not a finding"
            )
            out.waterfall = Attribution(session, judge, wt, out).partial()
        elif out.culprit and out.confirmed:
            try:
                Attribution(session, judge, wt, out).run()
            except (UsageError, EnvironmentProblem) as exc:
                # the first culprit stands; what is left of the range is reported, not lost
                out.notes.append(f"attribution stopped: {exc}")
                out.waterfall = Attribution(session, judge, wt, out).partial()


class Attribution:
    """The changes of one benchmark between good and bad."""

    def __init__(
        self, session: Session, judge: Judge, wt: BisectWorktree, out: BenchmarkOutcome
    ) -> None:
        self.s = session
        self.judge = judge
        self.wt = wt
        self.out = out
        self.name = out.spec.name
        self.worse_high = judge.worse_high.get(self.name, True)

    def emit(self, message: str) -> None:
        self.s.on_event(Event("attribution", f"{self.name}: {message}", {"benchmark": self.name}))

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> None:
        out, opt = self.out, self.s.opt
        assert out.culprit is not None and out.confirmation is not None
        primary = self._change(
            REGRESSION, self.s.good, self.s.bad, out.confirmation, out.culprit, out.confirmed
        )
        changes = [replace(primary, steps=len(out.steps), primary=True)]
        open_segments: list[tuple[str, str, str]] = []
        queue = self._around(out.culprit, self.s.good, self.s.bad)
        left = opt.max_culprits - 1
        total = self._log_total()
        while queue:
            low, high = queue.pop(0)
            seg, comp = self.check(low, high)
            if seg is Segment.UNCLEAR:
                out.notes.append(
                    f"between {low[:10]} and {high[:10]} the benchmark may change by "
                    f"{comp.ratio:.3g}x [{comp.ci_low:.3g}, {comp.ci_high:.3g}], but "
                    f"{self.judge.policy.segment_runs} fresh runs of each end did not show it "
                    "significant: the machine is too noisy to tell (a quieter machine, "
                    "--metric cputime or instructions); it stays in the residual"
                )
                continue
            if seg is Segment.NONE:
                continue
            kind = REGRESSION if seg is Segment.REGRESSION else IMPROVEMENT
            regressions = [c.log_ratio for c in changes if c.kind == REGRESSION]
            bisect_it = kind == REGRESSION or (
                opt.improvements
                or wf.hides_regression(
                    [x if self.worse_high else -x for x in regressions],
                    total if self.worse_high else -total,
                    self.judge.threshold(self.name),
                )
            )
            # A change is counted only when fresh runs of its ends show it a second time: a
            # speedup reported without a bisect has no other confirmation, and a segment bisect
            # where nothing changed spends the budget at every step. However clear the first
            # check: a burst of load on one end's runs makes a clear change of nothing.
            if self.check(low, high)[0] is not seg:
                out.notes.append(
                    f"{_article(kind)} {kind} between {low[:10]} and {high[:10]} "
                    f"({comp.ratio:.3g}x) was seen "
                    "once, and not again on fresh runs of its ends: not counted"
                )
                continue
            found = self._change(kind, low, high, comp)
            if not bisect_it:
                self.emit(
                    f"a speedup between {low[:10]} and {high[:10]} ({comp.ratio:.3g}x), "
                    "reported, not bisected (--improvements bisects it)"
                )
                changes.append(found)
                continue
            if left <= 0:
                why = f"--max-culprits {opt.max_culprits} spent"
                self.emit(f"{kind} between {low[:10]} and {high[:10]} left: {why}")
                open_segments.append((low, high, why))
                changes.append(found)
                continue
            left -= 1
            sub, anchor = self.bisect(low, high, kind)
            if sub.culprit and sub.confirmed and sub.confirmation is not None:
                changes.append(
                    replace(
                        self._change(kind, low, high, sub.confirmation, sub.culprit, True),
                        steps=len(sub.steps),
                        bisect_log=sub.bisect_log,
                    )
                )
                queue.extend(self._around(anchor or sub.culprit, low, high))
            elif self.check(low, high)[0] is not seg:
                # no commit confirmed, and fresh runs of the ends no longer show the change:
                # the first check was a fluke of the machine (a burst of load), not a change
                out.notes.append(
                    f"{_article(kind)} {kind} between {low[:10]} and {high[:10]} "
                    f"({comp.ratio:.3g}x) was seen "
                    "once, but no commit confirmed and a second check of its ends did not "
                    "show it again: not counted"
                )
            else:
                why = "bisected, but no single confirmed commit"
                open_segments.append((low, high, why))
                changes.append(
                    replace(
                        found,
                        sha=sub.culprit,
                        bisected=True,
                        steps=len(sub.steps),
                        bisect_log=sub.bisect_log,
                    )
                )
            out.notes.extend(n for n in sub.notes if n not in out.notes)
        good, bad = self._ends()
        order = [self.s.good, *self.s.range_commits]
        changes = [self._on_all_runs(c) for c in changes]
        out.waterfall = wf.build(good, bad, changes, order, open_segments)

    def partial(self) -> wf.Waterfall:
        """The waterfall with the first culprit alone, when attribution could not go on."""
        out = self.out
        assert out.culprit is not None and out.confirmation is not None
        first = self._change(
            REGRESSION, self.s.good, self.s.bad, out.confirmation, out.culprit, True
        )
        good, bad = self._ends()
        order = [self.s.good, *self.s.range_commits]
        # not listed as unattributed (which would make it exit 4): nothing says a change is
        # left; the residual and the note say what is known
        return wf.build(good, bad, [self._on_all_runs(replace(first, primary=True))], order)

    def _on_all_runs(self, c: Change) -> Change:
        """A confirmed commit's ratio over its parent from every run of the two. The
        confirmation stops as soon as it decides, which biases its own ratio outward (a 4.3x
        networkx culprit confirmed at 6.1x on 2+2 runs, leaving a -22% residual); the runs of
        the steps and of the segment checks were not chosen by that stop. The confirmation's
        own figures stay in `culprits`."""
        if not (c.sha and c.parent and c.confirmed):
            return c
        comp = self.judge.comparison(c.parent, c.sha, self.name, two_sided=True)
        if not math.isfinite(comp.ratio) or min(comp.n_base, comp.n_other) < 2:
            return c
        return replace(
            c, ratio=comp.ratio, ci_low=comp.ci_low, ci_high=comp.ci_high, p_value=comp.p_value
        )

    def _inside_parent(self, sha: str, low: str) -> str | None:
        """The first parent of sha that is low or contains it (sha's parent in low's line)."""
        repo = self.s.repo
        for p in self.s.commits[sha].info.parents:
            if p == low or repo.is_ancestor(low, p):
                return p
        return None

    def _around(self, culprit: str, low: str, high: str) -> list[tuple[str, str]]:
        """The segments left and right of a culprit inside low..high: low to its parent in
        low's line of history, and the culprit to high (empty ones dropped)."""
        parent = self._inside_parent(culprit, low)
        segments = []
        if parent and parent != low:
            segments.append((low, parent))
        if culprit != high:
            segments.append((culprit, high))
        return segments

    # -- measuring ---------------------------------------------------------------------------

    def judge_for(self, low: str, high: str, kind: str = REGRESSION) -> Judge:
        """A judge for one segment: the session's measurer and policy, the segment's ends."""
        main = self.judge
        sub = Judge(main.m, main.policy, low, high, main.factor, main.delta, main.on_event)
        sub.log_scale.update(main.log_scale)
        sub.units.update(main.units)
        sub.body_counts.update(main.body_counts)
        sub.worse_high.update(main.worse_high)
        if kind == IMPROVEMENT:  # "bad" is the faster end: the bisect looks for the speedup
            sub.worse_high[self.name] = not self.worse_high
        return sub

    def check(self, low: str, high: str) -> tuple[Segment, Comparison]:
        """Does the benchmark change between low and high?

        When every run of the two ends (the bisect's and the confirmation's included) rules
        out a material change (`waterfall.material`: the estimate +- 2 standard errors within
        20%, or a tenth of the whole log change if that is more), no: that is the usual
        answer next to a single culprit, and it costs nothing. Otherwise both ends are
        measured afresh, interleaved. A change is judged on the fresh runs alone once each end
        has `min_reference_runs` of them, as the confirmation is: runs taken minutes apart
        would show a drift of the machine as a change. "No material change" may still be
        shown by every run of the two ends together, the fresh ones added to the old, at each
        look. At most `segment_runs` fresh runs per end."""
        name, m = self.name, self.judge.m
        sub = self.judge_for(low, high)
        none = Comparison(1.0, math.nan, math.nan, math.nan, 0, 0)
        start = {sha: len(m.runs(sha, name)) for sha in (low, high)}
        since = sub.snapshot(low, high)
        policy = wf.segment_policy(sub.policy)
        threshold = sub.threshold(name)
        log_scale = sub.log_scale.get(name, True)
        bound = wf.material(threshold, log_scale, policy, self._log_total() if log_scale else 0.0)
        flip = False
        while True:
            fresh_low = sub.logs_from(low, name, start[low])
            fresh_high = sub.logs_from(high, name, start[high])
            if min(len(fresh_low), len(fresh_high)) >= policy.min_reference_runs:
                # interleaved, so a drift favours neither end; judged on the session's pooled
                # noise (widened to these runs' own spread), whose many degrees of freedom
                # keep the few runs of a segment check powerful
                d = sub.difference(name, fresh_low, fresh_high, fresh_low, fresh_high, paired=False)
                spent = sub.spent(low, high, since=since)
                seg, _ = wf.judge_segment(d, threshold, policy, spent, self.worse_high, bound)
                if seg is not Segment.MORE:
                    comp = sub.comparison_of(fresh_low, fresh_high, name, two_sided=True)
                    if seg in (Segment.REGRESSION, Segment.IMPROVEMENT):
                        self.emit(
                            f"{seg.value} between {low[:10]} and {high[:10]}: "
                            f"{comp.ratio:.3g}x [{comp.ci_low:.3g}, {comp.ci_high:.3g}]"
                        )
                    return seg, comp
            # while the fresh runs decide nothing, every run of the two ends may still rule a
            # material change out: the fresh ones add to those already taken
            every_low, every_high = sub.logs(low, name), sub.logs(high, name)
            if every_low and every_high:
                d = sub.difference(name, every_low, every_high, [], [])
                if wf.rules_out(d, bound, policy):
                    return Segment.NONE, sub.comparison(low, high, name, two_sided=True)
            flip = not flip
            for sha in (low, high) if flip else (high, low):
                m.add(sha, [name], 1)
            if m.error(low, name) or m.error(high, name):
                return Segment.NONE, none

    def bisect(self, low: str, high: str, kind: str) -> tuple[BenchmarkOutcome, str | None]:
        """Bisect one segment through git and confirm its culprit, as the session does the
        whole range (a second, careful pass included). Returns the outcome and the commit in
        low's line of history the next segments are cut around: the culprit, or the merge
        through which it came.

        After a culprit, the segment culprit..high also holds branches that forked before the
        culprit and were merged later: they lack its change, so next to the segment's ends
        they look like the other side. Their tips are marked good, so git bisect looks for
        where the change entered low's line of history: a commit, or the merge that brought
        the branch. A merge found so is confirmed against its parent inside that line, and the
        branch itself is then bisected against its fork point to find the commit."""
        name = self.name
        sub = self.judge_for(low, high, kind)
        comp = sub.comparison(low, high, name, two_sided=True)
        self.emit(f"bisecting the {kind} between {low[:10]} and {high[:10]}")
        seg_out = replace(
            self.out,
            reference=comp,
            culprit=None,
            candidates=[],
            confirmation=None,
            confirmed=False,
            steps=[],
            bisect_log="",
            notes=[],
            cut=sub.cut_value(name),
            waterfall=None,
        )
        self.s.record(low, "step")
        self.s.record(high, "step")
        side = self._side_tips(low, high)
        self.s.bisect_one(sub, self.wt, seg_out, [name], also_good=side)
        outside = self._confirm(sub, seg_out, low)
        if seg_out.culprit and not seg_out.confirmed and not outside:
            self.s.retry_unconfirmed(sub, self.wt, [seg_out], also_good=side)
            outside = self._confirm(sub, seg_out, low) if not seg_out.confirmed else []
        merge = seg_out.culprit
        if not (merge and seg_out.confirmed and outside):
            return seg_out, seg_out.culprit
        line = self._inside_parent(merge, low)
        for branch in outside:  # the change came with this branch: find its commit there
            base = self.s.repo.merge_base(line, branch) if line else None
            if base is None or base == branch:
                continue
            self.s.record(base, "step")
            self.s.record(branch, "step")
            seg, _ = self.check(base, branch)
            if seg.value != kind:
                continue
            inner, _ = self.bisect(base, branch, kind)
            if inner.culprit and inner.confirmed:
                inner.notes.append(
                    f"{inner.culprit[:10]} came into {low[:10]}..{high[:10]} with the merge "
                    f"{merge[:10]}"
                )
                return inner, merge
        # the merge brought the change, but no commit on its branch confirmed: the merge is
        # not the change itself, so it is not named as a culprit; the range stays open
        seg_out.notes.append(
            f"the change came into {low[:10]}..{high[:10]} with the merge {merge[:10]}, but no "
            "commit on the merged branch confirmed"
        )
        seg_out.confirmed = False
        return seg_out, merge

    def _side_tips(self, low: str, high: str) -> list[str]:
        """Parents of merges in low..high that do not contain low: tips of branches that
        forked before it. For the first segment (low = good) there are none to exclude: the
        main bisect searched them too."""
        if low == self.s.good:
            return []
        repo = self.s.repo
        tips = []
        for _merge, parents in repo.merges_between(low, high):
            tips += [p for p in parents if p != low and not repo.is_ancestor(low, p)]
        return sorted(set(tips))

    def _confirm(self, sub: Judge, seg_out: BenchmarkOutcome, low: str) -> list[str]:
        """Confirm the segment's culprit. A merge whose other parents lack low's change is
        confirmed against its parent inside low's line only; returns those other parents."""
        culprit = seg_out.culprit
        if not culprit:
            return []
        self.s.record(culprit, "step")
        parents = self.s.commits[culprit].info.parents
        repo = self.s.repo
        inside = [p for p in parents if p == low or repo.is_ancestor(low, p)]
        if not inside or len(inside) == len(parents):
            self.s.confirmations.confirm_all(sub, [seg_out])
            return []
        parent = inside[0]
        self.s.record(parent, "parent")
        found = sub.confirm(culprit, parent, [self.name])
        if self.name in found:
            j, comp = found[self.name]
            seg_out.confirmation = comp
            seg_out.confirmed = j.decision is Decision.CONFIRMED
            word = "confirmed" if seg_out.confirmed else f"NOT confirmed ({j.decision.value})"
            self.emit(
                f"merge {culprit[:10]} {word} against its parent {parent[:10]}: "
                f"{comp.ratio:.3f}x [{comp.ci_low:.3f}, {comp.ci_high:.3f}]"
            )
        return [p for p in parents if p not in inside]

    def _change(
        self,
        kind: str,
        low: str,
        high: str,
        comp: Comparison,
        sha: str | None = None,
        confirmed: bool = False,
    ) -> Change:
        parents = self.s.commits[sha].info.parents if sha and sha in self.s.commits else []
        return Change(
            kind=kind,
            low=low,
            high=high,
            ratio=comp.ratio,
            ci_low=comp.ci_low,
            ci_high=comp.ci_high,
            p_value=comp.p_value,
            sha=sha,
            parent=parents[0] if parents else None,
            confirmed=confirmed,
            bisected=sha is not None,
        )

    def _ends(self) -> tuple[float, float]:
        """The benchmark's value at good and at bad: the median of each one's runs."""
        m = self.judge.m
        return median(m.runs(self.s.good, self.name)), median(m.runs(self.s.bad, self.name))

    def _log_total(self) -> float:
        g, b = self._ends()
        return math.log(b / g) if g > 0 and b > 0 else 0.0


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"
