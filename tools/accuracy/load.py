"""A bursty competing CPU load, for measuring a tool on a machine that is not quiet.

`BurstyLoad` starts this file as a script: a controller process in a process group of its own,
which runs `workers` worker processes. Each worker alternates busy bursts (a CPU-bound loop)
with idle gaps, both of random length (0.2-2 s by default), from its own seeded generator, so
the workers overlap sometimes and sometimes not. On a 2-core machine, 2 workers leave the
measured process anything from a whole core to a third of one.

Stopping: `BurstyLoad.stop()` (also on leaving the `with` block, so on Ctrl-C and errors too)
sends the controller SIGTERM; it stops and reaps its workers and exits, and whatever is left
of the group is killed after a grace period. If the tool dies without stopping it (SIGKILL),
the controller notices within a tenth of a second that its parent changed (`os.getppid()`)
and stops; a worker whose controller died notices the same way.

This file imports nothing from its package, so that it can run as a plain script.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType, TracebackType

SCRIPT = Path(__file__).resolve()
POLL = 0.1  # seconds between checks of the parent while idle
BURST = (0.2, 2.0)
IDLE = (0.2, 2.0)


class BurstyLoad:
    """The competing load as a context manager: started on entry, stopped on exit."""

    def __init__(
        self,
        seed: int,
        workers: int = 2,
        burst: tuple[float, float] = BURST,
        idle: tuple[float, float] = IDLE,
    ) -> None:
        if workers < 1:
            raise ValueError("a load needs at least one worker")
        self.seed = seed
        self.workers = workers
        self.burst = burst
        self.idle = idle
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The controller's pid, which is also the process group id of the whole load."""
        return self.proc.pid if self.proc else None

    def start(self) -> BurstyLoad:
        if self.proc is not None:
            raise RuntimeError("the load is already running")
        argv = [
            sys.executable, str(SCRIPT), "--parent", str(os.getpid()),
            "--workers", str(self.workers), "--seed", str(self.seed),
            "--burst", f"{self.burst[0]},{self.burst[1]}",
            "--idle", f"{self.idle[0]},{self.idle[1]}",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own group: a terminal's Ctrl-C does not reach it
        )
        return self

    def stop(self, grace: float = 2.0) -> None:
        """Stop the controller and its workers; waits at most about `grace` + 1 seconds."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace)
        # whatever is left of the group (a worker that did not stop, or a stuck controller)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1.0)

    def __enter__(self) -> BurstyLoad:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def group_pids(pgid: int) -> list[int]:
    """The live (not zombie) processes of a process group, from /proc (Linux only)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may contain spaces, so split after the last ')'
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 3 and fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry.name))
    return sorted(found)


# ---------------------------------------------------------------------------------------------
# The load processes (this file run as a script)
# ---------------------------------------------------------------------------------------------


def _orphaned(parent: int) -> bool:
    return os.getppid() != parent


def _busy(until: float, parent: int) -> bool:
    """Spin until `until`; False if the parent went away meanwhile."""
    x = 0
    while time.monotonic() < until:
        for i in range(20_000):  # about a millisecond
            x ^= i * i
        if _orphaned(parent):
            return False
    return True


def _idle(until: float, parent: int) -> bool:
    while (left := until - time.monotonic()) > 0:
        time.sleep(min(POLL, left))
        if _orphaned(parent):
            return False
    return True


def run_worker(
    index: int, seed: int, parent: int, burst: tuple[float, float], idle: tuple[float, float]
) -> int:
    rng = random.Random(f"{seed}:{index}")
    busy_first = rng.random() < 0.5
    while True:
        if busy_first and not _busy(time.monotonic() + rng.uniform(*burst), parent):
            return 0
        busy_first = True
        if not _idle(time.monotonic() + rng.uniform(*idle), parent):
            return 0


def run_controller(
    workers: int, seed: int, parent: int, burst: tuple[float, float], idle: tuple[float, float]
) -> int:
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    me = str(os.getpid())
    procs = []
    try:
        for i in range(workers):
            if stopping or _orphaned(parent):
                break
            argv = [
                sys.executable, str(SCRIPT), "--worker", str(i), "--parent", me,
                "--seed", str(seed), "--burst", f"{burst[0]},{burst[1]}",
                "--idle", f"{idle[0]},{idle[1]}",
            ]  # fmt: skip
            procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL))
        while not stopping and not _orphaned(parent):
            time.sleep(POLL)
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    return 0


def _pair(text: str) -> tuple[float, float]:
    lo, hi = (float(x) for x in text.split(","))
    if not 0 < lo <= hi:
        raise argparse.ArgumentTypeError(f"need 0 < low <= high, not {text!r}")
    return (lo, hi)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="A bursty CPU load (see the module docstring).")
    p.add_argument("--parent", type=int, required=True, help="Stop when this is no longer ppid.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--burst", type=_pair, default=BURST, help="Busy seconds: low,high.")
    p.add_argument("--idle", type=_pair, default=IDLE, help="Idle seconds: low,high.")
    args = p.parse_args(argv)
    if args.worker is not None:
        return run_worker(args.worker, args.seed, args.parent, args.burst, args.idle)
    return run_controller(args.workers, args.seed, args.parent, args.burst, args.idle)


if __name__ == "__main__":
    sys.exit(main())
