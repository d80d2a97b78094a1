"""`smbisect compare BASE [HEAD]`: the asv suite at two revisions, side by side.

The pure part (compare_samples, summary) turns samples into verdicts and never touches git or
processes, so it is tested on fixed numbers; compare_render.py turns a Comparison into text and
JSON. The I/O part either
measures both revisions in a private worktree (measure_two) or reads what asv already stored
(load_stored). A benchmark is called a regression only when it is worse by more than `factor`
(as in `asv continuous`) *and* a Mann-Whitney test says the difference is not noise.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from . import stats
from .asv_measure import _expand_params, _specs_from_benchmarks_json
from .errors import MeasurementFailed, UsageError
from .git import GitRepo
from .report import fmt_value
from .runners import BenchmarkSpec, Runner, machine_name
from .session import select_benchmarks

DEFAULT_FACTOR = 1.1  # asv continuous' default
REGRESSION = "regression"
IMPROVEMENT = "improvement"
NO_CHANGE = "no significant change"
_ORDER = {REGRESSION: 0, IMPROVEMENT: 1, NO_CHANGE: 2}
FORMATS = ("table", "markdown", "json")


# -- pure: verdicts ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchmarkComparison:
    """One benchmark at both revisions. ratio is median(head) / median(base), whatever the
    direction; p_value is None when a side has a single value (nothing to test noise with)."""

    name: str
    unit: str
    kind: str
    worse_is_higher: bool
    base_samples: tuple[float, ...]
    head_samples: tuple[float, ...]
    ratio: float
    p_value: float | None
    verdict: str

    @property
    def base(self) -> float:
        return stats.median(self.base_samples)

    @property
    def head(self) -> float:
        return stats.median(self.head_samples)

    @property
    def change_pct(self) -> float:
        return _change_pct(self.base, self.head)


@dataclass(frozen=True)
class SummaryRow:
    """One line of the executive summary: an aggregate over benchmarks, or one throughput."""

    metric: str
    unit: str
    base: float
    head: float
    worse_is_higher: bool
    verdict: str
    benchmarks: tuple[str, ...] = ()

    @property
    def change_pct(self) -> float:
        return _change_pct(self.base, self.head)


@dataclass
class Comparison:
    """Everything `render` needs; `missing` names benchmarks not measured at both revisions."""

    base_sha: str
    head_sha: str
    rows: list[BenchmarkComparison]
    summary_rows: list[SummaryRow]
    factor: float = DEFAULT_FACTOR
    alpha: float = stats.DEFAULT_ALPHA
    missing: dict[str, str] = field(default_factory=dict)


def format_value(value: float, unit: str) -> str:
    """report.fmt_value, but counts like 43,092 samples/s instead of 4.309e+04 samples/s."""
    if unit not in ("seconds", "bytes") and math.isfinite(value) and abs(value) >= 1000:
        return f"{value:,.0f} {unit}".rstrip()
    return fmt_value(value, unit)


def _change_pct(base: float, head: float) -> float:
    if base == 0:
        return 0.0 if head == 0 else math.copysign(math.inf, head)
    return (head - base) / abs(base) * 100.0


def _ratio(head: float, base: float) -> float:
    if base == 0:
        return 1.0 if head == 0 else math.inf
    return head / base


def judge(
    base: Sequence[float],
    head: Sequence[float],
    worse_is_higher: bool,
    factor: float = DEFAULT_FACTOR,
    alpha: float = stats.DEFAULT_ALPHA,
) -> tuple[float, float | None, str]:
    """(ratio, p-value, verdict) for one benchmark.

    Beyond `factor` in the worse direction and p < alpha is a regression, the mirror image an
    improvement. With a single value on a side (asv results stored without --record-samples)
    there is no noise to test against, so the factor alone decides, as in `asv compare`.
    """
    ratio = _ratio(stats.median(head), stats.median(base))
    testable = len(base) >= 2 and len(head) >= 2
    p = stats.rank_test(base, head) if testable else None
    significant = p is None or p < alpha
    higher, lower = ratio > factor, ratio * factor < 1
    worse, better = (higher, lower) if worse_is_higher else (lower, higher)
    if worse and significant:
        return ratio, p, REGRESSION
    if better and significant:
        return ratio, p, IMPROVEMENT
    return ratio, p, NO_CHANGE


def compare_samples(
    specs: Sequence[BenchmarkSpec],
    base: Mapping[str, Sequence[float]],
    head: Mapping[str, Sequence[float]],
    factor: float = DEFAULT_FACTOR,
    alpha: float = stats.DEFAULT_ALPHA,
    base_sha: str = "",
    head_sha: str = "",
    errors: Mapping[str, str] | None = None,
) -> Comparison:
    """Compare every benchmark that has samples at both revisions.

    Benchmarks without a spec are treated as asv time benchmarks; a spec whose direction is
    unknown (None) counts higher as worse, as asv does.
    """
    by_name = {s.name: s for s in specs}
    names = list(by_name) + sorted(n for n in set(base) | set(head) if n not in by_name)
    rows: list[BenchmarkComparison] = []
    missing: dict[str, str] = {}
    for name in names:
        spec = by_name.get(name) or BenchmarkSpec(name)
        b, h = list(base.get(name) or []), list(head.get(name) or [])
        if not b or not h:
            if errors and name in errors:
                missing[name] = errors[name]
            elif b or h:
                missing[name] = f"no result at {'head' if b else 'base'}"
            continue
        worse_high = spec.worse_is_higher is not False
        ratio, p, verdict = judge(b, h, worse_high, factor, alpha)
        rows.append(
            BenchmarkComparison(
                name, spec.unit, spec.kind, worse_high, tuple(b), tuple(h), ratio, p, verdict
            )
        )
    for name, err in (errors or {}).items():
        missing.setdefault(name, err)
    rows.sort(key=lambda r: (_ORDER[r.verdict], -abs(_badness(r)), r.name))
    return Comparison(base_sha, head_sha, rows, summary(rows, factor), factor, alpha, missing)


def _badness(row: BenchmarkComparison) -> float:
    """How much worse head is, on a log scale (negative: better); sorts the biggest change
    first within each verdict."""
    if row.ratio <= 0 or math.isinf(row.ratio):
        return math.inf if row.worse_is_higher else -math.inf
    log = math.log(row.ratio)
    return log if row.worse_is_higher else -log


# -- pure: the executive summary ---------------------------------------------------------------


def is_time(row: BenchmarkComparison) -> bool:
    return row.kind == "time"


def is_allocation(row: BenchmarkComparison) -> bool:
    return row.unit == "bytes" and "alloc" in row.name.lower()


def is_throughput(row: BenchmarkComparison) -> bool:
    return row.kind == "track" and row.unit.replace(" ", "").endswith("/s")


def is_peakmem(row: BenchmarkComparison) -> bool:
    # asv's benchmarks.json says "peakmemory"; "peakmem" is the method prefix
    return row.kind in ("peakmemory", "peakmem")


def summary(
    rows: Sequence[BenchmarkComparison], factor: float = DEFAULT_FACTOR
) -> list[SummaryRow]:
    """Total runtime, total allocations, each throughput and peak memory, base vs head.

    A total is a sum of medians, which has no samples of its own to test, so its verdict needs
    both the total to move beyond `factor` and at least one of its benchmarks to have moved
    significantly the same way; a single throughput keeps its own benchmark's verdict.
    """
    out: list[SummaryRow] = []
    times = [r for r in rows if is_time(r)]
    if times:
        out.append(_aggregate("Total runtime", times, sum, factor))
    allocs = [r for r in rows if is_allocation(r)]
    if allocs:
        out.append(_aggregate("Total allocations", allocs, sum, factor))
    for r in rows:
        if is_throughput(r):
            out.append(
                SummaryRow(
                    f"Throughput {r.name}",
                    r.unit,
                    r.base,
                    r.head,
                    r.worse_is_higher,
                    r.verdict,
                    (r.name,),
                )
            )
    peaks = [r for r in rows if is_peakmem(r)]
    if peaks:
        out.append(_aggregate("Peak memory", peaks, max, factor))
    return out


def _aggregate(
    metric: str,
    rows: Sequence[BenchmarkComparison],
    combine: Callable[[list[float]], float],
    factor: float,
) -> SummaryRow:
    base = combine([r.base for r in rows])
    head = combine([r.head for r in rows])
    ratio = _ratio(head, base)
    verdicts = {r.verdict for r in rows}
    verdict = NO_CHANGE
    if ratio > factor and REGRESSION in verdicts:
        verdict = REGRESSION
    elif ratio * factor < 1 and IMPROVEMENT in verdicts:
        verdict = IMPROVEMENT
    names = tuple(sorted(r.name for r in rows))
    return SummaryRow(metric, rows[0].unit, base, head, True, verdict, names)


def has_regression(comparison: Comparison) -> bool:
    """The exit policy of `asv continuous`: any benchmark worse beyond factor and noise."""
    return any(r.verdict == REGRESSION for r in comparison.rows)


# -- I/O: measuring, or reading what asv stored ------------------------------------------------


class Measured(NamedTuple):
    """Samples of both revisions and why some benchmarks have none (see compare_measured)."""

    specs: list[BenchmarkSpec]
    base: dict[str, list[float]]
    head: dict[str, list[float]]
    errors: dict[str, str]


def compare_measured(
    measured: Measured,
    base_sha: str,
    head_sha: str,
    factor: float = DEFAULT_FACTOR,
    alpha: float = stats.DEFAULT_ALPHA,
) -> Comparison:
    """compare_samples on what measure_two or load_stored returned."""
    return compare_samples(
        measured.specs,
        measured.base,
        measured.head,
        factor,
        alpha,
        base_sha,
        head_sha,
        measured.errors,
    )


def _halves(samples: int) -> tuple[int, int]:
    first = max(1, samples // 2)
    return first, max(1, samples - first)


def measure_two(
    repo: GitRepo,
    runner: Runner,
    base_sha: str,
    head_sha: str,
    samples: int = 10,
    bench_patterns: Sequence[str] = (),
    progress: Callable[[str], None] | None = None,
) -> Measured:
    """Measure both revisions in a private worktree, in interleaved halves (base, head, head,
    base), so that a slow drift of the machine hits both alike.

    Benchmarks are grouped by samples per round, so asv time benchmarks (`repeat` samples per
    process) take one run per half while track/peakmem ones (one value per process) take one
    run per sample. A benchmark that errors at either revision is dropped from both and
    reported in `errors` (prefixed with the commit it failed at); if nothing can be measured
    at both revisions, a UsageError carries the first error.
    """
    specs = select_benchmarks(runner.list_benchmarks(), bench_patterns)
    first, second = _halves(samples)
    base: dict[str, list[float]] = {}
    head: dict[str, list[float]] = {}
    errors: dict[str, str] = {}
    plan = [(first, base_sha), (first, head_sha), (second, head_sha), (second, base_sha)]
    with repo.private_worktree(head_sha) as worktree:
        for n, sha in plan:
            got = base if sha == base_sha else head
            live = [s for s in specs if s.name not in errors]
            if not live:
                break
            if progress:
                which = "base" if sha == base_sha else "head"
                progress(f"measuring {which} {sha[:10]}: {len(live)} benchmarks, {n} samples")
            worktree.checkout(sha)
            for per_round, names in _groups(live).items():
                rounds = max(1, math.ceil(n / per_round))
                try:
                    batch = runner.measure(worktree.path, sha, names, rounds)
                except MeasurementFailed as exc:
                    batch_errors = {name: str(exc) for name in names}
                    batch_samples: dict[str, list[float]] = {}
                else:
                    batch_errors, batch_samples = batch.errors, batch.samples
                for name in names:
                    if batch_samples.get(name) and name not in batch_errors:
                        got.setdefault(name, []).extend(batch_samples[name])
                    else:
                        why = batch_errors.get(name, "no result")
                        errors[name] = f"{sha[:10]}: {why}"
    for name in errors:
        base.pop(name, None)
        head.pop(name, None)
    if specs and not base:
        first_error = next(iter(errors.values()), "no result")
        raise UsageError(f"no benchmark could be measured at both revisions ({first_error})")
    return Measured(specs, base, head, errors)


def _groups(specs: Sequence[BenchmarkSpec]) -> dict[int, list[str]]:
    groups: dict[int, list[str]] = {}
    for s in specs:
        groups.setdefault(max(1, s.samples_per_round), []).append(s.name)
    return groups


def load_stored(
    results_dir: Path,
    machine: str | None,
    base_sha: str,
    head_sha: str,
) -> Measured | None:
    """Samples (or, without --record-samples, the single stored value) that asv already holds
    for both commits; None when either commit has no results for this machine.

    `machine` None picks the only machine in results_dir (asv's default is the host name).
    Units and kinds come from the benchmarks.json asv writes beside the results.
    """
    results_dir = Path(results_dir)
    machine = machine or _only_machine(results_dir)
    if machine is None:
        return None
    base = _stored_samples(results_dir, machine, base_sha)
    head = _stored_samples(results_dir, machine, head_sha)
    if base is None or head is None:
        return None
    errors: dict[str, str] = {}
    for name in sorted(set(base) | set(head)):
        if not base.get(name) or not head.get(name):
            sha = base_sha if not base.get(name) else head_sha
            errors[name] = f"{sha[:10]}: no stored result (failed or not run)"
            base.pop(name, None)
            head.pop(name, None)
    by_name = {s.name: s for s in _stored_specs(results_dir)}
    specs = [by_name.get(name) or _guess_spec(name) for name in sorted(base)]
    return Measured(specs, base, head, errors)


def _only_machine(results_dir: Path) -> str | None:
    if not results_dir.is_dir():
        return None
    machines = [p.name for p in results_dir.iterdir() if (p / "machine.json").is_file()]
    return machines[0] if len(machines) == 1 else machine_name()


def _stored_samples(results_dir: Path, machine: str, sha: str) -> dict[str, list[float]] | None:
    """Merge every stored result file of the commit (one per environment); None if there is
    none. A benchmark keeps the first file's samples that has any."""
    from asv import util as asv_util
    from asv.results import iter_results_for_machine_and_hash

    if not (results_dir / machine).is_dir():
        return None
    try:
        results = list(iter_results_for_machine_and_hash(str(results_dir), machine, sha))
    except asv_util.UserError as exc:
        raise UsageError(f"asv results for {sha[:10]}: {exc}") from None
    if not results:
        return None
    out: dict[str, list[float]] = {}
    for result in sorted(results, key=lambda r: str(r.env_name)):
        for key in result.get_all_result_keys():
            for label, samples in _expand_params(result, key):
                if samples and not out.get(label):
                    out[label] = samples
                else:
                    out.setdefault(label, [])
    return out


def _guess_spec(name: str) -> BenchmarkSpec:
    """A spec from asv's naming convention, for results without a benchmarks.json."""
    method = name.split("(", 1)[0].rsplit(".", 1)[-1]
    for prefix, kind, unit in (
        ("time_", "time", "seconds"),
        ("peakmem_", "peakmemory", "bytes"),
        ("mem_", "memory", "bytes"),
    ):
        if method.startswith(prefix):
            return BenchmarkSpec(name, unit, True, 1, kind)
    return BenchmarkSpec(name, "unit", True, 1, "track")


def _stored_specs(results_dir: Path) -> list[BenchmarkSpec]:
    path = results_dir / "benchmarks.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    # samples_per_round does not matter for stored results
    return _specs_from_benchmarks_json(data, repeat=1)
