"""When instruction counts show no regression, does wall time? (issue 10, point 4)

Sleeps, I/O waits, lock contention and thread scheduling do not show in instruction counts. So
when a bisect by `--metric instructions` or `cycles` finds bad no worse than good, the same
benchmark is timed at the two endpoints (interleaved, sequentially, as a bisect's endpoints
are, within a small budget): the command of `--cmd`, or, in asv mode, the benchmarks whose
counts showed no regression, through asv's own timing runner. If wall time shows the
regression, the report says so and suggests `--metric time`. It measures only the endpoints:
it never bisects by a metric the user did not ask for.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .judge import Judge
from .measure import Event, Measurer
from .policy import Budget, Decision, Policy
from .runners import Runner
from .session import BisectRepo, SessionResult
from .stats import Comparison
from .store import MeasurementStore

COUNTED = ("instructions", "cycles")
SECONDS_PER_ENDPOINT = 60.0  # the check's budget: it is advice, not the verdict
MAX_TIMED = 8  # asv benchmarks timed at most: a whole suite would not be cheap


@dataclass(frozen=True)
class TimeCheck:
    benchmark: str
    metric: str  # the counting metric that showed nothing
    verdict: str  # of wall time at the endpoints: regressed, unchanged or unclear
    comparison: Comparison
    reason: str
    asv: bool = False  # an asv benchmark (the advice names it for -b), not --cmd

    @property
    def regressed(self) -> bool:
        return self.verdict == "regressed"

    def advice(self) -> str:
        c = self.comparison
        ratio = f"bad/good {c.ratio:.3g}x [{c.ci_low:.3g}, {c.ci_high:.3g}]"
        who = f"{self.benchmark}: " if self.asv else ""
        if self.regressed:
            how = (
                f"--metric time -b '{re.escape(self.benchmark)}$'"
                if self.asv
                else ("--metric time (or cputime for CPU time)")
            )
            return (
                f"{who}{self.metric} show no regression, but wall time does: {ratio}. The "
                "slowdown is in what instruction counts cannot see (sleeps, I/O waits, lock "
                f"contention, thread scheduling): bisect with {how}."
            )
        if self.verdict == "unchanged":
            return f"{who}wall time shows no regression either ({ratio}; {self.reason})."
        return f"{who}wall time does not tell either ({ratio}; {self.reason})."

    def to_json(self) -> dict[str, Any]:
        c = self.comparison
        return {
            "benchmark": self.benchmark,
            "counted_by": self.metric,
            "metric": "time",
            "verdict": self.verdict,
            "regressed": self.regressed,
            "ratio": c.ratio,
            "ci": [c.ci_low, c.ci_high],
            "runs": [c.n_base, c.n_other],
            "reason": self.reason,
            "suggest": "--metric time" if self.regressed else None,
        }


def unchanged_by_count(result: SessionResult) -> list[str]:
    """The benchmarks whose counts showed no regression at the endpoints: what to time."""
    return [
        o.spec.name for o in result.outcomes if o.status == "unchanged" and o.spec.unit in COUNTED
    ]


def check_time(
    repo: BisectRepo,
    runner: Runner,
    names: Sequence[str],
    metric: str,
    good: str,
    bad: str,
    store: MeasurementStore,
    on_event: Callable[[Event], None],
    asv: bool = False,
) -> list[TimeCheck]:
    """Time `names` (benchmarks of `runner`, which measures wall time) at good and bad until
    the endpoints' test decides each, or the budget runs out; one TimeCheck per benchmark
    decided either way."""
    by_name = {s.name: s for s in runner.list_benchmarks()}
    specs = [by_name[n] for n in names if n in by_name]
    if not specs:
        return []
    policy = Policy(budget=Budget(seconds_per_commit=SECONDS_PER_ENDPOINT))
    what = ", ".join(s.name for s in specs)
    on_event(Event("time-check", f"{what}: {metric} show nothing; timing good and bad"))
    with repo.private_worktree(bad) as wt:
        m = Measurer(runner, store, wt, specs, on_event)
        judge = Judge(m, policy, good, bad, None, None, on_event)
        found = judge.endpoints(specs, named=False)
    verdicts = {Decision.REGRESSED: "regressed", Decision.UNCHANGED: "unchanged"}
    return [
        TimeCheck(name, metric, verdicts.get(j.decision, "unclear"), comp, j.reason, asv)
        for name, (j, comp) in found.items()
    ]
