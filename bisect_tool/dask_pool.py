"""Measuring on Dask workers: a local cluster (`--workers K`) or an existing one (`--scheduler`).

Dask distributed schedules; smbisect writes no scheduler, RPC or worker protocol of its own.
Each worker gets a `RemoteRunner` pinned to it, so a Judge drives a worker exactly as it drives
the local machine: the judge asks for runs, the worker measures them and sends the samples
back, and the client alone writes the cache. On the worker:

- the repository comes from its path or clone URL (`--repo-url`) into a private clone, and
  each commit is checked out in a directory of its own (git.Checkouts), built there once when
  `--build` is given;
- builds run in parallel, but only one benchmark process runs at a time per machine (an
  exclusive lock on a file in the machine's temporary directory), so parallel work on one
  machine never disturbs a timing;
- the command sees `SMBISECT_WORKER`, the worker's name.

A worker that disappears (killed, its machine gone) makes its measurement raise `WorkerLost`;
the caller drops that worker and measures the commit again elsewhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .errors import EnvironmentProblem, MeasurementFailed, SmbisectError, UsageError, WorkerLost
from .locks import file_lock
from .runners import Batch, BenchmarkSpec, Runner, _digest

if TYPE_CHECKING:
    from .builds import BuildQueue

_POLL_SECONDS = 1.0  # between checks that a busy worker is still alive
_WAIT_STEP = 0.02  # between looks at a submitted measurement
_START_TIMEOUT = 120.0  # seconds for local workers to register with the scheduler
_SOCKET_DIR_MAX = 60  # a Unix socket path is at most 107 bytes; multiprocessing adds ~40
_INSTALL = "pip install 'smbisect[dask]' (Dask distributed)"


@dataclass(frozen=True)
class WorkerInfo:
    address: str
    name: str
    host: str

    @property
    def label(self) -> str:
        """How reports name the machine and worker: host/name."""
        return f"{self.host}/{self.name}"


@dataclass(frozen=True)
class Job:
    """What a worker needs to measure: where the repository is and how to run and build."""

    source: str  # a path or clone URL the worker can reach
    runner: Runner
    build: tuple[str, ...] = ()
    build_timeout: float = 600.0
    run_id: str = ""  # the workers of one machine share this run's checkouts and builds

    @property
    def builds(self) -> bool:
        """Whether commits are built before they are measured (--build, or an asv suite
        that asv builds and installs: --python virtualenv)."""
        from .asv_workers import AsvRecipe

        return bool(self.build) or (isinstance(self.runner, AsvRecipe) and self.runner.builds)


class Pool:
    """A Dask client and the workers it measures on, in a stable order."""

    def __init__(self, client: Any, cluster: Any = None) -> None:
        self.client = client
        self.cluster = cluster
        self._speculative: list[Any] = []
        self._local_builds: BuildQueue | None = None
        self.workers = self._discover()
        if not self.workers:
            self.close()
            raise EnvironmentProblem("the Dask cluster has no workers")
        self._check_versions()

    @staticmethod
    def start(workers: int | None, scheduler: str | None, scratch: Path | None = None) -> Pool:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise EnvironmentProblem(f"--workers/--scheduler need Dask: {_INSTALL}") from None
        if scheduler:
            try:
                client = Client(scheduler, timeout=10)
            except (OSError, TimeoutError, ValueError) as exc:
                raise EnvironmentProblem(
                    f"could not connect to the Dask scheduler at {scheduler}: {exc}"
                ) from None
            return Pool(client)
        if workers is None or workers < 1:
            raise UsageError("--workers must be at least 1")
        import dask

        if scratch is not None:  # dask-scratch-space goes with the run's temporary directory
            dask.config.set({"temporary-directory": str(scratch)})
        # workers forked from a fresh server process: 2 s to start three on a loaded 2-core
        # machine, against 6 s when each is spawned and imports Dask itself. The fork server
        # listens on a Unix socket in the temporary directory, whose path may not exceed about
        # 100 bytes: with a longer TMPDIR, workers are spawned.
        method = "forkserver" if len(tempfile.gettempdir()) <= _SOCKET_DIR_MAX else "spawn"
        dask.config.set({"distributed.worker.multiprocessing-method": method})
        try:
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
                local_directory=str(scratch) if scratch else None,
            )
        except Exception as exc:  # Dask reports a worker that did not start this way
            raise EnvironmentProblem(
                f"could not start {workers} local Dask workers: {type(exc).__name__}: {exc}"
            ) from None
        client = Client(cluster)
        try:
            # on a loaded machine a started worker may not have registered with the scheduler
            # yet, and the pool would measure on fewer workers than asked for
            client.wait_for_workers(workers, timeout=_START_TIMEOUT)
        except TimeoutError:
            have = len(client.scheduler_info(n_workers=-1)["workers"])
            client.close()
            cluster.close()
            raise EnvironmentProblem(
                f"only {have} of {workers} local Dask workers registered within "
                f"{_START_TIMEOUT:g} s; the machine may be overloaded"
            ) from None
        return Pool(client, cluster)

    def _discover(self) -> list[WorkerInfo]:
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        found = [
            WorkerInfo(addr, str(w.get("name", addr)), str(w.get("host", "")))
            for addr, w in info.items()
        ]
        hosts = _hostnames(self.client)
        found = [WorkerInfo(w.address, w.name, hosts.get(w.address, w.host)) for w in found]
        return sorted(found, key=lambda w: (w.host, _natural(w.name)))

    def _check_versions(self) -> None:
        try:
            versions = self.client.run(_worker_version)
        except Exception as exc:  # a worker without smbisect cannot even unpickle the probe
            raise EnvironmentProblem(
                f"a Dask worker cannot run smbisect ({type(exc).__name__}: {exc}); install "
                f"smbisect {__version__} on every worker"
            ) from None
        for addr, version in sorted(versions.items()):
            if version != __version__:
                raise EnvironmentProblem(
                    f"Dask worker {addr} runs smbisect {version}, this is {__version__}; "
                    "install the same version on every worker"
                )

    def alive(self, address: str) -> bool:
        """False when the scheduler no longer lists the worker, or has not answered three
        times in a row. One question that times out (a loaded machine) is not a lost worker:
        under load 5-6, a single failed `scheduler_info` dropped a healthy worker's lane."""
        for attempt in range(3):
            try:
                return address in self.client.scheduler_info(n_workers=-1)["workers"]
            except Exception:
                time.sleep(1.0 + attempt)
        return False

    def runner_for(self, worker: WorkerInfo, job: Job) -> RemoteRunner:
        return RemoteRunner(self, worker, job)

    @staticmethod
    def build_here(job: Job, jobs: int) -> BuildQueue:
        """A queue that builds commits in this process, in the background, into the checkouts
        the workers of this machine share: a local cluster's workers take seconds to start,
        and good, bad and the first round's commits can be built meanwhile; later, the next
        round's possible commits are built while a round measures (speculative builds)."""
        from .builds import BuildQueue

        return BuildQueue(_builder(job), jobs)

    def adopt_builds(self, queue: BuildQueue) -> None:
        self._local_builds = queue

    def prebuild(self, job: Job, needed: Sequence[str], maybe: Sequence[str] = ()) -> None:
        """Build these commits ahead of their measurements: `needed` first, then the
        speculative `maybe`. With a queue in this process (a local cluster), it builds them,
        at most its `jobs` at once, and drops (or stops) builds no longer wanted. Otherwise
        only the first call's needed commits (good, bad and the first round's, known before
        anything is measured, while the workers are idle) are submitted to the workers, one
        after another: later, a worker runs one task at a time, and a build there would hold
        up a measurement; each commit is built by the measurement that needs it. The
        futures are kept, or Dask would cancel them."""
        if self._local_builds is not None:
            self._local_builds.want(needed, maybe)
            return
        if self._speculative:
            return
        for i, sha in enumerate(dict.fromkeys(needed)):
            worker = self.workers[i % len(self.workers)]
            self._speculative.append(
                self.client.submit(build_on_worker, job, sha, workers=[worker.address], pure=False)
            )

    def close(self) -> None:
        if self._local_builds is not None:
            self._local_builds.close()
        with contextlib.suppress(Exception):
            self.client.run(_cleanup)  # the workers' clones and checkouts of this run
        _cleanup()
        with contextlib.suppress(Exception):
            self.client.close()
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close()


class RemoteRunner:
    """A Runner whose measurements run on one Dask worker."""

    def __init__(self, pool: Pool, worker: WorkerInfo, job: Job) -> None:
        self.pool = pool
        self.worker = worker
        self.job = job
        # samples are compared only with references measured on the same worker
        self.machine = worker.label
        self.settings_key = _digest(job.runner.settings_key, "build", job.build)

    def list_benchmarks(self) -> list[BenchmarkSpec]:
        return self.job.runner.list_benchmarks()

    def prebuild(self, needed: Sequence[str], maybe: Sequence[str] = ()) -> None:
        """Build these commits ahead of their measurements (Pool.prebuild)."""
        if self.job.builds:
            self.pool.prebuild(self.job, needed, maybe)

    def measure(self, worktree: Path, commit: str, names: Sequence[str], rounds: int) -> Batch:
        future = self.pool.client.submit(
            measure_on_worker,
            self.job,
            commit,
            list(names),
            rounds,
            workers=[self.worker.address],
            allow_other_workers=False,
            pure=False,
        )
        try:
            # Polled with done(), and the result taken only once it is there: `result(timeout=)`
            # races in Dask's sync() under load (its wait times out as the loop's wait_for
            # cancels, and it raised UnboundLocalError in CI, for every run of a commit)
            checked = time.monotonic()
            while not future.done():
                time.sleep(_WAIT_STEP)
                if time.monotonic() - checked >= _POLL_SECONDS:
                    if not self.pool.alive(self.worker.address):
                        raise WorkerLost(f"worker {self.worker.label} was lost")
                    checked = time.monotonic()
            try:
                kind, payload = future.result()
            except (SmbisectError, KeyboardInterrupt):
                raise
            except Exception as exc:  # KilledWorker, CommClosedError, a crash in the task
                if not self.pool.alive(self.worker.address):
                    raise WorkerLost(f"worker {self.worker.label} was lost") from None
                raise MeasurementFailed(
                    f"on worker {self.worker.label}: {type(exc).__name__}: {exc}"
                ) from None
        finally:
            if not future.done():
                with contextlib.suppress(Exception):
                    future.cancel()
        if kind == "failed":
            message, detail = payload
            raise MeasurementFailed(message, detail)
        assert isinstance(payload, Batch)
        payload.worker = self.worker.label
        return payload


# -- on the worker ---------------------------------------------------------------------------

_STATE: dict[tuple[str, tuple[str, ...], str], Any] = {}


def _worker_version() -> str:
    return __version__


def _hostnames(client: Any) -> dict[str, str]:
    try:
        return dict(client.run(socket.gethostname))
    except Exception:
        return {}


def _natural(name: str) -> tuple[int, str]:
    return (int(name), "") if name.isdigit() else (1 << 30, name)


def _builder(job: Job) -> Any:
    """This machine's checkouts for the run, shared by its workers (git.Checkouts locks);
    for an asv suite, an AsvBuilder, which also holds this process's AsvRunner."""
    from .asv_workers import AsvBuilder, AsvRecipe
    from .builds import Builder
    from .git import Checkouts

    key = (job.source, job.build, job.run_id)
    if key not in _STATE:
        tag = hashlib.sha256(
            f"{job.source}\0{job.run_id}".encode("utf-8", "surrogateescape")
        ).hexdigest()[:12]
        root = Path(tempfile.gettempdir()) / f"smbisect-builds-{tag}"
        checkouts = Checkouts(job.source, root, keep=None)
        if isinstance(job.runner, AsvRecipe):
            _STATE[key] = AsvBuilder(job.runner, checkouts, job.build_timeout, _asv_env_dir(job))
        else:
            _STATE[key] = Builder(job.build, checkouts, job.build_timeout)
    return _STATE[key]


def _asv_env_dir(job: Job) -> Path:
    """Where asv keeps its environments and build cache for this job on this machine: the
    config's env_dir on the client's machine (a local cluster: the same as a serial bisect),
    else one per repository in the temporary directory, kept after the run, so that a later
    bisect on this machine reuses asv's builds."""
    from .asv_workers import AsvRecipe

    assert isinstance(job.runner, AsvRecipe)
    if job.runner.env_dir:
        return Path(job.runner.env_dir)
    tag = hashlib.sha256(
        f"{job.source}\0{job.runner.settings.config}".encode("utf-8", "surrogateescape")
    ).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"smbisect-asv-env-{tag}"


def _measuring_runner(job: Job, builder: Any) -> Runner:
    from .asv_workers import AsvBuilder

    return builder.runner() if isinstance(builder, AsvBuilder) else job.runner


def build_on_worker(job: Job, commit: str) -> str:
    """Runs on a Dask worker: check out and build commit ahead of its measurement (a
    speculative build); the outcome is kept for whichever worker of the machine measures it."""
    try:
        _builder(job).prepare(commit)
    except SmbisectError as exc:
        return str(exc)
    return ""


def _cleanup() -> None:
    for builder in _STATE.values():
        with contextlib.suppress(Exception):
            builder.checkouts.close()
        shutil.rmtree(builder.checkouts.root, ignore_errors=True)
    _STATE.clear()


def machine_lock() -> contextlib.AbstractContextManager[None]:
    """One benchmark process at a time on this machine, whichever worker runs it."""
    return file_lock(Path(tempfile.gettempdir()) / "smbisect-measure.lock")


def measure_on_worker(job: Job, commit: str, names: list[str], rounds: int) -> tuple[str, Any]:
    """Runs on a Dask worker: check out (and build) commit, then measure it under the lock."""
    try:
        from distributed import get_worker

        os.environ["SMBISECT_WORKER"] = str(get_worker().name)
    except (ImportError, ValueError):
        pass
    try:
        builder = _builder(job)
        path, seconds = builder.prepare(commit)
        runner = _measuring_runner(job, builder)
        with machine_lock():
            batch = runner.measure(path, commit, names, rounds)
        batch.setup_seconds += seconds
        return "ok", batch
    except MeasurementFailed as exc:
        return "failed", (str(exc), exc.detail)
    except SmbisectError as exc:
        return "failed", (str(exc), "")
