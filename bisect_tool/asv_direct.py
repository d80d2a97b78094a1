"""asv's benchmark processes run directly, without `asv run`, for an existing Python.

The suite is discovered once (the AsvRunner's benchmarks.json); each run spawns only asv's
benchmark processes through asv's own runner API and writes asv's results file, as `asv run`
would. An asv whose internals differ raises one of _DIRECT_API_ERRORS, and the AsvRunner falls
back to `asv run`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import MeasurementFailed
from .runners import run_process

if TYPE_CHECKING:
    from .asv_measure import AsvRunner


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
        # with an environment of smbisect's choosing (existing:PATH, virtualenv), asv's warning
        # about the config's own environment_type ("Unknown environment type 'rattler'") is
        # about an environment that is not used: quiet
        envs = list(get_environments(self.conf, [spec], verbose=not spec))
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
