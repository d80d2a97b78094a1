"""Session end to end on real temporary git repositories, with a fake benchmark runner.

The FakeRunner reads the cost of each benchmark from `cost.txt` in the worktree it is handed,
so a right answer proves the session really checked out the commit under test. It adds seeded
multiplicative noise (and optionally a slow drift of the whole machine), fails on commits whose
tree has a `broken` file, and logs every call.
"""

from __future__ import annotations

import math
import subprocess
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from bisect_tool.errors import (
    EXIT_CULPRIT,
    EXIT_NO_SINGLE_CULPRIT,
    EXIT_NOT_REPRODUCED,
    MeasurementFailed,
    UsageError,
)
from bisect_tool.git import GitRepo
from bisect_tool.runners import Batch, BenchmarkSpec
from bisect_tool.session import BisectOptions, Session, SessionResult
from bisect_tool.stats import Verdict
from bisect_tool.store import MeasurementStore

BENCH = "bench.time_it"


def cost_file(costs: Mapping[str, float]) -> str:
    return "".join(f"{name} {value!r}\n" for name, value in sorted(costs.items()))


@dataclass(frozen=True)
class Call:
    commit: str
    names: tuple[str, ...]
    rounds: int


class FakeRunner:
    """Timings from the worktree's cost.txt, times seeded noise and an optional drift."""

    settings_key = "fake-settings"
    machine = "fake-machine"

    def __init__(
        self,
        specs: Sequence[BenchmarkSpec] = (BenchmarkSpec(BENCH),),
        noise: float = 0.01,
        seed: int = 0,
        drift_per_call: float = 0.0,
        check_head: bool = True,
    ) -> None:
        self.specs = list(specs)
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self.drift_per_call = drift_per_call
        self.check_head = check_head
        self.calls: list[Call] = []

    def list_benchmarks(self) -> list[BenchmarkSpec]:
        return list(self.specs)

    def measure(self, worktree: Path, commit: str, names: Sequence[str], rounds: int) -> Batch:
        drift = 1.0 + self.drift_per_call * len(self.calls)
        self.calls.append(Call(commit, tuple(names), rounds))
        if self.check_head:
            head = subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=worktree, capture_output=True, text=True
            ).stdout.strip()
            assert head == commit, "runner called on a worktree not at the commit under test"
        if (worktree / "broken").exists():
            raise MeasurementFailed("build failed: broken", "the tree has a 'broken' file")
        costs = {}
        for line in (worktree / "cost.txt").read_text().splitlines():
            name, value = line.split()
            costs[name] = float(value)
        samples = {}
        for name in names:
            per_round = next(s.samples_per_round for s in self.specs if s.name == name)
            n = rounds * per_round
            samples[name] = list(costs[name] * drift * np.exp(self.rng.normal(0, self.noise, n)))
        return Batch(samples=samples)

    def commits_measured(self) -> set[str]:
        return {c.commit for c in self.calls}


def linear_history(
    factory,
    n: int,
    costs: Mapping[int, Mapping[str, float]],
    broken: Sequence[int] = (),
    base: Mapping[str, float] | None = None,
):
    """Commits 0..n: commit i sets cost.txt to costs[i] when given (else keeps the last value);
    commits in `broken` carry a `broken` file. Only the first and changing commits touch
    cost.txt; every commit changes notes.txt so none is empty."""
    current = dict(base or {BENCH: 1.0})
    repo = factory([])
    shas = []
    for i in range(n + 1):
        files: dict[str, str | None] = {"notes.txt": f"change {i}\n"}
        if i in costs or i == 0:
            current.update(costs.get(i, {}))
            files["cost.txt"] = cost_file(current)
        files["broken"] = "x\n" if i in broken else None
        shas.append(repo.commit(f"commit {i}", files))
    repo.shas = shas
    return repo


def run_session(repo, runner: FakeRunner, good: str, bad: str, **opts) -> SessionResult:
    options = BisectOptions(good=good, bad=bad, **opts)
    return Session(GitRepo(repo.path), runner, MeasurementStore(None), options).run()


def assert_bisect_used_git(result: SessionResult, culprit: str) -> None:
    (out,) = result.bisected
    assert f"# first bad commit: [{culprit}]" in out.bisect_log
    for sha in out.steps:
        assert f" {sha}" in out.bisect_log  # every measured step was reported to git bisect


# -- finding the culprit -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "culprit"),
    [
        pytest.param(1, 1, id="single-commit-range"),
        pytest.param(12, 1, id="first-after-good"),
        pytest.param(12, 12, id="last-equals-bad"),
        pytest.param(12, 7, id="middle"),
    ],
)
def test_culprit_position(git_repo_factory, n, culprit):
    repo = linear_history(git_repo_factory, n, {culprit: {BENCH: 2.0}})
    runner = FakeRunner()
    result = run_session(repo, runner, repo.shas[0], repo.shas[-1])
    assert result.exit_code == EXIT_CULPRIT
    (out,) = result.outcomes
    assert out.reproduces
    assert out.culprit == repo.shas[culprit]
    assert out.confirmed
    assert out.confirmation is not None and out.confirmation.ratio == pytest.approx(2.0, rel=0.05)
    assert result.skipped == {}
    assert len(result.range_commits) == n
    assert_bisect_used_git(result, repo.shas[culprit])
    # the confirmation measured the culprit against its real parent
    assert {repo.shas[culprit - 1], repo.shas[culprit]} <= runner.commits_measured()
