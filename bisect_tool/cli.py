"""The smbisect command line: parse options, call one session, map errors to exit codes.

Exit codes: 0 culprit found and confirmed; 1 internal or environment error; 2 bad usage or
input; 3 the regression does not reproduce between good and bad; 4 bisect ended without a
single confirmed culprit; 130 interrupted (after cleaning up).
"""

from __future__ import annotations

import signal
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from . import __version__, report
from .errors import EXIT_ERROR, EXIT_USAGE, Interrupted, SmbisectError, UsageError
from .git import GitRepo
from .runners import AsvRunner, AsvSettings, CommandRunner, Runner
from .session import BisectOptions, Event, Session, SessionResult, resolve_range
from .store import MeasurementStore, default_cache_dir


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so the same cleanup runs for kill and Ctrl-C."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_guarded(func: Callable[[], int]) -> int:
    """The one place where errors become a one-line message and an exit code."""
    try:
        with _terminate_as_interrupt():
            return func()
    except KeyboardInterrupt:
        click.echo("smbisect: interrupted; worktree and bisect state cleaned up", err=True)
        return Interrupted.exit_code
    except SmbisectError as exc:
        click.echo(f"smbisect: error: {exc}", err=True)
        return exc.exit_code
    except Exception as exc:  # a bug of ours: still one line, but say where to look
        where = traceback.extract_tb(exc.__traceback__)[-1]
        click.echo(
            f"smbisect: internal error: {type(exc).__name__}: {exc} "
            f"(at {Path(where.filename).name}:{where.lineno}); please report it",
            err=True,
        )
        return EXIT_ERROR


def _echo_event(verbosity: int) -> Callable[[Event], None]:
    def echo(event: Event) -> None:
        if verbosity < 0 and event.kind not in ("error",):
            return
        line = report.format_event(event, verbosity)
        if line:
            click.echo(line, err=True)

    return echo


def bisect(
    *,
    repo_path: str,
    good: str,
    bad: str,
    bench: tuple[str, ...],
    cmd: str | None,
    metric: str,
    threshold: float | None,
    threshold_ms: float | None,
    config: str,
    suite_rev: str,
    python: str,
    timeout: float,
    json_path: str | None,
    report_path: str | None,
    no_cache: bool,
    cache_dir: str | None,
    verbosity: int,
    scratch: Path,
) -> SessionResult:
    """Build the parts from options and run one bisect session; returns the result."""
    if threshold is not None and threshold <= 1.0:
        raise UsageError(f"--threshold must be a factor above 1.0 (e.g. 1.2), not {threshold}")
    if threshold is not None and threshold_ms is not None:
        raise UsageError("give --threshold or --threshold-ms, not both")
    if threshold_ms is not None and threshold_ms <= 0:
        raise UsageError(f"--threshold-ms must be positive, not {threshold_ms}")
    if cmd is not None and bench:
        raise UsageError("--bench selects asv benchmarks; it cannot be combined with --cmd")
    if metric != "time" and cmd is None:
        raise UsageError("--metric applies to --cmd only")
    if threshold_ms is not None and metric != "time":
        raise UsageError("--threshold-ms needs --metric time")
    for out in (json_path, report_path):
        if out and not Path(out).resolve().parent.is_dir():
            raise UsageError(f"cannot write {out}: its directory does not exist")
    repo = GitRepo(repo_path)
    resolve_range(repo, good, bad)  # fail fast, before an asv suite is discovered
    runner: Runner
    if cmd is not None:
        runner = CommandRunner(cmd, metric, timeout)
    else:
        runner = AsvRunner(
            repo,
            AsvSettings(config=config, suite_rev=suite_rev, python=python, timeout=timeout),
            scratch,
        )
    options = BisectOptions(
        good=good,
        bad=bad,
        bench_patterns=bench,
        factor=threshold,
        delta=threshold_ms / 1000.0 if threshold_ms is not None else None,
    )
    store = MeasurementStore.for_repository(
        Path(cache_dir) if cache_dir else default_cache_dir(),
        str(repo.common_dir()),
        read_existing=not no_cache,
    )
    session = Session(repo, runner, store, options, _echo_event(verbosity))
    result = session.run()
    if verbosity >= 0:
        click.echo(report.terminal_report(result))
    if json_path:
        report.write_json(result, Path(json_path))
        if verbosity >= 0:
            click.echo(f"JSON written to {json_path}")
    if report_path:
        Path(report_path).write_text(report.to_markdown(result))
        if verbosity >= 0:
            click.echo(f"Markdown report written to {report_path}")
    return result


CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(invoke_without_command=True, context_settings=CONTEXT)
@click.option("--good", metavar="REV", help="A commit where performance was fine (required).")
@click.option(
    "--bad",
    metavar="REV",
    default="HEAD",
    show_default=True,
    help="A later commit where it is worse; good must be its ancestor.",
)
@click.option(
    "--repo",
    "repo_path",
    metavar="PATH",
    default=".",
    show_default=True,
    help="The git repository to bisect. It is never modified: bisect runs in a private worktree.",
)
@click.option(
    "--bench",
    "-b",
    multiple=True,
    metavar="REGEX",
    help="asv benchmarks to bisect (regex on names such as "
    "'kernels.MatMul.time_matmul(512)'; repeatable). Default: every benchmark "
    "that regressed between good and bad.",
)
@click.option(
    "--cmd",
    metavar="COMMAND",
    help="Bisect a command instead of asv: run in each commit's checkout, split like a "
    "shell would but never run through one. Exit 125 skips the commit.",
)
@click.option(
    "--metric",
    type=click.Choice(["time", "stdout"]),
    default="time",
    show_default=True,
    help="With --cmd: its wall time, or the last number it prints on stdout.",
)
@click.option(
    "--threshold",
    type=float,
    metavar="FACTOR",
    help="Fixed rule: a commit is bad when it is FACTOR times worse than good "
    "(default: the log-scale midpoint of the good and bad medians).",
)
@click.option(
    "--threshold-ms",
    type=float,
    metavar="MS",
    help="Fixed rule: a commit is bad when it is MS milliseconds slower than good.",
)
@click.option(
    "--config",
    default="asv.conf.json",
    show_default=True,
    help="asv config file, relative to the repository root.",
)
@click.option(
    "--suite-rev",
    default="HEAD",
    show_default=True,
    metavar="REV",
    help="Revision the asv suite and config are taken from, for every commit.",
)
@click.option(
    "--python",
    default="same",
    show_default=True,
    metavar="PYTHON",
    help="asv environment: 'same' (this interpreter, commit code on PYTHONPATH), a "
    "path to another python, or 'virtualenv' to let asv build every commit.",
)
@click.option(
    "--timeout",
    type=float,
    default=600.0,
    show_default=True,
    metavar="SECONDS",
    help="Per-benchmark (or per-command-run) timeout; a commit exceeding it is skipped.",
)
@click.option("--json", "json_path", metavar="PATH", help="Write the full result as JSON.")
@click.option("--report", "report_path", metavar="PATH.md", help="Write a Markdown report.")
@click.option("--no-cache", is_flag=True, help="Ignore cached measurements (new ones are saved).")
@click.option(
    "--cache-dir", metavar="DIR", help="Where measurements are cached (default: ~/.cache/smbisect)."
)
@click.option("-v", "--verbose", count=True, help="More progress detail.")
@click.option("-q", "--quiet", count=True, help="Only errors and the exit code.")
@click.version_option(__version__, prog_name="smbisect")
@click.pass_context
def main(ctx: click.Context, **kw: Any) -> None:
    """Find the commit that made a benchmark slower, with real git bisect and statistics.

    \b
      smbisect --good v1.2                     # HEAD is bad; bisect every regressed benchmark
      smbisect --good v1.2 --bad main -b MatMul
      smbisect --good v1.2 --cmd "python bench.py" --metric stdout
      smbisect demo                            # a built-in SmallMind history with a regression

    Exit codes: 0 culprit found; 1 error; 2 bad usage; 3 the regression does not reproduce;
    4 no single confirmed culprit.
    """
    if ctx.invoked_subcommand is not None:
        return
    if not kw["good"]:
        click.echo(ctx.get_help())
        click.echo("\nsmbisect: error: --good REV is required", err=True)
        ctx.exit(EXIT_USAGE)
    verbosity = kw.pop("verbose") - kw.pop("quiet")

    def go() -> int:
        with tempfile.TemporaryDirectory(prefix="smbisect-run-") as tmp:
            result = bisect(verbosity=verbosity, scratch=Path(tmp), **kw)
            return result.exit_code

    ctx.exit(run_guarded(go))


@main.command()
@click.option(
    "--dir",
    "directory",
    metavar="DIR",
    help="Build the demo repository here (default: a temporary directory, removed afterwards).",
)
@click.option(
    "--commits",
    type=click.IntRange(40, 60),
    default=48,
    show_default=True,
    help="How many commits the demo history has.",
)
@click.option("--json", "json_path", metavar="PATH", help="Write the full result as JSON.")
@click.option("--report", "report_path", metavar="PATH.md", help="Write a Markdown report.")
@click.option("-v", "--verbose", count=True)
@click.option("-q", "--quiet", count=True)
def demo(
    directory: str | None,
    commits: int,
    json_path: str | None,
    report_path: str | None,
    verbose: int,
    quiet: int,
) -> None:
    """Build a SmallMind history with a MatMul regression and bisect it with the asv suite."""
    from .demo import build_demo_repository

    verbosity = verbose - quiet

    def go() -> int:
        with tempfile.TemporaryDirectory(prefix="smbisect-demo-") as tmp:
            root = Path(directory) if directory else Path(tmp) / "smallmind"
            good, planted = build_demo_repository(root, commits)
            if verbosity >= 0:
                click.echo(
                    f"demo repository: {root} ({commits} commits; good = {good[:10]}, HEAD is bad)",
                    err=True,
                )
            result = bisect(
                repo_path=str(root),
                good=good,
                bad="HEAD",
                bench=(r"^kernels\.MatMul\.",),
                cmd=None,
                metric="time",
                threshold=None,
                threshold_ms=None,
                config="asv.conf.json",
                suite_rev="HEAD",
                python="same",
                timeout=600.0,
                json_path=json_path,
                report_path=report_path,
                no_cache=True,
                cache_dir=None,
                verbosity=verbosity,
                scratch=Path(tmp) / "scratch",
            )
            found = {o.culprit for o in result.bisected}
            if verbosity >= 0:
                verdict = "matches" if found == {planted} else "DOES NOT match"
                click.echo(
                    f"\nThe planted regression was {planted[:10]}; smbisect's answer {verdict} it."
                )
            return result.exit_code

    sys.exit(run_guarded(go))
