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
    """Checks out and builds commits on demand, each in its own directory."""

    def __init__(self, argv: Sequence[str], checkouts: Checkouts, timeout: float) -> None:
        self.argv = list(argv)
        self.checkouts = checkouts
        self.timeout = timeout
        self.built: dict[str, str | None] = {}  # sha -> None (built) or why it failed

    def prepare(self, sha: str) -> tuple[Path, float]:
        """sha's built directory, and the seconds spent building it now (0 when it was)."""
        path, fresh = self.checkouts.tree(sha)
        if fresh:
            self.built.pop(sha, None)
        if sha in self.built:
            failed = self.built[sha]
            if failed:
                raise MeasurementFailed(failed)
            return path, 0.0
        start = time.perf_counter()
        try:
            res = run_process(self.argv, path, self.timeout)
        except MeasurementFailed as exc:
            self.built[sha] = f"build {exc}"
            raise MeasurementFailed(f"build {exc}") from None
        seconds = time.perf_counter() - start
        if res.returncode == SKIP_EXIT_CODE:
            self.built[sha] = "build exited 125 (skip this commit)"
        elif res.returncode != 0:
            detail = _tail(res.stderr or res.stdout)
            last = detail.splitlines()[-1] if detail else ""
            self.built[sha] = f"build exited {res.returncode}: {last}".rstrip(": ")
        else:
            self.built[sha] = None
        if self.built[sha]:
            raise MeasurementFailed(self.built[sha] or "", _tail(res.stderr or res.stdout))
        return path, seconds


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
