"""Copy what smbisect measured into an asv results directory, in asv's own format.

Each `asv run` of ours writes into a scratch results directory; this merges that file into the
project's results directory (per machine and commit, through asv's Results API), so
`asv publish` graphs the bisect's measurements beside nightly runs and `asv compare` or a later
bisect can reuse them. Samples are appended to what asv already holds for that commit.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .errors import EnvironmentProblem
from .git import clean_text


def export_run(scratch_results: Path, dest: Path, machine: str, commit: str) -> list[Path]:
    """Merge the scratch results of `commit` into `dest`; return the files written."""
    from asv.results import Results, get_filename, iter_results_for_machine_and_hash
    from asv.runner import BenchmarkResult

    written: list[Path] = []
    bench_file = scratch_results / "benchmarks.json"
    machine_file = scratch_results / machine / "machine.json"
    try:
        dest.mkdir(parents=True, exist_ok=True)
        (dest / machine).mkdir(exist_ok=True)
        if bench_file.is_file():
            shutil.copyfile(bench_file, dest / "benchmarks.json")
        if machine_file.is_file():
            shutil.copyfile(machine_file, dest / machine / "machine.json")
        benchmarks = json.loads(bench_file.read_text()) if bench_file.is_file() else {}
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
