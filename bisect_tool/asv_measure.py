"""Measuring through asv: AsvRunner, which drives `asv run` and reads asv's results files.

The suite and the config are exported from one revision; each commit's code is put on the
import path (an existing Python, where asv's benchmark processes run directly: asv_direct.py)
or built by asv itself (virtualenv / config modes).
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
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .asv_config import (
    build_reason_at,
    check_environment_type,
    find_config,
    import_roots,
    tracked_files,
)
from .asv_direct import _DIRECT_API_ERRORS, _DirectAsv, own_repeat
from .asv_results import export_run
from .errors import EnvironmentProblem, MeasurementFailed, UsageError
from .git import GitRepo
from .runners import (
    Batch,
    BenchmarkSpec,
    ProcessResult,
    _digest,
    _tail,
    machine_name,
    may_switch,
    run_process,
    with_one_thread,
)

_RATE_UNIT = re.compile(r"(/\s*|\bper\s+)s(ec(ond)?)?\s*$", re.I)
_RATE_NAME = re.compile(r"throughput|_per_s(ec(ond)?)?$|_per_second$|_ops_per_", re.I)


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
        self.export_skipped: str | None = None
        if settings.export_results == "auto" and not (root / self.config.rel_path).is_file():
            # the suite comes from another revision (--suite-rev) and your checkout has no
            # such config: asv's results would land in a folder your checkout does not have
            self.export_skipped = (
                f"asv results not written: your working tree has no {self.config.rel_path} "
                f"(the suite is {settings.suite_rev}'s); --asv-results DIR writes them there"
            )
        elif settings.export_results == "auto":
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
        self.extra_env: dict[str, str] = {}  # on top of os.environ (--threads)
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
        elif self.export_skipped:
            parts.append(self.export_skipped)
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

    def one_thread(self, force: bool = False) -> bool:
        """asv's benchmark processes inherit the environment asv is started with (asv's
        Environment.run_executable), and _DirectAsv spawns them with _run_env's."""
        if not may_switch(self.extra_env, force):
            return False
        self.settings_key, self.extra_env = with_one_thread(self.settings_key, self.extra_env)
        return True

    def _run_env(self, worktree: Path | None) -> dict[str, str]:
        """The commit's code first on the import path (--python same / PATH); in the build
        modes asv's environment holds the built commit and nothing may shadow it."""
        env = {**os.environ, **self.extra_env}
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
