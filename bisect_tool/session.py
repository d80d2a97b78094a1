"""The bisect loop: ask git for the next commit, have it judged, tell git.

The session is handed its repository, runner and store, so tests drive it with a fake runner and
the simulator with a synthetic repository. How much to measure is not its business: the Judge
measures until the policy decides. It never prints: progress goes to the `on_event` callback and
the outcome is a `SessionResult`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from . import parallel
from .attribution import attribute
from .check import CheckResult, check_commit
from .confirmation import Confirmations
from .errors import (
    EXIT_CULPRIT,
    EXIT_INCONCLUSIVE,
    EXIT_NO_SINGLE_CULPRIT,
    EXIT_NOT_REPRODUCED,
    UsageError,
)
from .git import BisectStep, CommitInfo
from .judge import Judge, Noise
from .measure import Account, Event, Measurer, collect
from .parallel import NoCheckout
from .policy import Decision, Judgement, Policy
from .runners import BenchmarkSpec, Runner, ThreadSwitch
from .second_chance import left_unclear, measure_again
from .selection import log2_bound, select_benchmarks
from .stats import DEFAULT_ALPHA, Comparison, Verdict
from .store import MeasurementStore
from .threads import AUTO, ONE, one_note, switched_note
from .waterfall import Waterfall

if TYPE_CHECKING:
    from .time_hint import TimeCheck

__all__ = [
    "BenchmarkOutcome",
    "BisectOptions",
    "CheckResult",
    "CommitRecord",
    "Event",
    "Measurer",
    "Session",
    "SessionResult",
    "check_commit",
    "log2_bound",
    "resolve_range",
    "select_benchmarks",
]


@dataclass(frozen=True)
class BisectOptions:
    good: str
    bad: str = "HEAD"
    bench_patterns: tuple[str, ...] = ()
    factor: float | None = None
    delta: float | None = None  # absolute threshold, in the benchmark's unit
    alpha: float = DEFAULT_ALPHA  # for `check`
    drift_every: int = 4  # re-measure the endpoints after this many steps, when noisy or old:
    drift_seconds: float = 60.0  # ... when this long has passed since they were measured,
    drift_runs: int = 8  # ... or this many runs of other commits were taken meanwhile
    policy: Policy = field(default_factory=Policy)
    max_culprits: int = 3  # per benchmark, the first one included (attribution.py)
    improvements: bool = False  # bisect speedups inside the range too
    attribution: bool = True  # check the rest of the range for more changes (attribution.py)
    threads: str = AUTO  # one thread per library: auto, keep, one (threads.py)


class BisectRepo(Protocol):
    """What the session needs of a repository (git.GitRepo, or the simulator's)."""

    def resolve(self, rev: str, what: str) -> str: ...
    def is_ancestor(self, older: str, newer: str) -> bool: ...
    def commits_between(self, good: str, bad: str) -> list[str]: ...
    def merges_between(self, good: str, bad: str) -> list[tuple[str, tuple[str, ...]]]: ...
    def merge_base(self, *shas: str) -> str | None: ...
    def info(self, sha: str) -> CommitInfo: ...
    def private_worktree(self, start: str) -> AbstractContextManager[BisectWorktree]: ...


class BisectWorktree(Protocol):
    @property
    def path(self) -> object: ...
    def checkout(self, sha: str) -> None: ...
    def bisect_start(self, bad: str, good: str, *also_good: str) -> BisectStep: ...
    def bisect_candidates(self) -> tuple[str, dict[str, tuple[str, ...]], set[str]]: ...
    def mark(self, verdict: str, sha: str) -> BisectStep: ...
    def bisect_log(self) -> str: ...
    def bisect_reset(self) -> None: ...


@dataclass
class CommitRecord:
    info: CommitInfo
    role: str  # good, bad, step, parent
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    workers: dict[str, str] = field(default_factory=dict)  # benchmark -> worker that judged it


@dataclass
class BenchmarkOutcome:
    spec: BenchmarkSpec
    reference: Comparison
    reproduces: bool
    cut: float | None = None
    culprit: str | None = None
    candidates: list[str] = field(default_factory=list)
    confirmation: Comparison | None = None
    confirmed: bool = False
    steps: list[str] = field(default_factory=list)
    bisect_log: str = ""
    notes: list[str] = field(default_factory=list)
    status: str = "unchanged"  # regressed, unchanged, inconclusive, failed
    reason: str = ""  # why the endpoints' verdict is what it is
    noise: Noise | None = None
    waterfall: Waterfall | None = None  # every change from good to bad (attribution.py)
    rounds: int = 0  # k-ary measurement rounds of its bisect (on Dask workers)

    @property
    def attributed(self) -> bool:
        """Every significant change in the range has a confirmed commit (or is an improvement
        that was reported and, as asked, not bisected)."""
        if not (self.culprit and self.confirmed):
            return False
        return self.waterfall is None or not self.waterfall.open_segments


@dataclass
class SessionResult:
    good: str
    bad: str
    range_commits: list[str]
    outcomes: list[BenchmarkOutcome]
    commits: dict[str, CommitRecord]
    samples: dict[str, dict[str, list[float]]]
    skipped: dict[str, str]
    wall_seconds: float = 0.0
    account: Account = field(default_factory=Account)
    advice: list[str] = field(default_factory=list)  # what to try next, for the report
    # wall time at the endpoints of what a count called unchanged (time_hint.py)
    time_checks: list[TimeCheck] = field(default_factory=list)
    metric: str | None = None  # --metric, when the caller says (cli.py); units are per benchmark
    rounds: int = 0  # measurement rounds: endpoints, steps (or k-ary rounds), confirmations
    workers: dict[str, dict[str, int]] = field(default_factory=dict)  # sha -> worker -> runs
    # runs and seconds when the first culprits were confirmed, before attribution (None: none)
    answer: tuple[int, float] | None = None
    threads: str = AUTO  # --threads
    one_thread: bool = False  # benchmark processes ran with one thread per library

    @property
    def bisected(self) -> list[BenchmarkOutcome]:
        return [o for o in self.outcomes if o.reproduces]

    @property
    def inconclusive(self) -> list[BenchmarkOutcome]:
        return [o for o in self.outcomes if o.status == "inconclusive"]

    @property
    def exit_code(self) -> int:
        if not self.bisected:
            return EXIT_INCONCLUSIVE if self.inconclusive else EXIT_NOT_REPRODUCED
        if all(o.attributed for o in self.bisected):
            return EXIT_CULPRIT
        return EXIT_NO_SINGLE_CULPRIT

    @property
    def log2_bound(self) -> int:
        return log2_bound(len(self.range_commits))

    @property
    def plain_bisect_runs(self) -> int:
        """What a plain `git bisect run` with one run per commit needs: the steps plus bad."""
        return self.log2_bound + 1


def resolve_range(repo: BisectRepo, good: str, bad: str) -> tuple[str, str]:
    """Full shas of good and bad, checked to form a range git bisect can walk."""
    good_sha = repo.resolve(good, "--good")
    bad_sha = repo.resolve(bad, "--bad")
    if good_sha == bad_sha:
        raise UsageError(f"--good and --bad are the same commit ({good_sha[:10]})")
    if not repo.is_ancestor(good_sha, bad_sha):
        raise UsageError(
            f"--good {good} is not an ancestor of --bad {bad}; bisect needs good to come first"
        )
    return good_sha, bad_sha


class Session:
    def __init__(
        self,
        repo: BisectRepo,
        runner: Runner,
        store: MeasurementStore,
        options: BisectOptions,
        on_event: Callable[[Event], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        remote: Sequence[Runner] = (),
    ) -> None:
        """`remote`: one runner per Dask worker (dask_pool.RemoteRunner); with them, every
        worker measures its own references and the bisect runs in k-ary rounds."""
        self.repo = repo
        self.remote = list(remote)
        self.rounds = 0
        self.runner = runner
        self.store = store
        self.opt = options
        self.on_event = on_event or (lambda e: None)
        self.clock = clock
        self.good, self.bad = resolve_range(repo, options.good, options.bad)
        self.range_commits = repo.commits_between(self.good, self.bad)
        self.commits: dict[str, CommitRecord] = {}
        self.skipped: dict[str, str] = {}
        self.advice: list[str] = []  # what to try, found while measuring (for the report)
        self.started = 0.0
        self.answer: tuple[int, float] | None = None  # runs and seconds to the first culprits
        self.one_thread = False  # switched to one thread per library (threads.py)
        self.confirmations = Confirmations(self)

    def emit(self, kind: str, message: str, **data: object) -> None:
        self.on_event(Event(kind, message, dict(data)))

    def record(self, sha: str, role: str) -> CommitRecord:
        if sha not in self.commits:
            self.commits[sha] = CommitRecord(self.repo.info(sha), role)
        return self.commits[sha]

    # -- the whole run -----------------------------------------------------------------------

    def run(self) -> SessionResult:
        started = self.started = self.clock()
        if (
            self.opt.threads == ONE
            and isinstance(self.runner, ThreadSwitch)
            and self.runner.one_thread(force=True)
        ):
            self.one_thread = True
            self.advice.append(one_note())
        specs = select_benchmarks(self.runner.list_benchmarks(), self.opt.bench_patterns)
        named = bool(self.opt.bench_patterns) or len(specs) == 1
        self.emit(
            "start",
            f"bisecting {len(self.range_commits)} commits "
            f"({self.good[:10]}..{self.bad[:10]}), about {self._bound()} steps; "
            f"{len(specs)} benchmark(s)",
        )
        with self.repo.private_worktree(self.bad) as wt:
            lanes = parallel.lanes(
                self.remote,
                lambda r: self._judge(
                    Measurer(r, self.store, NoCheckout(wt.path), specs, self.on_event, self.clock)
                ),
            )
            self.record(self.good, "good")
            self.record(self.bad, "bad")
            self.rounds += 1
            if lanes:
                parallel.prebuild(lanes, wt, self.good, self.bad)
                primary, found = parallel.endpoints(lanes, specs, named)
                judge = primary.judge
                outcomes = self._endpoints(judge, specs, named, found)
            else:
                m = Measurer(self.runner, self.store, wt, specs, self.on_event, clock=self.clock)
                judge = self._judge(m)
                outcomes = self._endpoints(judge, specs, named)
            regressed = [o for o in outcomes if o.reproduces]
            self.emit("references", "endpoints measured", outcomes=outcomes)
            self._warn_if_noisy(judge, outcomes)
            names = [r.spec.name for r in regressed]
            for o in regressed:
                if lanes:
                    parallel.bisect_kary(self, lanes, wt, o, names)
                else:
                    self.bisect_one(judge, wt, o, names)

            def finish(judge: Judge) -> None:
                self.confirmations.confirm_all(judge, regressed, early_reject=True)
                self.retry_unconfirmed(judge, wt, regressed)
                self._note_answer(judge, regressed)
                attribute(self, judge, wt, regressed)

            if lanes:  # on one worker, against its references; another if it is lost
                judge = parallel.on_one_lane(lanes, finish)
            else:
                finish(judge)
            for o in outcomes:
                o.noise = judge.noise(o.spec.name, list(self.commits))
        measurers = [lane.judge.m for lane in lanes] or [judge.m]
        all_samples, account, workers = collect(measurers, list(self.commits), specs, bool(lanes))
        return SessionResult(
            self.good,
            self.bad,
            self.range_commits,
            outcomes,
            self.commits,
            all_samples,
            self.skipped,
            self.clock() - started,
            account,
            advice=list(self.advice),
            answer=self.answer,
            threads=self.opt.threads,
            one_thread=self.one_thread,
            rounds=self.rounds,
            workers=workers,
        )

    def _note_answer(self, judge: Judge, regressed: Sequence[BenchmarkOutcome]) -> None:
        """Runs and seconds until every regressed benchmark's first culprit was decided, before
        attribution looks at the rest of the range: when a user has the answer."""
        if any(o.confirmed for o in regressed):
            acc = judge.m.account.overall or judge.m.account
            self.answer = (acc.total_runs, self.clock() - self.started)

    def _warn_if_noisy(self, judge: Judge, outcomes: Sequence[BenchmarkOutcome]) -> None:
        for o in outcomes:
            if o.status != "failed":
                judge.warn_if_noisy(o.spec.name)
        self.advice.extend(judge.noise_notes.values())

    def _judge(self, m: Measurer) -> Judge:
        judge = Judge(
            m, self.opt.policy, self.good, self.bad, self.opt.factor, self.opt.delta, self.on_event
        )
        judge.one_thread = self.one_thread
        if self.opt.threads == AUTO and m.runner is self.runner:
            judge.on_noisy = self._switch_to_one_thread
        return judge

    def _switch_to_one_thread(self, name: str, sigma: float) -> bool:
        """--threads auto, when a benchmark's endpoints vary by more than judge.HIGH_NOISE per
        run: one thread per library from now on, unless the runner cannot or the user's
        environment sets a thread variable itself (threads.py)."""
        if self.one_thread or not isinstance(self.runner, ThreadSwitch):
            return False
        if not self.runner.one_thread():
            return False
        self.one_thread = True
        self.advice.append(switched_note(name, sigma))
        self.emit("threads", switched_note(name, sigma, now=True), benchmark=name)
        return True

    def _bound(self) -> int:
        return log2_bound(len(self.range_commits))

    def _endpoints(
        self,
        judge: Judge,
        specs: Sequence[BenchmarkSpec],
        named: bool,
        found: dict[str, tuple[Judgement, Comparison]] | None = None,
    ) -> list[BenchmarkOutcome]:
        if found is None:
            found = judge.endpoints(specs, named)
        m = judge.m
        for sha, role in ((self.good, "good"), (self.bad, "bad")):
            failed = [s.name for s in specs if m.error(sha, s.name)]
            if failed and len(failed) == len(specs):
                raise UsageError(
                    f"the {role} commit {sha[:10]} could not be measured: {m.error(sha, failed[0])}"
                )
        outcomes = []
        for spec in specs:
            if spec.name not in found:
                comp = Comparison(1.0, math.nan, math.nan, math.nan, 0, 0)
                out = BenchmarkOutcome(spec, comp, False, status="failed")
                out.notes.append(
                    m.error(self.good, spec.name) or m.error(self.bad, spec.name) or ""
                )
                outcomes.append(out)
                continue
            j, comp = found[spec.name]
            status = {
                Decision.REGRESSED: "regressed",
                Decision.UNCHANGED: "unchanged",
            }.get(j.decision, "inconclusive")
            out = BenchmarkOutcome(
                spec,
                comp,
                status == "regressed",
                judge.cut_value(spec.name),
                status=status,
                reason=j.reason,
            )
            if status == "inconclusive":
                self.emit("inconclusive", f"{spec.name}: inconclusive, {j.reason}")
            outcomes.append(out)
        return outcomes

    # -- one benchmark -----------------------------------------------------------------------

    def bisect_one(
        self,
        judge: Judge,
        wt: BisectWorktree,
        out: BenchmarkOutcome,
        shared: list[str],
        min_runs: int = 1,
        careful: bool = False,
        also_good: Sequence[str] = (),
    ) -> None:
        """One bisect through git, between the judge's good and bad (the whole range, or a
        segment of it when attributing; `also_good` takes more commits' ancestors out).
        `careful`: a second pass, after a culprit did not confirm, with more runs per step and
        the references re-measured every few steps."""
        name = out.spec.name
        whole = (judge.good, judge.bad) == (self.good, self.bad)
        bound = (
            self._bound()
            if whole
            else log2_bound(len(self.repo.commits_between(judge.good, judge.bad)))
        )
        self.emit(
            "bisect",
            f"bisecting {name}: bad/good {out.reference.ratio:.3g}x "
            f"[{out.reference.ci_low:.3g}, {out.reference.ci_high:.3g}]",
            benchmark=name,
        )
        step = wt.bisect_start(judge.bad, judge.good, *also_good)
        k = 0
        last_refs = (self.clock(), judge.m.account.total_runs)
        second_chance = True
        while not step.done or (second_chance and left_unclear(self, step)):
            if step.done:  # ended among skipped commits: measure those the run cap left unclear
                second_chance = False
                step = measure_again(self, judge, wt, out, step, shared, min_runs, whole)
                continue
            sha = step.next_commit
            assert sha is not None
            k += 1
            due = k > 1 and (k - 1) % self.opt.drift_every == 0
            stale = (
                self.clock() - last_refs[0] > self.opt.drift_seconds
                or judge.m.account.total_runs - last_refs[1] >= self.opt.drift_runs
            )
            if due and (careful or stale or judge.noisy(name)):
                self._check_drift(judge, out)
                last_refs = (self.clock(), judge.m.account.total_runs)
            rec = self.record(sha, "step")
            self.rounds += 1
            verdict, reason = judge.step(sha, name, shared, min_runs)
            out.notes.extend(judge.notes.pop(name, []))
            if whole or name not in rec.verdicts:  # a segment's verdicts never overwrite
                rec.verdicts[name] = verdict
                rec.reasons[name] = reason
            if verdict is Verdict.SKIP:
                err = judge.m.error(sha, name)
                rec.error = err
                self.skipped[sha] = reason
            out.steps.append(sha)
            self.emit_step(judge, out, rec, verdict, k, bound)
            git_word = {Verdict.GOOD: "good", Verdict.BAD: "bad"}.get(verdict, "skip")
            step = wt.mark(git_word, sha)
        self.finish_bisect(wt, out, step)

    def emit_step(
        self,
        judge: Judge,
        out: BenchmarkOutcome,
        rec: CommitRecord,
        verdict: Verdict,
        k: int | str,
        bound: int,
    ) -> None:
        """Tell the listeners a step was judged: its commit, runs and verdict, and the good
        runs it was held against (k: the step's number; bound: ceil(log2 N) of the range)."""
        name = out.spec.name
        self.emit(
            "step",
            "",
            k=k,
            bound=bound,
            benchmark=name,
            record=rec,
            unit=out.spec.unit,
            verdict=verdict,
            samples=judge.m.runs(rec.info.sha, name),
            good=judge.values(judge.good, name),
        )

    def finish_bisect(self, wt: BisectWorktree, out: BenchmarkOutcome, step: BisectStep) -> None:
        """Keep git's log and its answer (a culprit, or the candidates skips left), reset."""
        name = out.spec.name
        out.bisect_log = wt.bisect_log()
        wt.bisect_reset()
        if step.culprit:
            out.culprit = step.culprit
            self.record(step.culprit, "step")
        else:
            out.candidates = list(step.candidates)
            for c in out.candidates:
                self.record(c, "step")
            self.emit(
                "ambiguous",
                f"{name}: bisect ended with {len(out.candidates)} candidate "
                "commits (skipped commits hide the culprit)",
                benchmark=name,
            )

    def _check_drift(self, judge: Judge, out: BenchmarkOutcome) -> None:
        note = judge.check_drift(out.spec.name)
        if note:
            note = f"drift after step {len(out.steps)}: {note}"
            out.notes.append(note)
            out.cut = judge.cut_value(out.spec.name)
            self.emit("drift", f"{out.spec.name}: {note}")

    def retry_unconfirmed(
        self,
        judge: Judge,
        wt: BisectWorktree,
        outcomes: Sequence[BenchmarkOutcome],
        also_good: Sequence[str] = (),
    ) -> None:
        """A culprit that fails confirmation usually means one step was misjudged on too few
        runs. Bisect once more with more runs at every step, each judged on runs taken in this
        pass (the runs that misled the first pass would mislead it again) and against
        references measured afresh, then confirm again."""
        retry = [o for o in outcomes if o.culprit and not o.confirmed]
        if not retry:
            return
        names = [o.spec.name for o in retry]
        runs = self.opt.policy.careful_step_runs
        judge.forget_steps(names)  # each step of the careful pass on runs of its own
        for o in retry:
            assert o.culprit is not None
            o.notes.append(
                f"the first bisect named {o.culprit[:10]}, which did not confirm against its "
                f"parent; bisected again with at least {runs} runs at every step"
            )
            moved = self.confirmations.cut_for_retry(judge, o.spec.name, o.culprit)
            if moved:
                o.notes.append(moved)
                o.cut = judge.cut_value(o.spec.name)
                self.emit("retry", f"{o.spec.name}: {moved}")
            self.emit(
                "retry",
                f"{o.spec.name}: {o.culprit[:10]} did not confirm; bisecting "
                f"again with at least {runs} runs per step",
            )
            o.culprit, o.candidates, o.steps = None, [], []
            o.confirmation, o.confirmed = None, False
            # the references first: a burst of load over all of an endpoint's runs misleads
            # every step against it, in both passes (the simulator, seed 141, 256 linear 3x,
            # bursts 5%, trial 8: good's runs all 2.84x slower, the careful pass judged four
            # steps at bad's level good before its first drift check and named a commit at
            # bad's level, confirmed at 1.039x)
            self._check_drift(judge, o)
            self.bisect_one(judge, wt, o, names, min_runs=runs, careful=True, also_good=also_good)
        self.confirmations.confirm_all(judge, retry)
