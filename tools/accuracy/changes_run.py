"""Several planted changes (`--changes`): the repositories, the runs of smbisect, the tables.

Every case is a generated repository as in history.py, in which each planted change multiplies
the workload constant by its factor, and every commit's constant is the product of the changes
it contains (a merge: of both sides). Only smbisect is run: `asv find` names one commit, so it
has no answer to compare here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from tabulate import tabulate

from .changes import (
    CHANGE_OUTCOMES,
    ChangesCase,
    ChangesCaseResult,
    build_changes_cases,
    changes_label,
    changes_row,
    plan_changes,
    required,
    score_changes,
    sub_ranges,
)
from .history import SHAPES, GeneratedRepo, write_repo
from .run import SmbisectSettings, ensure_asv_machine, load_context, run_smbisect
from .scoring import WRONG, rate_with_interval


@dataclass(frozen=True)
class ChangesRepo:
    repo: GeneratedRepo
    planted: list[str]  # shas, oldest first
    n1: int
    n2: int


def make_changes_repo(case: ChangesCase, path: Path) -> ChangesRepo:
    rng = random.Random(case.seed)
    plan, ids = plan_changes(case.length, case.shape, rng, len(case.factors))
    factors = dict(zip(ids, case.factors, strict=True))
    repo = write_repo(
        path, plan, 1.0, case.noise, case.seed, case.label, case.workload, changes=factors
    )
    n1, n2 = sub_ranges(plan, ids)
    return ChangesRepo(repo, [repo.shas[i] for i in ids], n1, n2)


def run_case(
    case: ChangesCase, work: Path, timeout: float, settings: SmbisectSettings, load_workers: int
) -> ChangesCaseResult:
    built = make_changes_repo(case, work / "repo")
    with load_context(case.load, case.seed, load_workers):
        tool = run_smbisect(built.repo, work, timeout, settings)
    out = work / "smbisect.json"
    try:
        data = json.loads(out.read_text()) if out.is_file() else None
    except ValueError:
        data = None
    needed = required(case.factors, case.smbisect_args)
    result = score_changes(
        data, tool.exit_code, built.planted, needed, built.n1, built.n2, tool.wall
    )
    result.error = result.error or tool.error
    return ChangesCaseResult(case, result)


def case_line(r: ChangesCaseResult) -> str:
    t = r.result
    if t is None:
        return f"{r.case.label}: not run"
    planted = ",".join(s[:10] for s in t.planted)
    confirmed = ",".join(s[:10] for s in t.confirmed) or "-"
    return (
        f"{r.case.label} planted={planted} | smbisect: {t.outcome} confirmed={confirmed} "
        f"exit={t.exit_code} commits={t.commits_measured}/{t.target} runs={t.runs} "
        f"wall={t.wall:.1f}s" + (f" error={t.error}" if t.error else "")
    )


def run_changes(
    cases: Sequence[ChangesCase],
    root: Path,
    timeout: float,
    settings: SmbisectSettings,
    load_workers: int,
    keep: bool,
    jsonl: str | None,
) -> list[ChangesCaseResult]:
    results = []
    for i, case in enumerate(cases, 1):
        work = root / f"case-{i:03d}"
        r = run_case(case, work, timeout, settings, load_workers)
        results.append(r)
        print(f"[{i}/{len(cases)}] {case_line(r)}", file=sys.stderr, flush=True)
        if jsonl:
            with open(jsonl, "a") as fh:
                fh.write(json.dumps(changes_row(r)) + "\n")
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return results


# ---------------------------------------------------------------------------------------------
# Tables (pure)
# ---------------------------------------------------------------------------------------------

HEADERS = [
    "N",
    "shape",
    "changes",
    "noise",
    "load",
    "setup",
    "trials",
    "all named+confirmed",
    "wrong+confirmed",
    "incomplete",
    "unconfirmed",
    "no regression",
    "inconclusive",
    "error",
    "commits within target",
    "mean commits",
    "mean target",
    "mean runs",
    "mean wall s",
    "exit codes",
]

SUMMARY_HEADERS = [
    "changes",
    "noise",
    "load",
    "setup",
    "cases",
    "all named+confirmed",
    "wrong+confirmed",
    "commits within target",
]


def _groups(
    rs: Iterable[ChangesCaseResult], key: Callable[[ChangesCaseResult], Any]
) -> dict[Any, list[ChangesCaseResult]]:
    out: dict[Any, list[ChangesCaseResult]] = {}
    for r in rs:
        if r.result is not None:
            out.setdefault(key(r), []).append(r)
    return out


def _mean(values: Iterable[float | int | None], fmt: str = "{:.1f}") -> str:
    vals = [float(v) for v in values if v is not None]
    return fmt.format(statistics.fmean(vals)) if vals else "-"


def _count(rs: Sequence[ChangesCaseResult], outcome: str) -> str:
    return f"{sum(1 for r in rs if r.result and r.result.outcome == outcome)}/{len(rs)}"


def _interval(rs: Sequence[ChangesCaseResult], test: Callable[[ChangesCaseResult], bool]) -> str:
    return rate_with_interval(sum(1 for r in rs if test(r)), len(rs))


def _right(r: ChangesCaseResult) -> bool:
    return bool(r.result and r.result.right)


def _wrong(r: ChangesCaseResult) -> bool:
    return bool(r.result and r.result.outcome == WRONG)


def _within(r: ChangesCaseResult) -> bool:
    return bool(r.result and r.result.within_target)


def aggregate(results: Sequence[ChangesCaseResult]) -> list[list[Any]]:
    groups = _groups(results, lambda r: r.case.group)
    rows = []
    for key in sorted(groups, key=lambda k: (k[0], SHAPES.index(k[1]), k[2], k[3], k[4], k[5])):
        rs = groups[key]
        ts = [r.result for r in rs if r.result is not None]
        length, shape, factors, noise, load, setup = key
        exits: dict[int | None, int] = {}
        for t in ts:
            exits[t.exit_code] = exits.get(t.exit_code, 0) + 1
        rows.append(
            [
                length,
                shape,
                changes_label(factors),
                f"{noise * 100:g}%",
                load,
                setup,
                len(rs),
                _interval(rs, _right),
                _interval(rs, _wrong),
                *(_count(rs, o) for o in CHANGE_OUTCOMES[2:]),
                _interval(rs, _within),
                _mean(t.commits_measured for t in ts),
                _mean(t.target for t in ts),
                _mean((t.runs for t in ts), "{:.0f}"),
                _mean(t.wall for t in ts),
                " ".join(f"{k}:{v}" for k, v in sorted(exits.items(), key=lambda kv: str(kv[0]))),
            ]
        )
    return rows


def summarize(results: Sequence[ChangesCaseResult]) -> list[list[Any]]:
    groups = _groups(results, lambda r: (r.case.factors, r.case.noise, r.case.load, r.case.setup))
    rows = []
    for key in sorted(groups):
        rs = groups[key]
        factors, noise, load, setup = key
        rows.append(
            [
                changes_label(factors),
                f"{noise * 100:g}%",
                load,
                setup,
                len(rs),
                _interval(rs, _right),
                _interval(rs, _wrong),
                _interval(rs, _within),
            ]
        )
    return rows


def failures(results: Sequence[ChangesCaseResult]) -> list[str]:
    """One line per case that was not right: what smbisect confirmed, and its waterfall."""
    out = []
    for r in results:
        t = r.result
        if t is None or t.right:
            continue
        got = []
        for c in t.culprits:
            sha = str(c.get("sha") or "-")[:10]
            if not c.get("sha"):
                tag = "no commit named"
            else:
                tag = "planted" if c.get("sha") in t.planted else "NOT planted"
            state = "confirmed" if c.get("confirmed") else "unconfirmed"
            ratio = c.get("ratio")
            got.append(
                f"{sha} {c.get('kind')} {ratio:.3g}x {state} ({tag})"
                if isinstance(ratio, float)
                else f"{sha} {c.get('kind')} {state} ({tag})"
            )
        residual = next(
            (w.get("residual", {}).get("ratio") for w in t.waterfall if w.get("residual")), None
        )
        missing = [s[:10] for s, need in zip(t.planted, t.needed, strict=True)
                   if need and s not in t.confirmed]  # fmt: skip
        line = (
            f"- seed {r.case.seed} ({r.case.shape}, {changes_label(r.case.factors)}, "
            f"{r.case.noise * 100:g}%): {t.outcome}, exit {t.exit_code}; "
            f"missing {', '.join(missing) or '-'}; culprits: {'; '.join(got) or 'none'}"
        )
        if isinstance(residual, float):
            line += f"; residual {residual:.3g}x"
        if t.error:
            line += f"; error: {t.error}"
        out.append(line)
    return out


def render_changes_report(results: Sequence[ChangesCaseResult], fmt: str = "github") -> str:
    table = tabulate(aggregate(results), headers=HEADERS, tablefmt=fmt, disable_numparse=True)
    summary = tabulate(
        summarize(results), headers=SUMMARY_HEADERS, tablefmt=fmt, disable_numparse=True
    )
    text = (
        "Per grid point (rates with Wilson 95% intervals; right = exit 0, every planted change "
        "it must find named and confirmed, nothing else confirmed):\n\n"
        f"{table}\n\nOverall, per changes, noise and load:\n\n{summary}"
    )
    missed = failures(results)
    if missed:
        text += "\n\nCases not right:\n\n" + "\n".join(missed)
    return text


# ---------------------------------------------------------------------------------------------
# The command line's --changes grid
# ---------------------------------------------------------------------------------------------


def run_changes_grid(
    args: argparse.Namespace, command: str, version: str, machine: str, setup: str
) -> int:
    """Build the cases of the --changes grid, run smbisect on each, print (and append) the
    tables. asv find is not run: it names one commit."""
    cases = build_changes_cases(
        args.length_list,
        args.shape_list,
        args.changes_list,
        args.noise_list,
        args.trials,
        args.seed,
        load=args.load,
        workload=args.workload,
        mode=args.mode,
        smbisect_args=args.smbisect_args,
    )
    if "asv-find" in args.tool_list:
        print("--changes: asv find names one commit, so only smbisect is run", file=sys.stderr)
    if "smbisect" not in args.tool_list:
        print("error: --changes needs smbisect among --tools", file=sys.stderr)
        return 2
    print(f"{len(cases)} cases; {machine}; smbisect {version}; {setup}", file=sys.stderr)
    if args.mode == "asv":
        ensure_asv_machine()
    settings = SmbisectSettings(args.mode, args.cmd_metric, tuple(args.smbisect_argv))
    started = time.perf_counter()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bisect-accuracy-"))
    root.mkdir(parents=True, exist_ok=True)
    previous = signal.signal(signal.SIGTERM, _raise_exit)
    try:
        results = run_changes(
            cases, root, args.timeout, settings, args.load_workers, bool(args.keep), args.jsonl
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    elapsed = time.perf_counter() - started
    report = render_changes_report(results)
    print(report)
    print(f"\n{len(results)} cases in {elapsed:.0f} s", file=sys.stderr)
    if args.markdown:
        stamp = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        with open(args.markdown, "a") as fh:
            fh.write(
                f"\n### `{command}`\n\n{stamp}; {machine}; smbisect {version} at start; "
                f"{setup}; {len(results)} cases in {elapsed:.0f} s.\n\n{report}\n"
            )
    return 0


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    """SIGTERM becomes SystemExit, so temporary files are removed."""
    raise SystemExit(128 + signum)
