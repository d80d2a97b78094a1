"""Copy what smbisect measured into an asv results directory, in asv's own format.

Each `asv run` of ours writes into a scratch results directory; this merges that file into the
project's results directory (per machine and commit, through asv's Results API), so
`asv publish` graphs the bisect's measurements beside nightly runs and `asv compare` or a later
bisect can reuse them. Samples are appended to what asv already holds for that commit.

Counts of `--metric instructions|cycles` go in as `track` benchmarks of their own,
`<benchmark>.instructions` (`.cycles`), beside the benchmark's timings: their entries in
benchmarks.json are kept when a later export of timings rewrites that file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from .errors import EnvironmentProblem
from .git import clean_text

COUNTED_SUFFIXES = (".instructions", ".cycles")
# what a time benchmark's entry says about its timing only, left out of a counted entry
_TIMING_KEYS = ("number", "repeat", "rounds", "warmup_time", "sample_time", "min_run_count")


def counted_name(name: str, metric: str) -> str:
    """The asv benchmark name under which a count of `name` is stored."""
    return f"{name}.{metric}"


def is_counted_name(name: str) -> bool:
    return name.endswith(COUNTED_SUFFIXES)


def counted_entry(info: dict[str, Any], metric: str) -> dict[str, Any]:
    """The benchmarks.json entry of a time benchmark's count: a `track` benchmark with the same
    parameters and version (so it follows the benchmark's code), in the metric's unit."""
    entry = {k: v for k, v in info.items() if k not in _TIMING_KEYS}
    name = str(info["name"])
    pretty = str(info.get("pretty_name") or name.rsplit(".", 1)[-1])
    entry.update(
        name=counted_name(name, metric),
        type="track",
        unit=metric,
        pretty_name=f"{pretty} ({metric})",
    )
    return entry


def _write_benchmarks(src: Path, dest: Path, add_only: bool) -> dict[str, Any]:
    """dest's benchmarks.json becomes src's; with add_only, src's entries are added to dest's,
    and otherwise dest's counted entries are kept. Returns src's entries."""
    entries = json.loads(src.read_text())
    old: dict[str, Any] = {}
    if dest.is_file():
        try:
            old = json.loads(dest.read_text())
        except ValueError:
            old = {}
    kept = {k: v for k, v in old.items() if add_only or is_counted_name(k)}
    dest.write_text(json.dumps({**kept, **entries, "version": entries.get("version", 2)}, indent=4))
    return entries


def export_run(
    scratch_results: Path, dest: Path, machine: str, commit: str, add_only: bool = False
) -> list[Path]:
    """Merge the scratch results of `commit` into `dest`; return the files written.

    With add_only, the scratch benchmarks.json holds only the entries it adds (the counted
    ones) and dest's others are kept."""
    from asv.results import Results, get_filename, iter_results_for_machine_and_hash
    from asv.runner import BenchmarkResult

    written: list[Path] = []
    bench_file = scratch_results / "benchmarks.json"
    machine_file = scratch_results / machine / "machine.json"
    try:
        dest.mkdir(parents=True, exist_ok=True)
        (dest / machine).mkdir(exist_ok=True)
        benchmarks: dict[str, Any] = {}
        if bench_file.is_file():
            benchmarks = _write_benchmarks(bench_file, dest / "benchmarks.json", add_only)
        if machine_file.is_file():
            shutil.copyfile(machine_file, dest / machine / "machine.json")
        for src in iter_results_for_machine_and_hash(str(scratch_results), machine, commit):
            rel = get_filename(machine, commit, src.env_name)
            target = dest / rel
            if not target.is_file():
                src.save(str(dest))
                written.append(target)
                continue
            merged = Results.load(str(target))
            for key in src.get_all_result_keys():
                if key not in benchmarks:
                    continue
                params = src.get_result_params(key)
                values = src.get_result_value(key, params)
                stats = src.get_result_stats(key, params) or [None] * len(values)
                samples = src.get_result_samples(key, params) or [None] * len(values)
                result = BenchmarkResult(
                    result=values,
                    samples=samples,
                    number=[s.get("number") if s else None for s in stats],
                    errcode=src.errcode.get(key, 0),
                    stderr=clean_text(str(src.stderr.get(key) or "")),
                    profile=None,
                )
                merged.add_result(benchmarks[key], result, record_samples=True, append_samples=True)
            merged.save(str(dest))
            written.append(target)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot write asv results to {dest}: {exc}") from None
    except Exception as exc:  # asv's own errors for a results file it cannot read
        raise EnvironmentProblem(
            f"cannot merge into the asv results in {dest} ({type(exc).__name__}: {exc}); "
            "use --asv-results DIR or --no-asv-results"
        ) from None
    return written
