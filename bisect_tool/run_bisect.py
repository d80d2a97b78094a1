"""One bisect from the command line's options: build the runner and the store, run the
session, add what a count or a whole command's time leaves unsaid, print and write the
outputs. The command line (cli.py) parses and maps errors to exit codes; this module does the
rest, so that `smbisect`, `smbisect demo` and `check`/`compare` build their parts one way."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from . import asv_instructions, command_hint, instructions, report, time_hint
from .asv_measure import AsvRunner, AsvSettings
from .cli_options import RunnerChoice, check_outputs, check_threads, check_thresholds
from .errors import EXIT_INCONCLUSIVE, EXIT_NOT_REPRODUCED, UsageError
from .git import GitRepo
from .parallel_cli import ParallelChoice, check_parallel
from .parallel_cli import runners as parallel_runners
from .policy import Budget, Policy
from .runners import CommandRunner, Runner
from .session import BisectOptions, Event, Session, SessionResult, resolve_range
from .store import MeasurementStore, default_cache_dir


def note_printer(verbosity: int) -> Callable[[str], None]:
    def echo(message: str) -> None:
        if verbosity >= 0:
            click.echo(f"smbisect: {message}", err=True)

    return echo


def event_printer(verbosity: int) -> Callable[[Event], None]:
    def echo(event: Event) -> None:
        if verbosity < 0 and event.kind not in ("error",):
            return
        line = report.format_event(event, verbosity)
        if line:
            click.echo(line, err=True)

    return echo


def build_runner(
    repo: GitRepo,
    choice: RunnerChoice,
    bench: tuple[str, ...],
    scratch: Path,
    note: Callable[[str], None] | None = None,
) -> Runner:
    if choice.cmd is not None and bench:
        raise UsageError("--bench selects asv benchmarks; it cannot be combined with --cmd")
    counting = choice.metric in instructions.METRICS
    if choice.metric != "time" and not counting and choice.cmd is None:
        raise UsageError(f"--metric {choice.metric} applies to --cmd only")
    if choice.cmd is not None:
        return CommandRunner(choice.cmd, choice.metric, choice.timeout, choice.higher_is_better)
    if counting:  # fail in one line before the suite is discovered
        asv_instructions.check_python(choice.python, choice.metric)
        instructions.find_valgrind(choice.metric)
    settings = AsvSettings(
        config=choice.config,
        suite_rev=choice.suite_rev,
        python=choice.python,
        timeout=choice.timeout,
        export_results=choice.asv_results,
    )
    runner = AsvRunner(repo, settings, scratch, note)
    if counting:
        return asv_instructions.AsvCountingRunner(runner, choice.metric, bench, note)
    return runner


def open_store(repo: GitRepo, cache_dir: str | None, no_cache: bool) -> MeasurementStore:
    return MeasurementStore.for_repository(
        Path(cache_dir) if cache_dir else default_cache_dir(),
        str(repo.common_dir()),
        read_existing=not no_cache,
    )


def bisect(
    *,
    repo_path: str,
    good: str,
    bad: str,
    bench: tuple[str, ...],
    choice: RunnerChoice,
    threshold: float | None,
    threshold_ms: float | None,
    json_path: str | None,
    report_path: str | None,
    html_path: str | None,
    no_cache: bool,
    cache_dir: str | None,
    verbosity: int,
    scratch: Path,
    max_time_per_commit: float = Budget.seconds_per_commit,
    max_time: float | None = None,
    max_runs_per_commit: int = Budget.runs_per_commit,
    max_culprits: int = BisectOptions.max_culprits,
    improvements: bool = False,
    no_attribution: bool = False,
    parallel: ParallelChoice | None = None,
    threads: str = BisectOptions.threads,
) -> SessionResult:
    """Build the parts from options and run one bisect session; returns the result."""
    parallel = parallel or ParallelChoice()
    check_thresholds(threshold, threshold_ms, choice.metric)
    check_parallel(parallel, choice.cmd, choice.python)
    check_threads(threads, parallel.distributed)
    check_outputs(json_path, report_path, html_path)
    repo = choice.open_repo(repo_path)
    resolve_range(repo, good, bad)  # fail fast, before an asv suite is discovered
    runner = build_runner(repo, choice, bench, scratch, note_printer(verbosity))
    imports = None
    if isinstance(runner, CommandRunner):
        imports = command_hint.script_imports_working_tree(repo, runner.argv)
        if imports:
            note_printer(verbosity)(f"note: {imports}")
    budget = Budget(max_time_per_commit, max_time, max_runs_per_commit)
    options = BisectOptions(
        good=good,
        bad=bad,
        bench_patterns=bench,
        factor=threshold,
        delta=threshold_ms / 1000.0 if threshold_ms is not None else None,
        policy=Policy(budget=budget),
        max_culprits=max_culprits,
        improvements=improvements,
        attribution=not no_attribution,
        threads=threads,
    )
    store = open_store(repo, cache_dir, no_cache)
    good_sha, bad_sha = resolve_range(repo, good, bad)
    uncommitted = command_hint.uncommitted_note(repo, bad_sha)
    if uncommitted:
        note_printer(verbosity)(f"note: {uncommitted}")
    with parallel_runners(repo, runner, parallel, scratch, good_sha, bad_sha) as (local, remote):
        session = Session(repo, local, store, options, event_printer(verbosity), remote=remote)
        try:
            result = session.run()
        except UsageError as exc:  # good or bad could not be measured, and perhaps why
            hint = None
            if isinstance(runner, CommandRunner) and not parallel.build:
                shas = (good_sha, bad_sha)
                hint = command_hint.working_tree_only_file(repo, runner.argv, shas, Path.cwd())
            if hint is None:
                raise
            raise UsageError(f"{exc}; {hint}") from None
    result.metric = choice.metric
    hint = command_hint.whole_command_note(result, choice.metric) if choice.cmd else None
    if hint:
        result.advice.append(hint)
    if imports and result.exit_code in (EXIT_NOT_REPRODUCED, EXIT_INCONCLUSIVE):
        result.advice.append(imports)
    if choice.metric in time_hint.COUNTED:
        check_time(repo, runner, choice, result, store, event_printer(verbosity))
    if verbosity >= 0:
        click.echo(report.terminal_report(result))
    from . import outputs  # matplotlib only when a Markdown or HTML report is written

    written = outputs.write_outputs(result, json_path, report_path, html_path)
    if verbosity >= 0:
        for kind, path in written:
            click.echo(f"{kind} written to {path} (file://{Path(path).resolve()})")
    return result


def check_time(
    repo: GitRepo,
    runner: Runner,
    choice: RunnerChoice,
    result: SessionResult,
    store: MeasurementStore,
    on_event: Callable[[Event], None],
) -> None:
    """After a bisect by a count: time what the counts called unchanged at the endpoints, and
    put what wall time says into the result (time_hint.py)."""
    timer: Runner
    if choice.cmd is not None:
        if result.exit_code != EXIT_NOT_REPRODUCED:
            return
        timer = CommandRunner(choice.cmd, "time", choice.timeout, choice.higher_is_better)
        names = [s.name for s in timer.list_benchmarks()]
    elif isinstance(runner, asv_instructions.AsvCountingRunner):
        timer = runner.asv
        names = time_hint.unchanged_by_count(result)
        if len(names) > time_hint.MAX_TIMED:
            rest = names[time_hint.MAX_TIMED :]
            names = names[: time_hint.MAX_TIMED]
            shown = ", ".join(rest[:3]) + (", ..." if len(rest) > 3 else "")
            result.advice.append(
                f"{len(rest)} more benchmark(s) with no {choice.metric} regression were not "
                f"timed at the endpoints ({shown}); to see whether wall time regressed, run "
                "smbisect with --metric time and -b selecting them"
            )
    else:
        return
    if not names:
        return
    checks = time_hint.check_time(
        repo,
        timer,
        names,
        choice.metric,
        result.good,
        result.bad,
        store,
        on_event,
        asv=choice.cmd is None,
    )
    result.time_checks.extend(checks)
    result.advice.extend(c.advice() for c in checks)
