"""Every culprit with its share (issue 9): sessions on real temporary git repositories with two
or three planted changes, through the real git bisect, with the fake runner of test_session."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from test_session import BENCH, FakeRunner, cost_file, linear_history, run_session

from bisect_tool import report
from bisect_tool.errors import EXIT_CULPRIT, EXIT_NO_SINGLE_CULPRIT
from bisect_tool.runners import Batch
from bisect_tool.waterfall import IMPROVEMENT, REGRESSION


def changes_of(result: Any) -> list[Any]:
    (out,) = result.bisected
    assert out.waterfall is not None
    return list(out.waterfall.changes)


def test_two_regressions_are_both_named_with_their_shares(git_repo_factory: Any) -> None:
    # 1.6x at commit 5, then 12x at commit 14: the bisect finds 14 (the cut lies far above
    # 1.6), the segment good..13 still differs, and its bisect finds 5
    repo = linear_history(git_repo_factory, 20, {5: {BENCH: 1.6}, 14: {BENCH: 19.2}})
    runner = FakeRunner(noise=0.02, seed=1)
    result = run_session(repo, runner, repo.shas[0], repo.shas[-1])
    assert result.exit_code == EXIT_CULPRIT
    (out,) = result.bisected
    assert out.culprit == repo.shas[14] and out.confirmed  # the main bisect's answer is kept
    changes = changes_of(result)
    assert [c.sha for c in changes] == [repo.shas[5], repo.shas[14]]  # in history order
    assert all(c.kind == REGRESSION and c.confirmed and c.bisected for c in changes)
    assert changes[0].ratio == pytest.approx(1.6, rel=0.05)
    assert changes[1].ratio == pytest.approx(12.0, rel=0.05)
    total = math.log(19.2)
    assert changes[0].share == pytest.approx(math.log(1.6) / total, abs=0.03)
    assert changes[1].share == pytest.approx(math.log(12) / total, abs=0.03)
    assert abs(out.waterfall.residual_share) < 0.03
    data = report.to_json(result)
    shas = [c["sha"] for c in data["culprits"]]
    assert shas == [repo.shas[14], repo.shas[5]]  # the largest regression first
    assert all("share" in c for c in data["culprits"])
    assert data["culprits"][0]["benchmark"] == BENCH  # the fields users script against stay
    text = report.terminal_report(result)
    assert "Waterfall" in text and repo.shas[5][:10] in text and "residual" in text
    # the first culprit was known before the second bisect; the report says when
    runs_then = result.answer[0]
    assert 0 < runs_then < result.account.total_runs
    assert data["runs"]["to_culprit"] == runs_then and data["runs"]["seconds_to_culprit"] >= 0
    assert f"The culprit was confirmed after {runs_then} runs" in text


def test_a_single_culprit_costs_no_extra_bisect(git_repo_factory: Any) -> None:
    repo = linear_history(git_repo_factory, 30, {21: {BENCH: 2.0}})
    runner = FakeRunner(noise=0.01, seed=2)
    result = run_session(repo, runner, repo.shas[0], repo.shas[-1])
    assert result.exit_code == EXIT_CULPRIT
    (change,) = changes_of(result)
    assert change.sha == repo.shas[21] and change.share == pytest.approx(1.0, abs=0.03)
    # no commit was measured beyond the bisect's and the confirmation's
    (out,) = result.bisected
    parent = result.commits[out.culprit].info.parents[0]
    expected = {repo.shas[0], repo.shas[-1], parent, *out.steps}
    assert runner.commits_measured() == expected


def test_a_speedup_hiding_a_regression_is_bisected(git_repo_factory: Any) -> None:
    # 3x at 6, then 0.6x at 15: the net change (1.8x) is smaller than the regression it hides
    repo = linear_history(git_repo_factory, 20, {6: {BENCH: 3.0}, 15: {BENCH: 1.8}})
    result = run_session(repo, FakeRunner(noise=0.02, seed=3), repo.shas[0], repo.shas[-1])
    assert result.exit_code == EXIT_CULPRIT
    changes = changes_of(result)
    assert [(c.sha, c.kind) for c in changes] == [
        (repo.shas[6], REGRESSION),
        (repo.shas[15], IMPROVEMENT),
    ]
    assert changes[1].confirmed and changes[1].ratio == pytest.approx(0.6, rel=0.05)
    assert changes[1].share < 0
    data = report.to_json(result)
    assert [c["kind"] for c in data["culprits"]] == ["regression", "improvement"]


@pytest.mark.parametrize("improvements", [False, True])
def test_a_speedup_is_reported_and_bisected_only_when_asked(
    git_repo_factory: Any, improvements: bool
) -> None:
    # 1.5x at 4, 0.8x at 10, 2x at 15: the speedup hides nothing larger than the net change
    costs = {4: {BENCH: 1.5}, 10: {BENCH: 1.2}, 15: {BENCH: 2.4}}
    repo = linear_history(git_repo_factory, 20, costs)
    result = run_session(
        repo, FakeRunner(noise=0.02, seed=4), repo.shas[0], repo.shas[-1], improvements=improvements
    )
    assert result.exit_code == EXIT_CULPRIT
    changes = changes_of(result)
    regressions = [c.sha for c in changes if c.kind == REGRESSION]
    assert regressions == [repo.shas[4], repo.shas[15]]
    (speedup,) = [c for c in changes if c.kind == IMPROVEMENT]
    assert speedup.ratio == pytest.approx(0.8, rel=0.06)
    if improvements:
        assert speedup.sha == repo.shas[10] and speedup.confirmed
    else:
        assert speedup.sha is None and not speedup.bisected
        # the segment it was found in holds commit 10
        shas = repo.shas
        assert shas.index(speedup.low) < 10 <= shas.index(speedup.high)


class BurstOnGood(FakeRunner):
    """Once armed, good's next `runs` runs are twice as slow: a burst of load that lands on
    one end of a segment check only."""

    def __init__(self, good: str, runs: int, **kw: Any) -> None:
        super().__init__(**kw)
        self.good, self.left, self.armed = good, runs, False

    def measure(self, worktree: Path, commit: str, names: Any, rounds: int) -> Batch:
        batch = super().measure(worktree, commit, names, rounds)
        if not (self.armed and commit == self.good and self.left > 0):
            return batch
        self.left -= rounds
        return Batch(samples={n: [2 * v for v in vs] for n, vs in batch.samples.items()})


def test_a_speedup_seen_once_is_not_reported(git_repo_factory: Any) -> None:
    """A speedup that is reported without a bisect has no confirmation: it must show on fresh
    runs of its ends a second time. Here a burst slows good's first runs of the check of
    good .. the culprit's parent, so the parent looks 2x faster, clearly; the second check's
    fresh runs show nothing."""
    from bisect_tool.git import GitRepo
    from bisect_tool.session import BisectOptions, Session
    from bisect_tool.store import MeasurementStore

    repo = linear_history(git_repo_factory, 12, {8: {BENCH: 3.0}})
    runner = BurstOnGood(repo.shas[0], runs=3, noise=0.15, seed=5)

    def arm(event: Any) -> None:  # the burst starts once the culprit is confirmed
        runner.armed = runner.armed or event.kind == "confirm"

    options = BisectOptions(good=repo.shas[0], bad=repo.shas[-1])
    session = Session(GitRepo(repo.path), runner, MeasurementStore(None), options, on_event=arm)
    result = session.run()
    assert result.exit_code == EXIT_CULPRIT
    assert runner.left <= 0  # the burst did land on the check
    (out,) = result.bisected
    assert out.culprit == repo.shas[8] and out.confirmed
    assert [c.sha for c in changes_of(result)] == [repo.shas[8]]
    assert any("improvement" in n and "seen once" in n for n in out.notes), out.notes
    assert [c["sha"] for c in report.to_json(result)["culprits"]] == [repo.shas[8]]


def test_max_culprits_spent_leaves_the_change_listed_and_exits_4(git_repo_factory: Any) -> None:
    repo = linear_history(git_repo_factory, 20, {5: {BENCH: 1.6}, 14: {BENCH: 19.2}})
    result = run_session(
        repo, FakeRunner(noise=0.02, seed=1), repo.shas[0], repo.shas[-1], max_culprits=1
    )
    assert result.exit_code == EXIT_NO_SINGLE_CULPRIT
    (out,) = result.bisected
    assert out.culprit == repo.shas[14] and out.confirmed
    ((low, high, why),) = out.waterfall.open_segments
    assert low == repo.shas[0] and high == repo.shas[13] and "--max-culprits" in why
    assert "--max-culprits" in report.terminal_report(result)


def test_no_attribution_stops_at_the_first_culprit_and_says_so(git_repo_factory: Any) -> None:
    repo = linear_history(git_repo_factory, 20, {5: {BENCH: 1.6}, 14: {BENCH: 19.2}})
    args = (repo.shas[0], repo.shas[-1])
    full = run_session(repo, FakeRunner(noise=0.02, seed=1), *args)
    first = run_session(repo, FakeRunner(noise=0.02, seed=1), *args, attribution=False)
    assert full.exit_code == first.exit_code == EXIT_CULPRIT
    (out,) = first.bisected
    assert out.culprit == repo.shas[14] and out.confirmed
    # one change in the waterfall, the 1.6x left in an unchecked residual, and a note saying so
    assert [c.sha for c in out.waterfall.changes] == [repo.shas[14]]
    assert out.waterfall.open_segments == ()
    assert any("--no-attribution" in n for n in out.notes)
    assert "--no-attribution" in report.terminal_report(first)
    (whole,) = full.bisected
    assert len(whole.waterfall.changes) == 2
    assert first.account.total_runs < full.account.total_runs


def test_three_changes(git_repo_factory: Any) -> None:
    # 1.5x, 2x, 4x. (With 3x last, bad is 9.0 and commits 11..18, at 3.0, sit exactly on the
    # cut between good and bad: each step there ran to the 200-run cap and was skipped, which
    # test_session's test_a_step_at_the_cut_is_skipped_when_the_budget_is_spent covers.)
    costs = {3: {BENCH: 1.5}, 11: {BENCH: 3.0}, 19: {BENCH: 12.0}}
    repo = linear_history(git_repo_factory, 24, costs)
    result = run_session(repo, FakeRunner(noise=0.02, seed=6), repo.shas[0], repo.shas[-1])
    assert result.exit_code == EXIT_CULPRIT
    assert [c.sha for c in changes_of(result)] == [repo.shas[i] for i in (3, 11, 19)]


class FactorRunner(FakeRunner):
    """cost.txt times every factor_*.txt in the tree, so two branches can each plant a change
    without a merge conflict."""

    def measure(self, worktree: Path, commit: str, names: Any, rounds: int) -> Batch:
        batch = super().measure(worktree, commit, names, rounds)
        factor = math.prod(float(p.read_text()) for p in worktree.glob("factor_*.txt"))
        return Batch({n: [v * factor for v in vs] for n, vs in batch.samples.items()})


def test_culprit_on_a_side_branch_and_a_later_one_on_main(git_repo_factory: Any) -> None:
    repo = git_repo_factory([("initial", {"cost.txt": cost_file({BENCH: 1.0}), "m.txt": "0\n"})])
    good = repo.rev()
    repo.branch("feature", good)
    repo.commit("feature 1", {"f.txt": "1\n"})
    side = repo.commit("feature 2: slower", {"factor_f.txt": "3.0\n"})
    repo.commit("feature 3", {"f.txt": "3\n"})
    repo.checkout("main")
    for i in range(3):
        repo.commit(f"main {i}", {"m.txt": f"{i}\n"})
    repo.merge("feature")
    repo.commit("after merge", {"m.txt": "after\n"})
    later = repo.commit("main: slower too", {"factor_m.txt": "1.6\n"})
    for i in range(3):
        repo.commit(f"main more {i}", {"m.txt": f"more {i}\n"})
    result = run_session(repo, FactorRunner(noise=0.02, seed=7), good, repo.rev())
    assert result.exit_code == EXIT_CULPRIT
    changes = changes_of(result)
    assert {c.sha for c in changes} == {side, later}
    assert all(c.confirmed for c in changes)
    (out,) = result.bisected
    assert out.culprit == side


# -- at the command line, with the real runner ----------------------------------------------


def test_two_culprits_at_the_command_line_in_every_output(tmp_path: Path) -> None:
    import json

    from test_cli import cmd_bisect, make_history

    repo = tmp_path / "proj"
    costs = [1.0] * 6 + [1.6] * 8 + [9.6] * 6  # 1.6x at commit 6, 6x at commit 14
    shas = make_history(repo, costs)
    out, md, page = tmp_path / "r.json", tmp_path / "r.md", tmp_path / "r.html"
    res = cmd_bisect(
        repo, tmp_path, shas[0], "--json", str(out), "--report", str(md), "--html", str(page)
    )
    assert res.returncode == 0, res.stdout + res.stderr
    data = json.loads(out.read_text())
    assert [c["sha"] for c in data["culprits"]] == [shas[14], shas[6]]
    assert [c["confirmed"] for c in data["culprits"]] == [True, True]
    # every value the bench prints is within 3% of its cost, so every estimate of a log ratio
    # (a location estimate of differences of such values) is within log(1.03/0.97) of the
    # truth: each share is bounded by the worst case of its numerator and the total
    e = math.log(1.03 / 0.97)
    for entry, step in zip(data["culprits"], (6.0, 1.6), strict=True):
        low = (math.log(step) - e) / (math.log(9.6) + e)
        high = (math.log(step) + e) / (math.log(9.6) - e)
        assert low <= entry["share"] <= high, (step, entry["share"], low, high)
    (fall,) = data["waterfall"]
    assert [c["sha"] for c in fall["changes"]] == [shas[6], shas[14]]
    assert fall["not_attributed"] == []
    assert "Waterfall for" in res.stdout and shas[6][:7] in res.stdout
    text = md.read_text()
    assert "### Waterfall" in text and "r-" in text and "-waterfall.png" in text
    assert any(p.name.endswith("-waterfall.png") for p in tmp_path.iterdir())
    html = page.read_text()
    assert 'id="plot-waterfall-' in html and 'class="waterfall"' in html


def test_max_culprits_at_the_command_line(tmp_path: Path) -> None:
    from test_cli import cmd_bisect, make_history

    repo = tmp_path / "proj"
    shas = make_history(repo, [1.0] * 6 + [1.6] * 8 + [9.6] * 6)
    res = cmd_bisect(repo, tmp_path, shas[0], "--max-culprits", "1")
    assert res.returncode == EXIT_NO_SINGLE_CULPRIT, res.stdout + res.stderr
    assert "not attributed" in res.stdout and "--max-culprits 1 spent" in res.stdout
    bad = cmd_bisect(repo, tmp_path, shas[0], "--max-culprits", "0")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    first = cmd_bisect(repo, tmp_path, shas[0], "--no-attribution")
    assert first.returncode == 0, first.stdout + first.stderr
    assert shas[14][:10] in first.stdout and "not checked for more changes" in first.stdout


def test_a_change_on_a_branch_that_forked_before_the_culprit(git_repo_factory: Any) -> None:
    """The branch lacks the first culprit's change, so next to the segment culprit..bad its
    commits look like the faster end. Its tip is marked good for that segment's bisect, which
    then finds the merge; the branch is bisected against its fork point for the commit."""
    repo = git_repo_factory([("initial", {"cost.txt": cost_file({BENCH: 1.0}), "m.txt": "0\n"})])
    good = repo.rev()
    fork = repo.commit("main 1", {"m.txt": "1\n"})
    first = repo.commit("main: 3x slower", {"factor_m.txt": "3.0\n"})
    for i in range(3):
        repo.commit(f"main {i + 2}", {"m.txt": f"{i + 2}\n"})
    repo.branch("feature", fork)
    repo.commit("feature 1", {"f.txt": "1\n"})
    side = repo.commit("feature 2: 1.6x slower", {"factor_f.txt": "1.6\n"})
    repo.commit("feature 3", {"f.txt": "3\n"})
    repo.checkout("main")
    merge = repo.merge("feature")
    for i in range(3):
        repo.commit(f"after {i}", {"m.txt": f"after {i}\n"})
    result = run_session(repo, FactorRunner(noise=0.02, seed=8), good, repo.rev())
    assert result.exit_code == EXIT_CULPRIT, report.terminal_report(result)
    changes = changes_of(result)
    assert [c.sha for c in changes] == [first, side]
    assert all(c.confirmed for c in changes)
    (out,) = result.bisected
    assert any(f"with the merge {merge[:10]}" in n for n in out.notes)
