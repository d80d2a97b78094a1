"""asv benchmarks counted by instructions (or estimated cycles): `--metric instructions` without
`--cmd`.

asv's own benchmark runner (`asv/benchmark.py run`, that is asv_runner's `_run`: import the
suite, `setup`, the timed call, `teardown`) runs under valgrind twice per sample, through
`DRIVER`:

- **body**: the benchmark as it is, with a fixed `number` of calls (the suite's own integer
  `number`, else 1), one sample, no warm-up (`repeat=1`, `warmup_time=0`: asv's warm-up and its
  choice of `number` go by the clock, which would make the count vary);
- **empty**: the same process with the benchmark's function replaced by one that does nothing
  (for `timeraw_` benchmarks, the statement replaced by `pass`, its setup kept).

Interpreter start-up, imports, `setup_cache` (run natively, once, as asv does), `setup`,
`teardown` and asv's timing code are the same in both processes, so the sample is
`(body - empty) / number`: the instructions of one call of the benchmark's body. The counted
environment is instructions.counting_env (fixed hash seed, one BLAS thread).

Only `time_` (and `timeraw_`) benchmarks are counted; `track_`, `mem_` and `peakmem_` measure
something else and are left out with a note. The values are written into the asv results
directory as `track`-style benchmarks named `<benchmark>.instructions` (asv_results), so
`asv publish` graphs them beside the timings.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import instructions
from .asv_direct import _DirectAsv, _Spawner
from .asv_measure import BUILD_MODES, AsvRunner, _last_error_line
from .asv_results import counted_entry, counted_name, export_run
from .errors import MeasurementFailed, UsageError
from .runners import Batch, BenchmarkSpec, _tail

# Run inside the benchmark's Python as `python -c DRIVER BENCHMARK_PY MODE run ...`: asv's own
# benchmark.py, with the benchmark's function replaced by one that does nothing in MODE
# "empty". Both modes execute the same code up to that replacement, so their difference is
# the body. Kept free of anything but the standard library and asv_runner.
DRIVER = """\
import os
import sys

# The OS's random bytes, fixed: numpy.random seeds its global generator from them when it is
# imported, and converting those words costs a number of instructions that depends on their
# values: 2 to 5 thousand instructions of difference between two runs of the same process
# (docs/instructions.md). A fixed stream makes every run execute the same instructions.
_state = [0x9E3779B97F4A7C15]


def _fixed_urandom(size):
    if size < 0:
        raise ValueError("negative argument not allowed")
    out = bytearray()
    x = _state[0]
    while len(out) < size:
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        out += x.to_bytes(8, "little")
    _state[0] = x
    return bytes(out[:size])


os.urandom = _fixed_urandom
if "random" in sys.modules:  # it binds os.urandom when imported
    sys.modules["random"]._urandom = _fixed_urandom
import runpy

if sys.path and sys.path[0] == "":
    sys.path.pop(0)  # as asv's benchmark.py drops its own directory
script, mode = sys.argv[1], sys.argv[2]
# mem_ benchmarks are not counted: asv_runner goes without them, as without pympler, and
# does not import numpy for pympler (300 million instructions, seconds under valgrind)
sys.modules["pympler.asizeof"] = None
# asv_runner imports the benchmark types of installed asv_bench* plugins, and reads the
# metadata of every installed distribution to find them (260 million instructions in a
# venv with numpy, scipy and matplotlib): look only at the asv_bench* ones
import importlib.metadata as metadata
import pathlib

every_distribution = metadata.distributions


def _plugins(**kwargs):
    if kwargs:
        return every_distribution(**kwargs)
    found = []
    for entry in sys.path:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:
            continue
        for name in names:
            plugin = name.lower().replace("-", "_").startswith("asv_bench")
            if plugin and name.endswith((".dist-info", ".egg-info")):
                found.append(metadata.PathDistribution(pathlib.Path(entry, name)))
    return found


metadata.distributions = _plugins
import asv_runner.run as asv_run
from asv_runner.benchmarks.timeraw import TimerawBenchmark, _SeparateProcessTimer

metadata.distributions = every_distribution
del sys.modules["pympler.asizeof"]

found = asv_run.get_benchmark_from_name


def _nothing(*args, **kwargs):
    return None


def _clock():
    return 0.0


class _Counted:
    # a clock that always reads 0: the time asv measures is not used, and formatting a
    # different float every run (the result file) costs a different number of instructions
    timer = staticmethod(_clock)


tmpl = getattr(_SeparateProcessTimer, "subprocess_tmpl", "")
clock_import = "from timeit import timeit, default_timer as timer"
if clock_import in tmpl:  # the same for timeraw_'s child process
    _SeparateProcessTimer.subprocess_tmpl = tmpl.replace(
        clock_import, "from timeit import timeit\\ntimer = lambda: 0.0"
    )


def _get(*args, **kwargs):
    bench = found(*args, **kwargs)
    bench._attr_sources.insert(0, _Counted)
    if mode == "empty":
        if isinstance(bench, TimerawBenchmark):
            code = bench.func

            def _pass(*a, **k):
                stmt = code(*a, **k)
                return ("pass", stmt[1]) if isinstance(stmt, tuple) else "pass"

            bench.func = _pass
        else:
            bench.func = _nothing
    return bench


asv_run.get_benchmark_from_name = _get
sys.argv = [script] + sys.argv[3:]
runpy.run_path(script, run_name="__main__")
"""

COUNTED_KINDS = ("time",)  # asv types whose body can be counted


@dataclass(frozen=True)
class Target:
    """One benchmark label as asv runs it: its name, parameter index and asv's metadata."""

    label: str
    name: str
    index: int | None
    info: dict[str, Any]

    @property
    def bench_id(self) -> str:
        return self.name if self.index is None else f"{self.name}-{self.index}"

    @property
    def number(self) -> int:
        """The suite's own integer `number`, else 1: how many calls one sample counts."""
        value = self.info.get("number", 0)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        return 1


def labels_of(info: dict[str, Any]) -> list[tuple[str, int | None]]:
    """The labels asv gives a benchmark's parameter combinations, with their index."""
    params = info.get("params") or []
    name = str(info["name"])
    if not params:
        return [(name, None)]
    return [
        (f"{name}({', '.join(combo)})", i) for i, combo in enumerate(itertools.product(*params))
    ]


def check_python(python: str, metric: str) -> None:
    """asv's build modes run benchmarks inside environments asv builds per commit; counting
    needs the interpreter started directly."""
    if python in BUILD_MODES:
        raise UsageError(
            f"--metric {metric} with asv needs --python same or a path to a python "
            f"(not --python {python}); build the project into that Python, or count a "
            "command with --cmd"
        )


class AsvCountingRunner:
    """A Runner that counts the bodies of asv `time_` benchmarks under valgrind."""

    def __init__(
        self,
        asv: AsvRunner,
        metric: str,
        patterns: Sequence[str] = (),
        note: Callable[[str], None] | None = None,
    ) -> None:
        if metric not in instructions.METRICS:
            raise UsageError(f"not a counting metric: {metric!r}")
        check_python(asv.settings.python, metric)
        self.valgrind = instructions.find_valgrind(metric)
        self.asv = asv
        self.metric = metric
        self.patterns = list(patterns)
        self.note = note or (lambda _message: None)
        self.machine = asv.machine
        counted_with = instructions.settings_key(metric, self.valgrind, os.environ)
        driver = hashlib.sha256(DRIVER.encode()).hexdigest()[:16]
        self.settings_key = hashlib.sha256(
            json.dumps(["asv-count", asv.settings_key, metric, counted_with, driver]).encode()
        ).hexdigest()[:16]
        self.results_dir = asv.scratch / f"results-{metric}"
        self._specs: list[BenchmarkSpec] | None = None
        self._targets: dict[str, Target] = {}
        self._noted: set[str] = set()

    # -- the benchmarks -------------------------------------------------------------------------

    def list_benchmarks(self) -> list[BenchmarkSpec]:
        """The suite's time_ benchmarks, in the metric's unit. The others are left out with a
        note; when the selection holds nothing else, that is a one-line usage error."""
        if self._specs is not None:
            return self._specs
        all_specs = self.asv.list_benchmarks()
        data = json.loads((self.asv.results_dir / "benchmarks.json").read_text())
        for key, info in data.items():
            if key == "version" or not isinstance(info, dict):
                continue
            for label, index in labels_of(info):
                self._targets[label] = Target(label, key, index, info)
        compiled = []
        for pat in self.patterns:
            try:
                compiled.append(re.compile(pat))
            except re.error:
                compiled = []  # selection.select_benchmarks reports it
                break

        def selected(name: str) -> bool:
            return not compiled or any(c.search(name) for c in compiled)

        counted = [s for s in all_specs if s.kind in COUNTED_KINDS]
        left_out = [s for s in all_specs if s.kind not in COUNTED_KINDS and selected(s.name)]
        chosen = [s for s in counted if selected(s.name)]
        if left_out:
            kinds = sorted({s.kind for s in left_out})
            shown = ", ".join(s.name for s in left_out[:3]) + (", ..." if len(left_out) > 3 else "")
            why = (
                f"--metric {self.metric} counts asv time_ benchmarks only; "
                f"{', '.join(kinds)} benchmarks measure something else"
            )
            if not chosen:
                raise UsageError(f"{why}: nothing to count in {shown}")
            self.note(f"{why}: left out {len(left_out)} ({shown})")
        self._specs = [BenchmarkSpec(s.name, self.metric, True, 1, s.kind) for s in counted]
        return self._specs

    # -- measuring ------------------------------------------------------------------------------

    def measure(self, worktree: Path, commit: str, names: Sequence[str], rounds: int) -> Batch:
        self.list_benchmarks()
        reason = self.asv.build_reason(commit)
        if reason:
            raise MeasurementFailed(
                f"{commit[:10]} needs a build ({reason}); --python "
                f"{self.asv.settings.python} cannot run it"
            )
        direct = self.asv._direct_runner()
        if direct is None:
            raise MeasurementFailed(
                f"--metric {self.metric} cannot drive this asv's benchmark runner directly"
            )
        env = {**self.asv._run_env(Path(worktree).resolve()), **direct.asv_vars}
        batch = Batch()
        for name in names:
            target = self._targets.get(name)
            if target is None:
                batch.errors[name] = "not an asv benchmark of the suite"
                continue
            try:
                batch.samples[name] = self._count(direct, env, target, rounds)
            except MeasurementFailed as exc:
                batch.errors[name] = str(exc)
        self._export(direct, commit, batch)
        return batch

    def _count(
        self, direct: _DirectAsv, env: dict[str, str], target: Target, rounds: int
    ) -> list[float]:
        """`rounds` samples of one benchmark: (body - empty) / number each."""
        timeout = float(target.info.get("timeout") or self.asv.settings.timeout)
        cache_dir: str | None = None
        if target.info.get("setup_cache_key") is not None:
            spawner = _Spawner(direct, env)
            timeout_cache = float(target.info.get("setup_cache_timeout") or timeout)
            params = json.dumps({"cpu_affinity": None})
            cache_dir, err = spawner.create_setup_cache(target.name, timeout_cache, params)
            if cache_dir is None:
                raise MeasurementFailed(
                    f"setup_cache failed: {_last_error_line(err or '')}", _tail(err or "")
                )
        samples: list[float] = []
        # one fixed directory for every run, not a random temporary name: the paths a run
        # handles are hashed, and a different name makes the count differ by a little
        work = self.asv.scratch / "counting"
        try:
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            if cache_dir is not None:
                shutil.copyfile(Path(cache_dir) / "cache.pickle", work / "cache.pickle")
            for _ in range(rounds):
                empty = self._one(direct, env, target, "empty", work, timeout)
                body = self._one(direct, env, target, "body", work, timeout)
                samples.append((body - empty) / target.number)
                if target.label not in self._noted:
                    self._noted.add(target.label)
                    self.note(
                        f"{target.label}: {_short(samples[-1])} {self.metric} per call "
                        f"(x{target.number}); start-up, imports and setup, "
                        f"{_short(empty)}, subtracted"
                    )
        finally:
            if cache_dir is not None:
                shutil.rmtree(cache_dir, ignore_errors=True)
        return samples

    def _one(
        self,
        direct: _DirectAsv,
        env: dict[str, str],
        target: Target,
        mode: str,
        cwd: Path,
        timeout: float,
    ) -> float:
        """One counted process of asv's runner; its count."""
        extra = {"number": target.number, "repeat": 1, "warmup_time": 0.0, "rounds": 1}
        result_file = cwd / "result.json"
        result_file.unlink(missing_ok=True)
        argv = [
            direct.executable,
            "-c",
            DRIVER,
            direct.script,
            mode,
            "run",
            direct.bench_dir,
            target.bench_id,
            json.dumps(extra),
            "None",
            str(result_file),
        ]
        counts, code, out, err = instructions.count(argv, cwd, self.metric, timeout, env)
        if code != 0:
            detail = _tail(err or out)
            raise MeasurementFailed(
                f"benchmark exited {code}: {_last_error_line(detail) or 'no output'}", detail
            )
        try:
            result = json.loads(result_file.read_text())
        except (OSError, ValueError):
            raise MeasurementFailed("asv's runner wrote no result", _tail(err or out)) from None
        if not isinstance(result, dict):  # nan: skipped (setup raised NotImplementedError)
            raise MeasurementFailed(f"{target.label} skipped by the suite (setup or skip_params)")
        return counts.value(self.metric)

    # -- the asv results directory --------------------------------------------------------------

    def _export(self, direct: _DirectAsv, commit: str, batch: Batch) -> None:
        """Write this call's values as `<name>.<metric>` track benchmarks, in asv's format, and
        merge them into the project's results directory."""
        if self.asv.export_dir is None or not batch.samples:
            return
        from asv.results import Results, iter_results_for_machine_and_hash
        from asv.runner import BenchmarkResult

        results_dir = self.results_dir
        results_dir.mkdir(parents=True, exist_ok=True)
        machine_src = self.asv.results_dir / self.machine / "machine.json"
        if machine_src.is_file():
            (results_dir / self.machine).mkdir(exist_ok=True)
            shutil.copyfile(machine_src, results_dir / self.machine / "machine.json")
        for old in iter_results_for_machine_and_hash(str(results_dir), self.machine, commit):
            old.rm(str(results_dir))
        results = Results(
            direct.params,
            direct.requirements,
            commit,
            direct._date(commit),
            direct.python,
            direct.env_name,
            direct.tagged_env_vars,
        )
        entries: dict[str, Any] = {}
        by_name: dict[str, list[Target]] = {}
        for label in batch.samples:
            target = self._targets[label]
            by_name.setdefault(target.name, []).append(target)
        for _name, targets in sorted(by_name.items()):
            entry = counted_entry(targets[0].info, self.metric)
            entries[entry["name"]] = entry
            size = len(labels_of(targets[0].info))
            values: list[float | None] = [None] * size
            samples: list[list[float] | None] = [None] * size
            for t in targets:
                i = t.index or 0
                got = batch.samples[t.label]
                values[i] = _median(got)
                samples[i] = list(got)
            result = BenchmarkResult(
                result=values,
                samples=samples,
                number=[None] * size,
                errcode=0,
                stderr="",
                profile=None,
            )
            results.add_result(entry, result, record_samples=True)
        (results_dir / "benchmarks.json").write_text(
            json.dumps({**entries, "version": 2}, indent=2)
        )
        results.save(str(results_dir))
        export_run(results_dir, self.asv.export_dir, self.machine, commit, add_only=True)


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _short(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    for scale, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(value) >= scale:
            return f"{value / scale:.4g}{suffix}"
    return f"{value:.4g}"


__all__ = ["AsvCountingRunner", "DRIVER", "check_python", "counted_name", "labels_of"]
