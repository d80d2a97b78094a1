"""An asv suite on Dask workers: what a worker needs to measure it, and builds ahead of time.

The client discovers the suite once (its AsvRunner) and sends an `AsvRecipe`: the settings
(the suite revision as a sha, the config by its repository path), the benchmarks it found and
asv's benchmarks.json, so no worker discovers the suite again. On each machine, an `AsvBuilder`
keeps the run's clone and checkouts (git.Checkouts, shared by the machine's workers) and, per
process, an AsvRunner on that clone that measures as the serial one does:

- `--python same` (or a path): nothing is built; the commit's checkout is put on PYTHONPATH and
  asv's benchmark processes run directly (asv_direct._DirectAsv).
- `--python virtualenv`: every commit is built by asv's machinery for the config's environment
  (its build_command, default a wheel) in a process of its own, outside the machine's benchmark
  lock, into a staging directory, then moved into asv's own build cache (`asv-build-cache/SHA`
  with its timestamp, as asv's BuildCache keeps it). The measurement's `asv run SHA^!` then
  finds the wheel there and only installs it, under the lock. So builds run beside
  measurements (speculative builds of the next round too: builds.BuildQueue), each commit is
  built once per machine, and a commit asv has built before (serially, or in an earlier run)
  is not built again.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from .asv_measure import BUILD_MODES, AsvRunner, AsvSettings
from .builds import build_once
from .errors import EnvironmentProblem, MeasurementFailed
from .git import Checkouts, GitRepo
from .locks import file_lock
from .runners import Batch, BenchmarkSpec, Cancelled, _tail, run_process

CHILD = Path(__file__).with_name("asv_build_child.py")
STAGING = "smbisect-staging"


@dataclass(frozen=True)
class AsvRecipe:
    """An asv suite as the client discovered it, for the workers (picklable)."""

    settings: AsvSettings
    settings_key: str
    machine: str
    specs: tuple[BenchmarkSpec, ...]
    benchmarks_json: str  # asv's benchmarks.json of the discovery
    env_dir: str | None = None  # the build modes' env_dir on the workers' machine, if known

    @property
    def builds(self) -> bool:
        return self.settings.python in BUILD_MODES

    def list_benchmarks(self) -> list[BenchmarkSpec]:
        return list(self.specs)

    def measure(self, worktree: Path, commit: str, names: object, rounds: int) -> Batch:
        raise RuntimeError("an AsvRecipe is measured on a worker, by its AsvBuilder's runner")


def recipe_for(runner: AsvRunner, build_cache_size: int, same_machine: bool) -> AsvRecipe:
    """What workers need to measure the runner's suite. `same_machine`: the workers run on
    this machine (a local cluster), and share the config's env_dir and its build cache."""
    specs = tuple(runner.list_benchmarks())  # the one discovery, here
    settings = replace(
        runner.settings,
        config=runner.config.rel_path,
        suite_rev=runner.suite_sha,
        export_results=None,
        build_cache_size=build_cache_size if runner.builds else None,
    )
    env_dir = str(runner.env_dir) if runner.builds and same_machine else None
    bench_json = (runner.results_dir / "benchmarks.json").read_text()
    return AsvRecipe(settings, runner.settings_key, runner.machine, specs, bench_json, env_dir)


def _cached(cache: Path, sha: str) -> bool:
    """asv's BuildCache.get_cache_dir: a non-empty directory with its timestamp."""
    path = cache / sha
    return path.is_dir() and (cache / f"{sha}.timestamp").is_file() and any(path.iterdir())


class AsvBuilder:
    """The builder of a Dask job on an asv suite (dask_pool._builder): prepare(sha) checks
    sha out in the machine's shared checkouts and, in the build modes, makes sure asv's build
    cache holds its build; `runner()` is this process's AsvRunner on the clone."""

    def __init__(
        self, recipe: AsvRecipe, checkouts: Checkouts, timeout: float, env_dir: Path
    ) -> None:
        self.recipe = recipe
        self.checkouts = checkouts
        self.timeout = timeout
        self.env_dir = env_dir
        self._lock = threading.Lock()
        self._runner: AsvRunner | None = None
        self._cache: Path | None = None

    def runner(self) -> AsvRunner:
        with self._lock:
            if self._runner is None:
                settings = self.recipe.settings
                self.checkouts.have(settings.suite_rev)
                if self.recipe.builds:
                    settings = replace(settings, env_dir=str(self.env_dir))
                repo = GitRepo(self.checkouts.root / "clone")
                scratch = self.checkouts.root / f"asv-{os.getpid()}"
                runner = AsvRunner(repo, settings, scratch)
                runner.results_dir.mkdir(parents=True, exist_ok=True)
                (runner.results_dir / "benchmarks.json").write_text(self.recipe.benchmarks_json)
                runner._specs = list(self.recipe.specs)  # no discovery on the worker
                self._runner = runner
            return self._runner

    def _spec(self) -> str:
        return self.recipe.settings.python  # "virtualenv": asv's -E

    def _environment(self, cancel: threading.Event | None) -> Path:
        """asv's build cache directory of the environment, created (once per machine, under
        a lock) if missing."""
        if self._cache is not None:
            return self._cache
        runner = self.runner()
        self.env_dir.mkdir(parents=True, exist_ok=True)
        with file_lock(self.env_dir / "smbisect-env.lock"):
            argv = [sys.executable, str(CHILD), "create", str(runner.conf_path), self._spec()]
            res = run_process(argv, runner.scratch, self.timeout, cancel=cancel)
        if res.returncode != 0:
            last = _tail(res.stderr or res.stdout, 1)
            raise EnvironmentProblem(f"asv could not create its environment: {last}")
        found = json.loads(res.stdout.strip().splitlines()[-1])
        self._cache = Path(found["cache"])
        return self._cache

    def prepare(self, sha: str, cancel: threading.Event | None = None) -> tuple[Path, float]:
        """sha's checkout, and the seconds spent building it now (0 when asv's build cache
        had it, or nothing is built). A failed build is kept (a marker beside the checkout)
        and raises MeasurementFailed, so the commit is skipped; a build stopped by `cancel`
        raises Cancelled and leaves nothing behind."""
        if not self.recipe.builds:
            return self.checkouts.tree(sha)[0], 0.0
        cache = self._environment(cancel)
        if _cached(cache, sha):
            return self.checkouts.tree(sha)[0], 0.0
        return build_once(
            self.checkouts,
            sha,
            lambda path, marker: self._build(sha, path, cache, marker, cancel),
            cached=lambda: _cached(cache, sha),
        )

    def _build(
        self, sha: str, path: Path, cache: Path, marker: Path, cancel: threading.Event | None
    ) -> float:
        runner = self.runner()
        subdir = runner.repo_subdir
        build_dir = path / subdir if subdir else path
        out = self.env_dir / STAGING / f"{sha}-{os.getpid()}-{threading.get_ident()}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        argv = [
            sys.executable,
            str(CHILD),
            "build",
            str(runner.conf_path),
            self._spec(),
            sha,
            str(build_dir),
            str(out),
        ]
        start = time.perf_counter()
        try:
            try:
                res = run_process(argv, runner.scratch, self.timeout, cancel=cancel)
            except Cancelled:
                self.checkouts.drop(sha)
                raise
            except MeasurementFailed as exc:  # timed out
                marker.write_text(f"asv build {exc}")
                raise MeasurementFailed(f"asv build {exc}") from None
            if res.returncode != 0:
                detail = _tail(res.stderr or res.stdout)
                last = detail.splitlines()[-1] if detail else ""
                failed = f"asv build of {sha[:10]} failed: {last}".rstrip(": ")
                marker.write_text(failed)
                raise MeasurementFailed(failed, detail)
            if any(out.iterdir()):  # a build_command that leaves nothing: asv installs itself
                self._publish(sha, out, cache)
            marker.write_text("")
            return time.perf_counter() - start
        finally:
            shutil.rmtree(out, ignore_errors=True)

    def _publish(self, sha: str, out: Path, cache: Path) -> None:
        """Move a build into asv's cache as asv's BuildCache would hold it. The timestamp comes
        first: asv's cleanup removes every directory without one (asv's own builds in
        progress), and its other cleanup keeps the newest `build_cache_size`."""
        cache.mkdir(parents=True, exist_ok=True)
        with file_lock(self.env_dir / "smbisect-env.lock"):
            if _cached(cache, sha):
                return
            shutil.rmtree(cache / sha, ignore_errors=True)
            (cache / f"{sha}.timestamp").write_bytes(b"")
            os.replace(out, cache / sha)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.checkouts.close()
