"""The simulator: the real Session, on a synthetic history, measured by a synthetic runner.

Everything the session decides goes through the same code as a real bisect (the Judge, the
policy, the bisect loop, the confirmation and its retry); only git and the benchmark processes
are replaced. `SimRepo` keeps a commit graph in memory and bisects it the way `git bisect`
does (the candidate that halves the remaining ones best, by reachability; skipped commits are
passed over; "only skipped commits left" lists the candidates). `SimRunner` draws each run from
a chosen noise model, on a simulated clock. One bisect takes milliseconds, so thousands of them
measure the policy's error rates: tools/simulate_policy.py runs the grid, the tests a subset.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .errors import MeasurementFailed
from .git import BisectStep, CommitInfo
from .policy import Policy
from .runners import Batch, BenchmarkSpec
from .session import BisectOptions, Event, Session, SessionResult
from .store import MeasurementStore

NAME = "sim.time_work"


def sha_of(i: int) -> str:
    return f"{i + 1:040x}"


# -- histories -------------------------------------------------------------------------------------


@dataclass
class History:
    """Commits 0..n in creation order (0 is good, n is bad), their parents, and the culprits:
    commit -> factor on the benchmark (above 1 a slowdown, below 1 a speedup)."""

    parents: list[tuple[int, ...]]
    culprits: dict[int, float]
    broken: set[int] = field(default_factory=set)
    anc: list[int] = field(default_factory=list)  # ancestors (and self) of each, as bitsets

    def __post_init__(self) -> None:
        self.anc = []
        for i, ps in enumerate(self.parents):
            mask = 1 << i
            for p in ps:
                mask |= self.anc[p]
            self.anc.append(mask)

    @property
    def bad(self) -> int:
        return len(self.parents) - 1

    def level(self, i: int) -> float:
        """The benchmark's true value at commit i, relative to good."""
        value = 1.0
        for c, factor in self.culprits.items():
            if self.anc[i] >> c & 1:
                value *= factor
        return value


def make_history(
    n: int,
    shape: str,
    rng: random.Random,
    factors: Sequence[float] = (2.0,),
    broken_fraction: float = 0.0,
) -> History:
    """n commits after good, linear or with feature branches merged back (--no-ff), with one
    culprit per factor among the non-merge commits after good."""
    parents: list[tuple[int, ...]] = [()]
    merges: set[int] = set()
    if shape == "linear":
        parents += [(i,) for i in range(n)]
    else:
        tip = 0
        while len(parents) <= n:
            room = n + 1 - len(parents)
            if room >= 4 and rng.random() < 0.6:
                branch_len = rng.randint(1, min(5, room - 2))
                b = tip
                for _ in range(branch_len):
                    parents.append((b,))
                    b = len(parents) - 1
                for _ in range(rng.randint(0, min(2, room - branch_len - 1))):
                    parents.append((tip,))
                    tip = len(parents) - 1
                parents.append((tip, b))
                tip = len(parents) - 1
                merges.add(tip)
            else:
                parents.append((tip,))
                tip = len(parents) - 1
    plain = [i for i in range(2, len(parents)) if i not in merges]
    chosen = rng.sample(plain, min(len(factors), len(plain)))
    culprits = dict(zip(chosen, factors, strict=False))
    free = [i for i in plain if i not in culprits and i != len(parents) - 1]
    broken = set(rng.sample(free, int(broken_fraction * len(free)))) if free else set()
    return History(parents, culprits, broken)


# -- the repository and its bisect -----------------------------------------------------------------


class SimWorktree:
    def __init__(self, history: History) -> None:
        self.h = history
        self.path = Path("/nonexistent/smbisect-sim")
        self.current: int | None = None
        self._bad = history.bad
        self._goods: list[int] = []
        self._skipped: set[int] = set()
        self._log: list[str] = []

    def checkout(self, sha: str) -> None:
        self.current = int(sha, 16) - 1

    def bisect_start(self, bad: str, good: str, *also_good: str) -> BisectStep:
        goods = [int(g, 16) - 1 for g in (good, *also_good)]
        self._bad, self._goods, self._skipped = int(bad, 16) - 1, goods, set()
        self._log = ["git bisect start " + " ".join(f"'{x}'" for x in (bad, good, *also_good))]
        return self._next()

    def mark(self, verdict: str, sha: str) -> BisectStep:
        i = int(sha, 16) - 1
        self._log.append(f"git bisect {verdict} {sha}")
        if verdict == "good":
            self._goods.append(i)
        elif verdict == "bad":
            self._bad = i
        else:
            self._skipped.add(i)
        return self._next()

    def _next(self) -> BisectStep:
        h = self.h
        good_mask = 0
        for g in self._goods:
            good_mask |= h.anc[g]
        cand = h.anc[self._bad] & ~good_mask
        members = [i for i in range(len(h.parents)) if cand >> i & 1]
        if len(members) == 1:
            self._log.append(f"# first bad commit: [{sha_of(self._bad)}]")
            return BisectStep(culprit=sha_of(self._bad))
        total = len(members)
        best, best_score = None, -1
        for i in members:
            if i == self._bad or i in self._skipped:
                continue
            w = (h.anc[i] & cand).bit_count()
            score = min(w, total - w)
            if score > best_score:
                best, best_score = i, score
        if best is None:
            return BisectStep(candidates=tuple(sha_of(i) for i in members))
        return BisectStep(next_commit=sha_of(best))

    def bisect_log(self) -> str:
        return "\n".join(self._log)

    def bisect_reset(self) -> None:
        self._log = []


class SimRepo:
    def __init__(self, history: History) -> None:
        self.h = history

    def resolve(self, rev: str, what: str) -> str:
        return rev

    def is_ancestor(self, older: str, newer: str) -> bool:
        return bool(self.h.anc[int(newer, 16) - 1] >> (int(older, 16) - 1) & 1)

    def merges_between(self, good: str, bad: str) -> list[tuple[str, tuple[str, ...]]]:
        return [
            (sha, tuple(sha_of(p) for p in self.h.parents[int(sha, 16) - 1]))
            for sha in self.commits_between(good, bad)
            if len(self.h.parents[int(sha, 16) - 1]) > 1
        ]

    def merge_base(self, *shas: str) -> str | None:
        common = -1
        for sha in shas:
            common &= self.h.anc[int(sha, 16) - 1]
        return sha_of(common.bit_length() - 1) if common else None  # the newest common one

    def commits_between(self, good: str, bad: str) -> list[str]:
        cand = self.h.anc[int(bad, 16) - 1] & ~self.h.anc[int(good, 16) - 1]
        return [sha_of(i) for i in range(len(self.h.parents)) if cand >> i & 1]

    def info(self, sha: str) -> CommitInfo:
        i = int(sha, 16) - 1
        parents = tuple(sha_of(p) for p in self.h.parents[i])
        return CommitInfo(sha, "sim", "", f"commit {i}", (), parents)

    @contextmanager
    def private_worktree(self, start: str) -> Iterator[SimWorktree]:
        yield SimWorktree(self.h)


# -- noise ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Noise:
    """How a run's value strays from the commit's true value.

    sigma: lognormal spread per run. tails: Student-t degrees of freedom for heavy tails
    (0: normal). bimodal: probability of a run landing `bimodal_shift` higher. bursts: fraction
    of the time the machine is under a burst of load, which makes runs 1.2-3x slower (bursts
    last `burst_seconds` on average). drift: relative slowdown of the machine per simulated
    hour. within: noise of samples inside one process around the process's own value
    (correlation within a process), with `per_run` samples per process. spikes: probability
    that one run, on its own, is 1.5-10x slower (log-uniform): the odd run that a fresh
    process of a few milliseconds shows on a shared machine (a scheduler delay, another
    process's burst, a page-cache miss), independent of its neighbours, unlike `bursts`.
    """

    sigma: float = 0.05
    tails: int = 0
    bimodal: float = 0.0
    bimodal_shift: float = 0.3
    bursts: float = 0.0
    burst_seconds: float = 20.0
    drift: float = 0.0
    within: float = 0.0
    per_run: int = 1
    spikes: float = 0.0


class SimRunner:
    """Runs drawn from the noise model; commits in history.broken fail to build."""

    settings_key = "sim"
    machine = "sim"

    def __init__(
        self, history: History, noise: Noise, rng: random.Random, base_seconds: float = 0.5
    ) -> None:
        self.h = history
        self.noise = noise
        self.rng = rng
        self.base = base_seconds
        self.now = 0.0
        self.runs = 0
        self._burst_until = -1.0
        self._calm_until = 0.0
        self._burst_factor = 1.0
        # (commit index, value of the run, simulated seconds at its end, load factor): every
        # run, when a caller wants to read a bisect run by run (tools/trace_simulated.py)
        self.trace: list[tuple[int, float, float, float]] | None = None
        self._last_load = 1.0

    def clock(self) -> float:
        return self.now

    def list_benchmarks(self) -> list[BenchmarkSpec]:
        return [BenchmarkSpec(NAME, "seconds", True, self.noise.per_run, "time")]

    def _load(self) -> float:
        """The slowdown from competing load at this moment (1.0 when calm)."""
        nz = self.noise
        if nz.bursts <= 0:
            return 1.0
        if self.now >= self._burst_until and self.now >= self._calm_until:
            burst = self.rng.expovariate(1 / nz.burst_seconds)
            calm = burst * (1 - nz.bursts) / nz.bursts
            self._burst_until = self.now + burst
            self._calm_until = self._burst_until + self.rng.expovariate(1 / calm)
            self._burst_factor = self.rng.uniform(1.2, 3.0)
        return self._burst_factor if self.now < self._burst_until else 1.0

    def _one(self, level: float) -> list[float]:
        nz = self.noise
        e = self.rng.gauss(0, nz.sigma)
        if nz.tails:
            e = (
                nz.sigma
                * self.rng.gauss(0, 1)
                / math.sqrt(self.rng.gammavariate(nz.tails / 2, 2 / nz.tails))
            )
        load = self._load()
        value = level * math.exp(e) * (1 + nz.drift * self.now / 3600) * load
        if nz.bimodal and self.rng.random() < nz.bimodal:
            value *= 1 + nz.bimodal_shift
        if nz.spikes and self.rng.random() < nz.spikes:
            value *= math.exp(self.rng.uniform(math.log(1.5), math.log(10.0)))
        samples = [value * math.exp(self.rng.gauss(0, nz.within)) for _ in range(nz.per_run)]
        self.now += self.base * value * nz.per_run + 0.2
        self.runs += 1
        self._last_load = load
        return samples

    def measure(self, worktree: Path, commit: str, names: Sequence[str], rounds: int) -> Batch:
        i = int(commit, 16) - 1
        if i in self.h.broken:
            self.now += 1.0
            raise MeasurementFailed("build failed (simulated)")
        level = self.h.level(i)
        samples: list[float] = []
        for _ in range(rounds):
            run = self._one(level)
            samples.extend(run)
            if self.trace is not None:
                self.trace.append((i, sorted(run)[len(run) // 2], self.now, self._last_load))
        return Batch(samples={n: list(samples) for n in names})


# -- one simulated bisect ------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    named: str | None  # the culprit named (confirmed or not)
    confirmed: bool
    right: bool  # named a planted culprit and confirmed it
    wrong_confirmed: bool  # confirmed a commit that is not a planted culprit
    runs: int
    sim_seconds: float
    # attribution (every change in the range): the commits named as confirmed changes
    changes: tuple[str, ...] = ()
    all_right: bool = False  # every planted change named and confirmed, nothing else confirmed
    commits: int = 0  # commits measured
    # changes reported (confirmed, bisected or only seen in a segment) where none was planted:
    # a speedup reported without a bisect counts here, where wrong_confirmed does not see it
    false_changes: int = 0


def simulate(
    history: History,
    noise: Noise,
    seed: int,
    policy: Policy | None = None,
    factor: float | None = None,
    trace: list[tuple[int, float, float, float]] | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> tuple[Outcome, SessionResult]:
    """One simulated bisect. `trace`: a list that receives every run as (commit index, value,
    simulated seconds at its end, load factor); `on_event`: the session's events. Neither
    changes what is drawn."""
    rng = random.Random(seed)
    runner = SimRunner(history, noise, rng)
    runner.trace = trace
    options = BisectOptions(
        good=sha_of(0),
        bad=sha_of(history.bad),
        bench_patterns=(NAME,),
        factor=factor,
        policy=policy or Policy(),
    )
    session = Session(
        SimRepo(history),
        runner,
        MeasurementStore(None),
        options,
        on_event=on_event,
        clock=runner.clock,
    )
    result = session.run()
    planted = {sha_of(c) for c, f in history.culprits.items() if f != 1.0}
    named = next((o.culprit for o in result.bisected), None)
    confirmed = bool(result.bisected) and all(o.confirmed for o in result.bisected)
    right = result.exit_code == 0 and named in planted
    confirmed_changes = {
        c.sha
        for o in result.bisected
        for c in (o.waterfall.changes if o.waterfall else ())
        if c.sha and c.confirmed
    }
    wrong = any(o.confirmed and o.culprit not in planted for o in result.bisected) or bool(
        confirmed_changes - planted
    )
    return (
        Outcome(
            result.exit_code,
            named,
            confirmed,
            right,
            wrong,
            result.account.total_runs,
            runner.now,
            tuple(sorted(confirmed_changes)),
            result.exit_code == 0 and confirmed_changes == planted,
            len(result.account.runs),
            false_changes(history, result),
        ),
        result,
    )


def false_changes(history: History, result: SessionResult) -> int:
    """Changes in the waterfalls whose segment holds no planted change (or, for a confirmed
    commit, that is not one)."""
    planted = {c for c, f in history.culprits.items() if f != 1.0}
    count = 0
    for o in result.bisected:
        for c in o.waterfall.changes if o.waterfall else ():
            low, high = int(c.low, 16) - 1, int(c.high, 16) - 1
            inside = {
                p for p in planted if history.anc[high] >> p & 1 and not history.anc[low] >> p & 1
            }
            if not inside or (
                c.sha is not None and c.confirmed and int(c.sha, 16) - 1 not in inside
            ):
                count += 1
    return count
