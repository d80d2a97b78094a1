"""The waterfall in every output: a table for the terminal and Markdown, the JSON entries, and
the culprits shared by several benchmarks. Presentation only: the numbers come from
waterfall.py through the session's outcomes. Uses formatting.py below it, and is used by
report.py and html_report.py above it."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from tabulate import tabulate

from .formatting import fmt_value
from .waterfall import REGRESSION, Change, largest_first

if TYPE_CHECKING:
    from .session import BenchmarkOutcome, SessionResult


def _short(result: SessionResult, sha: str | None) -> str:
    if sha is None:
        return "-"
    rec = result.commits.get(sha)
    return rec.info.short if rec else sha[:10]


def _subject(result: SessionResult, sha: str | None, width: int = 44) -> str:
    rec = result.commits.get(sha) if sha else None
    return rec.info.subject[:width] if rec else ""


def _pct(share: float) -> str:
    return "n/a" if not math.isfinite(share) else f"{share * 100:+.0f}%"


def _ci(c: Change) -> str:
    if not (math.isfinite(c.ci_low) and math.isfinite(c.ci_high)):
        return "-"
    return f"[{c.ci_low:.3g}, {c.ci_high:.3g}]"


def _what(result: SessionResult, c: Change) -> tuple[str, str]:
    """The commit column and the status column of one change."""
    if c.sha and c.bisected:
        status = "confirmed" if c.confirmed else "NOT confirmed"
        return _short(result, c.sha), f"{c.kind}, {status}"
    where = f"{_short(result, c.low)}..{_short(result, c.high)}"
    why = "not bisected" if c.kind != REGRESSION else "not attributed"
    return where, f"{c.kind} in this range, {why}"


def rows(result: SessionResult, outcome: BenchmarkOutcome) -> list[list[str]]:
    w = outcome.waterfall
    assert w is not None
    unit = outcome.spec.unit
    out = [[_short(result, result.good), "good", fmt_value(w.good, unit), "", "", "", ""]]
    for c in w.changes:
        where, status = _what(result, c)
        out.append(
            [where, _subject(result, c.sha), "", f"{c.ratio:.3g}x", _ci(c), _pct(c.share), status]
        )
    residual = "" if not math.isfinite(w.residual) else f"{w.residual:.3g}x"
    out.append(["", "residual (unexplained)", "", residual, "", _pct(w.residual_share), ""])
    out.append(
        [_short(result, result.bad), "bad", fmt_value(w.bad, unit), f"{w.total:.3g}x", "", "", ""]
    )
    return out


HEADERS = ["commit", "subject", "value", "ratio", "95% CI", "share", "status"]


def table(result: SessionResult, outcome: BenchmarkOutcome, fmt: str = "simple") -> str:
    body = rows(result, outcome)
    if fmt == "github":
        body = [[cell.replace("|", "\\|") for cell in row] for row in body]
    return tabulate(body, headers=HEADERS, tablefmt=fmt)


def lines(result: SessionResult, outcome: BenchmarkOutcome) -> list[str]:
    """The terminal's waterfall section for one benchmark (empty without attribution)."""
    w = outcome.waterfall
    if w is None:
        return []
    out = [
        f"Waterfall for {outcome.spec.name} (good -> each change -> bad):",
        table(result, outcome),
    ]
    for low, high, why in w.open_segments:
        out.append(
            f"  not attributed: a change between {_short(result, low)} and "
            f"{_short(result, high)} ({why})"
        )
    return out


def shared_culprits(result: SessionResult) -> dict[str, list[tuple[str, Change]]]:
    """Commits blamed by more than one benchmark: sha -> [(benchmark, change)]."""
    by_sha: dict[str, list[tuple[str, Change]]] = {}
    for o in result.bisected:
        for c in _changes(o):
            if c.sha and c.bisected:
                by_sha.setdefault(c.sha, []).append((o.spec.name, c))
    return {sha: items for sha, items in by_sha.items() if len(items) > 1}


def shared_lines(result: SessionResult) -> list[str]:
    shared = shared_culprits(result)
    if not shared:
        return []
    out = ["Commits blamed by several benchmarks:"]
    for sha, items in shared.items():
        out.append(f"  {_short(result, sha)} {_subject(result, sha, 60)}")
        for name, c in items:
            share = f", {_pct(c.share)} of its change" if math.isfinite(c.share) else ""
            out.append(f"      {name}: {c.ratio:.3g}x{share}")
    return out


def _changes(o: BenchmarkOutcome) -> list[Change]:
    return list(o.waterfall.changes) if o.waterfall is not None else []


# -- JSON -------------------------------------------------------------------------------------


def _num(x: float) -> float | None:
    return x if isinstance(x, (int, float)) and math.isfinite(x) else None


def culprit_entries(
    result: SessionResult, commit_dict: Any, primary_entry: Any
) -> list[dict[str, Any]]:
    """`culprits` in the JSON: each benchmark's first culprit with its fields as before, plus
    every other change attributed, each with `share`; the largest regression first."""
    entries: list[tuple[Change | None, dict[str, Any]]] = []
    for o in result.bisected:
        changes = _changes(o)
        first = primary_entry(o)
        primary = next((c for c in changes if c.primary), None)
        first.update(_change_fields(primary) if primary else {"kind": REGRESSION})
        entries.append((primary, first))
        for c in changes:
            if c.primary:
                continue
            entries.append(
                (
                    c,
                    {
                        "benchmark": o.spec.name,
                        "sha": c.sha,
                        "ratio": _num(c.ratio),
                        "ci": [_num(c.ci_low), _num(c.ci_high)],
                        "p_value": _num(c.p_value),
                        "confirmed": c.confirmed,
                        "candidates": [],
                        "steps": c.steps,
                        "notes": [],
                        "commit": commit_dict(c.sha) if c.sha else None,
                        "bisect_log": c.bisect_log,
                        **_change_fields(c),
                    },
                )
            )
    ranked = {id(c): i for i, c in enumerate(largest_first([c for c, _ in entries if c]))}
    # entries without a waterfall (no confirmed culprit) keep their place after the ranked ones
    order = sorted(
        range(len(entries)),
        key=lambda i: (ranked.get(id(entries[i][0]), len(ranked)) if entries[i][0] else 10**6, i),
    )
    return [entries[i][1] for i in order]


def _change_fields(c: Change) -> dict[str, Any]:
    return {
        "kind": c.kind,
        "share": _num(c.share),
        "parent": c.parent,
        "segment": [c.low, c.high],
        "bisected": c.bisected,
        "primary": c.primary,
    }


def waterfall_json(result: SessionResult) -> list[dict[str, Any]]:
    out = []
    for o in result.bisected:
        w = o.waterfall
        if w is None:
            continue
        out.append(
            {
                "benchmark": o.spec.name,
                "unit": o.spec.unit,
                "good": _num(w.good),
                "bad": _num(w.bad),
                "ratio": _num(w.total),
                "changes": [
                    {
                        "sha": c.sha,
                        "kind": c.kind,
                        "ratio": _num(c.ratio),
                        "ci": [_num(c.ci_low), _num(c.ci_high)],
                        "share": _num(c.share),
                        "confirmed": c.confirmed,
                        "bisected": c.bisected,
                        "segment": [c.low, c.high],
                    }
                    for c in w.changes
                ],
                "residual": {"ratio": _num(w.residual), "share": _num(w.residual_share)},
                "not_attributed": [
                    {"low": low, "high": high, "why": why} for low, high, why in w.open_segments
                ],
            }
        )
    return out
