"""Several planted changes in one history (issue 9): the plan, the cases, scoring and saved rows.

`--changes 1.5,2` plants a 1.5x change at one commit and a 2x change at a later one (later in
creation order: on a linear history a descendant; with merges possibly on another branch).
`--changes 2,0.7` plants a slowdown, then a speedup that hides part of it. Pure: no git, no
processes (changes_run.py writes the repositories and runs smbisect).

A run is right when smbisect exits 0 and names and confirms every planted change it must find,
and confirms no other commit. A slowdown must always be found. A speedup must be found when
smbisect bisects it: with --improvements among the smbisect arguments, or when it hides a
regression (a planted slowdown larger than the whole net change by more than the threshold,
`waterfall.hides_regression`, which is the case of 2x then 0.7x). A speedup it only reports
may be confirmed or not; either way the run can be right. Wrong-and-confirmed is any confirmed
commit that is not a planted change, whatever else happened.
"""

from __future__ import annotations

import json
import math
import random
import shlex
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .history import Node, Plan, ancestors, plan_history
from .scoring import (
    ERROR,
    EXIT_CONFIRMED,
    INCONCLUSIVE,
    NO_REGRESSION,
    UNCONFIRMED,
    WRONG,
    smbisect_outcome,
)

MAX_CHANGES = 3  # smbisect's --max-culprits default: more would be left unattributed by design
MIN_NET = 1.1  # the product of the factors: bad must be at least this much slower than good
DEFAULT_THRESHOLD = 1.05  # smbisect's default --threshold (policy.MIN_EFFECT)

ALL_RIGHT = "all named+confirmed"
INCOMPLETE = "incomplete"  # some planted changes confirmed, not all needed (or exit != 0)
CHANGE_OUTCOMES = (ALL_RIGHT, WRONG, INCOMPLETE, UNCONFIRMED, NO_REGRESSION, INCONCLUSIVE, ERROR)


def parse_changes(text: str) -> tuple[float, ...]:
    """`1.5,2` -> (1.5, 2.0): the factors of the planted changes, oldest first. Raises
    ValueError with a one-line message for anything the grid cannot plant."""
    try:
        factors = tuple(float(x.strip().rstrip("x")) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a list of factors such as 1.5,2") from None
    if not 2 <= len(factors) <= MAX_CHANGES:
        raise ValueError(f"{text!r}: give 2 to {MAX_CHANGES} factors, oldest change first")
    if any(not math.isfinite(f) or f <= 0 or abs(f - 1.0) < 0.01 for f in factors):
        raise ValueError(f"{text!r}: every factor must be positive and not 1")
    if math.prod(factors) < MIN_NET:
        raise ValueError(
            f"{text!r}: the changes together must slow the benchmark down by at least "
            f"{MIN_NET:g}x, or there is no regression between good and bad to bisect"
        )
    return factors


def changes_label(factors: Sequence[float]) -> str:
    return " then ".join(f"{f:g}x" for f in factors)


def threshold_of(smbisect_args: str) -> float:
    """The --threshold factor among the extra smbisect arguments, else smbisect's default."""
    try:
        argv = shlex.split(smbisect_args)
    except ValueError:
        return DEFAULT_THRESHOLD
    for i, arg in enumerate(argv):
        value = None
        if arg == "--threshold" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--threshold="):
            value = arg.split("=", 1)[1]
        if value is not None:
            try:
                return float(value)
            except ValueError:
                return DEFAULT_THRESHOLD
    return DEFAULT_THRESHOLD


def required(factors: Sequence[float], smbisect_args: str = "") -> tuple[bool, ...]:
    """Which planted changes a right run must name and confirm: every slowdown, and a speedup
    when smbisect bisects it (--improvements, or it hides a regression: the largest planted
    slowdown exceeds the net change by more than the threshold, in logs)."""
    try:
        improvements = "--improvements" in shlex.split(smbisect_args)
    except ValueError:
        improvements = False
    net = math.log(math.prod(factors))
    worst = max((math.log(f) for f in factors if f > 1), default=0.0)
    hides = worst > net + math.log(threshold_of(smbisect_args))
    return tuple(f > 1 or improvements or hides for f in factors)


# ---------------------------------------------------------------------------------------------
# Plan and cases
# ---------------------------------------------------------------------------------------------


def plan_changes(length: int, shape: str, rng: random.Random, count: int) -> tuple[Plan, list[int]]:
    """A history as plan_history's, with `count` planted changes at distinct non-merge commits
    (never the first after good), returned in creation order: the first factor goes to the
    oldest. `Plan.culprit` is the oldest change."""
    plan = plan_history(length, shape, rng)
    eligible = [n.id for n in plan.nodes if n.kind in ("change", "culprit") and n.id != 2]
    if len(eligible) < count:
        raise ValueError(f"a history of {length} commits has room for fewer than {count} changes")
    chosen = sorted(rng.sample(eligible, count))
    nodes = tuple(
        Node(n.id, n.parents, n.branch, "culprit" if n.id in chosen else "change")
        if n.kind in ("change", "culprit")
        else n
        for n in plan.nodes
    )
    return replace(plan, nodes=nodes, culprit=chosen[0]), chosen


def sub_ranges(plan: Plan, planted: Sequence[int]) -> tuple[int, int]:
    """N1: the commits from good (excluded) to the oldest change (included); N2: the rest."""
    n1 = len(ancestors(plan, planted[0]) - ancestors(plan, plan.good))
    return n1, max(1, len(plan.range_ids) - n1)


def commits_target(n1: int, n2: int) -> int:
    """Issue 9's ceiling on the commits measured: ceil(log2 N1) + ceil(log2 N2) + 8."""
    return math.ceil(math.log2(max(2, n1))) + math.ceil(math.log2(max(2, n2))) + 8


@dataclass(frozen=True)
class ChangesCase:
    """One trial with several planted changes. The first six fields define the repository."""

    length: int
    shape: str
    factors: tuple[float, ...]
    noise: float
    trial: int
    seed: int
    load: str = "none"
    workload: str = "python"
    mode: str = "asv"
    smbisect_args: str = ""

    @property
    def setup(self) -> str:
        text = f"{self.mode}/{self.workload}"
        return f"{text} {self.smbisect_args}" if self.smbisect_args else text

    @property
    def group(self) -> tuple[int, str, tuple[float, ...], float, str, str]:
        return (self.length, self.shape, self.factors, self.noise, self.load, self.setup)

    @property
    def label(self) -> str:
        text = (
            f"N={self.length} {self.shape} {changes_label(self.factors)} noise={self.noise:g} "
            f"trial={self.trial} seed={self.seed}"
        )
        if self.workload != "python":
            text += f" workload={self.workload}"
        if self.load != "none":
            text += f" load={self.load}"
        if self.mode != "asv":
            text += f" mode={self.mode}"
        return text + (f" smbisect-args={self.smbisect_args!r}" if self.smbisect_args else "")


def changes_seed(base_seed: int, length: int, shape: str, factors: Sequence[float], noise: float,
                 trial: int) -> int:  # fmt: skip
    key = f"{base_seed}:changes:{length}:{shape}:{','.join(f'{f:g}' for f in factors)}:{noise:g}"
    return random.Random(f"{key}:{trial}").randrange(1, 2**31)


def build_changes_cases(
    lengths: Sequence[int],
    shapes: Sequence[str],
    factor_sets: Sequence[tuple[float, ...]],
    noises: Sequence[float],
    trials: int,
    base_seed: int,
    **how: str,
) -> list[ChangesCase]:
    """Trial-major order, so an interrupted run still covers every group at least once."""
    cases = []
    for trial in range(trials):
        for length in lengths:
            for shape in shapes:
                for factors in factor_sets:
                    for noise in noises:
                        seed = changes_seed(base_seed, length, shape, factors, noise, trial)
                        cases.append(
                            ChangesCase(length, shape, tuple(factors), noise, trial, seed, **how)
                        )
    return cases


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


@dataclass
class ChangesResult:
    """What smbisect answered on one case with several planted changes."""

    planted: list[str]  # the planted commits, oldest first
    needed: list[bool]  # which of them a right run must name and confirm
    exit_code: int | None
    outcome: str  # one of CHANGE_OUTCOMES
    named: list[str] = field(default_factory=list)  # every commit in `culprits`
    confirmed: list[str] = field(default_factory=list)  # the confirmed ones
    wrong: list[str] = field(default_factory=list)  # confirmed, not planted
    commits_measured: int = 0
    runs: int | None = None
    n1: int = 0
    n2: int = 0
    target: int = 0
    wall: float = 0.0
    error: str | None = None
    # for reading a failed trial without the repository: the JSON's own account
    culprits: list[dict[str, Any]] = field(default_factory=list)
    waterfall: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def right(self) -> bool:
        return self.outcome == ALL_RIGHT

    @property
    def within_target(self) -> bool:
        return self.commits_measured <= self.target


_KEPT = ("benchmark", "sha", "kind", "ratio", "ci", "confirmed", "share", "segment", "primary")


def score_changes(
    data: dict[str, Any] | None,
    exit_code: int | None,
    planted: Sequence[str],
    needed: Sequence[bool],
    n1: int,
    n2: int,
    wall: float,
) -> ChangesResult:
    """Score smbisect's --json output against the planted changes (module docstring)."""
    result = ChangesResult(list(planted), list(needed), exit_code, ERROR, n1=n1, n2=n2, wall=wall)
    result.target = commits_target(n1, n2)
    if not data:
        result.outcome = smbisect_outcome(exit_code, None, None, False)
        result.error = f"exit {exit_code}, no JSON"
        return result
    entries = [c for c in data.get("culprits", []) if isinstance(c, dict)]
    result.named = [str(c["sha"]) for c in entries if c.get("sha")]
    result.confirmed = [str(c["sha"]) for c in entries if c.get("sha") and c.get("confirmed")]
    result.wrong = [sha for sha in result.confirmed if sha not in planted]
    steps = data.get("steps", [])
    result.commits_measured = sum(1 for s in steps if any((s.get("samples") or {}).values()))
    runs = data.get("runs")
    total = runs.get("total") if isinstance(runs, dict) else None
    result.runs = total if isinstance(total, int) and not isinstance(total, bool) else None
    result.culprits = [{k: c.get(k) for k in _KEPT} for c in entries]
    result.waterfall = list(data.get("waterfall") or [])
    result.notes = sorted({n for c in entries for n in (c.get("notes") or [])})
    must = {sha for sha, need in zip(planted, needed, strict=True) if need}
    found = set(result.confirmed) & set(planted)
    if result.wrong:
        result.outcome = WRONG
    elif exit_code == EXIT_CONFIRMED and must <= found:
        result.outcome = ALL_RIGHT
    elif found:
        result.outcome = INCOMPLETE
    else:
        result.outcome = smbisect_outcome(exit_code, None, None, False)
    return result


# ---------------------------------------------------------------------------------------------
# Saved results (--jsonl)
# ---------------------------------------------------------------------------------------------


@dataclass
class ChangesCaseResult:
    case: ChangesCase
    result: ChangesResult | None  # None: smbisect was not run


def changes_row(r: ChangesCaseResult) -> dict[str, Any]:
    """One --jsonl line; `kind` tells it from the single-culprit lines."""
    return {
        "kind": "changes",
        "case": asdict(r.case),
        "smbisect": asdict(r.result) if r.result else None,
    }


def is_changes_row(row: dict[str, Any]) -> bool:
    return row.get("kind") == "changes"


def from_row(row: dict[str, Any]) -> ChangesCaseResult:
    raw_case = dict(row["case"])
    raw_case["factors"] = tuple(raw_case["factors"])
    known = ChangesCase.__dataclass_fields__
    case = ChangesCase(**{k: v for k, v in raw_case.items() if k in known})
    raw = row.get("smbisect")
    if raw is None:
        return ChangesCaseResult(case, None)
    fields = ChangesResult.__dataclass_fields__
    return ChangesCaseResult(case, ChangesResult(**{k: v for k, v in raw.items() if k in fields}))


def read_rows(paths: Sequence[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The lines of saved --jsonl files, split into single-culprit rows and several-change
    rows."""
    single, several = [], []
    for path in paths:
        for line in Path(path).read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                (several if is_changes_row(row) else single).append(row)
    return single, several
