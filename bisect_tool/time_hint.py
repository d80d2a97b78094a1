"""When instruction counts show no regression, does wall time? (issue 10, point 4)

Sleeps, I/O waits, lock contention and thread scheduling do not show in instruction counts. So
when a bisect by `--metric instructions` or `cycles` finds bad no worse than good, the same
command is timed at the two endpoints (interleaved, sequentially, as a bisect's endpoints are,
within a small budget). If wall time shows the regression, the report says so and suggests
`--metric time`. It measures only the endpoints: it never bisects by a metric the user did
not ask for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .judge import Judge
from .measure import Event, Measurer
from .policy import Budget, Decision, Policy
from .runners import CommandRunner
from .session import BisectRepo
from .stats import Comparison
from .store import MeasurementStore

COUNTED = ("instructions", "cycles")
SECONDS_PER_ENDPOINT = 60.0  # the check's budget: it is advice, not the verdict


@dataclass(frozen=True)
class TimeCheck:
    regressed: bool
    comparison: Comparison
    reason: str

    def advice(self, metric: str) -> str:
        c = self.comparison
        ratio = f"bad/good {c.ratio:.3g}x [{c.ci_low:.3g}, {c.ci_high:.3g}]"
        if self.regressed:
            return (
                f"{metric} show no regression, but wall time does: {ratio}. The slowdown is in "
                "what instruction counts cannot see (sleeps, I/O waits, lock contention, thread "
                "scheduling): bisect with --metric time (or cputime for CPU time)."
            )
        return f"wall time shows no regression either ({ratio}; {self.reason})."


def check_time(
    repo: BisectRepo,
    cmd: str,
    timeout: float,
    higher_is_better: bool,
    good: str,
    bad: str,
    store: MeasurementStore,
    on_event: Callable[[Event], None],
) -> TimeCheck | None:
    """Time the command at good and bad until the endpoints' test decides, or the budget."""
    runner = CommandRunner(cmd, "time", timeout, higher_is_better)
    specs = runner.list_benchmarks()
    policy = Policy(budget=Budget(seconds_per_commit=SECONDS_PER_ENDPOINT))
    on_event(Event("time-check", f"{cmd}: instructions show nothing; timing good and bad"))
    with repo.private_worktree(bad) as wt:
        m = Measurer(runner, store, wt, specs, on_event)
        judge = Judge(m, policy, good, bad, None, None, on_event)
        found = judge.endpoints(specs, named=False)
    if not found:
        return None
    j, comp = next(iter(found.values()))
    return TimeCheck(j.decision is Decision.REGRESSED, comp, j.reason)
