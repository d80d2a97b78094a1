"""A build step before measuring (`--build`): each commit gets its own checkout, built once.

The command runs in the commit's directory (git.Checkouts), never through a shell, and its time
is not measured nor counted in the budget. A build that exits 125 skips the commit, as in
`git bisect run`; any other failure skips it too, with the build's last line as the reason.
Checkouts are kept for the commits measured most recently (good, bad and the steps), so the
references measured back to back with a step are not rebuilt every time.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from pathlib import Path

from .errors import MeasurementFailed, UsageError
from .git import Checkouts
from .locks import file_lock
from .runners import SKIP_EXIT_CODE, Batch, BenchmarkSpec, Runner, _digest, _tail, run_process


def split_build(command: str) -> list[str]:
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise UsageError(f"--build cannot be split into arguments: {exc}") from None
    if not argv:
        raise UsageError("--build is empty")
    return argv


class Builder:
    """Checks out and builds commits on demand, each in its own directory. Whether a commit
    was built (or why its build failed) is kept in a file beside its directory, so processes
    sharing the checkouts (Dask workers on one machine) build each commit once."""

    def __init__(self, argv: Sequence[str], checkouts: Checkouts, timeout: float) -> None:
        self.argv = list(argv)
        self.checkouts = checkouts
        self.timeout = timeout

    def prepare(self, sha: str) -> tuple[Path, float]:
        """sha's built directory, and the seconds spent building it now (0 when it was)."""
        path, _ = self.checkouts.tree(sha)
        if not self.argv:
            return path, 0.0
        marker = path.with_suffix(".built")
        with file_lock(path.with_suffix(".lock")):
            if marker.exists():
                failed = marker.read_text()
                if failed:
                    raise MeasurementFailed(failed)
                return path, 0.0
            start = time.perf_counter()
            detail = ""
            try:
                res = run_process(self.argv, path, self.timeout)
                failed = ""
                if res.returncode == SKIP_EXIT_CODE:
                    failed = "build exited 125 (skip this commit)"
                elif res.returncode != 0:
                    detail = _tail(res.stderr or res.stdout)
                    last = detail.splitlines()[-1] if detail else ""
                    failed = f"build exited {res.returncode}: {last}".rstrip(": ")
            except MeasurementFailed as exc:  # timed out, or the command is missing
                failed = f"build {exc}"
            marker.write_text(failed)
            if failed:
                raise MeasurementFailed(failed, detail)
            return path, time.perf_counter() - start


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
