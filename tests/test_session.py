"""Session end to end on real temporary git repositories, with a fake benchmark runner.

The FakeRunner reads the cost of each benchmark from `cost.txt` in the worktree it is handed,
so a right answer proves the session really checked out the commit under test. It adds seeded
multiplicative noise (and optionally a slow drift of the whole machine), fails on commits whose
tree has a `broken` file (or on a chosen measurement of a commit: a transient failure), and
logs every call.
"""

from __future__ import annotations

import math
import subprocess
import tempfile
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
from bisect_tool.policy import Budget, Policy
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
        drift_per_run: float = 0.0,
        check_head: bool = True,
        fail_nth: Mapping[str, int] | None = None,
    ) -> None:
        self.specs = list(specs)
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self.drift_per_run = drift_per_run
        self.check_head = check_head
        self.fail_nth = dict(fail_nth or {})  # commit -> its n-th measurement (1-based) fails
        self.calls: list[Call] = []

    def list_benchmarks(self) -> list[BenchmarkSpec]:
        return list(self.specs)

    def measure(self, worktree: Path, commit: str, names: Sequence[str], rounds: int) -> Batch:
        before = self.runs
        self.calls.append(Call(commit, tuple(names), rounds))
        if self.check_head:
            head = subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=worktree, capture_output=True, text=True
            ).stdout.strip()
            assert head == commit, "runner called on a worktree not at the commit under test"
        if (worktree / "broken").exists():
            raise MeasurementFailed("build failed: broken", "the tree has a 'broken' file")
        if self.fail_nth.get(commit) == sum(c.commit == commit for c in self.calls):
            raise MeasurementFailed("transient failure", "the machine hiccuped")
        costs = {}
        for line in (worktree / "cost.txt").read_text().splitlines():
            name, value = line.split()
            costs[name] = float(value)
        samples = {}
        for name in names:
            per_round = next(s.samples_per_round for s in self.specs if s.name == name)
            n = rounds * per_round
            drift = np.repeat(1.0 + self.drift_per_run * (before + np.arange(rounds)), per_round)
            samples[name] = list(costs[name] * drift * np.exp(self.rng.normal(0, self.noise, n)))
        return Batch(samples=samples)

    @property
    def runs(self) -> int:
        return sum(c.rounds for c in self.calls)

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
        pytest.param(30, 21, id="linear-30"),
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


def test_samples_per_round_is_honoured(git_repo_factory):
    # One round (one process) yields 4 samples, as asv's repeat does.
    repo = linear_history(git_repo_factory, 10, {6: {BENCH: 1.6}})
    runner = FakeRunner([BenchmarkSpec(BENCH, samples_per_round=4)])
    result = run_session(repo, runner, repo.shas[0], repo.shas[-1])
    (out,) = result.outcomes
    assert out.culprit == repo.shas[6] and out.confirmed
    # the endpoints got (at least) the 10 reference samples with 3 rounds, not 10 rounds each
    for ref in (repo.shas[0], repo.shas[-1]):
        assert len(result.samples[ref][BENCH]) >= 10
        ref_rounds = sum(c.rounds for c in runner.calls if c.commit == ref)
        assert ref_rounds < 10


def git_bisect_reference(repo, tmp_path: Path, good: str, bad: str, good_line: str):
    """What plain `git bisect run` does on a clone, with "good" meaning cost.txt has good_line.

    Returns the commits it tested, in order, and its first bad commit."""
    clone = tmp_path / "reference-clone"
    repo.git("clone", "--quiet", "--no-hardlinks", str(repo.path), str(clone))
    env = repo.env()

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=clone, env=env, capture_output=True, text=True, check=True
        ).stdout

    git("bisect", "start", bad, good)
    git("bisect", "run", "grep", "-qxF", good_line, "cost.txt")
    log = git("bisect", "log")
    tested = [
        line.split()[3]
        for line in log.splitlines()
        if line.startswith(("git bisect good ", "git bisect bad "))
    ]
    (culprit,) = [
        line.split("[")[1].split("]")[0]
        for line in log.splitlines()
        if line.startswith("# first bad commit:")
    ]
    return tested, culprit


def merge_heavy_history(factory, regress_branch: int, regress_commit: int):
    """main with four feature branches merged --no-ff, main moving on between them.

    Branch `regress_branch`'s commit `regress_commit` raises the cost; returns (repo, culprit)."""
    repo = factory([("initial", {"cost.txt": cost_file({BENCH: 1.0}), "main.txt": "0\n"})])
    culprit = None
    for b in range(4):
        start = repo.rev("main~1") if b == 2 else repo.rev("main")  # one branch forks earlier
        repo.branch(f"feature-{b}", start)
        for j in range(3):
            files = {f"feature_{b}.txt": f"{j}\n"}
            if (b, j) == (regress_branch, regress_commit):
                files["cost.txt"] = cost_file({BENCH: 2.0})
            sha = repo.commit(f"feature {b} part {j}", files)
            if (b, j) == (regress_branch, regress_commit):
                culprit = sha
        repo.checkout("main")
        repo.commit(f"main work {b}", {"main.txt": f"{b + 1}\n"})
        repo.merge(f"feature-{b}")
        repo.commit(f"after merge {b}", {"main.txt": f"after {b}\n"})
    return repo, culprit


@pytest.mark.parametrize(("branch", "commit"), [(1, 1), (2, 0), (3, 2)])
def test_merge_heavy_history(git_repo_factory, tmp_path, branch, commit):
    repo, culprit = merge_heavy_history(git_repo_factory, branch, commit)
    good, bad = repo.log()[0], repo.rev("main")
    assert len(repo.git("rev-list", "--merges", f"{good}..{bad}").split()) == 4
    runner = FakeRunner()
    result = run_session(repo, runner, good, bad)
    assert result.exit_code == EXIT_CULPRIT
    (out,) = result.outcomes
    assert out.culprit == culprit
    assert out.confirmed
    assert_bisect_used_git(result, culprit)
    # The steps are exactly the commits git bisect itself picks given the same answers.
    tested, git_culprit = git_bisect_reference(repo, tmp_path, good, bad, f"{BENCH} {1.0!r}")
    assert git_culprit == culprit
    assert out.steps == tested


# -- commits that cannot be measured -------------------------------------------------------------


@pytest.mark.parametrize(
    ("broken", "candidates"),
    [pytest.param(6, {6, 7}, id="parent-broken"), pytest.param(7, {7, 8}, id="culprit-broken")],
)
def test_failures_next_to_the_culprit_leave_candidates(git_repo_factory, broken, candidates):
    repo = linear_history(git_repo_factory, 12, {7: {BENCH: 2.0}}, broken=[broken])
    result = run_session(repo, FakeRunner(), repo.shas[0], repo.shas[-1])
    assert result.exit_code == EXIT_NO_SINGLE_CULPRIT
    (out,) = result.outcomes
    assert out.reproduces
    assert out.culprit is None
    assert set(out.candidates) == {repo.shas[i] for i in candidates}
    assert set(result.skipped) == {repo.shas[broken]}
    assert "broken" in result.skipped[repo.shas[broken]]
    rec = result.commits[repo.shas[broken]]
    assert rec.verdicts[BENCH] is Verdict.SKIP and rec.error


def test_failures_far_from_the_culprit_are_skipped(git_repo_factory):
    broken = range(10, 21)
    repo = linear_history(git_repo_factory, 30, {27: {BENCH: 2.0}}, broken=broken)
    result = run_session(repo, FakeRunner(), repo.shas[0], repo.shas[-1])
    assert result.exit_code == EXIT_CULPRIT
    (out,) = result.outcomes
    assert out.culprit == repo.shas[27] and out.confirmed
    assert result.skipped  # bisect did land in the broken stretch...
    assert set(result.skipped) <= {repo.shas[i] for i in broken}  # ...and only there
    for sha in result.skipped:
        assert f"git bisect skip {sha}" in out.bisect_log


def test_a_step_at_the_cut_is_skipped_when_the_budget_is_spent(git_repo_factory):
    # good 1.0, bad 4.0 and --threshold 2, so the cut is 2.0: commits 4..7 cost exactly that,
    # and a step there may never come to resemble either end. With 12 runs a commit it is
    # skipped once they are spent, as git bisect skip; when the bisect ends among them, each
    # gets a second chance of up to 3 x 12 runs (second_chance.py), and is then left among the
    # candidates.
    repo = linear_history(git_repo_factory, 12, {4: {BENCH: 2.0}, 8: {BENCH: 4.0}})
    runner = FakeRunner(noise=0.02, seed=0)
    policy = Policy(budget=Budget(runs_per_commit=12))
    result = run_session(repo, runner, repo.shas[0], repo.shas[-1], policy=policy, factor=2.0)
    assert result.exit_code == EXIT_NO_SINGLE_CULPRIT
    (out,) = result.outcomes
    assert out.culprit is None and not out.confirmed
    assert result.skipped
    at_cut = {repo.shas[i] for i in range(4, 8)}
    for sha, why in result.skipped.items():
        assert sha in at_cut and sha in out.candidates
        assert "still unclear after 36 runs" in why
        assert sum(c.rounds for c in runner.calls if c.commit == sha) == 36
        assert f"git bisect skip {sha}" in out.bisect_log
    assert set(out.candidates) <= at_cut | {repo.shas[8]}


@pytest.mark.parametrize("noise", [0.02, 0.15])
def test_a_step_at_the_midpoint_of_two_changes_leads_to_one_of_them(git_repo_factory, noise):
    # the same history with the default cut, the midpoint of good and bad: commits 4-7 sit
    # there, as far from good as from bad, so both sides of them hold a change. A step there
    # may be decided either way; when two of them are decided differently the bisect names a
    # commit of that plateau, which does not confirm, and the careful pass moves the cut off
    # the plateau (Judge.move_cut_off_plateau): it ends at a real change, confirmed, and the
    # other change is found by attribution. Before, that pass landed on the plateau again:
    # exit 4 for 11 of 20 seeds at 2% noise, 9 of 12 at 15%.
    repo = linear_history(git_repo_factory, 12, {4: {BENCH: 2.0}, 8: {BENCH: 4.0}})
    for seed in range(4):
        runner = FakeRunner(noise=noise, seed=seed)
        result = run_session(repo, runner, repo.shas[0], repo.shas[-1])
        (out,) = result.outcomes
        assert out.culprit in {repo.shas[4], repo.shas[8]} and out.confirmed
        assert out.waterfall is not None
        named = {c.sha for c in out.waterfall.changes if c.confirmed}
        assert named == {repo.shas[4], repo.shas[8]}
        assert result.exit_code == EXIT_CULPRIT


# -- no regression -------------------------------------------------------------------------------


def test_regression_that_does_not_reproduce_is_not_bisected(git_repo_factory):
    # cost rises in the middle and comes back down: good and bad measure the same
    repo = linear_history(git_repo_factory, 10, {4: {BENCH: 2.0}, 7: {BENCH: 1.0}})
    runner = FakeRunner()
    result = run_session(repo, runner, repo.shas[0], repo.shas[-1])
    assert result.exit_code == EXIT_NOT_REPRODUCED
    (out,) = result.outcomes
    assert not out.reproduces
    assert out.steps == [] and out.culprit is None and out.bisect_log == ""
    assert runner.commits_measured() == {repo.shas[0], repo.shas[-1]}


def test_an_improvement_is_not_a_regression_of_a_time(git_repo_factory):
    repo = linear_history(git_repo_factory, 8, {3: {BENCH: 0.5}})
    runner = FakeRunner()
    result = run_session(repo, runner, repo.shas[0], repo.shas[-1])
    assert result.exit_code == EXIT_NOT_REPRODUCED
    assert runner.commits_measured() == {repo.shas[0], repo.shas[-1]}


def test_throughput_drop_is_bisected(git_repo_factory):
    name = "model.track_tokens_per_s"
    repo = linear_history(git_repo_factory, 10, {6: {name: 60.0}}, base={name: 100.0})
    spec = BenchmarkSpec(name, unit="tokens/s", worse_is_higher=False)
    result = run_session(repo, FakeRunner([spec]), repo.shas[0], repo.shas[-1])
    assert result.exit_code == EXIT_CULPRIT
    (out,) = result.outcomes
    assert out.culprit == repo.shas[6] and out.confirmed
    assert out.confirmation is not None and out.confirmation.ratio < 1


# -- several benchmarks ----------------------------------------------------------------------------


def test_several_benchmarks_share_measurements(git_repo_factory):
    a, b, c = "suite.time_a", "suite.time_b", "suite.time_c"
    repo = linear_history(
        git_repo_factory,
        20,
        {5: {a: 2.0}, 14: {b: 3.0}},
        base={a: 1.0, b: 1.0, c: 1.0},
    )
    runner = FakeRunner([BenchmarkSpec(a), BenchmarkSpec(b), BenchmarkSpec(c)])
    result = run_session(repo, runner, repo.shas[0], repo.shas[-1])
    assert result.exit_code == EXIT_CULPRIT
    by_name = {o.spec.name: o for o in result.outcomes}
    assert by_name[a].culprit == repo.shas[5] and by_name[a].confirmed
    assert by_name[b].culprit == repo.shas[14] and by_name[b].confirmed
    assert not by_name[c].reproduces and by_name[c].culprit is None
    assert {o.spec.name for o in result.bisected} == {a, b}

    steps_a, steps_b = set(by_name[a].steps), set(by_name[b].steps)
    assert steps_a & steps_b  # both bisects start at the same midpoint, at least
    endpoints = {repo.shas[0], repo.shas[-1]}
    for sha in steps_a | steps_b:
        # one measurement of the initial sample set, for both regressed benchmarks together;
        # any later call is a confirmation, which measures only the benchmark it confirms
        shared = [call for call in runner.calls if call.commit == sha and len(call.names) > 1]
        assert len(shared) == 1, sha
        assert set(shared[0].names) == {a, b}
    # the benchmark that did not regress is measured at the endpoints only
    assert {call.commit for call in runner.calls if c in call.names} == endpoints


def test_a_second_session_reuses_the_store(git_repo_factory):
    repo = linear_history(git_repo_factory, 12, {8: {BENCH: 2.0}})
    store = MeasurementStore(None)
    # (no periodic re-measuring of the references, which is fresh measuring by design)
    options = BisectOptions(good=repo.shas[0], bad=repo.shas[-1], drift_every=1000)
    first = Session(GitRepo(repo.path), FakeRunner(seed=1), store, options).run()
    runner = FakeRunner(seed=2)
    second = Session(GitRepo(repo.path), runner, store, options).run()
    assert first.outcomes[0].culprit == second.outcomes[0].culprit == repo.shas[8]
    # nothing but the confirmation (always fresh, in short interleaved runs) is measured again
    assert runner.calls
    assert {c.commit for c in runner.calls} == {repo.shas[7], repo.shas[8]}
    assert all(c.rounds == 1 for c in runner.calls)  # one run at a time, interleaved


# -- noise, drift, step count ----------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "culprit"), [(0, 9), (1, 3), (2, 15), (3, 12)])
def test_noisy_measurements(git_repo_factory, seed, culprit):
    repo = linear_history(git_repo_factory, 20, {culprit: {BENCH: 1.5}})
    runner = FakeRunner(noise=0.15, seed=seed)
    result = run_session(repo, runner, repo.shas[0], repo.shas[-1])
    (out,) = result.outcomes
    assert out.culprit == repo.shas[culprit]
    assert result.exit_code == EXIT_CULPRIT


def test_machine_slowing_down_slowly(git_repo_factory):
    # every run comes out 1% slower than the one before (default options), a steady drift
    # of the whole machine, a fifth of the regression or more by the end
    repo = linear_history(git_repo_factory, 30, {19: {BENCH: 1.5}})
    runner = FakeRunner(noise=0.02, drift_per_run=0.01, seed=5)
    result = run_session(repo, runner, repo.shas[0], repo.shas[-1])
    (out,) = result.outcomes
    assert out.culprit == repo.shas[19]
    assert result.exit_code == EXIT_CULPRIT
    assert 0.01 * sum(c.rounds for c in runner.calls) >= 0.1


@pytest.mark.parametrize("culprit", [5, 27])
def test_machine_slowing_down_fast_needs_fresh_references(git_repo_factory, culprit):
    # 3% slower per run: after a few steps a good commit measures near the cut computed from
    # the first reference runs. Re-measuring the references (here after every step that
    # follows two runs of other commits) sees the drift and uses the fresh runs.
    repo = linear_history(git_repo_factory, 30, {culprit: {BENCH: 1.5}})
    runner = FakeRunner(noise=0.02, drift_per_run=0.03, seed=5)
    result = run_session(repo, runner, repo.shas[0], repo.shas[-1], drift_every=1, drift_runs=2)
    (out,) = result.outcomes
    assert out.culprit == repo.shas[culprit]
    assert result.exit_code == EXIT_CULPRIT
    # the drift was seen and handled: the references were measured afresh, or the steps it
    # pushed beyond an end were judged in blocks, beside fresh runs of the references
    blocks = [s for s in out.steps if "blocks" in result.commits[s].reasons.get(BENCH, "")]
    assert any("drift" in note for note in out.notes) or blocks


@pytest.mark.parametrize(("n", "culprit"), [(2, 1), (7, 4), (16, 11), (33, 20), (33, 1), (40, 40)])
def test_step_count_is_logarithmic(git_repo_factory, n, culprit):
    repo = linear_history(git_repo_factory, n, {culprit: {BENCH: 2.0}})
    runner = FakeRunner()
    result = run_session(repo, runner, repo.shas[0], repo.shas[-1])
    (out,) = result.outcomes
    assert out.culprit == repo.shas[culprit]
    assert len(set(out.steps)) <= math.ceil(math.log2(n)) + 1
    # nothing else was measured besides endpoints, steps and the confirmation pair
    allowed = {repo.shas[0], repo.shas[-1], repo.shas[culprit], repo.shas[culprit - 1]}
    assert runner.commits_measured() <= allowed | set(out.steps)


# -- usage errors --------------------------------------------------------------------------------


@pytest.fixture
def small_repo(git_repo_factory):
    repo = linear_history(git_repo_factory, 6, {3: {BENCH: 2.0}})
    repo.branch("side", repo.shas[2])
    repo.shas.append(repo.commit("side work", {"side.txt": "x\n"}))  # shas[7]: not on main
    repo.checkout("main")
    return repo


@pytest.mark.parametrize(
    ("good", "bad", "message"),
    [
        pytest.param(0, 0, "same commit", id="good-is-bad"),
        pytest.param(6, "main", "same commit", id="good-is-bad-by-name"),
        pytest.param(5, 2, "ancestor", id="good-after-bad"),
        pytest.param(7, 6, "ancestor", id="good-on-a-side-branch"),
        pytest.param("no-such-branch", 6, "no-such-branch", id="unknown-good"),
        pytest.param(0, "deadbeef" * 5, None, id="unknown-bad-sha"),
        pytest.param("--output=/tmp/x", 6, None, id="option-like-revision"),
    ],
)
def test_invalid_range_is_a_usage_error(small_repo, good, bad, message):
    def rev(x):
        return small_repo.shas[x] if isinstance(x, int) else x

    before = small_repo.snapshot()
    runner = FakeRunner()
    with pytest.raises(UsageError, match=message) as exc:
        options = BisectOptions(good=rev(good), bad=rev(bad))
        Session(GitRepo(small_repo.path), runner, MeasurementStore(None), options).run()
    assert exc.value.exit_code == 2
    assert runner.calls == []
    assert small_repo.snapshot() == before


@pytest.mark.parametrize(
    ("patterns", "message"),
    [(("time_(",), "not a valid regular expression"), (("nothing_like_this",), "matches no")],
)
def test_bad_bench_pattern_is_a_usage_error(small_repo, patterns, message):
    before = small_repo.snapshot()
    runner = FakeRunner()
    options = BisectOptions(small_repo.shas[0], small_repo.shas[6], bench_patterns=patterns)
    session = Session(GitRepo(small_repo.path), runner, MeasurementStore(None), options)
    with pytest.raises(UsageError, match=message):
        session.run()
    assert runner.calls == []
    assert small_repo.snapshot() == before


def test_bench_pattern_selects_benchmarks(git_repo_factory):
    a, b = "suite.time_a", "suite.time_b"
    repo = linear_history(git_repo_factory, 8, {3: {a: 2.0}, 5: {b: 2.0}}, base={a: 1, b: 1})
    runner = FakeRunner([BenchmarkSpec(a), BenchmarkSpec(b)])
    result = run_session(repo, runner, repo.shas[0], repo.shas[-1], bench_patterns=("_b$",))
    assert [o.spec.name for o in result.outcomes] == [b]
    assert result.outcomes[0].culprit == repo.shas[5]
    assert all(call.names == (b,) for call in runner.calls)


# -- the user's repository -----------------------------------------------------------------------


def worktree_files(root: Path) -> dict[Path, bytes]:
    """Contents of every file of a checkout, outside .git."""
    return {
        p: p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Point tempfile at a private directory, to check nothing is left behind in it."""
    d = tmp_path / "tmpdir"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


def test_user_repository_is_untouched(git_repo_factory, private_tmp):
    repo = linear_history(git_repo_factory, 10, {6: {BENCH: 2.0}})
    repo.git("tag", "v1", repo.shas[2])
    (repo.path / ".gitignore").write_text("*.log\n")
    repo.commit("ignore logs", {".gitignore": "*.log\n"})
    # a stash entry, then a dirty checkout of a topic branch: staged, unstaged, untracked, ignored
    (repo.path / "notes.txt").write_text("stashed edit\n")
    repo.git("stash", "push", "--quiet", "-m", "my stash")
    repo.branch("topic", repo.shas[4])
    (repo.path / "cost.txt").write_text("bench.time_it 99.0\n")
    repo.git("add", "cost.txt")
    (repo.path / "notes.txt").write_text("unstaged edit\n")
    (repo.path / "untracked.txt").write_text("new\n")
    (repo.path / "build.log").write_text("ignored\n")
    before = repo.snapshot()
    files_before = worktree_files(repo.path)

    result = run_session(repo, FakeRunner(), repo.shas[0], "main")

    assert result.outcomes[0].culprit == repo.shas[6]
    assert repo.snapshot() == before
    assert worktree_files(repo.path) == files_before
    assert list(private_tmp.iterdir()) == []  # the private worktree is gone too


def test_user_bisect_in_progress_is_untouched(git_repo_factory, private_tmp):
    repo = linear_history(git_repo_factory, 16, {11: {BENCH: 2.0}})
    # the user is bisecting something else, over part of the same history, half way through
    repo.git("bisect", "start", repo.shas[14], repo.shas[2])
    repo.git("bisect", "good")
    user_next = repo.rev("HEAD")
    before = repo.snapshot()
    assert "refs/bisect/bad" in before["refs"] and before["BISECT_LOG"] != "<absent>"

    result = run_session(repo, FakeRunner(), repo.shas[0], repo.shas[-1])

    assert result.outcomes[0].culprit == repo.shas[11]
    assert repo.snapshot() == before
    assert list(private_tmp.iterdir()) == []
    # and their bisect carries on from where it was
    assert repo.rev("HEAD") == user_next
    repo.git("bisect", "run", "grep", "-qxF", f"{BENCH} {1.0!r}", "cost.txt")
    assert f"# first bad commit: [{repo.shas[11]}]" in repo.git("bisect", "log")


# -- known bugs ----------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Mean of empty slice", "ignore:invalid value encountered")
def test_transient_failure_of_a_reference_keeps_its_samples(git_repo_factory):
    repo = linear_history(git_repo_factory, 30, {19: {BENCH: 2.0}})
    good = repo.shas[0]
    # its second run fails, after the first was taken: the first must be kept
    runner = FakeRunner(fail_nth={good: 2})
    result = run_session(repo, runner, good, repo.shas[-1], drift_every=2)
    assert sum(c.commit == good for c in runner.calls) >= 3  # the failure did happen
    assert len(result.samples.get(good, {}).get(BENCH, [])) >= 2
    assert result.outcomes[0].culprit == repo.shas[19]
    assert result.exit_code == EXIT_CULPRIT


def test_borderline_references_are_measured_more(git_repo_factory):
    repo = linear_history(git_repo_factory, 20, {15: {BENCH: 1.5}})
    runner = FakeRunner(noise=0.15, seed=108)  # an unlucky but legitimate draw
    result = run_session(repo, runner, repo.shas[0], repo.shas[-1])
    assert result.outcomes[0].culprit == repo.shas[15]
    assert result.exit_code == EXIT_CULPRIT


class FirstStepLies(FakeRunner):
    """The first bisect step's first measurement looks exactly like good (a misjudged step)."""

    def __init__(self, endpoints: Sequence[str], **kw) -> None:
        super().__init__(**kw)
        self.endpoints = set(endpoints)
        self.lied: str | None = None

    def measure(self, worktree: Path, commit: str, names: Sequence[str], rounds: int) -> Batch:
        batch = super().measure(worktree, commit, names, rounds)
        if self.lied is None and commit not in self.endpoints:
            self.lied = commit
            batch.samples = {n: [1.0] * len(v) for n, v in batch.samples.items()}
        return batch


def test_a_misjudged_step_is_recovered_after_the_confirmation_fails(git_repo_factory):
    repo = linear_history(git_repo_factory, 20, {3: {BENCH: 2.0}})
    runner = FirstStepLies([repo.shas[0], repo.shas[-1]])
    result = run_session(repo, runner, repo.shas[0], repo.shas[-1])
    (out,) = result.bisected
    # the premise: the lying step really is slow, so the first pass went the wrong way
    assert runner.lied is not None and repo.shas.index(runner.lied) > 3
    assert any("bisected again" in note for note in out.notes)
    assert out.culprit == repo.shas[3] and out.confirmed
    assert result.exit_code == EXIT_CULPRIT


class BurstOnFirstRuns(FakeRunner):
    """A burst of load during the first `until` runs of the session, on the commits in `hit`:
    their first run 10x, the next two 2x, so the first pass takes three runs at each and
    judges it bad on them."""

    def __init__(self, hit: Sequence[str], until: int, **kw) -> None:
        super().__init__(**kw)
        self.hit = set(hit)
        self.until = until

    def measure(self, worktree: Path, commit: str, names: Sequence[str], rounds: int) -> Batch:
        seen = sum(c.rounds for c in self.calls if c.commit == commit)
        burst = self.runs < self.until and commit in self.hit
        batch = super().measure(worktree, commit, names, rounds)
        if burst:
            factors = [
                10.0 if seen + i == 0 else 2.0 if seen + i < 3 else 1.0 for i in range(rounds)
            ]
            batch.samples = {
                n: [x * f for x, f in zip(v, factors, strict=True)]
                for n, v in batch.samples.items()
            }
        return batch


def test_the_careful_pass_judges_each_step_on_runs_of_its_own(git_repo_factory):
    """A burst of load hit the first three runs of every commit before the change, so the
    first pass judged each step there bad on three runs and named the first commit, which
    did not confirm. The careful pass must not judge those steps on the same three runs
    again (it would name the same commit, and end without a culprit): it measures each step
    afresh, and finds the culprit."""
    repo = linear_history(git_repo_factory, 16, {12: {BENCH: 2.0}})
    runner = BurstOnFirstRuns(repo.shas[1:12], until=25, noise=0.02, seed=4)
    result = run_session(repo, runner, repo.shas[0], repo.shas[-1])
    (out,) = result.bisected
    (note,) = [n for n in out.notes if "bisected again" in n]
    assert note.startswith(f"the first bisect named {repo.shas[1][:10]}")  # the premise
    assert out.culprit == repo.shas[12] and out.confirmed
    assert result.exit_code == EXIT_CULPRIT


class LieThenBurst(FakeRunner):
    """The first run of `liar` looks like good (a misjudged step), and a 2x burst of load hits
    the 2nd and 3rd runs after `liar`'s second run, the first run of the confirmation of the
    commit the bisect then names (`liar`'s child, at `liar`'s level)."""

    def __init__(self, liar: str, **kw) -> None:
        super().__init__(**kw)
        self.liar = liar
        self.burst: range | None = None

    def measure(self, worktree: Path, commit: str, names: Sequence[str], rounds: int) -> Batch:
        seen = sum(c.rounds for c in self.calls if c.commit == self.liar)
        start = self.runs
        batch = super().measure(worktree, commit, names, rounds)
        if commit == self.liar and seen == 0:
            batch.samples = {n: [1.0] * len(v) for n, v in batch.samples.items()}
        if commit == self.liar and seen == 1 and self.burst is None:
            self.burst = range(start + 1, start + 3)
        factors = [2.0 if self.burst and start + i in self.burst else 1.0 for i in range(rounds)]
        batch.samples = {
            n: [x * f for x, f in zip(v, factors, strict=True)] for n, v in batch.samples.items()
        }
        return batch


def test_a_burst_on_the_confirmations_middle_runs_does_not_confirm(git_repo_factory):
    """A misjudged step (the culprit's first run looked like good) names the culprit's child,
    and a burst of load hits the 2nd and 3rd runs of its confirmation. Taken culprit, parent,
    parent, culprit (ABBA), those were both of the named commit's first two runs, and it was
    confirmed on 2 + 2 runs at 2x, a wrong culprit at exit 0. Taken parent, culprit, parent,
    culprit, the burst hits one run of each, the runs disagree, and the named commit is
    measured on until it is rejected; the careful pass finds the culprit."""
    repo = linear_history(git_repo_factory, 16, {8: {BENCH: 2.0}})
    runner = LieThenBurst(repo.shas[8], noise=0.02, seed=3)
    result = run_session(repo, runner, repo.shas[0], repo.shas[-1])
    (out,) = result.bisected
    assert runner.burst is not None  # the premise: the named commit's confirmation was hit
    assert any(n.startswith(f"the first bisect named {repo.shas[9][:10]}") for n in out.notes)
    assert out.culprit == repo.shas[8] and out.confirmed
    assert result.exit_code == EXIT_CULPRIT


def test_a_commit_without_the_change_is_rejected_in_a_few_runs(git_repo_factory):
    """The first pass names a commit whose level is its parent's (the lying step was called
    good): showing it within 5% of its parent at 8% noise per run took about 65 runs a side;
    the first confirmation now rejects it as soon as the runs favour "no change" over "a
    third of the change", and the careful pass finds the culprit."""
    repo = linear_history(git_repo_factory, 20, {3: {BENCH: 2.0}})
    runner = FirstStepLies([repo.shas[0], repo.shas[-1]], noise=0.08, seed=1)  # a draw it misleads
    result = run_session(repo, runner, repo.shas[0], repo.shas[-1])
    (out,) = result.bisected
    assert out.culprit == repo.shas[3] and out.confirmed
    (note,) = [n for n in out.notes if "bisected again" in n]
    named = next(sha for sha in repo.shas if note.startswith(f"the first bisect named {sha[:10]}"))
    assert repo.shas.index(named) > 3  # the premise: the first pass went the wrong way
    parent = repo.shas[repo.shas.index(named) - 1]
    runs = {sha: sum(c.rounds for c in runner.calls if c.commit == sha) for sha in (named, parent)}
    assert max(runs.values()) <= 12, runs  # 36 a side before


class ShyRegression(FakeRunner):
    """The bad endpoint's first measurements understate its real 1.1x slowdown."""

    def __init__(self, bad: str, scale: float = 0.95, **kw) -> None:
        super().__init__(**kw)
        self.bad = bad
        self.scale = scale

    def measure(self, worktree: Path, commit: str, names: Sequence[str], rounds: int) -> Batch:
        early = sum(c.commit == commit for c in self.calls) < 2
        batch = super().measure(worktree, commit, names, rounds)
        if commit == self.bad and early:  # both interleaved halves of the endpoints
            batch.samples = {n: [x * self.scale for x in v] for n, v in batch.samples.items()}
        return batch


SHY_NAMED_SEED = 0  # first 10+10 samples: 1.011x, p=0.39


@pytest.mark.parametrize(
    ("scale", "noise", "seed"),
    [
        (0.95, 0.05, 23),  # first 10+10 samples: 1.042x, p=0.031 (suggestive, not significant)
        (0.95, 0.01, 0),  # first 10+10 samples: 1.047x, p=0.0002 (significant, below the floor)
        (0.91, 0.05, SHY_NAMED_SEED),  # 1.0x-1.05x, p >= 0.1: only worse-looking, but named
    ],
)
def test_a_real_difference_below_the_threshold_is_measured_more(
    git_repo_factory, scale, noise, seed
):
    repo = linear_history(git_repo_factory, 12, {6: {BENCH: 1.1}})
    runner = ShyRegression(repo.shas[-1], scale=scale, noise=noise, seed=seed)
    result = run_session(repo, runner, repo.shas[0], repo.shas[-1])
    bad_calls = [c for c in runner.calls if c.commit == repo.shas[-1]]
    assert len(bad_calls) > 2  # more than the two interleaved halves
    assert result.outcomes[0].reproduces
    assert result.outcomes[0].culprit == repo.shas[6]


class BranchLies(FakeRunner):
    """The first run of each listed commit looks exactly like good (a misjudged step)."""

    def __init__(self, liars: Sequence[str], **kw) -> None:
        super().__init__(**kw)
        self.liars = set(liars)

    def measure(self, worktree: Path, commit: str, names: Sequence[str], rounds: int) -> Batch:
        first = not any(c.commit == commit for c in self.calls)
        batch = super().measure(worktree, commit, names, rounds)
        if commit in self.liars and first:
            batch.samples = {n: [1.0] + v[1:] for n, v in batch.samples.items()}
        return batch


def test_a_merge_is_not_blamed_for_its_branch(git_repo_factory):
    """Misjudged branch commits make git bisect blame the merge; the merge is slower than its
    first parent, but not than the branch it merges, so it must not be confirmed: the bisect is
    redone and finds the commit on the branch."""
    repo = git_repo_factory([("initial", {"cost.txt": cost_file({BENCH: 1.0}), "m.txt": "0\n"})])
    repo.commit("main 1", {"m.txt": "1\n"})
    repo.branch("feature")
    culprit = repo.commit("feature: tune", {"cost.txt": cost_file({BENCH: 2.0})})
    branch_tip = repo.commit("feature: notes", {"f.txt": "1\n"})
    repo.checkout("main")
    repo.commit("main 2", {"m.txt": "2\n"})
    merge = repo.merge("feature")
    bad = repo.commit("main 3", {"m.txt": "3\n"})
    good = repo.rev("main~4")
    runner = BranchLies([culprit, branch_tip])
    result = run_session(repo, runner, good, bad)
    (out,) = result.bisected
    assert any(f"merge {merge[:10]} is not worse" in note for note in out.notes)
    assert out.culprit == culprit and out.confirmed


@pytest.mark.parametrize(("kind", "found"), [("command", True), ("time", False)])
def test_a_count_change_below_one_percent_counts_for_a_command_not_an_asv_body(
    git_repo_factory, kind, found
):
    # a 0.5% change of an instruction count: above the 0.1% floor of a whole command's count,
    # below the 1% floor of an asv benchmark's body alone (which unrelated commits move by
    # tenths of a percent through the layout of what the import leaves behind)
    repo = linear_history(git_repo_factory, 8, {4: {BENCH: 1.005}})
    spec = BenchmarkSpec(BENCH, "instructions", True, 1, kind)
    runner = FakeRunner(specs=(spec,), noise=0.0)
    result = run_session(repo, runner, repo.shas[0], repo.shas[-1])
    (out,) = result.outcomes
    if found:
        assert result.exit_code == EXIT_CULPRIT and out.culprit == repo.shas[4]
    else:
        assert result.exit_code == EXIT_NOT_REPRODUCED and not out.reproduces
