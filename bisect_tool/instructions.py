"""Counting instructions (and estimated cycles) under valgrind: `--metric instructions|cycles`.

A command is run under cachegrind with `--trace-children=yes`; every process of its tree
writes its own counts file into a private directory (`cg.<pid>`), and the sample is the sum of
their `summary:` lines. The count does not depend on the machine's load, so one run per commit
decides and a second one confirms (see docs/instructions.md for what still varies, measured).

Made deterministic here, unless the user's environment already sets them:

- `PYTHONHASHSEED=0`: with a random hash seed, the same Python script varies by about 5% in
  instructions from run to run (string hashing decides dict and set probing).
- one thread for OpenBLAS, OpenMP, MKL, BLIS, numexpr, Accelerate: idle BLAS threads spin while
  they wait, and the instructions they spin for vary by 100% and more between runs.
- `PYTHONDONTWRITEBYTECODE=1`: a run that writes `__pycache__` would count differently from
  the next run that reads it.
- address space layout randomisation off (`setarch <arch> -R`, when it works here): with it,
  a process's count differs by some tens of instructions from run to run.

`--metric cycles` simulates a fixed cache (the same on every machine, so the numbers compare
across machines) and the branch predictor, and weights the events with `CYCLE_WEIGHTS`.

Also a small command line, to count a command by hand or to subtract an empty run:

    python -m bisect_tool.instructions [--cycles] [--baseline "python -c 'import numpy'"] -- CMD
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from . import threads
from .errors import EnvironmentProblem, MeasurementFailed

METRICS = ("instructions", "cycles")
DETERMINISTIC_UNITS = frozenset(METRICS)  # the unit a BenchmarkSpec gets for these metrics

INSTALL_HINT = "apt-get install valgrind"

# Set for the counted command unless its environment already sets them (a user can opt out,
# e.g. PYTHONHASHSEED=random).
COUNTING_ENV: dict[str, str] = {
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
    **threads.one_thread(),
}

# The simulated caches for --metric cycles: fixed, so that a count means the same on a laptop
# and on a CI runner (cachegrind would otherwise take the host's geometry). size,assoc,line.
CACHE_GEOMETRY = ("--I1=32768,8,64", "--D1=32768,8,64", "--LL=8388608,16,64")

# Estimated cycles = sum(weight * event). The weights are the rule of thumb of the valgrind
# manual (an L1 miss costs about 10 cycles, a last-level miss up to 200, a mispredicted branch
# 10 to 30), rounded as CodSpeed-like tools do: every instruction 1, every L1 miss (instruction
# read, data read, data write) 10 more, every last-level miss 100 more, every mispredicted
# conditional or indirect branch 10 more.
CYCLE_WEIGHTS: dict[str, int] = {
    "Ir": 1,
    "I1mr": 10,
    "D1mr": 10,
    "D1mw": 10,
    "ILmr": 100,
    "DLmr": 100,
    "DLmw": 100,
    "Bcm": 10,
    "Bim": 10,
}

# The floor on what counts as a regression for a deterministic metric (see min_effect).
COUNT_FLOOR = 1.001  # 0.1% of all instructions
# an asv benchmark's body alone (asv mode): a commit that does not touch it still moves its
# count a little, through the layout of the objects the import leaves behind: SmallMind's
# MatMul(256) body moved 0.24% at "metrics: add bits-per-character" (docs/instructions.md)
BODY_COUNT_FLOOR = 1.01
SPREAD_MULTIPLE = 10.0  # and at least this many times the measured spread per run
TIMING_FLOOR = 1.05  # policy.MIN_EFFECT: never stricter than for timings


class ValgrindMissing(EnvironmentProblem):
    """valgrind is not installed (exit 1, one line that says how to install it)."""


def missing_message(metric: str = "instructions") -> str:
    return (
        f"--metric {metric} needs valgrind, which is not installed "
        f"(Debian/Ubuntu: {INSTALL_HINT}; Fedora: dnf install valgrind)"
    )


def find_valgrind(metric: str = "instructions") -> str:
    """The valgrind executable, or ValgrindMissing with the line that says how to get it."""
    found = shutil.which("valgrind")
    if not found:
        raise ValgrindMissing(missing_message(metric))
    return found


@lru_cache(maxsize=8)
def valgrind_version(valgrind: str) -> str:
    """`valgrind-3.19.0`; part of the cache key, since counts differ between versions."""
    try:
        res = subprocess.run(
            [valgrind, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentProblem(f"cannot run {valgrind} --version: {exc}") from None
    if res.returncode != 0:
        raise EnvironmentProblem(
            f"{valgrind} --version failed: {(res.stderr or res.stdout).strip()[:200]}"
        )
    return res.stdout.strip()


def counting_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a counted command runs in: `base` (default: ours) plus COUNTING_ENV
    for every variable `base` does not set."""
    env = dict(os.environ if base is None else base)
    for key, value in COUNTING_ENV.items():
        env.setdefault(key, value)
    return env


@lru_cache(maxsize=1)
def fixed_layout_prefix() -> tuple[str, ...]:
    """`setarch <arch> -R`, which runs a command (and its children) without address space
    layout randomisation, when it works on this machine; else nothing. Where a benchmark's
    objects and libraries land moves a count by some tens of instructions (alignment, the
    interpreter's address-keyed caches). setarch is util-linux's; a container may forbid the
    personality call it makes, and then counts are taken with the layout random."""
    setarch = shutil.which("setarch")
    if not sys.platform.startswith("linux") or setarch is None:
        return ()
    prefix = (setarch, platform.machine(), "-R")
    try:
        res = subprocess.run(
            [*prefix, sys.executable, "-S", "-c", ""],
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return prefix if res.returncode == 0 else ()


def valgrind_argv(
    metric: str,
    out_dir: Path,
    command: Sequence[str],
    valgrind: str,
    prefix: Sequence[str] = (),
) -> list[str]:
    """The command line that counts `command` and its whole process tree into out_dir; run
    through `prefix` (fixed_layout_prefix) when given."""
    if metric not in METRICS:
        raise ValueError(f"not a counting metric: {metric!r}")
    argv = [
        *prefix,
        valgrind,
        "--tool=cachegrind",
        "--trace-children=yes",
        # every process its own file; valgrind's own messages go to files too, so the
        # command's stderr stays the command's
        f"--cachegrind-out-file={out_dir}/cg.%p",
        f"--log-file={out_dir}/vg.%p.log",
    ]
    if metric == "instructions":
        argv.append("--cache-sim=no")
    else:
        argv += ["--cache-sim=yes", "--branch-sim=yes", *CACHE_GEOMETRY]
    return [*argv, *command]


def parse_counts(text: str) -> dict[str, int]:
    """The totals of one cachegrind output file: its `events:` names and `summary:` numbers.
    Empty when the file has no summary (the process was killed before it could write one)."""
    events: list[str] = []
    summary: list[str] = []
    for line in text.splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith("summary:"):
            summary = line.split()[1:]
    if not events or not summary:
        return {}
    return {name: int(value) for name, value in zip(events, summary, strict=False)}


@dataclass(frozen=True)
class Counts:
    """The summed events of a process tree, and how many processes were counted."""

    events: dict[str, int]
    processes: int

    @property
    def instructions(self) -> int:
        return self.events.get("Ir", 0)

    @property
    def cycles(self) -> int:
        return estimated_cycles(self.events)

    def value(self, metric: str) -> float:
        return float(self.cycles if metric == "cycles" else self.instructions)


def collect(out_dir: Path) -> Counts:
    """Sum the counts files of every process of the tree."""
    total: dict[str, int] = {}
    processes = 0
    for path in sorted(out_dir.glob("cg.*")):
        counts = parse_counts(path.read_text(errors="replace"))
        if not counts:
            continue
        processes += 1
        for name, value in counts.items():
            total[name] = total.get(name, 0) + value
    return Counts(total, processes)


def valgrind_log_tail(out_dir: Path, lines: int = 5) -> str:
    """The last lines valgrind itself wrote (its errors), for a failure's detail."""
    kept: list[str] = []
    for path in sorted(out_dir.glob("vg.*.log")):
        kept += [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return "\n".join(kept[-lines:])


def estimated_cycles(events: Mapping[str, int]) -> int:
    """Instructions plus weighted cache misses and branch mispredictions (CYCLE_WEIGHTS)."""
    return sum(weight * events.get(name, 0) for name, weight in CYCLE_WEIGHTS.items())


def settings_key(metric: str, valgrind: str, env: Mapping[str, str]) -> list[str]:
    """What makes counts comparable: the tool, its options and the pinned environment."""
    pinned = [f"{k}={env.get(k, '')}" for k in sorted(COUNTING_ENV)]
    layout = "layout=fixed" if fixed_layout_prefix() else "layout=random"
    argv = valgrind_argv(metric, Path("."), [], "valgrind")
    return [valgrind_version(valgrind), *argv, *pinned, layout]


def count(
    command: Sequence[str],
    cwd: Path,
    metric: str = "instructions",
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[Counts, int, str, str]:
    """Count one run of `command` (never through a shell): (counts, exit code, stdout, stderr).

    The exit code is the command's own (cachegrind passes it through)."""
    from .runners import run_process  # runners imports this module

    valgrind = find_valgrind(metric)
    with tempfile.TemporaryDirectory(prefix="smbisect-cg-") as tmp:
        out_dir = Path(tmp)
        argv = valgrind_argv(metric, out_dir, command, valgrind, fixed_layout_prefix())
        res = run_process(argv, cwd, timeout, counting_env(env))
        counts = collect(out_dir)
        if not counts.processes:
            detail = valgrind_log_tail(out_dir) or res.stderr.strip()[-500:]
            last = detail.splitlines()[-1] if detail else "no output"
            raise MeasurementFailed(f"valgrind counted nothing (exit {res.returncode}): {last}")
    return counts, res.returncode, res.stdout, res.stderr


# -- the floor on what counts as a regression ----------------------------------------------------


def min_effect(
    sigma: float, floor: float = COUNT_FLOOR, multiple: float = SPREAD_MULTIPLE
) -> float:
    """The smallest factor that counts as a regression for a deterministic metric.

    `sigma` is the pooled spread per run in log units (policy.pooled_scale(...).sigma over the
    runs measured so far). The floor follows it: max(floor, exp(multiple * sigma)), but never
    above the timing floor (5%). For counts that repeat to 1e-6 this is the 0.1% floor, so a
    1.1x slowdown of a workload is found while the workload is at least about 1% of the
    instructions of the whole command (Python start-up and `import numpy` included). With an
    unknown spread (fewer than two runs anywhere) it is the timing floor.
    """
    if not math.isfinite(sigma) or sigma < 0:
        return TIMING_FLOOR
    return min(TIMING_FLOOR, max(floor, math.exp(multiple * sigma)))


def is_deterministic(unit: str) -> bool:
    """Is this a BenchmarkSpec unit whose runs repeat (nearly) exactly?"""
    return unit in DETERMINISTIC_UNITS


# -- a command line, to count by hand ------------------------------------------------------------


def _main(args: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bisect_tool.instructions",
        description="Count the instructions (or estimated cycles) of a command's process tree "
        "under valgrind, with the environment smbisect uses; print the count on stdout.",
    )
    parser.add_argument("--cycles", action="store_true", help="estimated cycles instead")
    parser.add_argument(
        "--baseline",
        metavar="COMMAND",
        help="also count this command (e.g. \"python -c 'import numpy'\") and print the "
        "difference: the command's count without start-up and imports",
    )
    parser.add_argument("--repeat", type=int, default=1, help="count this many times")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ...")
    ns = parser.parse_args(args)
    command = ns.command[1:] if ns.command[:1] == ["--"] else ns.command
    if not command:
        parser.error("no command given")
    metric = "cycles" if ns.cycles else "instructions"
    try:
        base = 0
        if ns.baseline:
            counted, code, _, err = count(shlex.split(ns.baseline), Path.cwd(), metric)
            if code != 0:
                print(f"baseline exited {code}: {err.strip()[-300:]}", file=sys.stderr)
                return code
            base = int(counted.value(metric))
        for _ in range(max(1, ns.repeat)):
            counted, code, _, err = count(command, Path.cwd(), metric)
            if code != 0:
                print(f"command exited {code}: {err.strip()[-300:]}", file=sys.stderr)
                return code
            print(int(counted.value(metric)) - base, flush=True)
            print(f"{counted.processes} process(es): {counted.events}", file=sys.stderr)
    except (EnvironmentProblem, MeasurementFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
