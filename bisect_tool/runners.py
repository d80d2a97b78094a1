"""What every runner shares, and the command runner.

A runner measures one commit checked out in a worktree and returns every sample per benchmark
(a Batch), so the statistics can compare distributions instead of single timings. Benchmark
processes start through run_process: in their own process group, killed as a whole if we are
interrupted, so no benchmark outlives smbisect. The asv runner is in asv_measure.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import resource
import shlex
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from . import instructions, threads
from .errors import MeasurementFailed, UsageError

_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
SKIP_EXIT_CODE = 125  # git bisect run's "cannot test this commit"


@dataclass(frozen=True)
class BenchmarkSpec:
    """A benchmark as the user names it, and which direction is worse."""

    name: str
    unit: str = "seconds"
    worse_is_higher: bool | None = True  # None: either direction counts as the regression
    samples_per_round: int = 1  # how many samples one round (one process) yields
    kind: str = "time"  # asv type: time, peakmemory, memory, track; "command" for --cmd


@dataclass
class Batch:
    """What one measurement of one commit produced."""

    samples: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    setup_seconds: float = 0.0  # spent before measuring (a --build): not counted in the budget
    worker: str = ""  # the Dask worker that measured, when one did


class Runner(Protocol):
    settings_key: str
    machine: str

    def list_benchmarks(self) -> list[BenchmarkSpec]: ...

    def measure(self, worktree: Path, commit: str, names: Sequence[str], rounds: int) -> Batch: ...


@runtime_checkable
class ThreadSwitch(Protocol):
    """A runner that can start its benchmark processes with one thread per library (threads.py)."""

    def one_thread(self, force: bool = False) -> bool:
        """Switch; False when it cannot, already has, or (unless `force`) the environment sets
        any of the variables itself. Runs taken after it are stored apart (the settings key
        changes), so the two settings never mix."""
        ...


def may_switch(extra_env: dict[str, str], force: bool) -> bool:
    """Whether a runner may switch to one thread: not already switched, and (unless `force`)
    smbisect's own environment does not set any of the variables."""
    return not extra_env and (force or not threads.set_by_user(os.environ))


def with_one_thread(settings_key: str, extra_env: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The settings key and extra environment of a runner switched to one thread per library."""
    env = {**extra_env, **threads.one_thread()}
    return _digest(settings_key, "one thread", sorted(env.items())), env


@dataclass(frozen=True)
class ProcessResult:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    cpu_seconds: float = 0.0  # user + system CPU of the process tree (the children it waited for)


def run_process(
    argv: Sequence[str],
    cwd: Path,
    timeout: float | None,
    env: dict[str, str] | None = None,
    cancel: threading.Event | None = None,
) -> ProcessResult:
    """Run argv (never through a shell) in its own process group; kill the group on any exit.
    When `cancel` is set while it runs, the group is stopped and Cancelled raised."""
    start = time.perf_counter()
    cpu_before = _children_cpu()
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except FileNotFoundError:
        raise MeasurementFailed(f"command not found: {argv[0]}") from None
    except PermissionError:
        raise MeasurementFailed(f"command not executable: {argv[0]}") from None
    try:
        out, err = _communicate(proc, timeout, cancel)
    except subprocess.TimeoutExpired:
        stop_group(proc)
        raise MeasurementFailed(f"timed out after {timeout:g} s") from None
    except Cancelled:
        stop_group(proc, grace=0.5)
        raise
    except BaseException:
        stop_group(proc)
        raise
    seconds = time.perf_counter() - start
    return ProcessResult(proc.returncode, out, err, seconds, _children_cpu() - cpu_before)


class Cancelled(Exception):
    """A process stopped because its result is no longer wanted (a speculative build)."""


def _communicate(
    proc: subprocess.Popen[str], timeout: float | None, cancel: threading.Event | None
) -> tuple[str, str]:
    if cancel is None:
        return proc.communicate(timeout=timeout)
    deadline = None if timeout is None else time.perf_counter() + timeout
    while True:
        if cancel.is_set():
            raise Cancelled
        left = None if deadline is None else deadline - time.perf_counter()
        if left is not None and left <= 0:
            raise subprocess.TimeoutExpired(proc.args, timeout or 0)
        # communicate may be called again after it times out, losing no output
        with contextlib.suppress(subprocess.TimeoutExpired):
            return proc.communicate(timeout=0.2 if left is None else min(0.2, left))


def _children_cpu() -> float:
    """User + system CPU seconds of every child process that has been waited for so far.

    The delta around one command is its whole tree's CPU time, because a process's own
    waited-for children are added to its usage when it is waited for in turn. Only one
    command runs at a time, so nothing else is waited for in between."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def stop_group(proc: subprocess.Popen[str], grace: float = 3.0) -> None:
    """SIGINT first, so asv can stop the benchmark processes it put in groups of their own;
    then SIGKILL for whatever is left in the group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def last_number(text: str) -> float | None:
    found = _NUMBER.findall(text)
    return float(found[-1]) if found else None


def _tail(text: str, lines: int = 8) -> str:
    kept = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(kept[-lines:])


def machine_name() -> str:
    return socket.gethostname()


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


COMMAND_METRICS = ("time", "cputime", "stdout", *instructions.METRICS)


class CommandRunner:
    """Runs a user's command in the commit's worktree; each round is a separate process."""

    def __init__(
        self,
        command: str,
        metric: str = "time",
        timeout: float = 600.0,
        higher_is_better: bool = False,
    ) -> None:
        try:
            self.argv = shlex.split(command)
        except ValueError as exc:
            raise UsageError(f"--cmd cannot be split into arguments: {exc}") from None
        if not self.argv:
            raise UsageError("--cmd is empty")
        if metric not in COMMAND_METRICS:
            raise UsageError(
                f"--metric must be one of {', '.join(COMMAND_METRICS)}, not {metric!r}"
            )
        counting = metric in instructions.METRICS
        if counting and higher_is_better:
            raise UsageError(f"--higher-is-better does not apply to --metric {metric}")
        self.command = command
        self.metric = metric
        self.timeout = timeout
        self.higher_is_better = higher_is_better
        self.machine = machine_name()
        self.extra_env: dict[str, str] = {}  # on top of os.environ (--threads)
        if counting:
            # one clear line (exit 1) before anything is measured when valgrind is missing
            valgrind = instructions.find_valgrind(metric)
            counted_with = instructions.settings_key(metric, valgrind, os.environ)
            self.settings_key = _digest("cmd", self.argv, metric, timeout, counted_with)
        else:
            self.settings_key = _digest("cmd", self.argv, metric, timeout)

    def one_thread(self, force: bool = False) -> bool:
        """A counted command runs on one thread already (instructions.COUNTING_ENV)."""
        if self.metric in instructions.METRICS or not may_switch(self.extra_env, force):
            return False
        self.settings_key, self.extra_env = with_one_thread(self.settings_key, self.extra_env)
        return True

    def list_benchmarks(self) -> list[BenchmarkSpec]:
        if self.metric in instructions.METRICS:
            return [BenchmarkSpec(self.command, self.metric, True, 1, "command")]
        unit = "seconds" if self.metric in ("time", "cputime") else "value"
        return [BenchmarkSpec(self.command, unit, not self.higher_is_better, 1, "command")]

    def _run(self, worktree: Path) -> tuple[ProcessResult, float | None]:
        """One run; with a counting metric, under valgrind, with its count."""
        if self.metric not in instructions.METRICS:
            env = {**os.environ, **self.extra_env} if self.extra_env else None
            return run_process(self.argv, worktree, self.timeout, env), None
        start = time.perf_counter()
        counts, code, out, err = instructions.count(self.argv, worktree, self.metric, self.timeout)
        res = ProcessResult(code, out, err, time.perf_counter() - start)
        return res, counts.value(self.metric)

    def measure(self, worktree: Path, commit: str, names: Sequence[str], rounds: int) -> Batch:
        samples: list[float] = []
        for _ in range(rounds):
            res, counted = self._run(worktree)
            if res.returncode == SKIP_EXIT_CODE:
                raise MeasurementFailed("command exited 125 (skip this commit)", _tail(res.stderr))
            if res.returncode != 0:
                detail = _tail(res.stderr or res.stdout)
                last = detail.splitlines()[-1] if detail else ""
                raise MeasurementFailed(
                    f"command exited {res.returncode}: {last}".rstrip(": "), detail
                )
            if counted is not None:
                samples.append(counted)
            elif self.metric == "time":
                samples.append(res.seconds)
            elif self.metric == "cputime":
                samples.append(res.cpu_seconds)
            else:
                value = last_number(res.stdout)
                if value is None or not math.isfinite(value):
                    raise MeasurementFailed(
                        "command printed no number on stdout", _tail(res.stdout)
                    )
                samples.append(value)
        return Batch(samples={self.command: samples})
