"""Confirming a culprit the bisect named: against each of its parents, and a merge also against
what its branches brought (merge_check.py). A culprit that fails is bisected again by the session,
with a cut this module may move (`cut_for_retry`). Measuring is the Judge's; this module asks it
the questions and writes the answers into the outcomes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import merge_check
from .judge import Judge
from .policy import Decision

if TYPE_CHECKING:
    from .session import BenchmarkOutcome, Session


class Confirmations:
    """The confirmations of one session."""

    def __init__(self, session: Session) -> None:
        self.s = session
        # (benchmark, merge) -> the parents of a merge that added no change of its own (but
        # their merge base: an octopus merge's parent that did not move since the fork)
        self.branch_merges: dict[tuple[str, str], tuple[str, ...]] = {}

    def cut_for_retry(self, judge: Judge, name: str, culprit: str) -> str | None:
        """Before the careful pass after `culprit` failed: move the cut when the failure shows
        where it should lie (below the branches of a merge that added nothing of its own, or
        off a plateau between two changes); a note when it moved, else None."""
        branches = self.branch_merges.pop((name, culprit), None)
        if branches:
            return merge_check.cut_below_branches(judge, name, branches)
        parents = self.s.commits[culprit].info.parents
        return judge.move_cut_off_plateau(name, culprit, parents[0]) if parents else None

    def confirm_all(
        self, judge: Judge, outcomes: Sequence[BenchmarkOutcome], early_reject: bool = False
    ) -> None:
        """Confirm each culprit; benchmarks blaming the same commit share the measurements.

        A merge is a culprit only if it is worse than all of its parents; worse than the first
        parent alone means the change came in on the merged branch, where a misjudged step hid
        the real commit. `early_reject` (the first pass only: a second, careful pass follows a
        rejection): a commit that carries no part of the change is rejected as soon as the
        runs show it (Judge.confirm)."""
        by_culprit: dict[str, list[BenchmarkOutcome]] = {}
        for out in outcomes:
            if out.culprit:
                by_culprit.setdefault(out.culprit, []).append(out)
        for culprit, group in by_culprit.items():
            for out in group:  # what an earlier confirmation of this merge left is spent
                self.branch_merges.pop((out.spec.name, culprit), None)
            self.s.rounds += 1
            parents = self.s.commits[culprit].info.parents
            if not parents:
                for out in group:
                    out.notes.append("culprit is a root commit: nothing to confirm against")
                continue
            verdicts: dict[str, list[bool]] = {o.spec.name: [] for o in group}
            for i, parent in enumerate(parents):
                self.s.record(parent, "parent")
                found = judge.confirm(culprit, parent, [o.spec.name for o in group], early_reject)
                for out in group:
                    name = out.spec.name
                    if name not in found:
                        out.notes.append("confirmation could not measure the culprit or its parent")
                        continue
                    j, comp = found[name]
                    ok = j.decision is Decision.CONFIRMED
                    verdicts[name].append(ok)
                    if i == 0:
                        out.confirmation = comp
                    elif not ok:
                        out.notes.append(
                            f"the merge {culprit[:10]} is not worse than its parent "
                            f"{parent[:10]}: the change came in on that branch"
                        )
                    word = "confirmed" if ok else f"NOT confirmed ({j.decision.value})"
                    self.s.emit(
                        "confirm",
                        f"{name}: culprit {culprit[:10]} {word} against its parent "
                        f"{parent[:10]}: {comp.ratio:.3f}x [{comp.ci_low:.3f}, "
                        f"{comp.ci_high:.3f}], p={comp.p_value:.2g}, "
                        f"{comp.n_base}+{comp.n_other} runs",
                    )
            for out in group:
                oks = verdicts[out.spec.name]
                out.confirmed = len(oks) == len(parents) and all(oks)
            confirmed = [o for o in group if o.confirmed]
            self._check_merge(judge, culprit, parents, confirmed, early_reject)

    def _check_merge(
        self,
        judge: Judge,
        merge: str,
        parents: Sequence[str],
        group: list[BenchmarkOutcome],
        early_reject: bool,
    ) -> None:
        """A merge confirmed against every parent: is the change its own, or did its branches
        each bring part of it (merge_check.py)? Not its own: not confirmed, and the careful
        pass cuts below the branches."""
        base = self.s.repo.merge_base(*parents) if len(parents) >= 2 and group else None
        # base == a parent of a two-parent merge: own = M - the other parent, the confirmation
        if base is None or len(merge_check.terms(merge, parents, base)) <= 2:
            return
        self.s.record(base, "merge base")
        found = merge_check.check_own_change(
            judge, merge, parents, base, [o.spec.name for o in group], early_reject
        )
        for out in group:
            own = found.get(out.spec.name)
            line = (
                merge_check.describe(merge, own)
                if own
                else f"the merge, its parents or their merge base {base[:10]} could not be "
                "measured: the merge's own change is not known"
            )
            out.notes.append(line)
            self.s.emit("confirm", f"{out.spec.name}: {line}")
            if own and own.judgement.decision is not Decision.CONFIRMED:
                out.confirmed = False
                self.branch_merges[(out.spec.name, merge)] = tuple(p for p in parents if p != base)
