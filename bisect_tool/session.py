"""The bisect loop: ask git for the next commit, measure it, classify it, tell git.

The session is handed its git repository, runner and store, so tests can drive it with a fake
runner that returns chosen timings for chosen commits, while other tests use the real runners.
It never prints: progress goes to the `on_event` callback and the outcome is a `SessionResult`.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from . import stats
from .errors import (
    EXIT_CULPRIT,
    EXIT_NO_SINGLE_CULPRIT,
    EXIT_NOT_REPRODUCED,
    MeasurementFailed,
    UsageError,
)
from .git import CommitInfo, GitRepo, Worktree
from .runners import Batch, BenchmarkSpec, Runner
from .stats import Comparison, Verdict
from .store import MeasurementStore

SUGGESTIVE_P = 0.1  # endpoints this close to significant are measured more before giving up


@dataclass(frozen=True)
class BisectOptions:
    good: str
    bad: str = "HEAD"
    bench_patterns: tuple[str, ...] = ()
    factor: float | None = None
    delta: float | None = None  # absolute threshold, in the benchmark's unit
    alpha: float = stats.DEFAULT_ALPHA
    commit_samples: int = 5  # samples at a commit before its first verdict
    reference_samples: int = 10  # samples of each endpoint, taken in interleaved halves
    max_samples: int = 30  # budget per commit; still unknown after it -> skip
    drift_every: int = 4  # re-measure the endpoints after this many bisect steps
    confirm_pairs: int = 3  # culprit/parent alternations (ABBAAB) for the confirmation
    confirm_rounds: int = 2  # rounds (independent processes) per measurement in it
    recheck_samples: int = 15  # samples per step when bisecting again after a failed confirm


@dataclass(frozen=True)
class Event:
    """Progress for the terminal: what happened, with the numbers behind it."""

    kind: str
    message: str
    data: dict[str, object] = field(default_factory=dict)


@dataclass
class CommitRecord:
    info: CommitInfo
    role: str  # good, bad, step, parent
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    error: str | None = None


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

    @property
    def bisected(self) -> list[BenchmarkOutcome]:
        return [o for o in self.outcomes if o.reproduces]

    @property
    def exit_code(self) -> int:
        if not self.bisected:
            return EXIT_NOT_REPRODUCED
        if all(o.culprit and o.confirmed for o in self.bisected):
            return EXIT_CULPRIT
        return EXIT_NO_SINGLE_CULPRIT

    @property
    def log2_bound(self) -> int:
        return log2_bound(len(self.range_commits))


def select_benchmarks(
    specs: Sequence[BenchmarkSpec], patterns: Sequence[str]
) -> list[BenchmarkSpec]:
    if not patterns:
        return list(specs)
    compiled = []
    for pat in patterns:
        try:
            compiled.append(re.compile(pat))
        except re.error as exc:
            raise UsageError(f"--bench {pat!r} is not a valid regular expression: {exc}") from None
    chosen = [s for s in specs if any(c.search(s.name) for c in compiled)]
    if not chosen:
        known = ", ".join(s.name for s in specs[:6]) + (", ..." if len(specs) > 6 else "")
        raise UsageError(f"--bench {' '.join(patterns)!r} matches no benchmark (known: {known})")
    return chosen


def log2_bound(n: int) -> int:
    """The fewest bisect steps that can single out one of n commits."""
    return math.ceil(math.log2(n)) if n > 1 else 0


def split_rounds(samples: list[float], rounds: int) -> list[list[float]]:
    """One block per round (process): runners return each round's samples in order, the same
    number per round, and samples that shared a process are not independent observations."""
    if rounds > 1 and len(samples) % rounds == 0:
        size = len(samples) // rounds
        return [samples[i : i + size] for i in range(0, len(samples), size)]
    return [samples]


def resolve_range(repo: GitRepo, good: str, bad: str) -> tuple[str, str]:
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


class Measurer:
    """Measures commits on demand, through the store, so nothing is measured twice."""

    def __init__(
        self,
        runner: Runner,
        store: MeasurementStore,
        worktree: Worktree,
        specs: Sequence[BenchmarkSpec],
        on_event: Callable[[Event], None],
    ) -> None:
        self.per_round = {s.name: max(1, s.samples_per_round) for s in specs}
        self.runner = runner
        self.store = store
        self.worktree = worktree
        self.on_event = on_event

    def _key(self, sha: str, bench: str) -> str:
        return MeasurementStore.key(self.runner.machine, self.runner.settings_key, sha, bench)

    def samples(self, sha: str, bench: str) -> list[float]:
        return list(self.store.get(self._key(sha, bench)).samples)

    def error(self, sha: str, bench: str) -> str | None:
        return self.store.get(self._key(sha, bench)).error

    def rounds_for(self, bench: str, samples: int) -> int:
        return max(1, math.ceil(samples / self.per_round.get(bench, 1)))

    def ensure(self, sha: str, benches: Sequence[str], min_samples: int) -> None:
        """Make sure every bench has at least min_samples samples at sha (or a recorded error)."""
        todo = [
            b
            for b in benches
            if self.error(sha, b) is None and len(self.samples(sha, b)) < min_samples
        ]
        if not todo:
            return
        need = max(self.rounds_for(b, min_samples - len(self.samples(sha, b))) for b in todo)
        self.add(sha, todo, need)

    def add_samples(self, sha: str, benches: Sequence[str], samples: int) -> Batch:
        return self.add(sha, benches, max(self.rounds_for(b, samples) for b in benches))

    def add(self, sha: str, benches: Sequence[str], rounds: int) -> Batch:
        """Measure `rounds` more rounds of benches at sha, whatever is cached; return them."""
        benches = [b for b in benches if self.error(sha, b) is None]
        if not benches or rounds <= 0:
            return Batch()
        self.worktree.checkout(sha)
        try:
            batch = self.runner.measure(self.worktree.path, sha, benches, rounds)
        except MeasurementFailed as exc:
            batch = Batch(errors={b: str(exc) for b in benches})
            self.on_event(Event("error", f"{sha[:10]}: {exc}", {"sha": sha, "detail": exc.detail}))
        for b in benches:
            if b in batch.samples and batch.samples[b]:
                self.store.add(self._key(sha, b), batch.samples[b], rounds)
            elif not self.samples(sha, b):
                self.store.fail(self._key(sha, b), batch.errors.get(b, "no result"))
            # else: a commit that measured fine before and failed once keeps its samples; a
            # transient failure must not erase a reference in the middle of a bisect
        self.store.save()
        return batch


class Session:
    def __init__(
        self,
        repo: GitRepo,
        runner: Runner,
        store: MeasurementStore,
        options: BisectOptions,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.repo = repo
        self.runner = runner
        self.store = store
        self.opt = options
        self.on_event = on_event or (lambda e: None)
        self.good, self.bad = resolve_range(repo, options.good, options.bad)
        self.range_commits = repo.commits_between(self.good, self.bad)
        self.commits: dict[str, CommitRecord] = {}
        self.skipped: dict[str, str] = {}
        self._ref_from: dict[tuple[str, str], int] = {}
        self._named = False  # the benchmarks were chosen by the user, not found by a scan

    def emit(self, kind: str, message: str, **data: object) -> None:
        self.on_event(Event(kind, message, dict(data)))

    def record(self, sha: str, role: str) -> CommitRecord:
        if sha not in self.commits:
            self.commits[sha] = CommitRecord(self.repo.info(sha), role)
        return self.commits[sha]

    # -- the whole run -----------------------------------------------------------------------

    def run(self) -> SessionResult:
        started = time.monotonic()
        specs = select_benchmarks(self.runner.list_benchmarks(), self.opt.bench_patterns)
        self._named = bool(self.opt.bench_patterns) or len(specs) == 1
        self.emit(
            "start",
            f"bisecting {len(self.range_commits)} commits "
            f"({self.good[:10]}..{self.bad[:10]}), about {self._bound()} steps; "
            f"{len(specs)} benchmark(s)",
        )
        with self.repo.private_worktree(self.bad) as wt:
            m = Measurer(self.runner, self.store, wt, specs, self.on_event)
            self.record(self.good, "good")
            self.record(self.bad, "bad")
            self._measure_references(m, specs, self.opt.reference_samples)
            outcomes = [self._reference_outcome(m, s) for s in specs]
            regressed = [o for o in outcomes if o.reproduces]
            self.emit("references", "endpoints measured", outcomes=outcomes)
            for o in regressed:
                self._bisect_one(m, wt, o, [r.spec.name for r in regressed])
            self._confirm_all(m, regressed)
            self._retry_unconfirmed(m, wt, regressed)
        all_samples: dict[str, dict[str, list[float]]] = {}
        for sha in self.commits:
            all_samples[sha] = {
                s.name: m.samples(sha, s.name) for s in specs if m.samples(sha, s.name)
            }
        return SessionResult(
            self.good,
            self.bad,
            self.range_commits,
            outcomes,
            self.commits,
            all_samples,
            self.skipped,
            time.monotonic() - started,
        )

    def _bound(self) -> int:
        return log2_bound(len(self.range_commits))

    def _measure_references(
        self, m: Measurer, specs: Sequence[BenchmarkSpec], samples: int
    ) -> None:
        """Endpoints in alternating halves (good, bad, good, bad) so drift hits both alike.

        A benchmark whose endpoints differ beyond the threshold but not yet significantly is
        measured more, in the same alternation, up to the per-commit budget: a real regression
        must not be dismissed as "not reproduced" because its first samples were unlucky.
        """
        names = [s.name for s in specs]
        for target in (max(1, samples // 2), samples):
            for sha in (self.good, self.bad):
                m.ensure(sha, names, target)
        step = max(1, samples // 2)
        target = samples
        while target < self.opt.max_samples:
            unclear = [s.name for s in specs if self._borderline(m, s)]
            if not unclear:
                break
            target = min(self.opt.max_samples, target + step)
            self.emit("more", f"endpoints unclear for {len(unclear)} benchmark(s); measuring more")
            for sha in (self.good, self.bad):
                m.ensure(sha, unclear, target)
        for sha, role in ((self.good, "good"), (self.bad, "bad")):
            failed = [n for n in names if m.error(sha, n)]
            if failed and len(failed) == len(names):
                raise UsageError(
                    f"the {role} commit {sha[:10]} could not be measured: {m.error(sha, failed[0])}"
                )

    def _delta(self, spec: BenchmarkSpec) -> float | None:
        """--threshold-ms is a time: it applies to benchmarks measured in seconds only."""
        return self.opt.delta if spec.unit == "seconds" else None

    def _directions(self, spec: BenchmarkSpec) -> list[bool]:
        return [spec.worse_is_higher] if spec.worse_is_higher is not None else [True, False]

    def _borderline(self, m: Measurer, spec: BenchmarkSpec) -> bool:
        name = spec.name
        good, bad = m.samples(self.good, name), m.samples(self.bad, name)
        if not good or not bad:
            return False
        g, b = stats.median(good), stats.median(bad)
        beyond = any(
            stats.beyond_threshold(g, b, self.opt.factor, self._delta(spec), worse_high)
            for worse_high in self._directions(spec)
        )
        p = stats.rank_test(good, bad)
        # A benchmark the user named (--bench, or the one --cmd) is one they saw regress:
        # if bad merely looks worse, its first samples may just have been unlucky.
        looks_worse = any((b > g) == worse_high for worse_high in self._directions(spec))
        suspected = self._named and looks_worse
        # Unclear: past the threshold but not yet significant; or a real-looking difference
        # (p < 0.1, significant or not) whose first samples fell short of the threshold, as a
        # true 1.1x regression does one time in twenty against a 5% floor.
        return (beyond and p >= self.opt.alpha) or (not beyond and (p < SUGGESTIVE_P or suspected))

    def _reference_outcome(self, m: Measurer, spec: BenchmarkSpec) -> BenchmarkOutcome:
        good, bad = m.samples(self.good, spec.name), m.samples(self.bad, spec.name)
        if not good or not bad:
            comp = Comparison(1.0, math.nan, math.nan, math.nan, len(good), len(bad))
            out = BenchmarkOutcome(spec, comp, False)
            out.notes.append(m.error(self.good, spec.name) or m.error(self.bad, spec.name) or "")
            return out
        directions = self._directions(spec)
        best: tuple[bool, Comparison] | None = None
        for worse_high in directions:
            ok, comp = stats.regression_reproduces(
                good, bad, self.opt.alpha, self.opt.factor, self._delta(spec), worse_high
            )
            if best is None or ok:
                best = (ok, comp)
        assert best is not None
        ok, comp = best
        cut = stats.cut_value(
            stats.median(good), stats.median(bad), self.opt.factor, self._delta(spec)
        )
        return BenchmarkOutcome(spec, comp, ok, cut=cut)

    # -- one benchmark -----------------------------------------------------------------------

    def _retry_unconfirmed(
        self, m: Measurer, wt: Worktree, outcomes: Sequence[BenchmarkOutcome]
    ) -> None:
        """A culprit that fails confirmation usually means one step was misjudged on few
        samples. Bisect once more with every step measured to `recheck_samples` (cached
        samples are reused, so only the top-up costs), then confirm again."""
        retry = [o for o in outcomes if o.culprit and not o.confirmed]
        if not retry:
            return
        names = [o.spec.name for o in retry]
        for o in retry:
            o.notes.append(
                f"the first bisect named {o.culprit[:10]}, which did not confirm against its "
                f"parent; bisected again with {self.opt.recheck_samples} samples at every step"
            )
            self.emit(
                "retry",
                f"{o.spec.name}: {o.culprit[:10]} did not confirm; bisecting "
                f"again with {self.opt.recheck_samples} samples per step",
            )
            o.culprit, o.candidates, o.steps = None, [], []
            o.confirmation, o.confirmed = None, False
            self._bisect_one(m, wt, o, names, min_samples=self.opt.recheck_samples)
        self._confirm_all(m, retry)

    def _bisect_one(
        self,
        m: Measurer,
        wt: Worktree,
        out: BenchmarkOutcome,
        shared: list[str],
        min_samples: int = 0,
    ) -> None:
        name = out.spec.name
        self.emit(
            "bisect",
            f"bisecting {name}: good median {stats.median(m.samples(self.good, name)):.4g}, "
            f"bad median {stats.median(m.samples(self.bad, name)):.4g} "
            f"({out.reference.ratio:.2f}x)",
            benchmark=name,
        )
        step = wt.bisect_start(self.bad, self.good)
        k = 0
        while not step.done:
            sha = step.next_commit
            assert sha is not None
            k += 1
            if k > 1 and (k - 1) % self.opt.drift_every == 0:
                self._check_drift(m, out)
            verdict = self._judge(m, out, sha, shared, min_samples)
            out.steps.append(sha)
            rec = self.commits[sha]
            self.emit(
                "step",
                "",
                k=k,
                bound=self._bound(),
                benchmark=name,
                record=rec,
                unit=out.spec.unit,
                verdict=verdict,
                samples=m.samples(sha, name),
                good=self._refs(m, name)[0],
            )
            git_word = {Verdict.GOOD: "good", Verdict.BAD: "bad"}.get(verdict, "skip")
            step = wt.mark(git_word, sha)
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

    def _judge(
        self, m: Measurer, out: BenchmarkOutcome, sha: str, shared: list[str], min_samples: int = 0
    ) -> Verdict:
        """Measure sha until its verdict is clear or the budget is spent."""
        name = out.spec.name
        rec = self.record(sha, "step")
        m.ensure(sha, shared, max(self.opt.commit_samples, min_samples))
        extra = 0
        while True:
            err = m.error(sha, name)
            if err:
                rec.error = err
                rec.verdicts[name] = Verdict.SKIP
                rec.reasons[name] = err
                self.skipped[sha] = err
                return Verdict.SKIP
            good, bad = self._refs(m, name)
            cls = stats.classify(m.samples(sha, name), good, bad, out.cut or 0.0, self.opt.alpha)
            rec.verdicts[name] = cls.verdict
            rec.reasons[name] = cls.reason
            if cls.verdict is not Verdict.UNKNOWN:
                return cls.verdict
            n = len(m.samples(sha, name))
            if n >= self.opt.max_samples and cls.far_outside:
                # consistently far beyond bad: a bigger slowdown than bad's, still a slowdown
                rec.verdicts[name] = Verdict.BAD
                rec.reasons[name] = f"{cls.reason}, in all {n} samples"
                return Verdict.BAD
            if n >= self.opt.max_samples:
                rec.verdicts[name] = Verdict.SKIP
                rec.reasons[name] = f"still unclear after {n} samples: {cls.reason}"
                self.skipped[sha] = rec.reasons[name]
                return Verdict.SKIP
            extra += 1
            self.emit("more", f"{sha[:10]}: {cls.reason}; measuring more", sha=sha)
            batch = m.add_samples(sha, [name], self.opt.commit_samples)
            if not batch.samples.get(name):
                why = batch.errors.get(name, "no result")
                rec.verdicts[name] = Verdict.SKIP
                rec.reasons[name] = f"measuring more failed: {why}"
                self.skipped[sha] = rec.reasons[name]
                return Verdict.SKIP
            if extra % 2 == 0:
                for ref, ref_samples in zip(
                    (self.good, self.bad), self._refs(m, name), strict=True
                ):
                    if len(ref_samples) < len(m.samples(sha, name)):
                        m.add_samples(ref, [name], self.opt.commit_samples)

    def _refs(self, m: Measurer, name: str) -> tuple[list[float], list[float]]:
        """The reference samples in use: all of them, or only those taken since drift was seen."""
        return tuple(  # type: ignore[return-value]
            m.samples(ref, name)[self._ref_from.get((ref, name), 0) :]
            for ref in (self.good, self.bad)
        )

    def _check_drift(self, m: Measurer, out: BenchmarkOutcome) -> None:
        """Re-measure both endpoints; if they moved, only the fresh samples are used from now."""
        name = out.spec.name
        before = {ref: len(m.samples(ref, name)) for ref in (self.good, self.bad)}
        old = dict(zip((self.good, self.bad), self._refs(m, name), strict=True))
        for ref in (self.good, self.bad):
            m.add_samples(ref, [name], self.opt.commit_samples)
        moved = []
        for ref in (self.good, self.bad):
            new = m.samples(ref, name)[before[ref] :]
            if new and stats.drifted(old[ref], new, self.opt.alpha):
                moved.append(ref)
                self._ref_from[(ref, name)] = before[ref]
        if moved:
            which = " and ".join("good" if r == self.good else "bad" for r in moved)
            note = (
                f"drift after step {len(out.steps)}: the {which} reference moved; "
                "using fresh samples"
            )
            out.notes.append(note)
            self.emit("drift", f"{name}: {note}")
            good, bad = self._refs(m, name)
            out.cut = stats.cut_value(
                stats.median(good), stats.median(bad), self.opt.factor, self._delta(out.spec)
            )

    def _confirm_all(self, m: Measurer, outcomes: Sequence[BenchmarkOutcome]) -> None:
        """Confirm each culprit; benchmarks blaming the same commit share the measurements."""
        by_culprit: dict[str, list[BenchmarkOutcome]] = {}
        for out in outcomes:
            if out.culprit:
                by_culprit.setdefault(out.culprit, []).append(out)
        for culprit, group in by_culprit.items():
            self._confirm(m, culprit, group)

    def _confirm(self, m: Measurer, culprit: str, group: Sequence[BenchmarkOutcome]) -> None:
        """Confirm against every parent: a merge is a culprit only if it is worse than all of
        its parents; worse than the first parent alone means the change came in on the merged
        branch, where a misjudged step hid the real commit."""
        parents = self.commits[culprit].info.parents
        if not parents:
            for out in group:
                out.notes.append("culprit is a root commit: nothing to confirm against")
            return
        results: dict[str, list[tuple[bool, Comparison]]] = {o.spec.name: [] for o in group}
        for parent in parents:
            self.record(parent, "parent")
            for name, res in self._confirm_against(m, culprit, parent, group).items():
                results[name].append(res)
        for out in group:
            res = results[out.spec.name]
            if len(res) != len(parents):
                continue  # could not be measured; noted by _confirm_against
            out.confirmation = res[0][1]
            out.confirmed = all(ok for ok, _ in res)
            for parent, (ok, _) in zip(parents[1:], res[1:], strict=True):
                if not ok:
                    out.notes.append(
                        f"the merge {culprit[:10]} is not worse than its parent {parent[:10]}: "
                        "the change came in on that branch"
                    )

    def _confirm_against(
        self, m: Measurer, culprit: str, parent: str, group: Sequence[BenchmarkOutcome]
    ) -> dict[str, tuple[bool, Comparison]]:
        """Measure culprit and parent in alternating blocks (ABBA...) and test each benchmark.

        A second attempt adds blocks to the first: one block hit by a burst of load must not
        sink a real culprit, and more independent blocks make the test stronger.
        """
        names = [o.spec.name for o in group]
        blocks: dict[tuple[str, str], list[list[float]]] = {
            (sha, n): [] for sha in (parent, culprit) for n in names
        }
        found: dict[str, tuple[bool, Comparison]] = {}
        todo = list(group)
        for attempt in (1, 2):
            for i in range(self.opt.confirm_pairs):
                # ABBA order: a steady drift of the machine favours neither side.
                for sha in (parent, culprit) if i % 2 == 0 else (culprit, parent):
                    wanted = [o.spec.name for o in todo]
                    batch = m.add(sha, wanted, self.opt.confirm_rounds)
                    for n in wanted:
                        if batch.samples.get(n):
                            blocks[(sha, n)].extend(
                                split_rounds(batch.samples[n], self.opt.confirm_rounds)
                            )
            still = []
            for out in todo:
                name = out.spec.name
                if m.error(parent, name) or m.error(culprit, name):
                    out.notes.append("confirmation could not measure the culprit or its parent")
                    continue
                good, bad = self._refs(m, name)
                worse_high = stats.median(bad) >= stats.median(good)
                ok, comp = stats.confirms(
                    blocks[(parent, name)], blocks[(culprit, name)], worse_high, self.opt.alpha
                )
                found[name] = (ok, comp)
                if not ok and attempt == 1:
                    still.append(out)
                    self.emit(
                        "more",
                        f"{name}: confirmation unclear (p={comp.p_value:.2g}); "
                        "measuring more pairs",
                    )
                    continue
                verdict = "confirmed" if ok else "NOT confirmed"
                self.emit(
                    "confirm",
                    f"{name}: culprit {culprit[:10]} {verdict} against its parent "
                    f"{parent[:10]}: {comp.ratio:.3f}x [{comp.ci_low:.3f}, {comp.ci_high:.3f}], "
                    f"p={comp.p_value:.2g}",
                )
            todo = still
            if not todo:
                break
        return found


@dataclass
class CheckResult:
    """One commit judged against a baseline, for `smbisect check` (git bisect run's step)."""

    baseline: str
    commit: str
    rows: list[tuple[BenchmarkSpec, Comparison | None, Verdict, str]]

    @property
    def exit_code(self) -> int:
        verdicts = [v for _, _, v, _ in self.rows]
        if any(v is Verdict.BAD for v in verdicts):
            return 1
        if any(v in (Verdict.SKIP, Verdict.UNKNOWN) for v in verdicts):
            return 125
        return 0


def check_commit(
    repo: GitRepo,
    runner: Runner,
    store: MeasurementStore,
    baseline: str,
    rev: str,
    patterns: Sequence[str] = (),
    factor: float | None = None,
    delta: float | None = None,
    samples: int = 10,
    max_samples: int = 30,
    alpha: float = stats.DEFAULT_ALPHA,
) -> CheckResult:
    """Is rev worse than baseline beyond the threshold, significantly? Measures more if unclear.

    The baseline's samples come from the cache when they exist, so a `git bisect run` that calls
    this at every step measures the baseline once.
    """
    base_sha = repo.resolve(baseline, "--good")
    sha = repo.resolve(rev, "REV")
    specs = select_benchmarks(runner.list_benchmarks(), patterns)
    names = [s.name for s in specs]
    rows: list[tuple[BenchmarkSpec, Comparison | None, Verdict, str]] = []
    with repo.private_worktree(sha) as wt:
        m = Measurer(runner, store, wt, specs, lambda e: None)
        m.ensure(base_sha, names, samples)
        m.ensure(sha, names, samples)
        for spec in specs:
            name = spec.name
            err = m.error(sha, name) or m.error(base_sha, name)
            if err:
                rows.append((spec, None, Verdict.SKIP, err))
                continue
            worse_high = spec.worse_is_higher if spec.worse_is_higher is not None else True
            while True:
                base, cur = m.samples(base_sha, name), m.samples(sha, name)
                worse, comp = stats.regression_reproduces(
                    base, cur, alpha, factor, delta, worse_high
                )
                beyond = stats.beyond_threshold(
                    stats.median(base), stats.median(cur), factor, delta, worse_high
                )
                if worse:
                    rows.append((spec, comp, Verdict.BAD, "worse beyond the threshold"))
                    break
                if not beyond or comp.p_value >= 0.5:
                    rows.append((spec, comp, Verdict.GOOD, "within the threshold"))
                    break
                if len(cur) >= max_samples:
                    rows.append((spec, comp, Verdict.UNKNOWN, "unclear after the sample budget"))
                    break
                more = m.add_samples(sha, [name], samples // 2 or 1)
                m.add_samples(base_sha, [name], samples // 2 or 1)
                if not more.samples.get(name):
                    why = more.errors.get(name, "no result")
                    rows.append((spec, comp, Verdict.SKIP, f"measuring more failed: {why}"))
                    break
    return CheckResult(base_sha, sha, rows)
