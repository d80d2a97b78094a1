"""`smbisect check`: one commit judged against a baseline, the step of a plain `git bisect run`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from .git import GitRepo
from .judge import Judge
from .measure import Measurer
from .policy import Decision, Policy
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
    runs: int | None = None,
    policy: Policy | None = None,
) -> CheckResult:
    """Is rev worse than baseline beyond the threshold, significantly? Decided with the
    endpoints' sequential rule (docs/policy.md): `runs` runs of each first (the policy's 3 by
    default), then one more pair at a time, baseline and rev alternately, until bad is shown
    worse beyond the threshold, shown within it, or the budget is spent (unclear: skip).

    The baseline's runs come from the cache when they exist, so a `git bisect run` that calls
    this at every step measures the baseline about once.
    """
    base_sha = repo.resolve(baseline, "--good")
    sha = repo.resolve(rev, "REV")
    specs = select_benchmarks(runner.list_benchmarks(), patterns)
    policy = policy or Policy()
    if runs is not None:
        policy = replace(policy, min_reference_runs=max(policy.min_reference_runs, runs))
    rows: list[tuple[BenchmarkSpec, Comparison | None, Verdict, str]] = []
    with repo.private_worktree(sha) as wt:
        m = Measurer(runner, store, wt, specs, lambda e: None)
        judge = Judge(m, policy, base_sha, sha, factor, delta, lambda e: None)
        found = judge.endpoints(specs, named=False)
        for spec in specs:
            err = m.error(sha, spec.name) or m.error(base_sha, spec.name)
            if spec.name not in found:
                rows.append((spec, None, Verdict.SKIP, err or "could not be measured"))
                continue
            j, comp = found[spec.name]
            if j.decision is Decision.REGRESSED:
                rows.append((spec, comp, Verdict.BAD, f"worse beyond the threshold: {j.reason}"))
            elif j.decision is Decision.UNCHANGED:
                rows.append((spec, comp, Verdict.GOOD, f"within the threshold: {j.reason}"))
            else:
                rows.append((spec, comp, Verdict.UNKNOWN, f"unclear: {j.reason}"))
    return CheckResult(base_sha, sha, rows)
