"""How `smbisect compare` shows a comparison: the terminal table, Markdown, and JSON.

Pure: a compare.Comparison in, text or a JSON-ready dict out (the distributions and bar charts
of the seed's report included). compare.py judges and measures; this module only presents.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from tabulate import tabulate

from .compare import (
    FORMATS,
    IMPROVEMENT,
    NO_CHANGE,
    REGRESSION,
    Comparison,
    format_value,
    has_regression,
    is_allocation,
    is_time,
)
from .errors import UsageError

_EMOJI = {REGRESSION: "🔴", IMPROVEMENT: "🟢", NO_CHANGE: "⚪"}

# -- pure: distributions and bar charts --------------------------------------------------------


def runtime_distribution(comparison: Comparison) -> list[tuple[str, float]]:
    """Head medians of the time benchmarks, largest first (the seed's "Runtime Distribution")."""
    return _largest_first((r.name, r.head) for r in comparison.rows if is_time(r))


def memory_distribution(comparison: Comparison) -> list[tuple[str, float]]:
    """Head allocations per benchmark, largest first (the seed's "Memory Allocations
    Distribution"). Peak memory is left out: peaks do not add up to a total."""
    return _largest_first((r.name, r.head) for r in comparison.rows if is_allocation(r))


def _largest_first(items: Iterable[tuple[str, float]]) -> list[tuple[str, float]]:
    return sorted(items, key=lambda item: (-item[1], item[0]))


def top_items(items: Sequence[tuple[str, float]], top: int) -> list[tuple[str, float]]:
    """The `top` largest items and one "Other (k benchmarks)" line with the rest, as the
    seed's charts do, so a long suite stays readable."""
    ordered = _largest_first(items)
    if len(ordered) <= top + 1:
        return ordered
    rest = ordered[top:]
    return [*ordered[:top], (f"Other ({len(rest)} benchmarks)", sum(v for _, v in rest))]


def bar_chart(items: Sequence[tuple[str, float]], width: int = 40, unit: str = "") -> str:
    """One line per item: name, value, percent of the total, and a bar of █.

    The largest value gets `width` characters and the others their share of it (rounded), so
    the chart uses its whole width whatever the largest item's percent of the total is.
    """
    if not items:
        return ""
    total = sum(v for _, v in items)
    largest = max(v for _, v in items)
    name_w = max(len(n) for n, _ in items) + 1
    values = [format_value(v, unit) if unit else f"{v:.4g}" for _, v in items]
    value_w = max(len(s) for s in values)
    lines = []
    for (name, value), shown in zip(items, values, strict=True):
        pct = value / total * 100 if total > 0 else 0.0
        bar = "█" * (round(value / largest * width) if largest > 0 else 0)
        lines.append(f"{name + ':':<{name_w}}  {shown:>{value_w}}  ({pct:5.1f}%) {bar}".rstrip())
    return "\n".join(lines)


def distribution_block(
    title: str, items: Sequence[tuple[str, float]], unit: str, width: int = 40, top: int = 8
) -> str:
    """The chart with its "Total ...: value" header line."""
    if not items:
        return ""
    total = sum(v for _, v in items)
    return (
        f"{title}: {format_value(total, unit)}\n\n{bar_chart(top_items(items, top), width, unit)}"
    )


# -- pure: rendering ---------------------------------------------------------------------------


def render(comparison: Comparison, fmt: str = "table") -> str:
    """The comparison as a terminal table, Markdown, or JSON text."""
    if fmt == "table":
        return _render_text(comparison, markdown=False)
    if fmt == "markdown":
        return _render_text(comparison, markdown=True)
    if fmt == "json":
        return json.dumps(to_dict(comparison), indent=2, allow_nan=False)
    raise UsageError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _verdict_text(verdict: str, markdown: bool) -> str:
    return f"{_EMOJI[verdict]} {verdict}" if markdown else verdict


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else ("inf" if math.isinf(value) else f"{value:+.1f}%")


def _summary_table(c: Comparison, markdown: bool) -> str:
    rows = [
        [
            f"**{s.metric}**" if markdown else s.metric,
            format_value(s.base, s.unit),
            format_value(s.head, s.unit),
            f"**{_pct(s.change_pct)}**" if markdown else _pct(s.change_pct),
            _verdict_text(s.verdict, markdown),
        ]
        for s in c.summary_rows
    ]
    headers = ["metric", "baseline", "current", "change", "verdict"]
    return tabulate(rows, headers=headers, tablefmt="github" if markdown else "simple")


def _benchmark_table(c: Comparison, markdown: bool) -> str:
    rows = [
        [
            f"`{r.name}`" if markdown else r.name,
            format_value(r.base, r.unit),
            format_value(r.head, r.unit),
            f"{r.ratio:.3f}x",
            _pct(r.change_pct),
            "n/a" if r.p_value is None else f"{r.p_value:.2g}",
            f"{len(r.base_samples)}/{len(r.head_samples)}",
            _verdict_text(r.verdict, markdown),
        ]
        for r in c.rows
    ]
    headers = ["benchmark", "baseline", "current", "ratio", "change", "p", "n", "verdict"]
    return tabulate(
        rows, headers=headers, tablefmt="github" if markdown else "simple", disable_numparse=True
    )


def _distribution_blocks(c: Comparison) -> list[tuple[str, str]]:
    blocks = []
    runtime = runtime_distribution(c)
    if runtime:
        blocks.append(
            ("Runtime distribution", distribution_block("Total runtime", runtime, "seconds"))
        )
    memory = memory_distribution(c)
    if memory:
        block = distribution_block("Total allocations", memory, "bytes")
        blocks.append(("Memory distribution", block))
    return blocks


def _render_text(c: Comparison, markdown: bool) -> str:
    base, head = c.base_sha[:10], c.head_sha[:10]
    rule = (
        f"regression/improvement: beyond {c.factor:g}x and Mann-Whitney p < {c.alpha:g} "
        "(the factor alone where a side has a single value)"
    )
    regressed = sum(r.verdict == REGRESSION for r in c.rows)
    improved = sum(r.verdict == IMPROVEMENT for r in c.rows)
    tally = f"{regressed} regressed, {improved} improved, {len(c.rows)} compared"
    if markdown:
        parts = [f"# smbisect compare: `{base}` → `{head}`", "", f"{tally}; {rule}.", ""]
        parts += ["## Executive summary", "", _summary_table(c, True), ""]
        parts += ["## Benchmarks", "", _benchmark_table(c, True), ""]
        for title, block in _distribution_blocks(c):
            parts += [f"## {title} (current, `{head}`)", "", "```", block, "```", ""]
        if c.missing:
            parts += ["## Not compared", ""]
            parts += [f"- `{name}`: {why}" for name, why in sorted(c.missing.items())]
            parts.append("")
        return "\n".join(parts)
    parts = [f"Comparing {base} (baseline) with {head} (current): {tally}", rule, ""]
    parts += ["Summary:", _summary_table(c, False), ""]
    parts += ["Benchmarks:", _benchmark_table(c, False), ""]
    for title, block in _distribution_blocks(c):
        parts += [f"{title} (current, {head}):", "", block, ""]
    if c.missing:
        parts.append("Not compared:")
        parts += [f"  {name}: {why}" for name, why in sorted(c.missing.items())]
        parts.append("")
    return "\n".join(parts).rstrip("\n") + "\n"


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def to_dict(c: Comparison) -> dict[str, Any]:
    """JSON-ready: every number finite or null, samples included so the verdicts can be redone."""
    runtime = runtime_distribution(c)
    memory = memory_distribution(c)

    def dist(items: list[tuple[str, float]]) -> list[dict[str, Any]]:
        total = sum(v for _, v in items)
        return [
            {"name": n, "value": v, "percent": _num(v / total * 100 if total else None)}
            for n, v in items
        ]

    return {
        "base": c.base_sha,
        "head": c.head_sha,
        "factor": c.factor,
        "alpha": c.alpha,
        "has_regression": has_regression(c),
        "summary": [
            {
                "metric": s.metric,
                "unit": s.unit,
                "baseline": _num(s.base),
                "current": _num(s.head),
                "change_pct": _num(s.change_pct),
                "verdict": s.verdict,
                "benchmarks": list(s.benchmarks),
            }
            for s in c.summary_rows
        ],
        "benchmarks": [
            {
                "name": r.name,
                "unit": r.unit,
                "kind": r.kind,
                "worse_is_higher": r.worse_is_higher,
                "baseline": _num(r.base),
                "current": _num(r.head),
                "ratio": _num(r.ratio),
                "change_pct": _num(r.change_pct),
                "p_value": _num(r.p_value),
                "verdict": r.verdict,
                "baseline_samples": [_num(x) for x in r.base_samples],
                "current_samples": [_num(x) for x in r.head_samples],
            }
            for r in c.rows
        ],
        "runtime_distribution": dist(runtime),
        "memory_distribution": dist(memory),
        "not_compared": dict(sorted(c.missing.items())),
    }
