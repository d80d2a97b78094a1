"""The smbisect command line: parse options, call one session, map errors to exit codes.

Exit codes: 0 culprit found and confirmed (every change in the range attributed); 1 internal
or environment error; 2 bad usage or input; 3 the regression does not reproduce between good
and bad; 4 bisect ended without a single confirmed culprit, or a change was left unattributed;
5 inconclusive (too noisy); 130 interrupted (after cleaning up).
"""

from __future__ import annotations

import signal
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from . import __version__, report
from .asv_measure import AsvRunner
from .cli_options import (
    RunnerChoice,
    attribution_options,
    budget_options,
    check_outputs,
    check_thresholds,
    runner_options,
    take_choice,
    threads_option,
    threshold_options,
)
from .errors import (
    EXIT_ERROR,
    EXIT_USAGE,
    Interrupted,
    SmbisectError,
    UsageError,
)
from .parallel_cli import parallel_options, take_parallel
from .run_bisect import bisect, build_runner, note_printer, open_store
from .session import (
    check_commit,
    select_benchmarks,
)


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


def run_guarded(func: Callable[[], int], error_code: int | None = None) -> int:
    """The one place where errors become a one-line message and an exit code.

    `error_code` replaces the exit code of every error, for commands whose success codes
    already carry a meaning (`check` for git bisect run, `compare` for CI gates).
    """
    try:
        with _terminate_as_interrupt():
            return func()
    except KeyboardInterrupt:
        click.echo("smbisect: interrupted; worktree and bisect state cleaned up", err=True)
        return error_code if error_code is not None else Interrupted.exit_code
    except SmbisectError as exc:
        click.echo(f"smbisect: error: {exc}", err=True)
        return error_code if error_code is not None else exc.exit_code
    except Exception as exc:  # a bug of ours: still one line, but say where to look
        where = traceback.extract_tb(exc.__traceback__)[-1]
        click.echo(
            f"smbisect: internal error: {type(exc).__name__}: {exc} "
            f"(at {Path(where.filename).name}:{where.lineno}); please report it",
            err=True,
        )
        return error_code if error_code is not None else EXIT_ERROR


class BisectRunStep(click.Command):
    """A command whose own usage errors must stop `git bisect run` (exit > 127), which would
    otherwise read click's exit 2 as "bad" and blame the wrong commit."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            click.echo(f"smbisect check: error: {exc.format_message()}", err=True)
            sys.exit(CHECK_ABORT)


CHECK_ABORT = 128  # git bisect run stops on exit codes above 127 instead of calling it "bad"
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
@runner_options
@threshold_options
@budget_options
@attribution_options
@threads_option
@parallel_options
@click.option("--json", "json_path", metavar="PATH", help="Write the full result as JSON.")
@click.option(
    "--report",
    "report_path",
    metavar="PATH.md",
    help="Write a Markdown report (with plots beside it).",
)
@click.option(
    "--html",
    "html_path",
    metavar="PATH.html",
    help="Write an HTML report with a plot of the range.",
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
      smbisect compare v1.2 HEAD               # a profiling-style comparison of two revisions
      smbisect check HEAD --good v1.2 -b MatMul   # one step for `git bisect run`

    Without --bench, every asv benchmark that regressed between good and bad is bisected.

    It measures one run at a time and stops as soon as the evidence decides: an obvious
    regression costs about one run per step, a noisy one as many as its error rate needs,
    within the --max-time budgets.

    Exit codes: 0 culprit found; 1 error; 2 bad usage; 3 the regression does not reproduce
    (bad is shown to be within the threshold of good); 4 no single confirmed culprit, or a
    change in the range left unattributed (see --max-culprits); 5 inconclusive: the machine
    is too noisy to tell whether bad is worse (the report gives the
    noise measured and what to do); 130 interrupted (after cleaning up).
    """
    if ctx.invoked_subcommand is not None:
        return
    if not kw["good"]:
        click.echo("smbisect: error: --good REV is required (see smbisect --help)", err=True)
        ctx.exit(EXIT_USAGE)
    verbosity = kw.pop("verbose") - kw.pop("quiet")
    choice = take_choice(kw)
    parallel = take_parallel(kw)

    def go() -> int:
        with tempfile.TemporaryDirectory(prefix="smbisect-run-") as tmp:
            result = bisect(
                verbosity=verbosity, scratch=Path(tmp), choice=choice, parallel=parallel, **kw
            )
            return result.exit_code

    ctx.exit(run_guarded(go))


@main.command(context_settings=CONTEXT)
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
@click.option("--html", "html_path", metavar="PATH.html", help="Write an HTML report.")
@click.option("-v", "--verbose", count=True)
@click.option("-q", "--quiet", count=True)
def demo(
    directory: str | None,
    commits: int,
    json_path: str | None,
    report_path: str | None,
    html_path: str | None,
    verbose: int,
    quiet: int,
) -> None:
    """Build a SmallMind history with a MatMul regression and bisect it with the asv suite."""
    from .demo import build_demo_repository

    verbosity = verbose - quiet

    def go() -> int:
        with tempfile.TemporaryDirectory(prefix="smbisect-demo-") as tmp:
            root = Path(directory) if directory else Path(tmp) / "smallmind"
            if root.exists() and (not root.is_dir() or any(root.iterdir())):
                raise UsageError(f"--dir {root} exists and is not an empty directory")
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
                choice=RunnerChoice(),
                threshold=None,
                threshold_ms=None,
                json_path=json_path,
                report_path=report_path,
                html_path=html_path,
                no_cache=True,
                cache_dir=str(Path(tmp) / "cache"),
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


@main.command(cls=BisectRunStep, context_settings=CONTEXT)
@click.argument("rev", default="HEAD")
@click.option(
    "--good",
    required=True,
    metavar="REV",
    help="The baseline to compare with (measured once, then cached).",
)
@runner_options
@threshold_options
@click.option(
    "--samples",
    type=click.IntRange(3, 200),
    default=None,
    metavar="N",
    help="Runs of each revision before the first verdict (default 3); then one more pair at "
    "a time until the evidence decides, as at a bisect's endpoints.",
)
@click.option("-q", "--quiet", count=True)
def check(rev: str, good: str, samples: int | None, quiet: int, **kw: Any) -> None:
    """Measure one commit against a baseline; exit like a `git bisect run` step.

    \b
    Exit 0: not worse than --good beyond the threshold (git bisect: good)
    Exit 1: worse, significantly and beyond the threshold (git bisect: bad)
    Exit 125: cannot be measured or still unclear (git bisect: skip)
    Exit 128: bad usage or environment error (git bisect run stops)

    \b
      git bisect start HEAD v1.2
      git bisect run smbisect check --good v1.2 -b 'time_matmul.512' --threshold 1.2
    """
    choice = take_choice(kw)
    threshold, threshold_ms = kw.pop("threshold"), kw.pop("threshold_ms")

    def go() -> int:
        check_thresholds(threshold, threshold_ms, choice.metric)
        repo = choice.open_repo(kw["repo_path"])
        suite = choice
        if choice.suite_rev == "HEAD" and repo.has_ref("refs/bisect/bad"):
            # inside `git bisect run` HEAD moves at every step; the suite must not
            suite = replace(choice, suite_rev="refs/bisect/bad")
        with tempfile.TemporaryDirectory(prefix="smbisect-check-") as tmp:
            runner = build_runner(repo, suite, kw["bench"], Path(tmp), note_printer(-quiet))
            store = open_store(repo, kw["cache_dir"], kw["no_cache"])
            result = check_commit(
                repo,
                runner,
                store,
                good,
                rev,
                kw["bench"],
                threshold,
                threshold_ms / 1000.0 if threshold_ms is not None else None,
                samples,
            )
        if quiet <= 0:
            click.echo(report.check_table(result))
        return result.exit_code

    sys.exit(run_guarded(go, error_code=CHECK_ABORT))


@main.command(context_settings=CONTEXT)
@click.argument("base")
@click.argument("head", default="HEAD")
@runner_options
@click.option(
    "--factor",
    type=float,
    default=1.1,
    show_default=True,
    help="A change counts only beyond this factor (and when significant).",
)
@click.option(
    "--samples",
    type=click.IntRange(3, 200),
    default=10,
    show_default=True,
    help="Samples of each benchmark at each revision, taken in interleaved halves.",
)
@click.option(
    "--from-results",
    is_flag=True,
    help="Read the asv results already stored for both revisions instead of "
    "measuring (the config's results_dir, or --asv-results DIR).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "markdown", "json"]),
    default="table",
    show_default=True,
)
@click.option("--output", metavar="FILE", help="Write the comparison here instead of stdout.")
@click.option(
    "--culprits",
    "culprits_file",
    metavar="RESULT.json",
    help="A bisect's --json: show its culprits per benchmark, with their shares and whether "
    "each lies in BASE..HEAD.",
)
@click.option("-q", "--quiet", count=True)
def compare(
    base: str,
    head: str,
    factor: float,
    samples: int,
    from_results: bool,
    fmt: str,
    output: str | None,
    culprits_file: str | None,
    quiet: int,
    **kw: Any,
) -> None:
    """Compare the asv suite at two revisions, like the team's profiling report.

    \b
    A summary (total runtime, total allocations, throughput, peak memory), every benchmark
    with both values, its change and a noise-aware verdict, then runtime and memory
    distributions as text bar charts.

    \b
    Exit 0: no regression beyond --factor; 1: a regression (like `asv continuous`);
    2: bad usage or an environment error.
    """
    from . import compare as comparing
    from . import compare_culprits as culprit_refs
    from . import compare_render

    choice = take_choice(kw)

    def go() -> int:
        if factor <= 1.0:
            raise UsageError(f"--factor must be above 1.0, not {factor}")
        if choice.cmd is not None:
            raise UsageError("compare works on the asv suite; --cmd is for bisecting")
        check_outputs(output)
        culprits = culprit_refs.load(culprits_file) if culprits_file else None
        repo = choice.open_repo(kw["repo_path"])
        base_sha = repo.resolve(base, "BASE")
        head_sha = repo.resolve(head, "HEAD")
        if culprits is not None:
            inside = culprit_refs.range_test(repo, base_sha, head_sha)
            culprits = culprit_refs.locate(culprits, inside)
        with tempfile.TemporaryDirectory(prefix="smbisect-compare-") as tmp:
            runner = build_runner(repo, choice, kw["bench"], Path(tmp), note_printer(-quiet))
            assert isinstance(runner, AsvRunner)
            if from_results:
                where = runner.export_dir or runner.results_home
                measured = comparing.load_stored(where, runner.machine, base_sha, head_sha)
                if measured is None:
                    raise UsageError(
                        f"no stored asv results for both {base} and {head} in "
                        f"{where} (run without --from-results to measure)"
                    )
                if kw["bench"]:
                    keep = {s.name for s in select_benchmarks(measured.specs, kw["bench"])}
                    measured = measured._replace(
                        specs=[s for s in measured.specs if s.name in keep]
                    )
            else:
                progress = None if quiet > 0 else (lambda msg: click.echo(msg, err=True))
                measured = comparing.measure_two(
                    repo, runner, base_sha, head_sha, samples, kw["bench"], progress
                )
        result = comparing.compare_measured(measured, base_sha, head_sha, factor)
        if culprits is not None:
            text = culprit_refs.render(result, fmt, culprits)
        else:
            text = compare_render.render(result, fmt)
        if output:
            Path(output).write_text(text + "\n")
            if quiet <= 0:
                click.echo(f"comparison written to {output}")
        else:
            click.echo(text)
        return 1 if comparing.has_regression(result) else 0

    sys.exit(run_guarded(go, error_code=EXIT_USAGE))


def _add_asv_tags() -> None:
    from .asv_tags import command

    main.add_command(command)


_add_asv_tags()
