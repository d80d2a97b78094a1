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
import re
import resource
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

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
) -> ProcessResult:
    """Run argv (never through a shell) in its own process group; kill the group on any exit."""
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
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop_group(proc)
        raise MeasurementFailed(f"timed out after {timeout:g} s") from None
    except BaseException:
        _stop_group(proc)
        raise
    seconds = time.perf_counter() - start
    return ProcessResult(proc.returncode, out, err, seconds, _children_cpu() - cpu_before)


def _children_cpu() -> float:
    """User + system CPU seconds of every child process that has been waited for so far.

    The delta around one command is its whole tree's CPU time, because a process's own
    waited-for children are added to its usage when it is waited for in turn. Only one
    command runs at a time, so nothing else is waited for in between."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _stop_group(proc: subprocess.Popen[str]) -> None:
    """SIGINT first, so asv can stop the benchmark processes it put in groups of their own;
    then SIGKILL for whatever is left in the group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=3)
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
        if metric not in ("time", "cputime", "stdout"):
            raise UsageError(f"--metric must be time, cputime or stdout, not {metric!r}")
        self.command = command
        self.metric = metric
        self.timeout = timeout
        self.higher_is_better = higher_is_better
        self.machine = machine_name()
        self.settings_key = _digest("cmd", self.argv, metric, timeout)

    def list_benchmarks(self) -> list[BenchmarkSpec]:
        unit = "seconds" if self.metric in ("time", "cputime") else "value"
        return [BenchmarkSpec(self.command, unit, not self.higher_is_better, 1, "command")]

    def measure(self, worktree: Path, commit: str, names: Sequence[str], rounds: int) -> Batch:
        samples: list[float] = []
        for _ in range(rounds):
            res = run_process(self.argv, worktree, self.timeout)
            if res.returncode == SKIP_EXIT_CODE:
                raise MeasurementFailed("command exited 125 (skip this commit)", _tail(res.stderr))
            if res.returncode != 0:
                detail = _tail(res.stderr or res.stdout)
                last = detail.splitlines()[-1] if detail else ""
                raise MeasurementFailed(
                    f"command exited {res.returncode}: {last}".rstrip(": "), detail
                )
            if self.metric == "time":
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

    config: str = "asv.conf.json"
    suite_rev: str = "HEAD"
    python: str = "same"  # "same", a path to a python, or "virtualenv" to build each commit
    repeat: int = 5
    timeout: float = 600.0
    # where measurements are also written in asv's format: "auto" is the config's results_dir
    # in the repository, None disables it, anything else is a directory path
    export_results: str | None = "auto"


class AsvRunner:
    """Measures through `asv run`, so the numbers are asv's own.

    The suite (benchmark_dir) and the config come from one fixed revision and are exported to a
    scratch directory; the project code is the worktree's commit, made importable through
    PYTHONPATH (existing environment) or built by asv itself (virtualenv mode).
    """

    def __init__(self, repo: GitRepo, settings: AsvSettings, scratch: Path) -> None:
        self.repo = repo
        self.settings = settings
        self.scratch = scratch
        scratch.mkdir(parents=True, exist_ok=True)
        self.suite_sha = repo.resolve(settings.suite_rev, "--suite-rev")
        raw = repo.read_file_at(self.suite_sha, settings.config)
        if raw is None:
            local = repo.root / settings.config
            if not local.is_file():
                raise UsageError(
                    f"no asv config {settings.config!r} in {repo.root} at {settings.suite_rev} "
                    "(use --config, or --cmd for a plain command)"
                )
            raw = local.read_text()
        self.conf = _load_asv_json(raw, settings.config)
        bench_dir = str(self.conf.get("benchmark_dir", "benchmarks"))
        self.suite_dir = scratch / "suite"
        if not repo.export_tree(self.suite_sha, bench_dir, self.suite_dir / bench_dir):
            local_dir = repo.root / bench_dir
            if not local_dir.is_dir():
                raise UsageError(
                    f"asv benchmark_dir {bench_dir!r} not found at {settings.suite_rev}"
                )
            _copy_tree(local_dir, self.suite_dir / bench_dir)
        self.results_dir = scratch / "results"
        self.conf_path = scratch / "asv.conf.json"
        conf = dict(self.conf)
        conf.update(
            repo=str(repo.root),
            benchmark_dir=str(self.suite_dir / bench_dir),
            results_dir=str(self.results_dir),
            html_dir=str(scratch / "html"),
            env_dir=str(scratch / "env"),
        )
        self.conf_path.write_text(json.dumps(conf, indent=2))
        self.machine = self._ensure_machine()
        self.export_dir: Path | None = None
        if settings.export_results == "auto":
            self.export_dir = repo.root / str(self.conf.get("results_dir", "results"))
        elif settings.export_results:
            self.export_dir = Path(settings.export_results).resolve()
        self.settings_key = _digest(
            "asv",
            self.suite_sha,
            settings.python,
            settings.repeat,
            settings.timeout,
            sys.executable,
            conf,
            _tree_digest(self.suite_dir),
        )
        self._specs: list[BenchmarkSpec] | None = None

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

    def _run_env(self, worktree: Path) -> dict[str, str]:
        env = dict(os.environ)
        paths = [str(worktree)]
        if (worktree / "src").is_dir():
            paths.append(str(worktree / "src"))
        joined = os.pathsep.join(paths)
        env["PYTHONPATH"] = joined
        env["ASV_PYTHONPATH"] = joined
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ in anyone's tree
        return env

    # -- Runner interface --------------------------------------------------------------------

    def list_benchmarks(self) -> list[BenchmarkSpec]:
        if self._specs is not None:
            return self._specs
        args = [
            "run",
            "--bench",
            "just-discover",
            *self._env_args(),
            "--set-commit-hash",
            self.suite_sha,
            "--machine",
            self.machine,
        ]
        if self.settings.python == "virtualenv":
            args = [
                "run",
                "--bench",
                "just-discover",
                f"{self.suite_sha}^!",
                "-E",
                "virtualenv",
                "--machine",
                self.machine,
            ]
        source = self.scratch / "suite-source"
        if not source.is_dir():
            self.repo.export_commit(self.suite_sha, source)
        env = self._run_env(source)
        res = self._asv(args, self.scratch, env, timeout=self.settings.timeout)
        bench_file = self.results_dir / "benchmarks.json"
        if res.returncode != 0 or not bench_file.is_file():
            raise EnvironmentProblem(
                f"asv could not discover the benchmarks: {_tail(res.stdout + res.stderr, 1)}"
            )
        self._specs = _specs_from_benchmarks_json(
            json.loads(bench_file.read_text()), self.settings.repeat
        )
        return self._specs

    def measure(self, worktree: Path, commit: str, names: Sequence[str], rounds: int) -> Batch:
        """One asv run with `rounds` rounds; or, for track_/peakmem_ benchmarks, one asv run per
        round, because asv keeps a single value (the last round's) for those."""
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
        if self.settings.python == "virtualenv":
            target = [f"{commit}^!", "-E", "virtualenv"]
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
        results = list(
            iter_results_for_machine_and_hash(str(self.results_dir), self.machine, commit)
        )
        if not results:
            raise MeasurementFailed(
                f"asv produced no results: {_last_error_line(res.stdout + res.stderr)}",
                _tail(res.stdout + res.stderr, 20),
            )
        if self.export_dir is not None:
            export_run(self.results_dir, self.export_dir, self.machine, commit)
        batch = Batch()
        for result in results:
            for key in result.get_all_result_keys():
                stderr = (result.stderr or {}).get(key, "")
                for label, samples in _expand_params(result, key):
                    if label not in names:
                        continue
                    if samples:
                        batch.samples[label] = [float(s) for s in samples]
                    else:
                        batch.errors[label] = _last_error_line(stderr) or "benchmark failed"
        for n in names:
            if n not in batch.samples and n not in batch.errors:
                batch.errors[n] = _last_error_line(res.stdout + res.stderr) or "no result"
        return batch


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
        per_round = repeat if kind == "time" else 1
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


def _load_asv_json(raw: str, name: str) -> dict[str, object]:
    """asv.conf.json allows // comments; strip them the way asv does before parsing."""
    from asv import util as asv_util

    with tempfile.NamedTemporaryFile("w", suffix=".json") as tmp:
        tmp.write(raw)
        tmp.flush()
        try:
            data = asv_util.load_json(tmp.name, js_comments=True)
        except Exception as exc:  # asv raises its own UserError types for bad JSON
            raise UsageError(f"cannot read asv config {name}: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"asv config {name} is not a JSON object")
    return data


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
