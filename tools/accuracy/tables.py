"""Aggregation and tables (pure): one row per grid point, and an overall summary.

The rates of "correct" and "wrong+confirmed" carry a Wilson 95% interval, `38/40 [0.83, 0.99]`:
with a few trials per grid point a rate says little, and the overall rows (every length and
shape of one slowdown, noise and load together) are the numbers to read.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from tabulate import tabulate

from .history import LOADS, SHAPES
from .scoring import (
    CORRECT,
    ERROR,
    INCONCLUSIVE,
    NO_REGRESSION,
    UNCONFIRMED,
    WRONG,
    CaseResult,
    ToolResult,
    rate_with_interval,
    runs_target,
)

HEADERS = [
    "N",
    "shape",
    "slowdown",
    "noise",
    "load",
    "setup",
    "trials",
    "smb correct",
    "smb wrong+confirmed",
    "smb unconfirmed",
    "smb no regression",
    "smb inconclusive",
    "smb error",
    "smb commits",
    "smb samples",
    "smb runs",
    "runs target",
    "smb runs to culprit",
    "smb wall s",
    "asv trials",
    "asv correct",
    "asv first-parent ok",
    "asv wrong",
    "asv commits",
    "asv wall s",
    "ceil(log2 N)",
]

SUMMARY_HEADERS = [
    "slowdown",
    "noise",
    "load",
    "setup",
    "cases",
    "smb correct",
    "smb wrong+confirmed",
    "smb unconfirmed",
    "smb no regression",
    "smb inconclusive",
    "smb error",
    "smb runs <= target",
    "asv cases",
    "asv correct",
    "asv wrong",
]

RUNS_FOOTNOTE = (
    "\\* smbisect's JSON had no `runs` object for some of these cases: "
    "their sample count is counted as runs instead."
)


def _rate(values: Iterable[bool]) -> str:
    vals = list(values)
    if not vals:
        return "-"
    return f"{sum(vals)}/{len(vals)}"


def _interval(values: Iterable[bool]) -> str:
    vals = list(values)
    return rate_with_interval(sum(vals), len(vals))


def _mean(values: Iterable[float | int | None], fmt: str = "{:.1f}") -> str:
    vals = [float(v) for v in values if v is not None]
    return fmt.format(statistics.fmean(vals)) if vals else "-"


def _fallback(smb: Sequence[ToolResult]) -> bool:
    return any(t.runs_source == "samples" for t in smb)


def _runs_cells(smb: Sequence[ToolResult], length: int) -> tuple[str, str]:
    """Mean runs (starred when some are sample counts), and the target with met/missed."""
    runs = [t.runs for t in smb if t.runs is not None]
    target = runs_target(length)
    if not runs:
        return "-", str(target)
    mean = statistics.fmean(runs)
    star = "*" if _fallback(smb) else ""
    return f"{mean:.1f}{star}", f"{target} {'met' if mean <= target else 'missed'}"


def _tools(rs: Sequence[CaseResult]) -> tuple[list[ToolResult], list[ToolResult]]:
    smb = [r.results["smbisect"] for r in rs if "smbisect" in r.results]
    asv = [r.results["asv-find"] for r in rs if "asv-find" in r.results]
    return smb, asv


def _outcome_rates(smb: Sequence[ToolResult]) -> list[str]:
    """correct and wrong+confirmed with intervals, then the other outcomes as fractions."""
    return [
        _interval(t.outcome == CORRECT for t in smb),
        _interval(t.outcome == WRONG for t in smb),
        *(_rate(t.outcome == o for t in smb) for o in (UNCONFIRMED, NO_REGRESSION, INCONCLUSIVE)),
        _rate(t.outcome == ERROR for t in smb),
    ]


def _load_order(load: str) -> int:
    return LOADS.index(load) if load in LOADS else len(LOADS)


def _groups(
    results: Sequence[CaseResult], key: Callable[[CaseResult], tuple[Any, ...]]
) -> dict[tuple[Any, ...], list[CaseResult]]:
    groups: dict[tuple[Any, ...], list[CaseResult]] = {}
    for r in results:
        groups.setdefault(key(r), []).append(r)
    return groups


def aggregate(results: Sequence[CaseResult]) -> list[list[Any]]:
    """One row per (length, shape, slowdown, noise, load, setup)."""
    groups = _groups(results, lambda r: r.case.group)

    def order(k: tuple[Any, ...]) -> tuple[Any, ...]:
        return (k[0], SHAPES.index(k[1]), k[2], k[3], _load_order(k[4]), k[5])

    rows = []
    for key in sorted(groups, key=order):
        rs = groups[key]
        smb, asv = _tools(rs)
        length, shape, slowdown, noise, load, setup = key
        runs, target = _runs_cells(smb, length)
        rows.append(
            [
                length,
                shape,
                f"{slowdown:g}x",
                f"{noise * 100:g}%",
                load,
                setup,
                len(rs),
                *_outcome_rates(smb),
                _mean(t.commits_measured for t in smb),
                _mean((t.samples for t in smb), "{:.0f}"),
                runs,
                target,
                _mean(t.runs_to_culprit for t in smb),
                _mean(t.wall for t in smb),
                len(asv) if asv else "-",
                _interval(t.correct for t in asv),
                _rate(bool(t.first_parent_correct) for t in asv) if shape == "merges" else "=",
                _interval(t.wrong_confident for t in asv),
                _mean(t.commits_measured for t in asv),
                _mean(t.wall for t in asv),
                math.ceil(math.log2(length)),
            ]
        )
    return rows


def summarize(results: Sequence[CaseResult]) -> list[list[Any]]:
    """One row per (slowdown, noise, load, setup), over every length, shape and trial."""
    groups = _groups(results, lambda r: (r.case.slowdown, r.case.noise, r.case.load, r.case.setup))
    rows = []
    for key in sorted(groups, key=lambda k: (k[0], k[1], _load_order(k[2]), k[3])):
        rs = groups[key]
        smb, asv = _tools(rs)
        slowdown, noise, load, setup = key
        met = []
        for r in rs:
            t = r.results.get("smbisect")
            if t is not None and t.runs is not None:
                met.append(t.runs <= runs_target(r.case.length))
        rows.append(
            [
                f"{slowdown:g}x",
                f"{noise * 100:g}%",
                load,
                setup,
                len(rs),
                *_outcome_rates(smb),
                _rate(met) + ("*" if met and _fallback(smb) else ""),
                len(asv) if asv else "-",
                _interval(t.correct for t in asv),
                _interval(t.wrong_confident for t in asv),
            ]
        )
    return rows


def _with_footnote(table: str, results: Sequence[CaseResult], footnote: bool) -> str:
    smb, _ = _tools(results)
    return f"{table}\n\n{RUNS_FOOTNOTE}" if footnote and _fallback(smb) else table


def render_table(results: Sequence[CaseResult], fmt: str = "github", footnote: bool = True) -> str:
    table = tabulate(aggregate(results), headers=HEADERS, tablefmt=fmt, disable_numparse=True)
    return _with_footnote(table, results, footnote)


def render_summary(
    results: Sequence[CaseResult], fmt: str = "github", footnote: bool = True
) -> str:
    table = tabulate(
        summarize(results), headers=SUMMARY_HEADERS, tablefmt=fmt, disable_numparse=True
    )
    return _with_footnote(table, results, footnote)


def render_report(results: Sequence[CaseResult], fmt: str = "github") -> str:
    """Both tables: the grid, then the overall summary (the numbers with meaningful intervals)."""
    return (
        "Per grid point (correct and wrong rates with Wilson 95% intervals):\n\n"
        f"{render_table(results, fmt, footnote=False)}\n\n"
        "Overall, per slowdown, noise and load (every length, shape and trial together):\n\n"
        f"{render_summary(results, fmt)}"
    )
