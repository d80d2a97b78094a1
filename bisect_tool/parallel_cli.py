"""The command-line side of building commits and measuring them on Dask workers: the options,
and turning them into runners (builds.py, dask_pool.py) for the session."""

from __future__ import annotations

import contextlib
import importlib
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from . import kary
from .asv_measure import BUILD_MODES, AsvRunner
from .builds import Builder, BuildingRunner, split_build
from .errors import UsageError
from .git import Checkouts, GitRepo
from .runners import CommandRunner, Runner


@dataclass(frozen=True)
class ParallelChoice:
    workers: int | None = None
    scheduler: str | None = None
    repo_url: str | None = None
    build: str | None = None
    build_timeout: float = 1800.0
    build_jobs: int | None = None

    def jobs(self) -> int:
        """Builds at once on this machine with --workers: --build-jobs, or by default one per
        worker plus good and bad (the first round's builds all at once)."""
        return self.build_jobs or (self.workers or 1) + 2

    @property
    def distributed(self) -> bool:
        return self.workers is not None or self.scheduler is not None


def parallel_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--build",
            metavar="COMMAND",
            help="For --cmd: build each commit before measuring it, in a checkout of its own "
            "(e.g. 'make -j2'). Its time is not measured; exit 125 skips the commit.",
        ),
        click.option(
            "--build-timeout",
            type=float,
            default=ParallelChoice.build_timeout,
            show_default=True,
            metavar="SECONDS",
            help="A build that takes longer fails, and its commit is skipped.",
        ),
        click.option(
            "--build-jobs",
            type=click.IntRange(1, 256),
            metavar="N",
            help="With --workers and --build (or --python virtualenv): at most N builds at once "
            "on this machine "
            "[default: K+2]. Beyond the commits a round measures, free build slots build the "
            "next round's possible commits (up to K*(K+1)) while it measures; raise N when "
            "builds leave the CPU idle (I/O, remote compilers), keep it low when they do not.",
        ),
        click.option(
            "--workers",
            type=click.IntRange(1, 64),
            metavar="K",
            help="Bisect on K local Dask workers (--cmd, or an asv suite in --python same or "
            "virtualenv), measuring K commits per round "
            "(about log_{K+1} N rounds). Builds run in parallel; one benchmark process runs at "
            "a time per machine. Needs `pip install 'smbisect[dask]'`.",
        ),
        click.option(
            "--scheduler",
            metavar="ADDRESS",
            help="Bisect on the workers of a running Dask cluster "
            "(`dask scheduler` / `dask worker ADDRESS`), one commit per worker per round. "
            "Each worker compares a commit only with good and bad measured on itself.",
        ),
        click.option(
            "--repo-url",
            metavar="URL",
            help="Where Dask workers clone the repository from (default: its path here, "
            "which workers on this machine or a shared filesystem can reach).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def take_parallel(kw: dict[str, Any]) -> ParallelChoice:
    return ParallelChoice(
        workers=kw.pop("workers"),
        scheduler=kw.pop("scheduler"),
        repo_url=kw.pop("repo_url"),
        build=kw.pop("build"),
        build_timeout=kw.pop("build_timeout"),
        build_jobs=kw.pop("build_jobs"),
    )


def check_parallel(choice: ParallelChoice, cmd: str | None, python: str = "same") -> None:
    if choice.workers is not None and choice.scheduler:
        raise UsageError("give --workers or --scheduler, not both")
    if cmd is None and choice.distributed and python == "config":
        raise UsageError(
            "--workers and --scheduler work with --cmd or an asv suite in --python same, a "
            "path or virtualenv; not with --python config"
        )
    if cmd is None and choice.build:
        raise UsageError("--build works with --cmd; for an asv suite use --python virtualenv")
    if choice.repo_url and not choice.distributed:
        raise UsageError("--repo-url is for Dask workers: give --workers or --scheduler too")
    if choice.build_timeout <= 0:
        raise UsageError(f"--build-timeout must be positive, not {choice.build_timeout:g}")
    if choice.build:
        split_build(choice.build)
    asv_builds = cmd is None and python in BUILD_MODES
    if choice.build_jobs is not None and not ((choice.build or asv_builds) and choice.workers):
        raise UsageError(
            "--build-jobs is for local Dask workers that build: give --workers and --build "
            "(or --python virtualenv for an asv suite)"
        )


def _remote_form(runner: Runner, choice: ParallelChoice) -> Runner:
    """What the workers get to measure with: a --cmd runner as it is; an asv suite as an
    AsvRecipe (discovered here, once), which each worker turns into an AsvRunner on its clone.
    asv's build cache keeps at least two rounds' worth of builds (good, bad, the K picks and
    the K(K+1) possible next ones, twice), so that no build made ahead is evicted before it is
    measured."""
    if isinstance(runner, CommandRunner):
        return runner
    if not isinstance(runner, AsvRunner):
        raise UsageError("--metric with an asv suite is not supported on Dask workers yet")
    from .asv_workers import recipe_for

    k = choice.workers or 4
    return recipe_for(runner, 2 + 2 * k * (k + 2), same_machine=choice.workers is not None)


def _import_in_background(module: str) -> None:
    """Import a module in a thread, so that the first verdict does not wait a second or two
    for it. Importing it again later waits for this import, or is free."""

    def run() -> None:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)

    threading.Thread(target=run, name=f"smbisect-import-{module}", daemon=True).start()


@contextmanager
def runners(
    repo: GitRepo,
    runner: Runner,
    choice: ParallelChoice,
    scratch: Path,
    good: str = "",
    bad: str = "",
) -> Iterator[tuple[Runner, list[Runner]]]:
    """The local runner (built through --build when given) and one runner per Dask worker
    (none without --workers/--scheduler). The cluster is shut down on exit. With --workers
    and --build, good, bad and the first round's commits are built while the cluster
    starts, and then the second round's possible commits (speculatively)."""
    build = tuple(split_build(choice.build)) if choice.build else ()
    if not choice.distributed:
        if not build:
            yield runner, []
            return
        checkouts = Checkouts(str(repo.common_dir()), scratch / "builds")
        try:
            yield BuildingRunner(runner, Builder(build, checkouts, choice.build_timeout)), []
        finally:
            checkouts.close()
        return
    from .dask_pool import Job, Pool

    source = choice.repo_url or str(repo.common_dir())
    job = Job(source, _remote_form(runner, choice), build, choice.build_timeout, uuid.uuid4().hex)
    early = None
    if job.builds and choice.workers and good and bad:
        dag = repo.candidates(good, bad)
        first = kary.pick(dag, bad, choice.workers)
        early = Pool.build_here(job, choice.jobs())
        early.want([good, bad, *first], kary.next_picks(dag, bad, first, choice.workers))
    try:
        pool = Pool.start(choice.workers, choice.scheduler, scratch / "dask")
    except BaseException:
        if early is not None:
            early.close()
        raise
    if early is not None:
        pool.adopt_builds(early)
    # the first verdict needs it; imported while the endpoints are built and measured (not
    # while the cluster starts: both want the one interpreter lock)
    _import_in_background("scipy.stats")
    try:
        yield runner, [pool.runner_for(w, job) for w in pool.workers]
    finally:
        pool.close()
