"""A second chance for commits left unclear next to the change.

A step that the per-commit run cap leaves undecided is `git bisect skip`ped. When the bisect
then ends among skipped commits ("the first bad commit could be any of"), the change sits next
to one of them. Each candidate skipped only because the cap was spent (not a failed build or
run) is measured again, up to `Policy.second_chance` times the cap (the time per commit still
holds), and its verdict is told to git. git takes `good` or `bad` on a commit it was told to
skip: it then names the culprit, or lists only the commit it was told is bad.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from .git import BisectStep
from .selection import log2_bound
from .stats import Verdict

if TYPE_CHECKING:
    from .judge import Judge
    from .session import BenchmarkOutcome, BisectWorktree, Session


def left_unclear(session: Session, step: BisectStep) -> list[str]:
    """The candidates git left that were skipped only because the run cap was spent."""
    return [
        c
        for c in step.candidates
        if c in session.skipped and c in session.commits and session.commits[c].error is None
    ]


def measure_again(
    session: Session,
    judge: Judge,
    wt: BisectWorktree,
    out: BenchmarkOutcome,
    step: BisectStep,
    shared: list[str],
    min_runs: int,
    whole: bool,
) -> BisectStep:
    """The bisect ended among skipped commits and the first bad one after them: the change
    is next to a commit that was too close to call. Each such commit is measured again,
    up to `Policy.second_chance` times the run cap (the time per commit still holds), and
    its verdict is told to git, which then names the culprit or asks for more."""
    name = out.spec.name
    cap = judge.policy.budget.runs_per_commit * session.opt.policy.second_chance
    for sha in left_unclear(session, step):
        session.emit(
            "second",
            f"{name}: {sha[:10]} was skipped as unclear next to the change; "
            f"measuring it again, up to {cap} runs",
            benchmark=name,
        )
        verdict, reason = judge.step(sha, name, shared, min_runs, runs_cap=cap)
        rec = session.commits[sha]
        if whole or name not in rec.verdicts:
            rec.verdicts[name] = verdict
            rec.reasons[name] = reason
        session.emit_step(
            judge, out, rec, verdict, f"{len(out.steps)}+", log2_bound(len(session.range_commits))
        )
        if verdict is Verdict.SKIP:
            session.skipped[sha] = reason
            continue
        del session.skipped[sha]
        out.notes.append(
            f"{sha[:10]} was skipped as unclear; measured again once the bisect ended next "
            f"to it: {verdict.value} ({reason})"
        )
        step = wt.mark(verdict.value, sha)
        if step.culprit or not step.done:
            break
    if not step.culprit and len(step.candidates) == 1:
        only = step.candidates[0]  # git lists a skipped commit it was told is bad
        if session.commits.get(only) and session.commits[only].verdicts.get(name) is Verdict.BAD:
            step = replace(step, culprit=only, candidates=())
    return step
