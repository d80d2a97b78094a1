"""k-ary search (kary.py) on plain graphs: which commits a round measures, which verdicts git
is told, and how many rounds a search takes, against a brute-force search of the same graph."""

from __future__ import annotations

import math
import random

import pytest

from bisect_tool import kary


def linear(n: int) -> dict[str, tuple[str, ...]]:
    """c0 <- c1 <- ... <- c{n-1}; the candidates of a bisect whose bad is c{n-1}."""
    return {f"c{i:03d}": ((f"c{i - 1:03d}",) if i else ()) for i in range(n)}


def search(n: int, culprit: int, k: int) -> int:
    """A whole k-ary search on a linear history with exact verdicts; returns its rounds."""
    lo, hi = 0, n - 1  # the culprit is in c[lo..hi]; c[hi] is bad
    rounds = 0
    while lo < hi:
        dag = {f"c{i:03d}": ((f"c{i - 1:03d}",) if i > lo else ()) for i in range(lo, hi + 1)}
        picks = kary.pick(dag, f"c{hi:03d}", k)
        assert picks and len(picks) <= k
        rounds += 1
        verdicts = {p: kary.BAD if int(p[1:]) >= culprit else kary.GOOD for p in picks}
        marks, left_out = kary.reconcile(verdicts, dag)
        assert not [s for s in left_out if verdicts[s] == kary.GOOD]  # exact verdicts agree
        for word, sha in marks:
            i = int(sha[1:])
            if word == kary.BAD:
                hi = min(hi, i)
            else:
                lo = max(lo, i + 1)
    assert lo == culprit
    return rounds


@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("n", [2, 7, 64, 256, 300])
def test_a_search_takes_about_log_k_plus_1_of_n_rounds(n: int, k: int) -> None:
    rng = random.Random(n * 10 + k)
    for culprit in {0, n - 1, rng.randrange(n), rng.randrange(n)}:
        rounds = search(n, culprit, k)
        assert rounds <= kary.rounds_bound(n, k) + 1, (n, k, culprit, rounds)


def test_rounds_bound() -> None:
    assert kary.rounds_bound(256, 3) == 4
    assert kary.rounds_bound(256, 1) == 8
    assert kary.rounds_bound(64, 3) == 3
    assert kary.rounds_bound(1, 3) == 0


def test_picks_split_a_linear_history_into_equal_parts() -> None:
    dag = linear(64)
    picks = kary.pick(dag, "c063", 3)
    # ancestors counted with the commit itself: 16, 32, 48 -> c015, c031, c047
    assert picks == ["c015", "c031", "c047"]
    assert kary.pick(dag, "c063", 1) == ["c031"]  # git bisect's own choice, half-way


def test_skipped_and_bad_commits_are_never_picked() -> None:
    dag = linear(5)
    picks = kary.pick(dag, "c004", 8, skipped={"c001"})
    assert picks == ["c000", "c002", "c003"]


def test_ancestors_across_a_merge() -> None:
    # m <- a1 <- a2 <- M, and m <- b1 <- M (b1 on a side branch merged at M)
    dag = {"m": (), "a1": ("m",), "a2": ("a1",), "b1": ("m",), "M": ("a2", "b1")}
    sets = kary.ancestor_sets(dag)
    count = {s: bin(b).count("1") for s, b in sets.items()}
    assert count == {"m": 1, "a1": 2, "a2": 3, "b1": 2, "M": 5}


def test_reconcile_keeps_the_lowest_bad_and_the_goods_below_it() -> None:
    dag = linear(10)
    marks, left_out = kary.reconcile({"c002": "good", "c005": "bad", "c007": "bad"}, dag)
    assert marks == [("bad", "c005"), ("good", "c002")]
    assert left_out == ["c007"]


def test_a_good_that_descends_from_a_bad_is_not_told_to_git() -> None:
    dag = linear(10)
    verdicts = {"c002": "bad", "c005": "good", "c007": "skip"}
    marks, left_out = kary.reconcile(verdicts, dag)
    assert marks == [("skip", "c007"), ("bad", "c002")]
    assert left_out == ["c005"]


def test_a_good_on_another_branch_than_the_bad_is_left_out() -> None:
    dag = {"m": (), "a1": ("m",), "a2": ("a1",), "b1": ("m",), "M": ("a2", "b1")}
    marks, left_out = kary.reconcile({"a2": "bad", "b1": "good", "a1": "good"}, dag)
    assert marks == [("bad", "a2"), ("good", "a1")]
    assert left_out == ["b1"]


def test_no_bad_marks_every_good() -> None:
    marks, left_out = kary.reconcile({"c001": "good", "c004": "good"}, linear(8))
    assert sorted(marks) == [("good", "c001"), ("good", "c004")] and left_out == []


def test_k_must_be_positive() -> None:
    with pytest.raises(ValueError):
        kary.pick(linear(4), "c003", 0)
    assert math.isfinite(kary.rounds_bound(10**6, 7))


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("n", [5, 64, 257])
def test_the_next_round_is_always_among_the_speculated_commits(n: int, k: int) -> None:
    """Whatever the culprit, the commits a round measures were all speculated (built ahead)
    while the round before measured, and there are at most k*(k+1) of them."""
    rng = random.Random(n + k)
    for culprit in {0, 1, n - 1, rng.randrange(n), rng.randrange(n), rng.randrange(n)}:
        lo, hi = 0, n - 1
        speculated: list[str] | None = None
        while lo < hi:
            dag = {f"c{i:03d}": ((f"c{i - 1:03d}",) if i > lo else ()) for i in range(lo, hi + 1)}
            picks = kary.pick(dag, f"c{hi:03d}", k)
            if speculated is not None:
                assert set(picks) <= set(speculated), (n, k, culprit, picks, speculated)
            speculated = kary.next_picks(dag, f"c{hi:03d}", picks, k)
            assert len(speculated) <= k * (k + 1) and not set(speculated) & set(picks)
            if len(picks) == len(dag) - 1:  # every outcome finds the culprit
                assert speculated == []
            verdicts = {p: kary.BAD if int(p[1:]) >= culprit else kary.GOOD for p in picks}
            marks, _ = kary.reconcile(verdicts, dag)
            for word, sha in marks:
                if word == kary.BAD:
                    hi = min(hi, int(sha[1:]))
                else:
                    lo = max(lo, int(sha[1:]) + 1)


def test_the_candidates_left_after_marks_are_git_s_across_merges() -> None:
    """left_after against reachability walked by hand, on random histories with merges."""
    rng = random.Random(7)
    for _ in range(30):
        shas = [f"x{i:02d}" for i in range(40)]
        dag: dict[str, tuple[str, ...]] = {shas[0]: ()}
        for i in range(1, 40):
            parents = [shas[rng.randrange(max(0, i - 4), i)]]
            if rng.random() < 0.25:
                parents.append(shas[rng.randrange(i)])
            dag[shas[i]] = tuple(dict.fromkeys(parents))

        def reach(start: str, dag: dict[str, tuple[str, ...]] = dag) -> set[str]:
            seen, todo = set(), [start]
            while todo:
                s = todo.pop()
                if s not in seen:
                    seen.add(s)
                    todo.extend(dag[s])
            return seen

        tip = shas[-1]
        new_bad = rng.choice(sorted(reach(tip)))
        goods = rng.sample(sorted(reach(new_bad) - {new_bad}), min(3, len(reach(new_bad)) - 1))
        marks = [(kary.BAD, new_bad)] + [(kary.GOOD, g) for g in goods]
        left, bad = kary.left_after(dag, tip, marks)
        expected = reach(new_bad).difference(*(reach(g) for g in goods))
        assert bad == new_bad and set(left) == expected
        assert set(kary.left_after(dag, tip, [])[0]) == reach(tip)  # no marks: the tip's own
