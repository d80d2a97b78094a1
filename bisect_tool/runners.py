"""The only module that starts benchmark processes: an asv runner and a command runner.

Both measure one commit checked out in a worktree and return every sample per benchmark, so the
statistics can compare distributions instead of single timings. Processes run in their own
process group, killed as a whole if we are interrupted, so no benchmark outlives smbisect.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import posixpath
import re
import resource
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from . import instructions
from .asv_config import (
    build_reason_at,
    check_environment_type,
    find_config,
    import_roots,
    tracked_files,
)
from .asv_results import export_run
from .errors import EnvironmentProblem, MeasurementFailed, UsageError
from .git import GitRepo

_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
_RATE_UNIT = re.compile(r"(/\s*|\bper\s+)s(ec(ond)?)?\s*$", re.I)
_RATE_NAME = re.compile(r"throughput|_per_s(ec(ond)?)?$|_per_second$|_ops_per_", re.I)
SKIP_EXIT_CODE = 125  # git bisect run's "cannot test this commit"


@dataclass(frozen=True)
class BenchmarkSpec:
    """A benchmark as the user names it, and which direction is worse."""

    name: str
    unit: str = "seconds"
    worse_is_higher: bool | None = True  # None: either direction counts as the regression
    samples_per_round: int = 1  # how many samples one round (one process) yields
    kind: str = "time"  # asv type: time, peakmemory, memory, track; "command" for --cmd


@dataclass
class Batch:
    """What one measurement of one commit produced."""

    samples: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    setup_seconds: float = 0.0  # spent before measuring (a --build): not counted in the budget
    worker: str = ""  # the Dask worker that measured, when one did


class Runner(Protocol):
    settings_key: str
    machine: str

    def list_benchmarks(self) -> list[BenchmarkSpec]: ...

    def measure(self, worktree: Path, commit: str, names: Sequence[str], rounds: int) -> Batch: ...


@dataclass(frozen=True)
class ProcessResult:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    cpu_seconds: float = 0.0  # user + system CPU of the process tree (the children it waited for)


def run_process(
    argv: Sequence[str],
    cwd: Path,
    timeout: float | None,
    env: dict[str, str] | None = None,
    cancel: threading.Event | None = None,
) -> ProcessResult:
    """Run argv (never through a shell) in its own process group; kill the group on any exit.
    When `cancel` is set while it runs, the group is stopped and Cancelled raised."""
    start = time.perf_counter()
    cpu_before = _children_cpu()
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except FileNotFoundError:
        raise MeasurementFailed(f"command not found: {argv[0]}") from None
    except PermissionError:
        raise MeasurementFailed(f"command not executable: {argv[0]}") from None
    try:
        out, err = _communicate(proc, timeout, cancel)
    except subprocess.TimeoutExpired:
        stop_group(proc)
        raise MeasurementFailed(f"timed out after {timeout:g} s") from None
    except Cancelled:
        stop_group(proc, grace=0.5)
        raise
    except BaseException:
        stop_group(proc)
        raise
    seconds = time.perf_counter() - start
    return ProcessResult(proc.returncode, out, err, seconds, _children_cpu() - cpu_before)


class Cancelled(Exception):
    """A process stopped because its result is no longer wanted (a speculative build)."""


def _communicate(
    proc: subprocess.Popen[str], timeout: float | None, cancel: threading.Event | None
) -> tuple[str, str]:
    if cancel is None:
        return proc.communicate(timeout=timeout)
    deadline = None if timeout is None else time.perf_counter() + timeout
    while True:
        if cancel.is_set():
            raise Cancelled
        left = None if deadline is None else deadline - time.perf_counter()
        if left is not None and left <= 0:
            raise subprocess.TimeoutExpired(proc.args, timeout or 0)
        # communicate may be called again after it times out, losing no output
        with contextlib.suppress(subprocess.TimeoutExpired):
            return proc.communicate(timeout=0.2 if left is None else min(0.2, left))


def _children_cpu() -> float:
    """User + system CPU seconds of every child process that has been waited for so far.

    The delta around one command is its whole tree's CPU time, because a process's own
    waited-for children are added to its usage when it is waited for in turn. Only one
    command runs at a time, so nothing else is waited for in between."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def stop_group(proc: subprocess.Popen[str], grace: float = 3.0) -> None:
    """SIGINT first, so asv can stop the benchmark processes it put in groups of their own;
    then SIGKILL for whatever is left in the group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def last_number(text: str) -> float | None:
    found = _NUMBER.findall(text)
    return float(found[-1]) if found else None


def _tail(text: str, lines: int = 8) -> str:
    kept = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(kept[-lines:])


def machine_name() -> str:
    return socket.gethostname()


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


COMMAND_METRICS = ("time", "cputime", "stdout", *instructions.METRICS)


class CommandRunner:
    """Runs a user's command in the commit's worktree; each round is a separate process."""

    def __init__(
        self,
        command: str,
        metric: str = "time",
        timeout: float = 600.0,
        higher_is_better: bool = False,
    ) -> None:
        try:
            self.argv = shlex.split(command)
        except ValueError as exc:
            raise UsageError(f"--cmd cannot be split into arguments: {exc}") from None
        if not self.argv:
            raise UsageError("--cmd is empty")
        if metric not in COMMAND_METRICS:
            raise UsageError(
                f"--metric must be one of {', '.join(COMMAND_METRICS)}, not {metric!r}"
            )
        counting = metric in instructions.METRICS
        if counting and higher_is_better:
            raise UsageError(f"--higher-is-better does not apply to --metric {metric}")
        self.command = command
        self.metric = metric
        self.timeout = timeout
        self.higher_is_better = higher_is_better
        self.machine = machine_name()
        if counting:
            # one clear line (exit 1) before anything is measured when valgrind is missing
            valgrind = instructions.find_valgrind(metric)
            counted_with = instructions.settings_key(metric, valgrind, os.environ)
            self.settings_key = _digest("cmd", self.argv, metric, timeout, counted_with)
        else:
            self.settings_key = _digest("cmd", self.argv, metric, timeout)

    def list_benchmarks(self) -> list[BenchmarkSpec]:
        if self.metric in instructions.METRICS:
            return [BenchmarkSpec(self.command, self.metric, True, 1, "command")]
        unit = "seconds" if self.metric in ("time", "cputime") else "value"
        return [BenchmarkSpec(self.command, unit, not self.higher_is_better, 1, "command")]

    def _run(self, worktree: Path) -> tuple[ProcessResult, float | None]:
        """One run; with a counting metric, under valgrind, with its count."""
        if self.metric not in instructions.METRICS:
            return run_process(self.argv, worktree, self.timeout), None
        start = time.perf_counter()
        counts, code, out, err = instructions.count(self.argv, worktree, self.metric, self.timeout)
        res = ProcessResult(code, out, err, time.perf_counter() - start)
        return res, counts.value(self.metric)

    def measure(self, worktree: Path, commit: str, names: Sequence[str], rounds: int) -> Batch:
        samples: list[float] = []
        for _ in range(rounds):
            res, counted = self._run(worktree)
            if res.returncode == SKIP_EXIT_CODE:
                raise MeasurementFailed("command exited 125 (skip this commit)", _tail(res.stderr))
            if res.returncode != 0:
                detail = _tail(res.stderr or res.stdout)
                last = detail.splitlines()[-1] if detail else ""
                raise MeasurementFailed(
                    f"command exited {res.returncode}: {last}".rstrip(": "), detail
                )
            if counted is not None:
                samples.append(counted)
            elif self.metric == "time":
                samples.append(res.seconds)
            elif self.metric == "cputime":
                samples.append(res.cpu_seconds)
            else:
                value = last_number(res.stdout)
                if value is None or not math.isfinite(value):
                    raise MeasurementFailed(
                        "command printed no number on stdout", _tail(res.stdout)
                    )
                samples.append(value)
        return Batch(samples={self.command: samples})


@dataclass(frozen=True)
class AsvSettings:
    """How asv is driven: which suite revision, which Python, how many repeats per round."""

    # the asv config; None finds it (the root's, the current directory's, or the only one)
    config: str | None = None
    suite_rev: str = "HEAD"
    # "same", a path to a python, "virtualenv" to let asv build each commit, or "config" for
    # the config's own environment_type (conda, rattler, ...) through asv
    python: str = "same"
    repeat: int = 5
    timeout: float = 600.0
    # where measurements are also written in asv's format: "auto" is the config's results_dir
    # (resolved against the config's directory, as asv does), None disables it, anything else
    # is a directory path
    export_results: str | None = "auto"
    # the build modes' environments and asv build cache: the config's env_dir unless given
    # (Dask workers on another machine keep theirs in their temporary directory)
    env_dir: str | None = None
    # at least this many builds kept in asv's build cache (its `build_cache_size`), so that
    # builds made ahead of their measurements on Dask workers are not evicted before them
    build_cache_size: int | None = None


BUILD_MODES = ("virtualenv", "config")  # asv builds and installs every commit


class AsvRunner:
    """Measures through `asv run`, so the numbers are asv's own.

    The suite (benchmark_dir) and the config come from one fixed revision and are exported to a
    scratch directory; the project code is the worktree's commit, made importable through
    PYTHONPATH (existing environment) or built by asv itself (virtualenv / config modes).
    The config is found and read as asv reads it (see asv_config), so suites kept in a
    subdirectory with `"repo": ".."` (numpy, pandas, xarray) work as they are.
    """

    def __init__(
        self,
        repo: GitRepo,
        settings: AsvSettings,
        scratch: Path,
        note: Callable[[str], None] | None = None,
    ) -> None:
        self.repo = repo
        self.settings = settings
        self.scratch = scratch
        self.note = note or (lambda _message: None)
        scratch.mkdir(parents=True, exist_ok=True)
        self.suite_sha = repo.resolve(settings.suite_rev, "--suite-rev")
        files = tracked_files(repo, self.suite_sha)
        self.config = find_config(
            repo, self.suite_sha, settings.suite_rev, settings.config, files=files
        )
        self.conf: dict[str, Any] = self.config.data
        root = repo.root
        self.builds = settings.python in BUILD_MODES
        self.repo_subdir = str(self.config.setting("repo_subdir") or "").strip("/")
        if settings.python == "config":
            check_environment_type(self.config.setting("environment_type"), self.config.rel_path)
        self._build_reasons: dict[str, str | None] = {}
        if not self.builds:
            reason = build_reason_at(repo, self.suite_sha, self.repo_subdir, files)
            self._build_reasons[self.suite_sha] = reason
            if reason:
                raise UsageError(_needs_build(reason, settings.suite_rev, settings.python))
        self.suite_dir = scratch / "suite"
        bench_dest = self._export_suite(files)
        self.results_dir = scratch / "results"
        self.conf_path = scratch / "asv.conf.json"
        conf = dict(self.conf)
        env_dir = scratch / "env"
        if self.builds:
            env_dir = Path(settings.env_dir or self.config.absolute(root, "env_dir"))
        self.env_dir = env_dir
        if settings.build_cache_size is not None:
            kept = conf.get("build_cache_size", 2)
            kept = kept if isinstance(kept, int) and not isinstance(kept, bool) else 2
            conf["build_cache_size"] = max(kept, settings.build_cache_size)
        conf.update(
            repo=str(root),
            benchmark_dir=str(bench_dest),
            results_dir=str(self.results_dir),
            html_dir=str(scratch / "html"),
            env_dir=str(env_dir),
        )
        if settings.python == "config":
            self._export_environment_file(conf, files)
        self.conf_path.write_text(json.dumps(conf, indent=2))
        self.machine = self._ensure_machine()
        self.results_home = self.config.absolute(root, "results_dir")
        self.export_dir: Path | None = None
        if settings.export_results == "auto":
            self.export_dir = self.results_home
        elif settings.export_results:
            self.export_dir = Path(settings.export_results).resolve()
        self.note(self._config_note(bench_dest))
        self.settings_key = _digest(
            "asv",
            self.suite_sha,
            settings.python,
            settings.repeat,
            settings.timeout,
            sys.executable,
            self.config.rel_path,
            self.conf,
            _tree_digest(self.suite_dir),
        )
        self._specs: list[BenchmarkSpec] | None = None
        # --python same / a path: runs go straight to asv's benchmark process (see _DirectAsv),
        # with the suite discovered once; None until first used, False after a fallback
        self._direct: _DirectAsv | None | bool = None if not self.builds else False
        self.discoveries = 0  # `asv run --bench just-discover` calls (once per suite revision)

    # -- the suite and the config ------------------------------------------------------------

    def _export_suite(self, files: list[str]) -> Path:
        """Copy benchmark_dir at the suite revision (or, untracked, from disk) to the scratch
        directory, under its own name: asv imports the suite as a package of that name."""
        root = self.repo.root
        value = str(self.config.setting("benchmark_dir"))
        rel = self.config.repo_relative(root, "benchmark_dir")
        local = self.config.absolute(root, "benchmark_dir")
        dest = self.suite_dir / (local.name or "benchmarks")
        exported = bool(rel) and self.repo.export_tree(self.suite_sha, str(rel), dest)
        if not exported:
            if not local.is_dir():
                shown = f" ({rel})" if rel and rel != value else ""
                raise UsageError(
                    f"asv benchmark_dir {value!r}{shown} of {self.config.rel_path} not found "
                    f"at {self.settings.suite_rev}"
                )
            _copy_tree(local, dest)
        if not (dest / "__init__.py").is_file():
            # asv requires it ("No __init__.py file in ..."); the copy gets an empty one
            (dest / "__init__.py").write_text("")
            self.note(
                f"asv benchmark_dir {rel or value} has no __init__.py, which asv requires; "
                "smbisect's copy of the suite gets an empty one"
            )
        return dest

    def _export_environment_file(self, conf: dict[str, Any], files: list[str]) -> None:
        """conda/rattler read conda_environment_file (default environment.yml) relative to
        the config's directory; give asv its copy from the suite revision."""
        value = self.config.setting("conda_environment_file")
        if value == "IGNORE":
            return
        rel = posixpath.normpath(posixpath.join(self.config.conf_dir, value or "environment.yml"))
        text = self.repo.read_file_at(self.suite_sha, rel) if rel in files else None
        if text is None and (self.repo.root / rel).is_file():
            text = (self.repo.root / rel).read_text()
        if text is None:
            return
        target = self.scratch / posixpath.basename(rel)
        target.write_text(text)
        if value:
            conf["conda_environment_file"] = str(target)

    def _config_note(self, bench_dest: Path) -> str:
        root = self.repo.root
        bench = self.config.repo_relative(root, "benchmark_dir")
        parts = [f"asv config {self.config.describe()}"]
        parts.append(f"benchmarks {bench if bench is not None else bench_dest}")
        if self.export_dir is not None:
            shown = self.export_dir
            with contextlib.suppress(ValueError):
                shown = self.export_dir.relative_to(root)
            parts.append(f"results into {shown}")
        repo_value = str(self.config.setting("repo"))
        if not re.search(r"://|^[\w.-]+@", repo_value):
            repo_at = self.config.absolute(root, "repo")
            if repo_at != root:
                parts.append(f"its repo {repo_value!r} is not {root}; bisecting {root}")
        if self.repo_subdir:
            parts.append(f"project in {self.repo_subdir}/")
        if self.settings.python == "config":
            parts.append(f"environment_type {self.config.setting('environment_type')}")
        return "; ".join(parts)

    def build_reason(self, commit: str) -> str | None:
        """Why this commit's code cannot run from its source tree (cached per commit)."""
        if commit not in self._build_reasons:
            self._build_reasons[commit] = build_reason_at(self.repo, commit, self.repo_subdir)
        return self._build_reasons[commit]

    # -- asv plumbing ------------------------------------------------------------------------

    def _asv(
        self,
        args: Sequence[str],
        cwd: Path,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> ProcessResult:
        argv = [sys.executable, "-m", "asv", *args, "--config", str(self.conf_path)]
        return run_process(argv, cwd, timeout, env)

    def _env_args(self) -> list[str]:
        py = self.settings.python
        if py == "virtualenv":
            return ["-E", "virtualenv"]
        if py == "config":
            return []  # the config's own environment_type, pythons and matrix
        return ["-E", f"existing:{sys.executable if py == 'same' else py}"]

    def _ensure_machine(self) -> str:
        """asv refuses to run without a machine entry; create asv's default one if missing."""
        name = machine_name()
        path = Path.home() / ".asv-machine.json"
        try:
            known = json.loads(path.read_text()) if path.is_file() else {}
        except (OSError, ValueError):
            known = {}
        if name not in known:
            res = self._asv(["machine", "--yes", "--machine", name], self.scratch, timeout=120)
            if res.returncode != 0:
                raise EnvironmentProblem(
                    f"asv machine --yes failed: {_tail(res.stdout + res.stderr, 1)}"
                )
        return name

    def _run_env(self, worktree: Path | None) -> dict[str, str]:
        """The commit's code first on the import path (--python same / PATH); in the build
        modes asv's environment holds the built commit and nothing may shadow it."""
        env = dict(os.environ)
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ in anyone's tree
        env.pop("ASV_PYTHONPATH", None)
        if worktree is None or self.builds:
            env.pop("PYTHONPATH", None)
            return env
        joined = os.pathsep.join(str(p) for p in import_roots(worktree, self.repo_subdir))
        env["PYTHONPATH"] = joined
        env["ASV_PYTHONPATH"] = joined
        return env

    # -- Runner interface --------------------------------------------------------------------

    def list_benchmarks(self) -> list[BenchmarkSpec]:
        if self._specs is not None:
            return self._specs
        if self.builds:
            target = [f"{self.suite_sha}^!", *self._env_args()]
            env = self._run_env(None)
        else:
            target = [*self._env_args(), "--set-commit-hash", self.suite_sha]
            source = self.scratch / "suite-source"
            if not source.is_dir():
                self.repo.export_commit(self.suite_sha, source)
            env = self._run_env(source)  # the suite revision's code, as at every step
        args = ["run", "--bench", "just-discover", *target, "--machine", self.machine]
        self.discoveries += 1
        res = self._asv(args, self.scratch, env, timeout=self.settings.timeout)
        bench_file = self.results_dir / "benchmarks.json"
        if res.returncode != 0 or not bench_file.is_file():
            last = _last_error_line(res.stdout + res.stderr) or "no output"
            raise EnvironmentProblem(
                f"asv could not discover the benchmarks: {last}{self._missing_hint(last)}"
            )
        self._specs = _specs_from_benchmarks_json(
            json.loads(bench_file.read_text()), self.settings.repeat
        )
        return self._specs

    def _missing_hint(self, error: str) -> str:
        """asv imports every module of the suite: one that imports a package this Python lacks
        stops the discovery. asv's own environments install the config's matrix; here the
        user's Python must have it."""
        found = re.search(r"No module named '([\w.]+)'", error)
        if not found or self.builds:
            return ""
        package = found.group(1).split(".")[0]
        return (
            f" (the suite imports {package}, which this Python lacks: `pip install {package}`, "
            "or --python config to build the config's own environment)"
        )

    def measure(self, worktree: Path, commit: str, names: Sequence[str], rounds: int) -> Batch:
        """One asv run with `rounds` rounds; or, for track_/peakmem_ benchmarks, one asv run per
        round, because asv keeps a single value (the last round's) for those."""
        if not self.builds:
            reason = self.build_reason(commit)
            if reason:
                raise MeasurementFailed(
                    f"{commit[:10]} needs a build ({reason}); "
                    f"--python {self.settings.python} cannot run it: use --python virtualenv"
                )
        per_round = {s.name: s.samples_per_round for s in self.list_benchmarks()}
        if all(per_round.get(n, 1) > 1 for n in names):
            return self._run_once(worktree, commit, names, rounds)
        batch = Batch()
        for _ in range(rounds):
            part = self._run_once(worktree, commit, names, 1)
            for name, samples in part.samples.items():
                batch.samples.setdefault(name, []).extend(samples)
            for name, err in part.errors.items():
                batch.errors.setdefault(name, err)
        for name in list(batch.errors):
            batch.samples.pop(name, None)  # a benchmark that failed once is not trusted
        return batch

    def _run_once(self, worktree: Path, commit: str, names: Sequence[str], rounds: int) -> Batch:
        from asv.results import iter_results_for_machine_and_hash

        direct = self._direct_runner()
        if direct is not None:
            for old in iter_results_for_machine_and_hash(
                str(self.results_dir), self.machine, commit
            ):
                old.rm(str(self.results_dir))
            try:
                output = direct.run(self._run_env(worktree), commit, names, rounds)
            except _DIRECT_API_ERRORS as exc:  # an asv whose internals moved: use `asv run`
                self._direct = False
                self.note(f"running benchmarks through `asv run` (direct runner failed: {exc})")
            else:
                return self._collect(commit, names, output, direct.stderr)
        return self._run_asv(worktree, commit, names, rounds)

    def _direct_runner(self) -> _DirectAsv | None:
        """The direct runner for --python same / a path, made on first use; None in the build
        modes, or when this asv's internals are not the ones it was written for."""
        if self._direct is None:
            self.list_benchmarks()  # the one discovery, which writes benchmarks.json
            try:
                self._direct = _DirectAsv(self)
            except _DIRECT_API_ERRORS as exc:
                self._direct = False
                self.note(f"running benchmarks through `asv run` ({exc})")
        return self._direct or None

    def _run_asv(self, worktree: Path, commit: str, names: Sequence[str], rounds: int) -> Batch:
        from asv.results import iter_results_for_machine_and_hash

        regexes: list[str] = []
        for n in names:
            regexes += ["--bench", f"^{re.escape(n)}$"]
        attrs = [
            "-a",
            f"rounds={rounds}",
            "-a",
            f"repeat={self.settings.repeat}",
            "-a",
            "warmup_time=0.05",
            "-a",
            f"timeout={self.settings.timeout:g}",
        ]
        if self.builds:
            target = [f"{commit}^!", *self._env_args()]
        else:
            target = [*self._env_args(), "--set-commit-hash", commit]
        args = [
            "run",
            *target,
            *regexes,
            *attrs,
            "--record-samples",
            "--show-stderr",
            "--machine",
            self.machine,
        ]
        for old in iter_results_for_machine_and_hash(str(self.results_dir), self.machine, commit):
            old.rm(str(self.results_dir))
        total_timeout = self.settings.timeout * max(1, len(names)) * rounds + 300
        res = self._asv(args, self.scratch, self._run_env(worktree), timeout=total_timeout)
        return self._collect(commit, names, res.stdout + res.stderr)

    def _collect(
        self,
        commit: str,
        names: Sequence[str],
        output: str,
        stderr_of: dict[str, str] | None = None,
    ) -> Batch:
        """Read the samples of `names` from the scratch asv results of `commit` (and export
        them); `output` is what the run printed, and `stderr_of` what each benchmark printed
        (asv's results files do not keep it), for the error messages."""
        from asv.results import iter_results_for_machine_and_hash

        results = list(
            iter_results_for_machine_and_hash(str(self.results_dir), self.machine, commit)
        )
        if not results:
            raise MeasurementFailed(
                f"asv produced no results: {_last_error_line(output)}", _tail(output, 20)
            )
        if self.export_dir is not None:
            export_run(self.results_dir, self.export_dir, self.machine, commit)
        batch = Batch()
        for result in results:
            for key in result.get_all_result_keys():
                stderr = (result.stderr or {}).get(key) or (stderr_of or {}).get(key, "")
                for label, samples in _expand_params(result, key):
                    if label not in names:
                        continue
                    if samples:
                        batch.samples[label] = [float(s) for s in samples]
                    else:
                        batch.errors[label] = _last_error_line(stderr) or "benchmark failed"
        for n in names:
            if n not in batch.samples and n not in batch.errors:
                batch.errors[n] = _last_error_line(output) or "no result"
        return batch


class _DirectUnavailable(RuntimeError):
    """The direct runner cannot stand in for `asv run` here."""


# what a different asv's internals would raise in _DirectAsv; the runner then uses `asv run`
_DIRECT_API_ERRORS = (ImportError, AttributeError, TypeError, KeyError, _DirectUnavailable)


class _DirectAsv:
    """`asv run` without asv's command line, for an existing Python (--python same / a path).

    Each `asv run` starts asv, rediscovers the suite by importing it in a subprocess, and only
    then spawns the benchmark process: about 1.6 s of fixed cost per run, where the benchmark
    process itself takes about 0.9 s for a millisecond benchmark (docs/asv.md, "Per-run
    overhead"). Here the suite is discovered once per suite revision (the runner's
    benchmarks.json), and every run spawns only asv's benchmark processes, through asv's own
    `asv.runner.run_benchmark` (so setup_cache, parameters, rounds and the sample format are
    asv's), with the environment variables asv would set, writing its results file with
    asv's Results API into the same results directory.
    """

    def __init__(self, runner: AsvRunner) -> None:
        from asv.benchmarks import Benchmarks
        from asv.config import Config
        from asv.environment import get_environments
        from asv.machine import Machine
        from asv.results import Results
        from asv.runner import BENCHMARK_RUN_SCRIPT, fail_benchmark, run_benchmark
        from asv.util import TIMEOUT_RETCODE

        self._benchmarks_cls = Benchmarks
        self._results_cls = Results
        self._run_benchmark = run_benchmark
        self._fail_benchmark = fail_benchmark
        self.timeout_code = TIMEOUT_RETCODE
        self.script = BENCHMARK_RUN_SCRIPT
        self.runner = runner
        self.conf = Config.load(str(runner.conf_path))
        (spec,) = runner._env_args()[1:] or [""]
        envs = list(get_environments(self.conf, [spec]))
        if len(envs) != 1:
            raise _DirectUnavailable(f"no asv environment for {spec!r}")
        env = envs[0]
        self.env_name = env.name
        self.python = env.python
        self.executable = str(env._executable)
        self.requirements = env.requirements
        self.tagged_env_vars = env.env_vars
        self.asv_vars = {**env._global_env_vars, **env.env_vars}
        self.asv_vars.pop("ASV_ENV_DIR", None)
        self.asv_vars["ASV_CONF_DIR"] = str(runner.scratch)  # `asv run` runs there
        machine = Machine.load(machine_name=runner.machine, interactive=False)
        machine.save(str(runner.results_dir))
        self.params = {**machine.__dict__, "python": env.python, **env.requirements}
        bench_file = runner.results_dir / "benchmarks.json"
        data = json.loads(bench_file.read_text())
        self.benchmarks = [b for k, b in data.items() if k != "version" and isinstance(b, dict)]
        self.bench_dir = str(Path(self.conf.benchmark_dir).resolve())
        self._dates: dict[str, int] = {}
        self.stderr: dict[str, str] = {}

    def _date(self, commit: str) -> int:
        """The commit's date as asv stores it (author time, ms), as asv's Git.get_date."""
        if commit not in self._dates:
            out = self.runner.repo.repo.git.log("-1", "--no-show-signature", "--format=%at", commit)
            self._dates[commit] = int(out.split()[-1]) * 1000
        return self._dates[commit]

    def run(self, child_env: dict[str, str], commit: str, names: Sequence[str], rounds: int) -> str:
        """Run `names` for `rounds` rounds as `asv run -a rounds=... --record-samples` would,
        save the results file of `commit`, and return what the benchmark processes printed."""
        import datetime
        import shutil

        settings = self.runner.settings
        extra: dict[str, Any] = {
            "rounds": rounds,
            "repeat": settings.repeat,
            "warmup_time": 0.05,
            "timeout": float(settings.timeout),
        }
        selected = self._benchmarks_cls(
            self.conf, self.benchmarks, regex=[f"^{re.escape(n)}$" for n in names]
        )
        results = self._results_cls(
            self.params,
            self.requirements,
            commit,
            self._date(commit),
            self.python,
            self.env_name,
            self.tagged_env_vars,
        )
        # ExistingEnvironment.run passes the environment through as it is (ASV_PYTHONPATH
        # included, which asv's benchmark.py puts on sys.path), plus asv's own variables
        spawner = _Spawner(self, {**child_env, **self.asv_vars})

        order: dict[str | None, list[tuple[str, dict[str, Any]]]] = {}
        cache_timeout: dict[str | None, float] = {}
        for name, info in sorted(selected.items()):
            bench = dict(info)
            if bench.get("timeout") is None:
                bench["timeout"] = extra["timeout"]
            key = bench.get("setup_cache_key")
            cache_timeout[key] = max(
                bench.get("setup_cache_timeout", bench["timeout"]), cache_timeout.get(key, 0)
            )
            order.setdefault(key, []).append((name, bench))

        output: list[str] = []
        self.stderr = {}  # what each benchmark printed, for the error messages
        cache_dirs: dict[str | None, str | None] = {None: None}
        failed_cache: dict[str, str] = {}
        failed: set[str] = set()
        durations: dict[str, float] = {}
        now = datetime.datetime.now
        utc = datetime.timezone.utc
        try:
            for _round in range(rounds):
                for key, items in order.items():
                    for name, bench in items:
                        if name in failed:
                            continue
                        idx = selected.benchmark_selection.get(name)
                        started = now(utc)
                        if key not in cache_dirs and key not in failed_cache:
                            params_str = json.dumps({"cpu_affinity": None})
                            cache_dir, err = spawner.create_setup_cache(
                                name, cache_timeout[key], params_str
                            )
                            if cache_dir is None:
                                failed_cache[key] = err or ""
                                output.append(err or "")
                                self.stderr[name] = err or ""
                            else:
                                cache_dirs[key] = cache_dir
                            seconds = (now(utc) - started).total_seconds()
                            results.set_setup_cache_duration(key, seconds)
                            started = now(utc)
                        if key in failed_cache:
                            stderr = f"asv: setup_cache failed\n\n{failed_cache[key]}"
                            res = self._fail_benchmark(bench, stderr=stderr)
                            results.add_result(
                                bench,
                                res,
                                selected_idx=idx,
                                started_at=started,
                                record_samples=True,
                            )
                            failed.add(name)
                            continue
                        again = name in durations
                        own = run_params(bench, extra)
                        params: dict[str, Any] | list[dict[str, Any]] = own
                        if again:  # keep asv's `number` across rounds, as asv does
                            params = [
                                {**own, "number": st["number"]}
                                if st is not None and "number" in st
                                else own
                                for st in results.get_result_stats(name, bench["params"])
                            ]
                        res = self._run_benchmark(
                            bench,
                            spawner,
                            profile=False,
                            selected_idx=idx,
                            extra_params=params,
                            cwd=cache_dirs[key],
                        )
                        seconds = (now(utc) - started).total_seconds()
                        durations[name] = durations.get(name, 0.0) + seconds
                        results.add_result(
                            bench,
                            res,
                            selected_idx=idx,
                            started_at=started,
                            duration=durations[name],
                            record_samples=True,
                            append_samples=again,
                        )
                        if res.stderr:
                            output.append(res.stderr)
                            self.stderr[name] = res.stderr
                        if all(r is None for r in res.result):
                            failed.add(name)
        finally:
            for cache_dir in cache_dirs.values():
                if cache_dir is not None:
                    shutil.rmtree(cache_dir, ignore_errors=True)
        results.save(str(self.runner.results_dir))
        return "\n".join(output)


def own_repeat(info: dict[str, Any], default: int) -> int:
    """Samples per benchmark process: the suite's explicit integer `repeat`, else smbisect's.
    asv's tuple form (min, max, max_time) gives a variable count per process; smbisect needs a
    fixed one to take one value per process, so it uses its own there."""
    repeat = info.get("repeat", 0)
    if isinstance(repeat, int) and not isinstance(repeat, bool) and repeat > 0:
        return repeat
    return default


def run_params(bench: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """The attributes one benchmark process runs with: smbisect's `rounds` (it decides how many
    processes to run, so a suite's `rounds`/`processes` are not used), plus its `repeat` and
    `warmup_time` only where the benchmark left asv's default. A suite's explicit integer
    `repeat` or `warmup_time` is kept, as `asv run` keeps it (see own_repeat for the tuple form).
    `number`, `min_run_count`, `sample_time` and `timeout` are the suite's own (a benchmark
    without a `timeout` gets smbisect's --timeout)."""
    params = {"rounds": extra["rounds"], "repeat": own_repeat(bench, extra["repeat"])}
    warmup = bench.get("warmup_time", -1)
    if warmup is None or warmup < 0:
        params["warmup_time"] = extra["warmup_time"]
    return params


class _Spawner:
    """asv.runner.Spawner's interface, spawning through run_process with a given environment."""

    def __init__(self, direct: _DirectAsv, env: dict[str, str]) -> None:
        self.direct = direct
        self.env = env

    def _call(self, args: list[str], cwd: str, timeout: float) -> tuple[str, int]:
        argv = [self.direct.executable, self.direct.script, *args]
        try:
            res = run_process(argv, Path(cwd), timeout, self.env)
        except MeasurementFailed as exc:
            if "timed out" not in str(exc):
                raise
            return str(exc), self.direct.timeout_code
        return res.stdout + res.stderr, res.returncode

    def create_setup_cache(
        self, benchmark_id: str, timeout: float, params_str: str
    ) -> tuple[str | None, str | None]:
        import shutil
        import tempfile

        cache_dir = tempfile.mkdtemp()
        args = ["setup_cache", self.direct.bench_dir, benchmark_id, params_str]
        out, code = self._call(args, cache_dir, timeout)
        if code == 0:
            return cache_dir, None
        shutil.rmtree(cache_dir, ignore_errors=True)
        return None, f"{out}\nasv: setup_cache failed (exit status {code})".strip()

    def run(
        self,
        name: str,
        params_str: str,
        profile_path: str,
        result_file_name: str,
        timeout: float,
        cwd: str,
    ) -> tuple[str, int]:
        args = ["run", self.direct.bench_dir, name, params_str, profile_path, result_file_name]
        return self._call(args, cwd, timeout)

    def interrupt(self) -> None:
        pass


def _expand_params(result: Any, key: str) -> Iterator[tuple[str, list[float]]]:
    """Yield (asv name with parameters, samples) for each parameter combination of a result.

    asv stores one entry per combination (a single one for plain benchmarks); raw samples are
    there when --record-samples was given, else only the value (the median).
    """
    params = result.get_result_params(key) or []
    combos = list(itertools.product(*params))
    values = result.get_result_value(key, params) or [None] * len(combos)
    samples = result.get_result_samples(key, params) or [None] * len(combos)
    for combo, sample, value in zip(combos, samples, values, strict=False):
        label = f"{key}({', '.join(combo)})" if params else key
        chosen = sample if sample else ([value] if value is not None else None)
        yield label, _clean(chosen)


def _clean(values: Sequence[float | None] | None) -> list[float]:
    if not values:
        return []
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _specs_from_benchmarks_json(data: dict[str, object], repeat: int) -> list[BenchmarkSpec]:
    specs = []
    for name, info in sorted(data.items()):
        if name == "version" or not isinstance(info, dict):
            continue
        unit = str(info.get("unit", "seconds"))
        kind = str(info.get("type", "time"))
        method = name.rsplit(".", 1)[-1]
        rate = bool(_RATE_UNIT.search(unit) or _RATE_NAME.search(method))
        worse_high = not (kind == "track" and rate)
        per_round = own_repeat(info, repeat) if kind == "time" else 1
        params = info.get("params") or []
        if params:
            for combo in itertools.product(*params):
                label = f"{name}({', '.join(combo)})"
                specs.append(BenchmarkSpec(label, unit, worse_high, per_round, kind))
        else:
            specs.append(BenchmarkSpec(name, unit, worse_high, per_round, kind))
    return specs


def _last_error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if re.search(r"Error|error|failed|Traceback|Exception", ln) and not ln.startswith("·"):
            return ln[:300]
    return lines[-1][:300] if lines else ""


def _needs_build(reason: str, rev: str, python: str) -> str:
    return (
        f"the project needs a build at {rev} ({reason}): --python {python} would run stale "
        "installed code or none; use --python virtualenv (asv builds every commit) or "
        "--python config"
    )


def _tree_digest(root: Path) -> str:
    """The suite's content, so a changed working-tree suite does not reuse old measurements."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _copy_tree(src: Path, dest: Path) -> None:
    import shutil

    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
