"""A build step before measuring (`--build`): each commit gets its own checkout, built once.

The command runs in the commit's directory (git.Checkouts), never through a shell, and its time
is not measured nor counted in the budget. A build that exits 125 skips the commit, as in
`git bisect run`; any other failure skips it too, with the build's last line as the reason.
Checkouts are kept for the commits measured most recently (good, bad and the steps), so the
references measured back to back with a step are not rebuilt every time.
"""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import MeasurementFailed, UsageError
from .git import Checkouts
from .locks import file_lock
from .runners import (
    SKIP_EXIT_CODE,
    Batch,
    BenchmarkSpec,
    Cancelled,
    Runner,
    _digest,
    _tail,
    run_process,
)


def split_build(command: str) -> list[str]:
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise UsageError(f"--build cannot be split into arguments: {exc}") from None
    if not argv:
        raise UsageError("--build is empty")
    return argv


def build_once(
    checkouts: Checkouts,
    sha: str,
    build: Callable[[Path, Path], float],
    cached: Callable[[], bool] = lambda: False,
) -> tuple[Path, float]:
    """sha's checkout, built at most once by every process sharing the checkouts: under the
    checkout's lock, a marker file beside it says it was built, or why its build failed (raised
    again as MeasurementFailed). `build(path, marker)` builds, writes the marker, and returns
    its seconds; `cached()` says the build is already elsewhere (asv's build cache)."""
    path, _ = checkouts.tree(sha)
    marker = path.with_suffix(".built")
    with file_lock(path.with_suffix(".lock")):
        if not (path / ".git").exists():  # a stopped build removed it while we waited
            path, _ = checkouts.tree(sha)
        if marker.exists():
            failed = marker.read_text()
            if failed:
                raise MeasurementFailed(failed)
            return path, 0.0
        if cached():
            return path, 0.0
        return path, build(path, marker)


class Builder:
    """Checks out and builds commits on demand, each in its own directory. Whether a commit
    was built (or why its build failed) is kept in a file beside its directory, so processes
    sharing the checkouts (Dask workers on one machine) build each commit once."""

    def __init__(self, argv: Sequence[str], checkouts: Checkouts, timeout: float) -> None:
        self.argv = list(argv)
        self.checkouts = checkouts
        self.timeout = timeout

    def prepare(self, sha: str, cancel: threading.Event | None = None) -> tuple[Path, float]:
        """sha's built directory, and the seconds spent building it now (0 when it was).
        A build stopped by `cancel` raises Cancelled and leaves nothing: no marker, and its
        checkout is removed, so that a later build starts from a clean one."""
        if not self.argv:
            return self.checkouts.tree(sha)[0], 0.0
        return build_once(
            self.checkouts, sha, lambda path, marker: self._build(sha, path, marker, cancel)
        )

    def _build(self, sha: str, path: Path, marker: Path, cancel: threading.Event | None) -> float:
        start = time.perf_counter()
        detail = ""
        try:
            res = run_process(self.argv, path, self.timeout, cancel=cancel)
            failed = ""
            if res.returncode == SKIP_EXIT_CODE:
                failed = "build exited 125 (skip this commit)"
            elif res.returncode != 0:
                detail = _tail(res.stderr or res.stdout)
                last = detail.splitlines()[-1] if detail else ""
                failed = f"build exited {res.returncode}: {last}".rstrip(": ")
        except MeasurementFailed as exc:  # timed out, or the command is missing
            failed = f"build {exc}"
        except Cancelled:
            self.checkouts.drop(sha)
            raise
        marker.write_text(failed)
        if failed:
            raise MeasurementFailed(failed, detail)
        return time.perf_counter() - start


class BuildingRunner:
    """A runner that builds each commit in its own checkout before the inner runner measures
    it there. The worktree the session checked out is not used."""

    def __init__(self, inner: Runner, builder: Builder) -> None:
        self.inner = inner
        self.builder = builder
        self.machine = inner.machine
        self.settings_key = _digest(inner.settings_key, "build", builder.argv)

    def list_benchmarks(self) -> list[BenchmarkSpec]:
        return self.inner.list_benchmarks()

    def measure(self, worktree: Path, commit: str, names: Sequence[str], rounds: int) -> Batch:
        path, seconds = self.builder.prepare(commit)
        batch = self.inner.measure(path, commit, names, rounds)
        batch.setup_seconds += seconds
        return batch


class BuildQueue:
    """Builds commits in the background, at most `jobs` at once, into checkouts that the
    measuring processes of this machine share (Builder's lock and marker per commit): a commit
    being built here is waited for there, one built here is not built again.

    want(needed, maybe): the commits needed now are built first, then the speculative ones
    (the next round's possible commits). A commit in neither list is dropped: queued, it never
    starts; running, its build is stopped and its checkout removed, so the slot goes to a
    build that is wanted. close() stops every build and waits for them."""

    def __init__(self, builder: Builder, jobs: int) -> None:
        self.builder = builder
        self.jobs = max(1, jobs)
        self.started: list[str] = []  # in the order they started
        self.cancelled: list[str] = []  # stopped because no longer wanted
        self._queued: list[str] = []
        self._running: dict[str, threading.Event] = {}
        self._closed = False
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []

    def want(self, needed: Sequence[str], maybe: Sequence[str] = ()) -> None:
        with self._cond:
            if self._closed:
                return
            wanted = dict.fromkeys([*needed, *maybe])
            for sha, stop in self._running.items():
                if sha not in wanted:
                    stop.set()
            begun = set(self.started)
            self._queued = [s for s in wanted if s not in begun]
            while len(self._threads) < min(self.jobs, len(self._running) + len(self._queued)):
                thread = threading.Thread(
                    target=self._work, name=f"smbisect-build-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            self._cond.notify_all()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queued and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                sha = self._queued.pop(0)
                self.started.append(sha)
                stop = self._running[sha] = threading.Event()
            try:
                self.builder.prepare(sha, stop)
            except Cancelled:
                with self._cond:
                    self.started.remove(sha)  # it may be wanted again, and built from scratch
                    self.cancelled.append(sha)
            except Exception:  # noqa: BLE001 - the measurement builds again and reports it
                pass
            finally:
                with self._cond:
                    self._running.pop(sha, None)

    def close(self) -> None:
        """Drop what is queued, stop the builds that run, and wait for them."""
        with self._cond:
            self._closed = True
            self._queued.clear()
            for stop in self._running.values():
                stop.set()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()
