"""A merge named as the culprit: confirmed only if the change is its own (merge_check.py).

Real git histories with merges, the real session and git bisect; the timings come from files in
the worktree (cost.txt, times every factor-*.txt), with seeded noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pytest
from test_session import BENCH, FakeRunner, cost_file, run_session

from bisect_tool import merge_check
from bisect_tool.policy import Decision, Scale
from bisect_tool.runners import Batch, BenchmarkSpec


class FactorRunner(FakeRunner):
    """cost.txt times the number in each factor-*.txt of the worktree: two branches can each
    carry a change, and their merge carries both. The first measurement of each commit in
    `liars` looks like good (a misjudged step)."""

    def __init__(self, liars: Sequence[str] = (), **kw) -> None:
        super().__init__(**kw)
        self.liars = set(liars)

    def measure(self, worktree: Path, commit: str, names: Sequence[str], rounds: int) -> Batch:
        lying = commit in self.liars and commit not in self.commits_measured()
        batch = super().measure(worktree, commit, names, rounds)
        factor = math.prod(float(f.read_text()) for f in worktree.glob("factor-*.txt"))
        batch.samples = {
            n: [v if lying else v * factor for v in vals] for n, vals in batch.samples.items()
        }
        return batch


def two_branches(factory, evil: float | None = None, factor: float = 2.0):
    """main, then branches a and b from one fork point; a gets commit "a: slower" (times
    `factor`) and b "b: slower" (the same), then b is merged into a. With `evil`, the branches
    change nothing and the merge itself multiplies the cost by `evil`. Returns repo, good,
    bad, the two change commits (none with `evil`), the merge and the two branch tips."""
    repo = factory([("initial", {"cost.txt": cost_file({BENCH: 1.0}), "m.txt": "0\n"})])
    good = repo.commit("main 1", {"m.txt": "1\n"})
    repo.branch("b")
    repo.branch("a", "main")
    a_change = repo.commit("a: slower", {"factor-a.txt": "1.0" if evil else f"{factor}"})
    a_tip = repo.commit("a: notes", {"a.txt": "1\n"})
    repo.checkout("b")
    b_change = repo.commit("b: slower", {"factor-b.txt": "1.0" if evil else f"{factor}"})
    b_tip = repo.commit("b: notes", {"b.txt": "1\n"})
    repo.checkout("a")
    if evil:
        repo.git("merge", "--quiet", "--no-ff", "--no-commit", "b")
        (repo.path / "factor-merge.txt").write_text(f"{evil}\n")
        repo.git("add", "factor-merge.txt")
        repo.git("commit", "--quiet", "-m", "Merge b, tuned")
        merge = repo.rev()
    else:
        merge = repo.merge("b")
    bad = repo.commit("after the merge", {"m.txt": "2\n"})
    changes = [] if evil else [a_change, b_change]
    return repo, good, bad, changes, merge, [a_tip, b_tip]


@pytest.mark.parametrize(
    ("seed", "factor", "worse_high"),
    [(0, 2.0, True), (1, 2.0, True), (2, 2.0, True), (3, 0.5, False)],
    ids=["time-0", "time-1", "time-2", "higher-is-better"],
)
def test_a_merge_of_two_branches_that_each_changed_is_not_the_culprit(
    git_repo_factory, seed, factor, worse_high
):
    """Each branch carries a 2x change and their merge carries both: the merge is 2x worse than
    each parent, yet changes nothing itself. Steps on both branches misjudged as good make the
    first bisect name the merge; it must not be confirmed (within a few rounds: the early
    rejection), and the bisect then ends at the commit on one branch, confirmed (with
    attribution, both). Also for a benchmark where higher is better, which halves."""
    repo, good, bad, changes, merge, tips = two_branches(git_repo_factory, factor=factor)
    spec = BenchmarkSpec(BENCH, "seconds" if worse_high else "ops/s", worse_high)
    runner = FactorRunner(liars=tips, specs=(spec,), noise=0.02, seed=seed)
    result = run_session(repo, runner, good, bad)
    (out,) = result.bisected
    (rejected,) = [n for n in out.notes if f"the merge {merge[:10]} adds no change" in n]
    assert int(rejected.split(" runs of each")[0].rsplit(" ", 1)[1]) <= 6  # early, not 8+
    assert any("2 parents of the merge sit apart from good" in n for n in out.notes)
    assert out.culprit in changes and out.confirmed
    assert out.waterfall is not None
    named = {c.sha for c in out.waterfall.changes if c.confirmed}
    assert named == set(changes)  # attribution finds the other branch's change


def test_a_merge_that_changes_the_code_itself_is_still_the_culprit(git_repo_factory):
    """An 'evil' merge: the branches change nothing, the merge commit itself makes it 2x."""
    repo, good, bad, _, merge, _ = two_branches(git_repo_factory, evil=2.0)
    result = run_session(repo, FactorRunner(noise=0.02, seed=3), good, bad)
    (out,) = result.bisected
    assert out.culprit == merge and out.confirmed
    assert any(f"the merge {merge[:10]} changes the benchmark itself" in n for n in out.notes)


def octopus(factory, main_moves: bool):
    """Branches a and b (each 2x, like two_branches) and c (no change) fork from good and are
    merged at once into main, an octopus merge: main, a, b, c as its parents when main moved
    on meanwhile (a commit that changes nothing), else main (their merge base), a, b."""
    repo = factory([("initial", {"cost.txt": cost_file({BENCH: 1.0}), "m.txt": "0\n"})])
    good = repo.commit("main 1", {"m.txt": "1\n"})
    changes, tips = [], []
    for name, factor in (("a", 2.0), ("b", 2.0), ("c", None)):
        repo.branch(name, "main")
        if factor:
            changes.append(repo.commit(f"{name}: slower", {f"factor-{name}.txt": f"{factor}"}))
        tips.append(repo.commit(f"{name}: notes", {f"{name}.txt": "1\n"}))
    repo.checkout("main")
    branches = ["a", "b", "c"] if main_moves else ["a", "b"]
    if main_moves:
        repo.commit("main 2", {"m.txt": "2\n"})
    repo.git("merge", "--quiet", "--no-ff", "--no-edit", "-m", "octopus", *branches)
    merge = repo.rev()
    assert len(repo.git("rev-list", "--parents", "-n", "1", merge).split()) == len(branches) + 2
    bad = repo.commit("after the merge", {"m.txt": "3\n"})
    return repo, good, bad, changes, merge, tips[:2]


@pytest.mark.parametrize("main_moves", [True, False], ids=["four-parents", "base-is-a-parent"])
def test_an_octopus_merge_of_branches_that_each_changed_is_not_the_culprit(
    git_repo_factory, main_moves
):
    """The same for an octopus merge: its own change is M - (P1 + ... + Pk) + (k-1) B, with
    B the merge base of all its parents; when B is itself a parent (main did not move), it
    counts once with the weights added."""
    repo, good, bad, changes, merge, tips = octopus(git_repo_factory, main_moves)
    runner = FactorRunner(liars=tips, noise=0.02, seed=5)
    result = run_session(repo, runner, good, bad)
    (out,) = result.bisected
    assert any(f"the merge {merge[:10]} adds no change" in n for n in out.notes)
    assert any("2 parents of the merge sit apart from good" in n for n in out.notes)
    assert out.culprit in changes and out.confirmed
    assert out.waterfall is not None
    assert {c.sha for c in out.waterfall.changes if c.confirmed} == set(changes)


# -- the pure parts ----------------------------------------------------------------------------


def test_the_contrast_is_the_merges_own_change() -> None:
    scale = Scale(0.05, 40)
    base, p1, p2 = [0.0, 0.01, -0.01], [0.7, 0.69, 0.71], [0.4, 0.41, 0.39]
    both = [0.7 + 0.4 + x for x in (0.0, 0.01, -0.01)]  # each branch's change, nothing more
    signs = [w for _, w in merge_check.terms("m", ["p1", "p2"], "b")]
    assert signs == [1, -1, -1, 1]
    own = merge_check.contrast([both, p1, p2, base], signs, scale)
    assert abs(own.diff) < 1e-9
    assert own.se == pytest.approx(0.05 * math.sqrt(4 / 3))
    evil = [x + 0.3 for x in both]
    assert merge_check.contrast([evil, p1, p2, base], signs, scale).diff == pytest.approx(0.3)


def test_an_octopus_merges_terms_weigh_the_base_by_the_parents_but_one() -> None:
    assert merge_check.terms("m", ["p1", "p2", "p3"], "b") == [
        ("m", 1), ("p1", -1), ("p2", -1), ("p3", -1), ("b", 2)
    ]  # fmt: skip
    # the base is the first parent (main did not move): counted once, -1 + 2
    assert merge_check.terms("m", ["b", "p2", "p3"], "b") == [
        ("m", 1),
        ("b", 1),
        ("p2", -1),
        ("p3", -1),
    ]
    # a merge of two whose base is a parent: M - P2, which the confirmation already is
    assert merge_check.terms("m", ["b", "p2"], "b") == [("m", 1), ("p2", -1)]
    scale = Scale(0.05, 40)
    b, p2, p3 = [0.0] * 3, [0.7] * 3, [0.4] * 3
    m = [1.1] * 3  # both branches' changes, nothing more
    own = merge_check.contrast([m, b, p2, p3], [1, 1, -1, -1], scale)
    assert abs(own.diff) < 1e-9 and own.se == pytest.approx(0.05 * math.sqrt(4 / 3))


def test_rounds_pair_only_once_their_spread_is_known() -> None:
    row = (1.1, 0.7, 0.4, 0.0)
    signs = (1, -1, -1, 1)
    assert merge_check.round_contrast([row] * 5, signs) is None
    noisy = [tuple(x + 0.01 * ((i * 7 + j) % 5 - 2) for j, x in enumerate(row)) for i in range(8)]
    d = merge_check.round_contrast(noisy, signs)
    assert d is not None and d.paired and d.n == 8
    assert abs(d.diff) < 0.05


def test_the_description_names_the_verdict() -> None:
    from bisect_tool.policy import Judgement

    own = merge_check.OwnChange(Judgement(Decision.REJECTED, "x"), 1.01, 0.9, 1.1, 4)
    line = merge_check.describe("0123456789abcdef", own)
    assert "0123456789 adds no change of its own" in line and "1.010x [0.900, 1.100]" in line
