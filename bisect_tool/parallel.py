"""Bisecting with several workers at once: k-ary rounds, each worker judged on its own references.

A lane is one worker and the Judge that drives it. Every lane measures good and bad itself, so
its verdicts are ratios against references taken on the same machine: a worker that is 1.5x
slower biases nothing. A round gives each live lane one of the commits kary.pick chose, judges
them concurrently (threads; the measuring happens on the workers), and tells git the verdicts
kary.reconcile keeps, so `git bisect log` stays the record and git handles merges and skips.
A lane whose worker is lost is dropped, and its commit is measured again on another lane.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from . import kary
from .errors import EnvironmentProblem, WorkerLost
from .judge import Judge
from .measure import Account
from .runners import BenchmarkSpec, Runner
from .stats import Comparison, Verdict

if TYPE_CHECKING:
    from .policy import Judgement
    from .session import BenchmarkOutcome, BisectWorktree, Session

_WORD = {Verdict.GOOD: kary.GOOD, Verdict.BAD: kary.BAD}


@dataclass
class Lane:
    label: str
    judge: Judge
    alive: bool = True


class NoCheckout:
    """The session's checkout target when the measuring happens on a worker."""

    def __init__(self, path: os.PathLike[str]) -> None:
        self.path = path

    def checkout(self, sha: str) -> None:
        pass


def lanes(runners: Sequence[Runner], judge_for: Callable[[Runner], Judge]) -> list[Lane]:
    """One lane per worker's runner. Their accounts also add up to one for the whole run, which
    --max-time bounds (the seconds measured on every worker together)."""
    overall = Account()
    found = []
    for runner in runners:
        judge = judge_for(runner)
        judge.m.account.overall = overall
        found.append(Lane(runner.machine, judge))
    return found


def live(lanes: Sequence[Lane]) -> list[Lane]:
    found = [lane for lane in lanes if lane.alive]
    if not found:
        raise EnvironmentProblem("every Dask worker was lost; nothing is left to measure on")
    return found


def prebuild(lanes: Sequence[Lane], wt: BisectWorktree, good: str, bad: str) -> None:
    """With a build step, start building good, bad and the first round's commits at once:
    the first round's choice depends only on the history, not on any measurement. The
    second round's possible commits are built speculatively after them."""
    runner = lanes[0].judge.m.runner
    if not isinstance(runner, Prebuilds):
        return
    wt.bisect_start(bad, good)
    try:
        tip, dag, skipped = wt.bisect_candidates()
    finally:
        wt.bisect_reset()
    first = kary.pick(dag, tip, len(lanes), skipped)
    runner.prebuild([good, bad, *first], kary.next_picks(dag, tip, first, len(lanes), skipped))


def speculate(
    lanes: Sequence[Lane],
    dag: dict[str, tuple[str, ...]],
    bad: str,
    picks: Sequence[str],
    skipped: set[str],
) -> None:
    """Before a round measures: its picks are needed now, and every commit the next round
    could measure is built speculatively, while this one measures (builds only; nothing is
    measured before a round picks it)."""
    runner = live(lanes)[0].judge.m.runner
    if isinstance(runner, Prebuilds):
        k = len(live(lanes))
        runner.prebuild(picks, kary.next_picks(dag, bad, picks, k, skipped))


@runtime_checkable
class Prebuilds(Protocol):
    def prebuild(self, needed: Sequence[str], maybe: Sequence[str] = ()) -> None: ...


def endpoints(
    lanes: Sequence[Lane], specs: Sequence[BenchmarkSpec], named: bool
) -> tuple[Lane, dict[str, tuple[Judgement, Comparison]]]:
    """Every lane measures good and bad, concurrently. The first lane (in the pool's order)
    that finishes decides whether each benchmark regressed; the others keep their references
    for their own verdicts."""
    results: dict[str, dict[str, tuple[Judgement, Comparison]]] = {}
    with ThreadPoolExecutor(len(lanes)) as ex:
        futures = [(lane, ex.submit(lane.judge.endpoints, specs, named)) for lane in lanes]
        for lane, fut in futures:
            try:
                results[lane.label] = fut.result()
            except WorkerLost:
                lane.alive = False
    primary = live(lanes)[0]
    return primary, results[primary.label]


def _judge_all(
    lanes: Sequence[Lane], picks: Sequence[str], name: str, shared: Sequence[str]
) -> dict[str, tuple[Verdict, str, str]]:
    """Each pick judged on a lane of its own; a pick whose worker was lost is judged again on
    another lane. sha -> (verdict, reason, lane label)."""
    found: dict[str, tuple[Verdict, str, str]] = {}
    todo = list(picks)
    while todo:
        lanes_now = live(lanes)
        batch, todo = todo[: len(lanes_now)], todo[len(lanes_now) :]
        with ThreadPoolExecutor(len(batch)) as ex:
            futures = [
                (sha, lane, ex.submit(lane.judge.step, sha, name, shared, 1))
                for sha, lane in zip(batch, lanes_now, strict=False)
            ]
            for sha, lane, fut in futures:
                try:
                    verdict, reason = fut.result()
                except WorkerLost:
                    lane.alive = False
                    todo.append(sha)
                    continue
                found[sha] = (verdict, reason, lane.label)
    return found


def bisect_kary(
    session: Session,
    lanes: Sequence[Lane],
    wt: BisectWorktree,
    out: BenchmarkOutcome,
    shared: Sequence[str],
) -> None:
    """One benchmark bisected in rounds of len(live lanes) commits each."""
    name = out.spec.name
    first = live(lanes)[0].judge
    n = len(session.range_commits)
    bound = kary.rounds_bound(n, len(live(lanes)))
    session.emit(
        "bisect",
        f"bisecting {name} on {len(live(lanes))} workers: bad/good {out.reference.ratio:.3g}x "
        f"[{out.reference.ci_low:.3g}, {out.reference.ci_high:.3g}], about {bound} rounds",
        benchmark=name,
    )
    step = wt.bisect_start(first.bad, first.good)
    while not step.done:
        bad, dag, skipped = wt.bisect_candidates()
        lanes_now = live(lanes)
        picks = kary.pick(dag, bad, len(lanes_now), skipped)
        if not picks:
            assert step.next_commit is not None
            picks = [step.next_commit]
        speculate(lanes, dag, bad, picks, skipped)
        session.rounds += 1
        out.rounds += 1
        judged = _judge_all(lanes, picks, name, shared)
        words = {sha: _WORD.get(v, kary.SKIP) for sha, (v, _, _) in judged.items()}
        marks, left_out = kary.reconcile(words, dag)
        for sha in picks:
            verdict, reason, label = judged[sha]
            rec = session.record(sha, "step")
            rec.verdicts.setdefault(name, verdict)
            rec.reasons.setdefault(name, f"{reason} (on {label})")
            rec.workers.setdefault(name, label)
            if verdict is Verdict.SKIP:
                rec.error = lanes_by_label(lanes, label).judge.m.error(sha, name)
                session.skipped[sha] = reason
        for sha in left_out:
            if words[sha] == kary.GOOD:  # a bad beyond the lowest one is merely redundant
                out.notes.append(
                    f"round {out.rounds}: {sha[:10]} was judged good on {judged[sha][2]}, "
                    "but descends from a commit judged bad (or lies on another branch); "
                    "not told to git"
                )
        for word, sha in marks:
            verdict, _, label = judged[sha]
            judge = lanes_by_label(lanes, label).judge
            out.steps.append(sha)
            session.emit(
                "step",
                "",
                k=out.rounds,
                bound=bound,
                benchmark=name,
                record=session.commits[sha],
                unit=out.spec.unit,
                verdict=verdict,
                samples=judge.m.runs(sha, name),
                good=judge.values(judge.good, name),
                worker=label,
                round=out.rounds,
            )
            step = wt.mark(word, sha)
            if step.done:
                break
    session.finish_bisect(wt, out, step)


def on_one_lane(lanes: Sequence[Lane], work: Callable[[Judge], None]) -> Judge:
    """Run work with the first live lane's judge (confirmation, retries, attribution happen on
    one worker, against its references); if that worker is lost, start over on the next."""
    while True:
        lane = live(lanes)[0]
        try:
            work(lane.judge)
            return lane.judge
        except WorkerLost:
            lane.alive = False


def lanes_by_label(lanes: Sequence[Lane], label: str) -> Lane:
    return next(lane for lane in lanes if lane.label == label)
