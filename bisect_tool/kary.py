"""k-ary search over git bisect's candidates: which K commits to measure in one round, and which
of their verdicts to tell git. Pure: it sees the candidates as a graph of plain strings.

git bisect tests the commit that best halves the candidates: the one whose count of ancestors
among them (itself included) is nearest N/2. With K machines, a round measures K commits whose
counts lie nearest N/(K+1), 2N/(K+1), ..., KN/(K+1). Whatever the verdicts, at most about
N/(K+1) candidates are left, so a bisect takes about log_{K+1}(N) rounds instead of log2(N).
On a linear history that is exact; across merges the counts are git's own measure of how much
a verdict removes, as in `git rev-list --bisect-all`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

GOOD, BAD, SKIP = "good", "bad", "skip"


def ancestor_sets(dag: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Each candidate's ancestors among the candidates, itself included, as a bit set (an int,
    bit i for the i-th candidate in `dag`'s order). Parents outside `dag` are ignored."""
    index = {sha: i for i, sha in enumerate(dag)}
    done: dict[str, int] = {}
    for root in dag:
        stack = [(root, False)]
        while stack:
            sha, expanded = stack.pop()
            if sha in done:
                continue
            parents = [p for p in dag[sha] if p in index]
            if expanded:
                bits = 1 << index[sha]
                for p in parents:
                    bits |= done[p]
                done[sha] = bits
                continue
            stack.append((sha, True))
            stack.extend((p, False) for p in parents if p not in done)
    return done


def pick(
    dag: Mapping[str, Sequence[str]], bad: str, k: int, skipped: Iterable[str] = ()
) -> list[str]:
    """Up to k commits to measure next, the ones that split the candidates into k+1 parts of
    nearly equal size, in history order (fewest ancestors first). `bad` is the known-bad tip;
    skipped commits are counted but never picked."""
    if k < 1:
        raise ValueError("k must be at least 1")
    sets = ancestor_sets(dag)
    n = len(dag)
    banned = {bad, *skipped}
    counts = {sha: bin(bits).count("1") for sha, bits in sets.items() if sha not in banned}
    if not counts:
        return []
    chosen: list[str] = []
    for j in range(1, k + 1):
        target = j * n / (k + 1)
        free = [s for s in counts if s not in chosen]
        if not free:
            break
        # nearest to the target; among equals, the one git itself would prefer (the larger of
        # the two halves smallest), then a stable order
        best = min(
            free,
            key=lambda s: (abs(counts[s] - target), -min(counts[s], n - counts[s]), s),
        )
        chosen.append(best)
    return sorted(chosen, key=lambda s: (counts[s], s))


def reconcile(
    verdicts: Mapping[str, str], dag: Mapping[str, Sequence[str]]
) -> tuple[list[tuple[str, str]], list[str]]:
    """The marks to give git for one round's verdicts, in order (skips, the bad, the goods),
    and the commits left out.

    One bad is marked: the one with the fewest ancestors, which leaves the fewest candidates.
    A good is marked when it is an ancestor of that bad (or of the current bad, when no commit
    was bad); a good that descends from a bad contradicts it, and a good on another branch
    would make git test merge bases, so both are left out (the confirmation catches a
    misjudged step). Skips are always marked."""
    sets = ancestor_sets(dag)
    index = {sha: i for i, sha in enumerate(dag)}
    bads = [s for s, v in verdicts.items() if v == BAD and s in sets]
    marks: list[tuple[str, str]] = [(SKIP, s) for s, v in verdicts.items() if v == SKIP]
    left_out: list[str] = []
    low_bad = min(bads, key=lambda s: (bin(sets[s]).count("1"), s)) if bads else None
    for s in bads:
        if s != low_bad:
            left_out.append(s)
    if low_bad is not None:
        marks.append((BAD, low_bad))
    for s, v in verdicts.items():
        if v != GOOD or s not in index:
            continue
        if low_bad is None or sets[low_bad] >> index[s] & 1:
            marks.append((GOOD, s))
        else:
            left_out.append(s)
    return marks, left_out


def left_after(
    dag: Mapping[str, Sequence[str]], bad: str, marks: Iterable[tuple[str, str]]
) -> tuple[dict[str, tuple[str, ...]], str]:
    """The candidates git would have after these marks, and its bad: the new bad's ancestors
    among the candidates (itself included) that no commit marked good reaches. Skips leave
    the candidates as they are."""
    sets = ancestor_sets(dag)
    index = {sha: i for i, sha in enumerate(dag)}
    bads = [sha for word, sha in marks if word == BAD and sha in sets]
    tip = min(bads, key=lambda s: bin(sets[s]).count("1")) if bads else bad
    keep = sets.get(tip, 0)
    for word, sha in marks:
        if word == GOOD and sha in sets:
            keep &= ~sets[sha]
    return {sha: tuple(dag[sha]) for sha in dag if keep >> index[sha] & 1}, tip


def next_picks(
    dag: Mapping[str, Sequence[str]],
    bad: str,
    picks: Sequence[str],
    k: int,
    skipped: Iterable[str] = (),
) -> list[str]:
    """Every commit the next round could measure, whatever this round's verdicts on `picks`
    (in history order, as pick returns them): for each way they can split into good ones then
    bad ones (k+1 ways), the k picks among the candidates left. At most k*(k+1) commits, in
    the order of those outcomes, none of them already picked; none when every outcome leaves
    the culprit found. What speculative builds build while a round measures."""
    skipped = set(skipped)
    found: dict[str, None] = {}
    for split in range(len(picks) + 1):
        verdicts = {p: GOOD if i < split else BAD for i, p in enumerate(picks)}
        marks, _ = reconcile(verdicts, dag)
        left, tip = left_after(dag, bad, marks)
        for sha in pick(left, tip, k, skipped & set(left)) if left else []:
            if sha not in picks:
                found.setdefault(sha)
    return list(found)


def rounds_bound(n: int, k: int) -> int:
    """Rounds a k-ary search of n candidates needs on a linear history: ceil(log_{k+1} n)."""
    if n <= 1:
        return 0
    return math.ceil(math.log(n) / math.log(k + 1) - 1e-9)
