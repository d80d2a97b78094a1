"""The options the measuring commands share (bisect, check, compare), and the runner choice
they make: click decorators and the checks on their values, apart from the commands in cli.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from . import threads
from .errors import UsageError
from .git import GitRepo
from .policy import Budget
from .session import BisectOptions


@dataclass(frozen=True)
class RunnerChoice:
    """How commits are measured: a command, or the repository's asv suite."""

    cmd: str | None = None
    metric: str = "time"
    config: str | None = None  # None: find the asv config as asv_config.find_config does
    suite_rev: str = "HEAD"
    python: str = "same"
    timeout: float = 600.0
    asv_results: str | None = "auto"
    higher_is_better: bool = False
    run_hooks: bool = False  # the user's git hooks run for the private worktree
    submodules: bool = True  # submodules are checked out at every step

    def open_repo(self, path: str) -> GitRepo:
        return GitRepo(path, run_hooks=self.run_hooks, submodules=self.submodules)


def check_thresholds(threshold: float | None, threshold_ms: float | None, metric: str) -> None:
    if threshold is not None and threshold <= 1.0:
        raise UsageError(f"--threshold must be a factor above 1.0 (e.g. 1.2), not {threshold}")
    if threshold is not None and threshold_ms is not None:
        raise UsageError("give --threshold or --threshold-ms, not both")
    if threshold_ms is not None and threshold_ms <= 0:
        raise UsageError(f"--threshold-ms must be positive, not {threshold_ms}")
    if threshold_ms is not None and metric not in ("time", "cputime"):
        raise UsageError("--threshold-ms needs --metric time or cputime")


def check_outputs(*paths: str | None) -> None:
    for out in paths:
        if out and not Path(out).resolve().parent.is_dir():
            raise UsageError(f"cannot write {out}: its directory does not exist")


def runner_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by every command that measures commits."""
    options = [
        click.option(
            "--repo",
            "repo_path",
            metavar="PATH",
            default=".",
            show_default=True,
            help="The git repository. It is never modified: commits are checked out "
            "in a private worktree.",
        ),
        click.option(
            "--bench",
            "-b",
            multiple=True,
            metavar="REGEX",
            help="asv benchmarks to use (regex on names such as "
            "'kernels.MatMul.time_matmul(512)'; repeatable).",
        ),
        click.option(
            "--cmd",
            metavar="COMMAND",
            help="Measure a command instead of asv: run in each commit's checkout, "
            "split like a shell would but never run through one. Exit 125 skips "
            "the commit.",
        ),
        click.option(
            "--higher-is-better",
            is_flag=True,
            help="With --cmd --metric stdout: a larger number is better (a throughput).",
        ),
        click.option(
            "--metric",
            type=click.Choice(["time", "cputime", "stdout", "instructions", "cycles"]),
            default="time",
            show_default=True,
            help="With --cmd: its wall time; its process tree's user+system CPU time "
            "(far less sensitive to other work on the machine, for CPU-bound commands); "
            "the last number it prints; or, under valgrind (apt-get install valgrind), the "
            "instructions its process tree executes, or estimated cycles (instructions plus "
            "weighted cache misses and branch mispredictions): the same count on a loaded "
            "machine, so one run per commit decides. Sleeps, I/O and lock waits do not count "
            "(docs/instructions.md). With asv, instructions or cycles count one call of each "
            "time_ benchmark's body (setup and imports subtracted).",
        ),
        click.option(
            "--config",
            metavar="PATH",
            help="asv config file (or its directory), relative to the current directory or "
            "the repository root. Default: the one in the current directory or the root, or "
            "the only asv.conf.json in a subdirectory (benchmarks/, asv_bench/).",
        ),
        click.option(
            "--suite-rev",
            default="HEAD",
            show_default=True,
            metavar="REV",
            help="Revision the asv suite and config are taken from, for every commit.",
        ),
        click.option(
            "--python",
            default="same",
            show_default=True,
            metavar="PYTHON",
            help="asv environment: 'same' (this interpreter, the commit's code on "
            "PYTHONPATH: flat, src/ or repo_subdir layouts), a path to another python, "
            "'virtualenv' to let asv build every commit, or 'config' for the config's own "
            "environment_type (conda, rattler, ...) through asv.",
        ),
        click.option(
            "--timeout",
            type=float,
            default=600.0,
            show_default=True,
            metavar="SECONDS",
            help="Per benchmark (or command run); a commit exceeding it is skipped.",
        ),
        click.option(
            "--asv-results",
            metavar="DIR",
            help="Also write asv-mode measurements here, in asv's format "
            "(default: the config's results_dir, so `asv publish` shows them).",
        ),
        click.option(
            "--no-asv-results",
            is_flag=True,
            help="Do not write measurements into an asv results directory.",
        ),
        click.option(
            "--run-hooks",
            is_flag=True,
            help="Let your git hooks run in the private worktree (by default none runs).",
        ),
        click.option(
            "--no-submodules",
            is_flag=True,
            help="Do not check out submodules at each step (by default they are checked "
            "out at the commits each step records).",
        ),
        click.option(
            "--no-cache",
            is_flag=True,
            help="Ignore cached measurements (new ones are still saved).",
        ),
        click.option(
            "--cache-dir",
            metavar="DIR",
            help="Where measurements are cached (default: ~/.cache/smbisect).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def budget_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """How long smbisect may keep measuring before it calls a question undecided."""
    func = click.option(
        "--max-runs-per-commit",
        type=click.IntRange(3, None),
        default=Budget.runs_per_commit,
        show_default=True,
        metavar="N",
        help="At most N runs of the benchmark at one commit. A commit left unclear right next "
        "to the change gets a second chance of up to 3N runs at the end, within "
        "--max-time-per-commit.",
    )(func)
    func = click.option(
        "--max-time",
        type=click.FloatRange(min=1, min_open=False),
        metavar="SECONDS",
        help="Budget for all measuring (default: none). When it is spent, open questions "
        "end undecided: commits are skipped, endpoints are inconclusive.",
    )(func)
    return click.option(
        "--max-time-per-commit",
        type=click.FloatRange(min=1),
        default=Budget.seconds_per_commit,
        show_default=True,
        metavar="SECONDS",
        help="Budget for measuring one commit. smbisect measures one run at a time and stops "
        "as soon as the evidence decides; a commit still unclear after this is skipped.",
    )(func)


def check_threads(mode: str, distributed: bool) -> None:
    if mode == threads.ONE and distributed:
        raise UsageError(
            f"--threads one does not reach Dask workers: set {threads.SHOWN} in the workers' "
            "environment"
        )


def threads_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """One thread per numerical library in the benchmark processes (threads.py)."""
    return click.option(
        "--threads",
        type=click.Choice(threads.MODES),
        default=threads.AUTO,
        show_default=True,
        help="Threads of numerical libraries (BLAS, OpenMP, MKL, numexpr) in the benchmark "
        "processes. auto: the libraries' defaults, until the endpoints vary by more than 50% "
        f"per run; then {threads.SHOWN} (and the other libraries' variables) and the "
        "endpoints measured again, as a threaded call on a busy machine waits for its "
        "slowest thread. keep: never change them (a regression in how the code uses threads). "
        "one: one thread from the first run. A variable set in smbisect's environment is "
        "left alone by auto.",
    )(func)


def attribution_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Every change in the range, not just the first culprit (attribution.py)."""
    func = click.option(
        "--no-attribution",
        is_flag=True,
        help="Stop at the first confirmed culprit: do not check the rest of the range for "
        "more changes. Cheapest, a bisect plus a confirmation; on a noisy machine the check "
        "is what costs most beyond them (docs/real-projects.md). The waterfall then shows "
        "an unchecked residual.",
    )(func)
    func = click.option(
        "--improvements",
        is_flag=True,
        help="Bisect speedups inside the range too. Without it a speedup is reported with its "
        "range and share, and bisected only when it hides part of a regression larger than "
        "the net change.",
    )(func)
    return click.option(
        "--max-culprits",
        type=click.IntRange(1, None),
        default=BisectOptions.max_culprits,
        show_default=True,
        metavar="N",
        help="Per benchmark, bisect at most N changes. After the first culprit is confirmed, "
        "the ranges before and after it are checked; one that still changes is bisected too. "
        "The report shows each change's share of good -> bad (a waterfall). 1: the first "
        "culprit only; a change left over is listed and the exit code is 4.",
    )(func)


def threshold_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option(
        "--threshold-ms",
        type=float,
        metavar="MS",
        help="Fixed rule: bad means MS milliseconds slower than good.",
    )(func)
    return click.option(
        "--threshold",
        type=float,
        metavar="FACTOR",
        help="Fixed rule: bad means FACTOR times worse than good (default: the "
        "log-scale midpoint of the good and bad medians).",
    )(func)


def take_choice(kw: dict[str, Any]) -> RunnerChoice:
    """Pop the runner options out of a command's keyword arguments."""
    results_dir = kw.pop("asv_results")
    no_results = kw.pop("no_asv_results")
    return RunnerChoice(
        cmd=kw.pop("cmd"),
        metric=kw.pop("metric"),
        config=kw.pop("config"),
        suite_rev=kw.pop("suite_rev"),
        python=kw.pop("python"),
        timeout=kw.pop("timeout"),
        asv_results=None if no_results else (results_dir or "auto"),
        higher_is_better=kw.pop("higher_is_better"),
        run_hooks=kw.pop("run_hooks"),
        submodules=not kw.pop("no_submodules"),
    )
