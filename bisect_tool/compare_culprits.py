"""`smbisect compare ... --culprits RESULT.json`: the bisect's culprits beside the comparison.

A bisect's --json lists, per benchmark, every change it attributed (issue 9): the commit, its
kind, its ratio over its parent, its share of the benchmark's change between good and bad, and
whether it was confirmed. This reads that file and shows those same commits in the comparison,
per benchmark, with whether each lies between the compared revisions (BASE..HEAD), so that a
comparison and the bisect that explains it name the same culprits. Nothing is measured here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tabulate import tabulate

from . import compare as comparing
from . import compare_render
from .errors import UsageError
from .git import GitRepo


@dataclass(frozen=True)
class CulpritRef:
    """One change of the bisect's `culprits`, and where it sits relative to BASE..HEAD."""

    benchmark: str
    sha: str | None  # None: a change found in a segment but not bisected
    kind: str  # "regression" or "improvement"
    ratio: float | None
    share: float | None  # of the benchmark's log change between the bisect's good and bad
    confirmed: bool
    subject: str
    segment: tuple[str, str] | None
    in_range: bool | None = None  # inside BASE..HEAD; None when the commit is not known here


@dataclass(frozen=True)
class Culprits:
    source: str
    good: str | None
    bad: str | None
    refs: tuple[CulpritRef, ...]


def _number(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if ok and math.isfinite(value) else None


def _entry(raw: Any, i: int, where: str) -> CulpritRef:
    if not isinstance(raw, dict) or not isinstance(raw.get("benchmark"), str):
        raise UsageError(f"{where}: culprits[{i}] has no benchmark name")
    sha = raw.get("sha")
    if sha is not None and not isinstance(sha, str):
        raise UsageError(f"{where}: culprits[{i}] has a sha that is not a string")
    seg = raw.get("segment")
    segment = (seg[0], seg[1]) if isinstance(seg, list) and len(seg) == 2 else None
    if segment and not all(isinstance(s, str) for s in segment):
        segment = None
    commit = raw.get("commit")
    subject = commit.get("subject") if isinstance(commit, dict) else None
    return CulpritRef(
        benchmark=raw["benchmark"],
        sha=sha or None,
        kind=str(raw.get("kind") or "regression"),
        ratio=_number(raw.get("ratio")),
        share=_number(raw.get("share")),
        confirmed=raw.get("confirmed") is True,
        subject=subject if isinstance(subject, str) else "",
        segment=segment,
    )


def load(path: str | Path, option: str = "--culprits") -> Culprits:
    """The culprits of a bisect's --json file; a one-line UsageError for anything else, which
    starts with `option` (the option that named the file) when there is one."""
    where = f"{option} {path}" if option else str(path)
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{where}: cannot read it ({exc})") from None
    except ValueError as exc:
        raise UsageError(f"{where}: not JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("culprits"), list):
        raise UsageError(f"{where}: not a bisect result (no `culprits` list)")
    refs = tuple(_entry(raw, i, where) for i, raw in enumerate(data["culprits"]))
    good, bad = data.get("good"), data.get("bad")
    return Culprits(
        str(path),
        good if isinstance(good, str) else None,
        bad if isinstance(bad, str) else None,
        refs,
    )


def range_test(repo: GitRepo, base: str, head: str) -> Callable[[str], bool | None]:
    """Is a commit in BASE..HEAD (an ancestor of HEAD, not of BASE)? None when this repository
    does not know it."""

    def inside(sha: str) -> bool | None:
        try:
            full = repo.resolve(sha, "culprit")
        except UsageError:
            return None
        return repo.is_ancestor(full, head) and not repo.is_ancestor(full, base)

    return inside


def locate(culprits: Culprits, inside: Callable[[str], bool | None]) -> Culprits:
    """Each change with in_range set: its commit, or for an unbisected change its segment
    (in range when its newer end is, and its older end is not before BASE)."""
    refs = []
    for r in culprits.refs:
        if r.sha:
            where = inside(r.sha)
        elif r.segment:
            low, high = (inside(s) for s in r.segment)
            where = None if low is None or high is None else high
        else:
            where = None
        refs.append(CulpritRef(**{**r.__dict__, "in_range": where}))
    return Culprits(culprits.source, culprits.good, culprits.bad, tuple(refs))


def ordered(c: comparing.Comparison, culprits: Culprits) -> list[CulpritRef]:
    """The comparison's benchmark order (regressions first), then any others; within a
    benchmark, the bisect's own order (the largest regression first)."""
    rank = {r.name: i for i, r in enumerate(c.rows)}
    last = len(rank)
    keyed = sorted(enumerate(culprits.refs), key=lambda p: (rank.get(p[1].benchmark, last), p[0]))
    return [r for _, r in keyed]


def _yes(value: bool | None) -> str:
    return "?" if value is None else ("yes" if value else "no")


def _pct(share: float | None) -> str:
    return "n/a" if share is None else f"{share * 100:+.0f}%"


def rows(c: comparing.Comparison, culprits: Culprits) -> list[list[str]]:
    verdicts = {r.name: f"{r.verdict} ({r.ratio:.3g}x)" for r in c.rows}
    out = []
    for r in ordered(c, culprits):
        if r.sha:
            commit = r.sha[:10]
        elif r.segment:
            commit = f"{r.segment[0][:10]}..{r.segment[1][:10]}"
        else:
            commit = "-"
        out.append(
            [
                r.benchmark,
                verdicts.get(r.benchmark, "not compared"),
                commit,
                r.subject[:40],
                r.kind if r.sha else f"{r.kind} (not bisected)",
                "-" if r.ratio is None else f"{r.ratio:.3g}x",
                _pct(r.share),
                _yes(r.confirmed),
                _yes(r.in_range),
            ]
        )
    return out


HEADERS = [
    "benchmark",
    "compare",
    "commit",
    "subject",
    "kind",
    "ratio",
    "share",
    "confirmed",
    "in BASE..HEAD",
]


def _heading(culprits: Culprits) -> str:
    span = ""
    if culprits.good and culprits.bad:
        span = f", bisected {culprits.good[:10]}..{culprits.bad[:10]}"
    return f"Culprits from the bisect ({culprits.source}{span})"


def to_json(culprits: Culprits, c: comparing.Comparison) -> list[dict[str, Any]]:
    compared = {r.name for r in c.rows}
    return [
        {
            "benchmark": r.benchmark,
            "sha": r.sha,
            "kind": r.kind,
            "ratio": r.ratio,
            "share": r.share,
            "confirmed": r.confirmed,
            "subject": r.subject,
            "segment": list(r.segment) if r.segment else None,
            "in_range": r.in_range,
            "compared": r.benchmark in compared,
        }
        for r in ordered(c, culprits)
    ]


def render(c: comparing.Comparison, fmt: str, culprits: Culprits) -> str:
    """compare_render.render, with the bisect's culprits: a section in the table and Markdown, a
    `culprits` list (and `culprits_source`) added to the JSON."""
    if fmt == "json":
        data = compare_render.to_dict(c)
        data["culprits"] = to_json(culprits, c)
        data["culprits_source"] = {
            "file": culprits.source,
            "good": culprits.good,
            "bad": culprits.bad,
        }
        return json.dumps(data, indent=2, allow_nan=False)
    text = compare_render.render(c, fmt).rstrip("\n")
    body = rows(c, culprits)
    if fmt == "markdown":
        cells = [[x.replace("|", "\\|") for x in row] for row in body]
        table = tabulate(cells, headers=HEADERS, tablefmt="github", disable_numparse=True)
        section = [f"## {_heading(culprits)}", "", table if body else "No culprits.", ""]
        return "\n".join([text, "", *section])
    table = tabulate(body, headers=HEADERS, tablefmt="simple", disable_numparse=True)
    section = [f"{_heading(culprits)}:", table if body else "  none"]
    return "\n".join([text, "", *section]) + "\n"
