"""Scoring (pure): what each tool answered, how that counts, the intervals, and saved results."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .history import BENCH, Case

# smbisect's exit codes
EXIT_CONFIRMED = 0
EXIT_NOT_REPRODUCED = 3
EXIT_NO_CULPRIT = 4
EXIT_INCONCLUSIVE = 5  # "inconclusive: too noisy to tell"
EXPECTED_EXITS = (EXIT_CONFIRMED, EXIT_NOT_REPRODUCED, EXIT_NO_CULPRIT, EXIT_INCONCLUSIVE)

# How one smbisect run ends. Every run has exactly one outcome, so the columns add up.
CORRECT = "correct"
WRONG = "wrong+confirmed"  # the failure that matters: a confident wrong answer
UNCONFIRMED = "unconfirmed"  # exit 4: a culprit (right or wrong) that did not confirm
NO_REGRESSION = "no regression"  # exit 3: the regression did not reproduce
INCONCLUSIVE = "inconclusive"  # exit 5: too noisy to tell
ERROR = "error"  # anything else: crash, usage error, timeout, interrupt
OUTCOMES = (CORRECT, WRONG, UNCONFIRMED, NO_REGRESSION, INCONCLUSIVE, ERROR)

Z95 = 1.959963984540054  # two-sided 95% normal quantile


@dataclass
class ToolResult:
    tool: str
    named: str | None  # the commit the tool names (full sha when known, else a prefix)
    correct: bool
    wrong_confident: bool
    commits_measured: int
    samples: int | None
    wall: float
    exit_code: int | None
    confirmed: bool | None = None
    first_parent_correct: bool | None = None
    error: str | None = None
    named_right: bool | None = None  # named the culprit, confirmed or not
    outcome: str | None = None  # one of OUTCOMES (smbisect only)
    runs: int | None = None  # benchmark processes (smbisect's runs.total, else its samples)
    runs_source: str | None = None  # "runs.total" or "samples" (the fallback)
    plain_bisect_runs: int | None = None  # smbisect's runs.plain_bisect, when reported
    runs_to_culprit: int | None = None  # smbisect's runs.to_culprit: runs until it was confirmed
    one_thread: bool | None = None  # smbisect's threads.one_thread (switched or --threads one)


@dataclass
class CaseResult:
    case: Case
    culprit: str
    first_parent_culprit: str
    merges: int
    results: dict[str, ToolResult] = field(default_factory=dict)


def _same(named: str | None, sha: str) -> bool:
    return bool(named) and len(named or "") >= 7 and sha.startswith(named or "-")


def smbisect_outcome(
    exit_code: int | None, named: str | None, confirmed: bool | None, right: bool
) -> str:
    """A confirmed culprit counts first (right or wrong, whatever else happened), then the
    exit code."""
    if named and confirmed:
        return CORRECT if right else WRONG
    if exit_code == EXIT_INCONCLUSIVE:
        return INCONCLUSIVE
    if exit_code == EXIT_NOT_REPRODUCED:
        return NO_REGRESSION
    if exit_code in (EXIT_NO_CULPRIT, EXIT_CONFIRMED):
        return UNCONFIRMED
    return ERROR


def runs_target(length: int) -> int:
    """The target for smbisect's benchmark processes (runs) on N commits: 2*ceil(log2 N)+6."""
    return 2 * math.ceil(math.log2(length)) + 6


def score_smbisect(
    data: dict[str, Any] | None,
    exit_code: int,
    culprit: str,
    wall: float,
    bench: str = BENCH,
) -> ToolResult:
    """Score smbisect's --json output.

    Correct means the culprit was named and confirmed (exit 0): the answer a user acts on. A
    right but unconfirmed name (exit 4) is not counted correct, only `named_right`.
    Wrong-and-confident means a confirmed wrong culprit. Runs are `runs.total` when smbisect
    reports them, else the sample count (what older versions report).
    """
    if not data:
        return ToolResult(
            "smbisect",
            None,
            False,
            False,
            0,
            0,
            wall,
            exit_code,
            error=f"exit {exit_code}, no JSON",
            outcome=smbisect_outcome(exit_code, None, None, False),
        )
    entry = next((c for c in data.get("culprits", []) if c.get("benchmark") == bench), None)
    if entry is None and data.get("culprits"):
        entry = data["culprits"][0]
    named = entry.get("sha") if entry else None
    confirmed = bool(entry and entry.get("confirmed"))
    steps = data.get("steps", [])
    samples = sum(len(v) for s in steps for v in (s.get("samples") or {}).values())
    measured = sum(1 for s in steps if any(s.get("samples") or {}))
    runs_obj = data.get("runs")
    total = runs_obj.get("total") if isinstance(runs_obj, dict) else None
    plain = runs_obj.get("plain_bisect") if isinstance(runs_obj, dict) else None
    has_runs = isinstance(total, int) and not isinstance(total, bool)
    to_culprit = runs_obj.get("to_culprit") if isinstance(runs_obj, dict) else None
    right = named == culprit
    return ToolResult(
        tool="smbisect",
        named=named,
        correct=right and confirmed,
        wrong_confident=bool(named) and confirmed and not right,
        commits_measured=measured,
        samples=samples,
        wall=wall,
        exit_code=exit_code,
        confirmed=confirmed,
        first_parent_correct=right,
        named_right=right,
        outcome=smbisect_outcome(exit_code, named, confirmed, right),
        runs=total if has_runs else samples,
        runs_source="runs.total" if has_runs else "samples",
        plain_bisect_runs=plain if isinstance(plain, int) else None,
        runs_to_culprit=to_culprit if isinstance(to_culprit, int) else None,
        one_thread=_one_thread(data),
    )


def _one_thread(data: dict[str, Any]) -> bool | None:
    threads = data.get("threads")
    return bool(threads.get("one_thread")) if isinstance(threads, dict) else None


_FOUND = re.compile(r"Greatest (?:regression|improvement) found:\s*([0-9a-f]{7,40})")
_MEASURED = re.compile(r"For \S+ commit ([0-9a-f]{7,40})")


def parse_asv_find(output: str) -> tuple[str | None, list[str]]:
    """The commit `asv find` names, and the commits it benchmarked, from its log output.

    asv find logs "For <project> commit <hash8>[ <ref>]:" before each benchmark run (cached
    commits are not re-run and not re-logged) and ends with
    "Greatest regression found: <hash8>[ <ref>]".
    """
    found = _FOUND.findall(output)
    measured: list[str] = []
    for sha in _MEASURED.findall(output):
        if sha not in measured:
            measured.append(sha)
    return (found[-1] if found else None), measured


def score_asv_find(
    output: str,
    exit_code: int,
    culprit: str,
    first_parent: str,
    wall: float,
) -> ToolResult:
    """asv find always names one commit, so every wrong answer counts as wrong-and-confident."""
    named, measured = parse_asv_find(output)
    correct = named is not None and _same(named, culprit)
    error = None if named else f"exit {exit_code}: no 'Greatest regression found' line"
    return ToolResult(
        tool="asv-find",
        named=named,
        correct=correct,
        wrong_confident=named is not None and not correct,
        commits_measured=len(measured),
        samples=None,
        wall=wall,
        exit_code=exit_code,
        first_parent_correct=named is not None and _same(named, first_parent),
        error=error,
        named_right=correct,
    )


# ---------------------------------------------------------------------------------------------
# Intervals
# ---------------------------------------------------------------------------------------------


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95% by default).

    Unlike the normal approximation it stays inside [0, 1] and is not empty at 0/n or n/n:
    0 of 40 still allows a rate up to 0.09. With no trials it is the whole of [0, 1].
    """
    if trials <= 0:
        return (0.0, 1.0)
    if not 0 <= successes <= trials:
        raise ValueError(f"{successes} successes out of {trials} trials")
    p = successes / trials
    z2 = z * z
    denom = 1.0 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denom
    # at 0/n and n/n the bound is exactly 0 or 1; rounding must not move it
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == trials else min(1.0, centre + half)
    return (lo, hi)


def rate_with_interval(successes: int, trials: int) -> str:
    """`38/40 [0.83, 0.99]`; `-` when there were no trials."""
    if trials <= 0:
        return "-"
    lo, hi = wilson_interval(successes, trials)
    return f"{successes}/{trials} [{lo:.2f}, {hi:.2f}]"


# ---------------------------------------------------------------------------------------------
# Saved results (--jsonl)
# ---------------------------------------------------------------------------------------------


def result_row(result: CaseResult) -> dict[str, Any]:
    """One --jsonl line. The case carries the load, workload, mode and smbisect arguments."""
    return {
        "case": asdict(result.case),
        "load": result.case.load,
        "culprit": result.culprit,
        "first_parent_culprit": result.first_parent_culprit,
        "merges": result.merges,
        "results": {k: asdict(v) for k, v in result.results.items()},
    }


def rescore(t: ToolResult, culprit: str) -> ToolResult:
    """Apply the current smbisect rules to a stored result (older files still fit)."""
    if t.tool != "smbisect":
        return t
    right = t.named == culprit
    t.named_right = right
    t.correct = right and bool(t.confirmed)
    t.wrong_confident = bool(t.named) and bool(t.confirmed) and not right
    t.outcome = smbisect_outcome(t.exit_code, t.named, t.confirmed, right)
    if t.runs is None and t.samples is not None:
        t.runs, t.runs_source = t.samples, "samples"
    return t


def load_jsonl(paths: Sequence[str]) -> list[CaseResult]:
    """Results saved with --jsonl, re-scored with the current rules."""
    out = []
    case_fields = Case.__dataclass_fields__
    tool_fields = ToolResult.__dataclass_fields__
    for path in paths:
        for line in Path(path).read_text().splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            if row.get("kind") == "changes":
                continue  # several planted changes: changes.py reads those
            case = Case(**{k: v for k, v in row["case"].items() if k in case_fields})
            r = CaseResult(case, row["culprit"], row["first_parent_culprit"], row["merges"])
            for name, raw in row["results"].items():
                t = ToolResult(**{k: v for k, v in raw.items() if k in tool_fields})
                if name == "smbisect":
                    t.tool = "smbisect"
                r.results[name] = rescore(t, r.culprit)
            out.append(r)
    return out
