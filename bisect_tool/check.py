"""`smbisect check`: one commit judged against a baseline, the step of a plain `git bisect run`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from . import stats
from .git import GitRepo
from .measure import Measurer
from .runners import BenchmarkSpec, Runner
from .selection import select_benchmarks
from .stats import Comparison, Verdict
from .store import MeasurementStore


@dataclass
class CheckResult:
    """One commit judged against a baseline, for `smbisect check` (git bisect run's step)."""

    baseline: str
    commit: str
    rows: list[tuple[BenchmarkSpec, Comparison | None, Verdict, str]]

    @property
    def exit_code(self) -> int:
        verdicts = [v for _, _, v, _ in self.rows]
        if any(v is Verdict.BAD for v in verdicts):
            return 1
        if any(v in (Verdict.SKIP, Verdict.UNKNOWN) for v in verdicts):
            return 125
        return 0


def check_commit(
    repo: GitRepo,
    runner: Runner,
    store: MeasurementStore,
    baseline: str,
    rev: str,
    patterns: Sequence[str] = (),
    factor: float | None = None,
    delta: float | None = None,
    samples: int = 10,
    max_samples: int = 30,
    alpha: float = stats.DEFAULT_ALPHA,
) -> CheckResult:
    """Is rev worse than baseline beyond the threshold, significantly? Measures more if unclear.

    The baseline's samples come from the cache when they exist, so a `git bisect run` that calls
    this at every step measures the baseline once.
    """
    base_sha = repo.resolve(baseline, "--good")
    sha = repo.resolve(rev, "REV")
    specs = select_benchmarks(runner.list_benchmarks(), patterns)
    names = [s.name for s in specs]
    rows: list[tuple[BenchmarkSpec, Comparison | None, Verdict, str]] = []
    with repo.private_worktree(sha) as wt:
        m = Measurer(runner, store, wt, specs, lambda e: None)
        m.ensure(base_sha, names, samples)
        m.ensure(sha, names, samples)
        for spec in specs:
            name = spec.name
            err = m.error(sha, name) or m.error(base_sha, name)
            if err:
                rows.append((spec, None, Verdict.SKIP, err))
                continue
            worse_high = spec.worse_is_higher if spec.worse_is_higher is not None else True
            while True:
                base, cur = m.samples(base_sha, name), m.samples(sha, name)
                worse, comp = stats.regression_reproduces(
                    base, cur, alpha, factor, delta, worse_high
                )
                beyond = stats.beyond_threshold(
                    stats.median(base), stats.median(cur), factor, delta, worse_high
                )
                if worse:
                    rows.append((spec, comp, Verdict.BAD, "worse beyond the threshold"))
                    break
                if not beyond or comp.p_value >= 0.5:
                    rows.append((spec, comp, Verdict.GOOD, "within the threshold"))
                    break
                if len(cur) >= max_samples:
                    rows.append((spec, comp, Verdict.UNKNOWN, "unclear after the sample budget"))
                    break
                more = m.add_samples(sha, [name], samples // 2 or 1)
                m.add_samples(base_sha, [name], samples // 2 or 1)
                if not more.samples.get(name):
                    why = more.errors.get(name, "no result")
                    rows.append((spec, comp, Verdict.SKIP, f"measuring more failed: {why}"))
                    break
    return CheckResult(base_sha, sha, rows)
