"""The command line of tools/bisect_accuracy.py: build the cases, run them, print the tables."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from .changes import from_row, parse_changes, read_rows
from .changes_run import render_changes_report, run_changes_grid
from .history import LOADS, MODES, SHAPES, WORKLOADS, build_cases, git, make_case_repo
from .run import (
    SmbisectSettings,
    asv_find_config,
    asv_setup,
    ensure_asv_machine,
    load_context,
    run_asv_find,
    run_smbisect,
)
from .scoring import CaseResult, load_jsonl, result_row
from .tables import render_report

TOOLS = ("smbisect", "asv-find")
CMD_METRICS = ("stdout", "time", "cputime", "instructions")
PROJECT = Path(__file__).resolve().parents[2]


def machine_info() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.node()}: {platform.system()} {platform.release()}, {cpu}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
    )


def smbisect_version() -> str:
    """The smbisect code that runs: HEAD of this checkout, and whether bisect_tool/ differs."""
    try:
        head = git(PROJECT, "rev-parse", "--short=10", "HEAD").strip()
        dirty = git(PROJECT, "status", "--porcelain", "--", "bisect_tool").strip()
    except (RuntimeError, OSError):
        return "unknown"
    return f"{head}{' + uncommitted changes in bisect_tool/' if dirty else ''}"


def case_line(r: CaseResult) -> str:
    parts = [f"{r.case.label} culprit={r.culprit[:10]}"]
    for name, t in r.results.items():
        verdict = "ok" if t.correct else ("WRONG" if t.named else "none")
        extra = f" confirmed={t.confirmed}" if t.confirmed is not None else ""
        extra += f" outcome={t.outcome}" if t.outcome else ""
        extra += f" runs={t.runs}" if t.runs is not None and t.runs_source == "runs.total" else ""
        parts.append(
            f"{name}: {verdict} named={(t.named or '-')[:10]}{extra} exit={t.exit_code} "
            f"commits={t.commits_measured} samples={t.samples} wall={t.wall:.1f}s"
            + (f" error={t.error}" if t.error else "")
        )
    return " | ".join(parts)


def _floats(text: str) -> list[float]:
    return [float(x.rstrip("x%")) / (100.0 if x.endswith("%") else 1.0) for x in _items(text)]


def _items(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python tools/bisect_accuracy.py",
        description="Measure smbisect's accuracy and cost against asv find on generated "
        "histories with one planted slowdown.",
    )
    p.add_argument("--quick", action="store_true", help="Small subset, under 5 minutes.")
    p.add_argument("--trials", type=int, default=3, help="Trials per grid point (default 3).")
    p.add_argument("--lengths", default="32,256,1024", help="History lengths (commits).")
    p.add_argument("--shapes", default="linear,merges", help="linear and/or merges.")
    p.add_argument("--slowdowns", default="1.1,1.3,3", help="Slowdown factors, e.g. 1.3,3.")
    p.add_argument(
        "--noise", default="0,0.05,0.15", help="Relative jitter, e.g. 0,0.05,0.15 or 5%%,15%%."
    )
    p.add_argument("--tools", default="smbisect,asv-find", help="smbisect and/or asv-find.")
    p.add_argument(
        "--asv-find-max-length",
        type=int,
        default=None,
        help="Run asv find only on histories at most this long.",
    )
    p.add_argument(
        "--asv-find-trials",
        type=int,
        default=None,
        help="Run asv find only on the first K trials of each grid point.",
    )
    p.add_argument(
        "--load",
        nargs="?",
        const="bursty",
        default="none",
        choices=LOADS,
        help="A competing CPU load during each tool run: `--load` alone is `bursty`, "
        "worker processes alternating busy bursts and idle gaps of 0.2-2 s (default none).",
    )
    p.add_argument(
        "--load-workers",
        type=int,
        default=2,
        help="Worker processes of the load (default 2, one per core of a 2-core machine).",
    )
    p.add_argument(
        "--workload",
        default="python",
        choices=WORKLOADS,
        help="What the measured acc.work() does: a pure-Python loop or numpy matmuls.",
    )
    p.add_argument(
        "--cmd-mode",
        action="store_true",
        help='Run smbisect in command mode, --cmd "python bench.py", instead of on the asv '
        "suite with --bench time_work.",
    )
    p.add_argument(
        "--cmd-metric",
        default="stdout",
        choices=CMD_METRICS,
        help="With --cmd-mode: the time bench.py prints for one work() call (default), the "
        "wall or CPU time of the whole process (interpreter start-up included), or its "
        "instructions under valgrind (use --noise 0: the injected jitter changes the work).",
    )
    p.add_argument(
        "--smbisect-args",
        default="",
        metavar="ARGS",
        help='Extra arguments for smbisect, split like a shell would, e.g. "--timeout 60".',
    )
    p.add_argument(
        "--changes",
        action="append",
        default=[],
        metavar="F1,F2",
        help="Plant several changes instead of one slowdown: factors oldest first, e.g. 1.5,2 "
        "(a 1.5x slowdown, then a 2x one) or 2,0.7 (a slowdown, then a speedup); repeat for a "
        "grid. Runs smbisect only; --slowdowns is ignored.",
    )
    p.add_argument("--seed", type=int, default=20240601, help="Base seed.")
    p.add_argument("--markdown", metavar="FILE", help="Append the tables to this Markdown file.")
    p.add_argument("--jsonl", metavar="FILE", help="Append one JSON line per case here.")
    p.add_argument("--timeout", type=float, default=1800.0, help="Per tool run, seconds.")
    p.add_argument("--keep", metavar="DIR", help="Build the repositories here and keep them.")
    p.add_argument(
        "--from-jsonl",
        metavar="FILE[,FILE]",
        help="Run nothing: print the tables of results saved earlier with --jsonl.",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.lengths, args.shapes, args.slowdowns, args.noise = "32,256", "linear", "1.3,3", "0.05"
        args.trials = 1
        if args.asv_find_max_length is None:
            args.asv_find_max_length = 32
    args.length_list = [int(x) for x in _items(args.lengths)]
    args.shape_list = _items(args.shapes)
    args.slowdown_list = _floats(args.slowdowns)
    args.noise_list = _floats(args.noise)
    args.tool_list = _items(args.tools)
    args.mode = MODES[1] if args.cmd_mode else MODES[0]
    try:
        args.smbisect_argv = shlex.split(args.smbisect_args)
    except ValueError as exc:
        p.error(f"--smbisect-args cannot be split into arguments: {exc}")
    try:
        args.changes_list = [parse_changes(text) for text in args.changes]
    except ValueError as exc:
        p.error(f"--changes {exc}")
    for s in args.shape_list:
        if s not in SHAPES:
            p.error(f"--shapes: unknown shape {s!r} (use {', '.join(SHAPES)})")
    for t in args.tool_list:
        if t not in TOOLS:
            p.error(f"--tools: unknown tool {t!r} (use {', '.join(TOOLS)})")
    if any(x < 2 for x in args.length_list):
        p.error("--lengths must be at least 2")
    if any(x <= 1.0 for x in args.slowdown_list):
        p.error("--slowdowns must be above 1")
    if args.load_workers < 1:
        p.error("--load-workers must be at least 1")
    return args


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    """SIGTERM becomes SystemExit, so the load is stopped and temporary files removed."""
    raise SystemExit(128 + signum)


def setup_line(args: argparse.Namespace) -> str:
    """How this run measures, for the headings."""
    parts = [f"load: {args.load}"]
    if args.load != "none":
        parts[0] += f" ({args.load_workers} workers)"
    mode = "asv mode (--bench time_work)"
    if args.mode == "cmd":
        mode = f"command mode (--cmd bench.py, --metric {args.cmd_metric})"
    parts += [f"smbisect in {mode}", f"workload: {args.workload}"]
    if args.smbisect_args:
        parts.append(f"smbisect args: `{args.smbisect_args}`")
    return "; ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_jsonl:
        paths = _items(args.from_jsonl)
        single, several = read_rows(paths)
        parts = [render_report(load_jsonl(paths))] if single or not several else []
        if several:
            parts.append(render_changes_report([from_row(row) for row in several]))
        print("\n\n".join(parts))
        return 0
    given = list(sys.argv[1:] if argv is None else argv)
    command = shlex.join(["python", "tools/bisect_accuracy.py", *given])
    if args.changes_list:
        heading = (command, smbisect_version(), machine_info(), setup_line(args))
        return run_changes_grid(args, *heading)
    cases = build_cases(
        args.length_list,
        args.shape_list,
        args.slowdown_list,
        args.noise_list,
        args.trials,
        args.seed,
        load=args.load,
        workload=args.workload,
        mode=args.mode,
        smbisect_args=args.smbisect_args,
    )
    settings = SmbisectSettings(args.mode, args.cmd_metric, tuple(args.smbisect_argv))
    started = time.perf_counter()
    version = smbisect_version()
    setup = setup_line(args)
    print(
        f"{len(cases)} cases; {machine_info()}; smbisect {version}; {setup}",
        file=sys.stderr,
        flush=True,
    )
    if "asv-find" in args.tool_list or args.mode == "asv":
        ensure_asv_machine()
    results: list[CaseResult] = []
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bisect-accuracy-"))
    root.mkdir(parents=True, exist_ok=True)
    env_dir = root / "asv-env"
    env_ready = False
    previous = signal.signal(signal.SIGTERM, _raise_exit)
    try:
        for i, case in enumerate(cases, 1):
            work = root / f"case-{i:03d}"
            repo = make_case_repo(case, work / "repo")
            result = CaseResult(case, repo.culprit, repo.first_parent_culprit, repo.merges)
            if "smbisect" in args.tool_list:
                with load_context(case.load, case.seed, args.load_workers):
                    result.results["smbisect"] = run_smbisect(repo, work, args.timeout, settings)
            want_asv = (
                "asv-find" in args.tool_list
                and (args.asv_find_max_length is None or case.length <= args.asv_find_max_length)
                and (args.asv_find_trials is None or case.trial < args.asv_find_trials)
            )
            if want_asv:
                if not env_ready:
                    secs = asv_setup(asv_find_config(repo, work, env_dir), repo.path)
                    print(f"asv setup (virtualenv, once): {secs:.1f} s", file=sys.stderr)
                    env_ready = True
                with load_context(case.load, case.seed, args.load_workers):
                    result.results["asv-find"] = run_asv_find(repo, work, env_dir, args.timeout)
            results.append(result)
            print(f"[{i}/{len(cases)}] {case_line(result)}", file=sys.stderr, flush=True)
            if args.jsonl:
                with open(args.jsonl, "a") as fh:
                    fh.write(json.dumps(result_row(result)) + "\n")
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    elapsed = time.perf_counter() - started
    report = render_report(results)
    print(report)
    print(f"\n{len(results)} cases in {elapsed:.0f} s", file=sys.stderr)
    if args.markdown:
        stamp = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        with open(args.markdown, "a") as fh:
            fh.write(
                f"\n### `{command}`\n\n{stamp}; {machine_info()}; smbisect {version} at start; "
                f"{setup}; {len(results)} cases in {elapsed:.0f} s.\n\n{report}\n"
            )
    return 0
