"""Typed errors, each carrying its exit code; cli.py maps them to a one-line message and exit."""

from __future__ import annotations

EXIT_CULPRIT = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_REPRODUCED = 3
EXIT_NO_SINGLE_CULPRIT = 4
EXIT_INCONCLUSIVE = 5  # the machine is too noisy to tell whether the endpoints differ


class SmbisectError(Exception):
    """Base error: an internal or environment failure (exit 1)."""

    exit_code = EXIT_ERROR


class UsageError(SmbisectError):
    """Bad command-line usage or input: unknown revision, bad regex, not a repository (exit 2)."""

    exit_code = EXIT_USAGE


class EnvironmentProblem(SmbisectError):
    """The machine cannot run what was asked: git or asv missing, benchmark discovery failed."""

    exit_code = EXIT_ERROR


class MeasurementFailed(SmbisectError):
    """One commit could not be measured (build, import, crash, timeout); the bisect skips it."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class WorkerLost(SmbisectError):
    """A Dask worker went away in the middle of a measurement; its commit is measured again on
    another worker (parallel.py)."""


class Interrupted(SmbisectError):
    """SIGINT or SIGTERM arrived; everything was cleaned up before exiting."""

    exit_code = 130
