"""Measuring commits on demand, through the store, with an account of the runs and time spent.

A run is one benchmark process (one asv round, one execution of --cmd): the unit the policy
counts and the unit the report shows next to what a plain `git bisect run` would need.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .errors import MeasurementFailed
from .policy import run_values
from .runners import Batch, BenchmarkSpec, Runner
from .store import MeasurementStore


@dataclass(frozen=True)
class Event:
    """Progress for the terminal: what happened, with the numbers behind it."""

    kind: str
    message: str
    data: dict[str, object] = field(default_factory=dict)


class CheckoutTarget(Protocol):
    """Where a commit is checked out to be measured (a git worktree, or the simulator's)."""

    @property
    def path(self) -> os.PathLike[str]: ...

    def checkout(self, sha: str) -> None: ...


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


@dataclass
class Account:
    """Runs and seconds spent, per commit and in total, and the machine's load meanwhile."""

    runs: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    load: list[float] = field(default_factory=list)
    # on Dask workers, every worker's account also adds to the run's, which --max-time bounds
    overall: Account | None = None

    @property
    def spent_overall(self) -> float:
        """Seconds measured in the whole run, on every worker: what --max-time bounds."""
        return self.overall.total_seconds if self.overall is not None else self.total_seconds

    @property
    def total_runs(self) -> int:
        return sum(self.runs.values())

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())

    def merge(self, other: Account) -> None:
        for sha, runs in other.runs.items():
            self.runs[sha] = self.runs.get(sha, 0) + runs
        for sha, seconds in other.seconds.items():
            self.seconds[sha] = self.seconds.get(sha, 0.0) + seconds
        self.load.extend(other.load)

    def add(self, sha: str, runs: int, seconds: float, load: float | None) -> None:
        if self.overall is not None:
            self.overall.add(sha, runs, seconds, load)
        self.runs[sha] = self.runs.get(sha, 0) + runs
        self.seconds[sha] = self.seconds.get(sha, 0.0) + seconds
        if load is not None:
            self.load.append(load)


class Measurer:
    """Measures commits on demand, through the store, so nothing is measured twice."""

    def __init__(
        self,
        runner: Runner,
        store: MeasurementStore,
        worktree: CheckoutTarget,
        specs: Sequence[BenchmarkSpec],
        on_event: Callable[[Event], None],
        clock: Callable[[], float] = time.monotonic,
        load: Callable[[], float | None] = load_average,
    ) -> None:
        self.per_round = {s.name: max(1, s.samples_per_round) for s in specs}
        self.runner = runner
        self.store = store
        self.worktree = worktree
        self.on_event = on_event
        self.account = Account()
        self._clock = clock
        self._load = load

    def _key(self, sha: str, bench: str) -> str:
        return MeasurementStore.key(self.runner.machine, self.runner.settings_key, sha, bench)

    def samples(self, sha: str, bench: str) -> list[float]:
        return list(self.store.get(self._key(sha, bench)).samples)

    def runs(self, sha: str, bench: str) -> list[float]:
        """One value per run (process): the median of that run's samples."""
        return run_values(self.samples(sha, bench), self.per_round.get(bench, 1))

    def error(self, sha: str, bench: str) -> str | None:
        return self.store.get(self._key(sha, bench)).error

    def rounds_for(self, bench: str, samples: int) -> int:
        return max(1, math.ceil(samples / self.per_round.get(bench, 1)))

    def ensure_runs(self, sha: str, benches: Sequence[str], runs: int) -> None:
        """Make sure every bench has at least `runs` runs at sha (or a recorded error)."""
        todo = [b for b in benches if self.error(sha, b) is None and len(self.runs(sha, b)) < runs]
        if todo:
            self.add(sha, todo, max(runs - len(self.runs(sha, b)) for b in todo))

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
        started = self._clock()
        try:
            batch = self.runner.measure(self.worktree.path, sha, benches, rounds)  # type: ignore[arg-type]
        except MeasurementFailed as exc:
            batch = Batch(errors={b: str(exc) for b in benches})
            self.on_event(Event("error", f"{sha[:10]}: {exc}", {"sha": sha, "detail": exc.detail}))
        elapsed = max(0.0, self._clock() - started - batch.setup_seconds)
        self.account.add(sha, rounds, elapsed, self._load())
        for b in benches:
            if b in batch.samples and batch.samples[b]:
                self.store.add(self._key(sha, b), batch.samples[b], rounds)
            elif not self.samples(sha, b):
                self.store.fail(self._key(sha, b), batch.errors.get(b, "no result"))
            # else: a commit that measured fine before and failed once keeps its samples; a
            # transient failure must not erase a reference in the middle of a bisect
        self.store.save()
        return batch


def collect(
    measurers: Sequence[Measurer],
    shas: Sequence[str],
    specs: Sequence[BenchmarkSpec],
    per_worker: bool,
) -> tuple[dict[str, dict[str, list[float]]], Account, dict[str, dict[str, int]]]:
    """Everything measured, for the result: samples per commit and benchmark, the runs and
    seconds spent, and (on Dask workers) the runs each worker took per commit."""
    samples: dict[str, dict[str, list[float]]] = {}
    workers: dict[str, dict[str, int]] = {}
    account = Account()
    for m in measurers:
        for sha in shas:
            for s in specs:
                got = m.samples(sha, s.name)
                if got:
                    samples.setdefault(sha, {}).setdefault(s.name, []).extend(got)
        account.merge(m.account)
        if per_worker:
            for sha, runs in m.account.runs.items():
                workers.setdefault(sha, {})[m.runner.machine] = runs
    return samples, account, workers
