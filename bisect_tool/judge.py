"""Evidence for one session: measures through the Measurer until the policy decides.

The policy (policy.py) is pure and answers from numbers; this module turns the store's samples
into the policy's numbers (one log value per run), carries out its "measure more" (interleaving
the references when the machine is noisy), and turns its answers into verdicts and the
comparisons the reports show. It knows nothing of git bisect: the session does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from . import policy as pol
from . import threads
from .instructions import BODY_COUNT_FLOOR, COUNT_FLOOR, is_deterministic, min_effect
from .measure import Event, Measurer
from .policy import Decision, Judgement, Policy, Scale, Spent
from .runners import BenchmarkSpec
from .stats import Comparison, Verdict

PAIRED_FROM = 6  # pairs before a comparison is made on the pairs alone


@dataclass
class Noise:
    """How noisy a benchmark was, for the report: per-run scale, and per commit."""

    sigma: float  # pooled, log units (about the coefficient of variation)
    df: int
    per_commit: dict[str, float] = field(default_factory=dict)  # sha -> CV of its runs


HIGH_NOISE = 0.5  # noise per run (log scale) above which a bisect is told what usually helps
NOISE_WARNING_RUNS = 6  # runs per endpoint before that is said while the endpoints are measured
THREADS = threads.SHOWN  # one thread per library


def noise_warning(
    name: str, sigma: float, load: Sequence[float], one_thread: bool = False
) -> str | None:
    """What to tell a user whose endpoints vary by more than HIGH_NOISE per run, or None.

    The usual cause on a busy machine is a threaded library: a BLAS or OpenMP worker thread
    that loses its core makes every other thread wait. A numpy benchmark on this project's
    2-core VM, with one other busy process, went from 20% to 44% per run with OpenBLAS's
    default threads and stayed at 20% with one thread; under the accuracy tool's bursty load
    its runs spanned 400x (docs/accuracy.md, "numpy"). `one_thread`: the processes run with
    one thread per library already (threads.py), so that advice is left out."""
    if not math.isfinite(sigma) or sigma <= HIGH_NOISE:
        return None
    busy = f" (load average {max(load):.1f})" if load else ""
    if one_thread:
        return (
            f"{name}: runs vary by about {sigma:.0%} per run at the endpoints{busy}, with one "
            "thread per library, so each verdict will take many runs: stop other work, use "
            "--metric cputime or instructions, or bound it with --max-time"
        )
    return (
        f"{name}: runs vary by about {sigma:.0%} per run at the endpoints{busy}, so each "
        "verdict will take many runs. If the benchmark runs threads (numpy/BLAS, OpenMP) on a "
        f"busy machine, run smbisect with {THREADS} in its environment (benchmark processes "
        "inherit it); otherwise "
        "stop other work, use --metric cputime or instructions, or bound it with --max-time"
    )


class Judge:
    """Answers the bisect's questions for each benchmark, measuring as much as they need."""

    def __init__(
        self,
        m: Measurer,
        policy: Policy,
        good: str,
        bad: str,
        factor: float | None,
        delta: float | None,
        on_event: Callable[[Event], None],
    ) -> None:
        self.m = m
        self.policy = policy
        self.good, self.bad = good, bad
        self.factor, self.delta = factor, delta
        self.on_event = on_event
        self.ref_from: dict[tuple[str, str], int] = {}  # runs before this index are stale
        self.log_scale: dict[str, bool] = {}
        self.worse_high: dict[str, bool] = {}
        self.units: dict[str, str] = {}
        self.body_counts: set[str] = set()  # counted asv benchmarks: the body's count alone
        self.notes: dict[str, list[str]] = {}  # what happened while measuring, per benchmark
        self.blocks: dict[tuple[str, str], list[float]] = {}  # (sha, name) -> u of each block
        self.noise_notes: dict[str, str] = {}  # benchmark -> the warning it was given
        # asked when the endpoints are very noisy (benchmark, noise per run): True when it
        # changed how runs are taken (one thread per library, session.py); the endpoints then
        # start over on runs of the new setting alone
        self.on_noisy: Callable[[str, float], bool] | None = None
        self.one_thread = False  # the runs are taken with one thread per library (threads.py)
        self.cut_at: dict[str, float] = {}  # benchmark -> a cut moved off a plateau, beyond good
        # (sha, benchmark) -> runs and blocks a careful pass leaves out of that step's verdict
        self.step_from: dict[tuple[str, str], tuple[int, int]] = {}

    def warn_if_noisy(self, name: str, min_runs: int = 2, may_switch: bool = False) -> bool:
        """Tell the user once, while measuring, when a benchmark's endpoints are very noisy.
        With `may_switch`, on_noisy may change the setting instead: True then, and every
        verdict must start over (the runs of the old setting are no longer the Measurer's)."""
        if name in self.noise_notes:
            return False
        if min(len(self.m.runs(self.good, name)), len(self.m.runs(self.bad, name))) < min_runs:
            return False
        sigma = self.scale(name).sigma
        note = noise_warning(name, sigma, self.m.account.load, self.one_thread)
        if not note:
            return False
        if may_switch and self._half_left(name) and self.on_noisy and self.on_noisy(name, sigma):
            self.one_thread = True
            self.ref_from.clear()
            self.log_scale.clear()
            return True
        self.noise_notes[name] = note
        self.on_event(Event("noisy", note, {"benchmark": name}))
        return False

    def _half_left(self, name: str) -> bool:
        """Is at most half the endpoints' budget spent? Only then is starting over in another
        setting worth it: the runs spent so far still count against the budget."""
        budget, spent = self.policy_for(name).budget, self.spent(self.good, self.bad)
        return (
            2 * spent.runs <= budget.runs_per_commit
            and 2 * spent.seconds <= budget.seconds_per_commit
        )

    # -- numbers for the policy ----------------------------------------------------------------

    def counted(self, name: str) -> bool:
        return is_deterministic(self.units.get(name, ""))

    def policy_for(self, name: str) -> pol.Policy:
        if self.counted(name):
            return self.policy.counted()
        scale = self.scale(name)
        return self.policy.for_odd_runs(scale.odd, scale.runs)

    def values(self, sha: str, name: str) -> list[float]:
        runs = self.m.runs(sha, name)
        return runs[self.ref_from.get((sha, name), 0) :]

    def logs(self, sha: str, name: str) -> list[float]:
        vals = self.values(sha, name)
        if self.log_scale.get(name, True):
            return [math.log(max(v, 1e-300)) for v in vals]
        return vals

    def scale(self, name: str) -> Scale:
        shas = {self.good, self.bad, *self.m.account.runs}
        return pol.pooled_scale([self.logs(s, name) for s in shas])

    def spent(self, *shas: str, since: dict[str, tuple[int, float]] | None = None) -> Spent:
        """The budget spent at these commits (the most at any of them), counted from `since`
        (runs and seconds per commit at some earlier moment) when given."""
        acc = self.m.account
        since = since or {}
        return Spent(
            runs=max((acc.runs.get(s, 0) - since.get(s, (0, 0.0))[0] for s in shas), default=0),
            seconds=max(
                (acc.seconds.get(s, 0.0) - since.get(s, (0, 0.0))[1] for s in shas), default=0.0
            ),
            seconds_total=acc.spent_overall,
        )

    def snapshot(self, *shas: str) -> dict[str, tuple[int, float]]:
        acc = self.m.account
        return {s: (acc.runs.get(s, 0), acc.seconds.get(s, 0.0)) for s in shas}

    def threshold(self, name: str) -> float:
        """The smallest change that counts, on the policy's scale."""
        g = _median(self.values(self.good, name))
        if self.log_scale.get(name, True):
            if self.delta is not None and g > 0:
                return math.log((g + self.delta) / g)
            if self.factor is None and is_deterministic(self.units.get(name, "")):
                # a count that repeats to 1e-6 needs no 5% floor against timing noise: the
                # floor follows the spread measured (docs/instructions.md)
                floor = BODY_COUNT_FLOOR if name in self.body_counts else COUNT_FLOOR
                return math.log(min_effect(self.scale(name).sigma, floor))
            return math.log(self.factor or pol.MIN_EFFECT)
        if self.delta is not None:
            return self.delta
        return abs(g) * ((self.factor or pol.MIN_EFFECT) - 1)

    def cut_offset(self, name: str) -> float | None:
        """With a fixed --threshold or --threshold-ms, or a cut moved off a plateau, where the
        cut lies beyond good (toward bad); None for the midpoint of good and bad."""
        if name in self.cut_at:
            return self.cut_at[name]
        if self.factor is None and self.delta is None:
            return None
        return self.threshold(name)

    def move_cut_off_plateau(self, name: str, culprit: str, parent: str) -> str | None:
        """After `culprit` failed to confirm against `parent`: when the two sit at one level in
        the middle third between good and bad, shown apart from each end by more than the
        threshold, the range holds a change on each side of that plateau. Steps on it are as
        far from good as from bad, so a midpoint cut decides them at random and the careful
        pass would end on the plateau again. Move the cut to the middle of the larger of the
        two gaps: the bisect then ends at one of the two changes, and attribution finds the
        other. Returns a note, or None when the pair is not on such a plateau (the usual
        misjudged step: at good's or bad's level). docs/policy.md, "A plateau"."""
        if self.cut_offset(name) is not None or self.counted(name):
            return None
        scale = self.scale(name)
        sides = [self.logs(sha, name) for sha in (self.good, parent, culprit, self.bad)]
        if not scale.known or any(len(v) < 2 for v in sides):
            return None
        g, p, c, b = (pol.location(v, scale) for v in sides)
        sign = 1.0 if self.worse_high.get(name, True) else -1.0
        level = sign * ((p + c) / 2 - g)
        span = sign * (b - g)
        if not span / 3 <= level <= 2 * span / 3:
            # away from the midpoint the cut decides the plateau the same way every time; a
            # pair that merely looks between (a burst of load on its runs) stays as it was
            return None
        n_level = len(sides[1]) + len(sides[2])
        q = pol.t_quantile(self.policy.alpha_step, scale.df)
        thr = self.threshold(name)
        for gap, n_end in ((level, len(sides[0])), (span - level, len(sides[3]))):
            se = scale.sigma * math.sqrt(1 / n_level + 1 / n_end)
            if gap - q * se < thr:
                return None
        off = level / 2 if level >= span - level else (level + span) / 2
        self.move_cut(name, off)
        where = "between good and them" if level >= span - level else "between them and bad"
        return (
            f"{culprit[:10]} and its parent {parent[:10]} sit at one level between good and "
            f"bad, apart from both: a change on each side; bisected again with the cut {where}"
        )

    def move_cut(self, name: str, offset: float) -> None:
        """Cut `offset` beyond good (toward bad) for this benchmark from now on."""
        self.cut_at[name] = offset
        for key in [k for k in self.blocks if k[1] == name]:
            del self.blocks[key]  # their u were taken against the old cut

    def cut_value(self, name: str) -> float:
        """The cut in the benchmark's own unit, for reports and plots."""
        g, b = _median(self.values(self.good, name)), _median(self.values(self.bad, name))
        off = self.cut_offset(name)
        if self.log_scale.get(name, True) and g > 0 and b > 0:
            lg, lb = math.log(g), math.log(b)
            if off is None:
                return math.exp((lg + lb) / 2)
            return math.exp(lg + (off if lb >= lg else -off))
        if off is None:
            return (g + b) / 2
        return g + (off if b >= g else -off)

    # -- endpoints ------------------------------------------------------------------------------

    def endpoints(
        self, specs: Sequence[BenchmarkSpec], named: bool
    ) -> dict[str, tuple[Judgement, Comparison]]:
        """Measure good and bad, interleaved, until each benchmark's verdict is decided."""
        names = [s.name for s in specs]
        by_name = {s.name: s for s in specs}
        self.units.update({s.name: s.unit for s in specs})
        self.body_counts.update(
            s.name for s in specs if s.kind != "command" and is_deterministic(s.unit)
        )
        start = {(sha, n): len(self.m.runs(sha, n)) for sha in (self.good, self.bad) for n in names}
        first = min(self.policy_for(n).min_reference_runs for n in names) if names else 0
        for k in range(1, first + 1):
            order = (self.good, self.bad) if k % 2 else (self.bad, self.good)
            for sha in order:
                self.m.ensure_runs(sha, names, k)
        for n in names:
            g, b = self.m.runs(self.good, n), self.m.runs(self.bad, n)
            self.log_scale[n] = pol.can_use_log(g, b)
        found: dict[str, tuple[Judgement, Comparison]] = {}
        todo = [n for n in names if not (self.m.error(self.good, n) or self.m.error(self.bad, n))]
        flip = False
        while todo:
            more = 0
            for n in list(todo):
                spec = by_name[n]
                g, b = self.logs(self.good, n), self.logs(self.bad, n)
                fresh_g = self.logs_from(self.good, n, start[(self.good, n)])
                fresh_b = self.logs_from(self.bad, n, start[(self.bad, n)])
                d = self.difference(n, g, b, fresh_g, fresh_b)
                j = pol.judge_endpoints(
                    d,
                    self.threshold(n),
                    self.policy_for(n),
                    self.spent(self.good, self.bad),
                    spec.worse_is_higher,
                    # a count that never varies gains nothing from measuring to the budget
                    named and not is_deterministic(spec.unit),
                )
                if j.decision is Decision.MORE:
                    more = max(more, j.more_runs)
                    continue
                todo.remove(n)
                # the ratio, interval and p of the test that decided, as for the confirmation:
                # all runs on the session's pooled noise once read "1.098x [0.916, 1.317], p
                # 0.29, REGRESSED" beside a verdict the pairs' own test had made (networkx)
                found[n] = (j, self.comparison_of(g, b, n, two_sided=True, d=d))
                if spec.worse_is_higher is not None:
                    self.worse_high[n] = spec.worse_is_higher
                else:
                    self.worse_high[n] = j.estimate >= 0
            if any(self.warn_if_noisy(n, NOISE_WARNING_RUNS, may_switch=True) for n in todo):
                return self.endpoints(specs, named)  # measured afresh, in the new setting
            if todo and more:
                self.on_event(
                    Event(
                        "more",
                        f"endpoints not decided for {len(todo)} benchmark(s); "
                        f"{more} more run(s) each",
                    )
                )
                for _ in range(more):
                    flip = not flip
                    if all(self.counted(n) for n in todo) and any(
                        len(self.m.runs(self.good, n)) < 2 for n in todo
                    ):
                        self.m.add(self.good, todo, 1)  # a repeat shows the count's spread
                        continue
                    for sha in (self.bad, self.good) if flip else (self.good, self.bad):
                        self.m.add(sha, todo, 1)
        return found

    # -- one step ------------------------------------------------------------------------------

    def forget_steps(self, names: Sequence[str]) -> None:
        """Before a careful pass: the runs and blocks every commit has so far (but good and
        bad) no longer count toward its step verdicts. The pass exists because some step was
        misjudged on its runs; judged on the same runs again, it would go the same way."""
        for sha in self.m.account.runs:
            if sha in (self.good, self.bad):
                continue
            for n in names:
                self.step_from[(sha, n)] = (
                    len(self.m.runs(sha, n)),
                    len(self.blocks.get((sha, n), [])),
                )

    def step(
        self, sha: str, name: str, shared: Sequence[str], min_runs: int, runs_cap: int = 0
    ) -> tuple[Verdict, str]:
        """Measure sha until it resembles good or bad, or the budget is spent (skip).

        First on its own runs against the references' (one run decides an obvious case); a
        commit that takes long to decide, or any commit on a noisy machine, is then measured
        in blocks (good, commit, bad back to back) and judged on the blocks alone, so a burst
        of load or a drift of the machine hits both sides alike. `runs_cap` replaces the
        per-commit cap on runs (a second chance, session.py). After `forget_steps`, only the
        runs and blocks taken since count (`min_runs` of them first)."""
        policy = self.policy.with_run_cap(runs_cap) if runs_cap else self.policy
        total = policy.budget.seconds_total
        if (
            total is not None
            and self.m.account.spent_overall >= total
            and not self.m.runs(sha, name)
        ):
            return Verdict.SKIP, f"not measured: the total budget ({total:g} s) is spent"
        skip_runs, skip_blocks = self.step_from.get((sha, name), (0, 0))
        if (
            skip_runs
            and len(self.m.runs(sha, name)) - skip_runs < max(1, min_runs)
            and pol.budget_spent(policy, self.spent(sha))
        ):  # its budget holds across both passes, as before
            return Verdict.SKIP, "not measured again: its budget was spent in the first pass"
        ahead = max((self.step_from.get((sha, n), (0, 0))[0] for n in shared), default=0)
        self.m.ensure_runs(sha, shared, ahead + max(1, min_runs))
        rounds = 0
        paired = False
        while True:
            err = self.m.error(sha, name)
            if err:
                return Verdict.SKIP, err
            spent = self.spent(sha)
            if paired:
                j = pol.judge_paired(
                    self.blocks[(sha, name)][skip_blocks:],
                    self.block_scale(name),
                    policy.alpha_step,
                    policy,
                    spent,
                    self.span_bound(name),
                )
            else:
                j = pol.judge_step(
                    self.logs(sha, name)[skip_runs:],
                    self.logs(self.good, name),
                    self.logs(self.bad, name),
                    self.scale(name),
                    policy,
                    spent,
                    self.cut_offset(name),
                    min_runs,
                )
            if j.decision is Decision.GOOD:
                return Verdict.GOOD, j.reason
            if j.decision is Decision.BAD:
                return Verdict.BAD, j.reason
            if j.decision is Decision.UNCLEAR:
                return Verdict.SKIP, j.reason
            self.on_event(Event("more", f"{sha[:10]}: {j.reason}; measuring more", {"sha": sha}))
            rounds += 1
            if not paired and (j.refresh_references or rounds >= 3):
                paired = True
                self.blocks.setdefault((sha, name), [])
            if paired:
                if not self._block(sha, name):
                    why = self.m.error(sha, name) or "no result"
                    return Verdict.SKIP, f"measuring more failed: {why}"
                continue
            batch = self.m.add(sha, [name], j.more_runs)
            if not batch.samples.get(name):
                return Verdict.SKIP, f"measuring more failed: {batch.errors.get(name, 'no result')}"

    def _block(self, sha: str, name: str) -> bool:
        """One block: good, sha and bad measured back to back (in alternating order); its u
        (sha's log value minus the block's own cut, positive toward bad) is recorded."""
        blocks = self.blocks.setdefault((sha, name), [])
        order = (self.good, sha, self.bad) if len(blocks) % 2 == 0 else (self.bad, sha, self.good)
        last: dict[str, float] = {}
        for s in order:
            batch = self.m.add(s, [name], 1)
            got = batch.samples.get(name)
            if not got:
                return False
            values = pol.run_values(got, self.m.per_round.get(name, 1))
            v = values[-1]
            last[s] = math.log(max(v, 1e-300)) if self.log_scale.get(name, True) else v
        g, x, b = last[self.good], last[sha], last[self.bad]
        sign = 1.0 if self.worse_high.get(name, True) else -1.0
        off = self.cut_offset(name)
        u = sign * (x - (g + b) / 2) if off is None else sign * (x - g) - off
        blocks.append(u)
        return True

    def span_bound(self, name: str) -> float:
        """A lower confidence bound on the good-to-bad distance (log scale), for the paired
        step's sequential test; 0 when the cut is not their midpoint (--threshold)."""
        if self.cut_offset(name) is not None:
            return 0.0
        span = self.span_estimate(name)
        if span == 0.0:
            return 0.0
        n_good, n_bad = len(self.logs(self.good, name)), len(self.logs(self.bad, name))
        scale = self.scale(name)
        se = scale.sigma * math.sqrt(1 / n_good + 1 / n_bad)
        return max(0.0, span - pol.t_quantile(self.policy.alpha_step, scale.df) * se)

    def span_estimate(self, name: str) -> float:
        """The good-to-bad distance (log scale), 0 when unknown. A confirmation whose culprit
        lies beyond bad by more than it is looking at odd runs (Judge.confirm)."""
        g, b = self.logs(self.good, name), self.logs(self.bad, name)
        scale = self.scale(name)
        if len(g) < 2 or len(b) < 2 or not scale.known:
            return 0.0
        return abs(pol.location(b, scale) - pol.location(g, scale))

    def block_scale(self, name: str) -> Scale:
        """The spread of u, pooled over every commit measured in blocks; before there are
        enough blocks, the runs' own scale, widened for the three runs that make a u."""
        groups = [u for (_, n), u in self.blocks.items() if n == name]
        scale = pol.pooled_scale(groups)
        if scale.df >= 4:
            return scale
        runs = self.scale(name)
        return Scale(runs.sigma * math.sqrt(1.5), runs.df)

    def noisy(self, name: str) -> bool:
        g, b = self.logs(self.good, name), self.logs(self.bad, name)
        span = abs(_mean(b) - _mean(g))
        return self.scale(name).sigma > self.policy.noisy_ratio * span

    def check_drift(self, name: str) -> str | None:
        """Re-measure both endpoints; if one moved, only its fresh runs are used from now."""
        before = {ref: len(self.m.runs(ref, name)) for ref in (self.good, self.bad)}
        # 3 runs each where odd runs happen, so that one can be clipped (pol.fresh_shift)
        fresh = 3 if self.scale(name).odd else 2
        for _ in range(fresh):
            for ref in (self.good, self.bad):
                self.m.add(ref, [name], 1)
        return self._drifted(name, before, 2)

    def _drifted(self, name: str, before: dict[str, int], min_fresh: int) -> str | None:
        """Did the runs of a reference since `before` (its run count then) move away from the
        ones in use before them? If so, only the fresh runs are used from now on."""
        scale = self.scale(name)
        moved = []
        q = pol.t_quantile(0.0005, scale.df)
        for ref, start in before.items():
            runs = self.m.runs(ref, name)
            old, new = runs[self.ref_from.get((ref, name), 0) : start], runs[start:]
            if len(new) < min_fresh or len(old) < 2 or not scale.known:
                continue
            if self.log_scale.get(name, True):
                old = [math.log(max(v, 1e-300)) for v in old]
                new = [math.log(max(v, 1e-300)) for v in new]
            shift, se = pol.fresh_shift(old, new, scale)
            if abs(shift) > q * se:
                moved.append(ref)
                self.ref_from[(ref, name)] = start
        if not moved:
            return None
        which = " and ".join("good" if r == self.good else "bad" for r in moved)
        return f"the {which} reference moved; using its fresh runs"

    # -- confirmation --------------------------------------------------------------------------

    def confirm(
        self, culprit: str, parent: str, names: Sequence[str], early_reject: bool = False
    ) -> dict[str, tuple[Judgement, Comparison]]:
        """Culprit and parent, measured alternately (parent first for two pairs, then culprit
        first for two: `pol.base_first`) until each benchmark decides.
        `early_reject`: a commit the runs show to carry no part of the change from good to
        bad is rejected as soon as they show it (policy.judge_confirm's `span`)."""
        found: dict[str, tuple[Judgement, Comparison]] = {}
        todo = [n for n in names if not (self.m.error(parent, n) or self.m.error(culprit, n))]
        # only the confirmation's own runs count: taken alternately, a steady drift of the
        # machine favours neither side, which runs taken during the bisect cannot promise
        # (a count that repeats has no drift: its earlier runs count too, plus a fresh one)
        start = {
            (sha, n): 0 if self.counted(n) else len(self.m.runs(sha, n))
            for sha in (parent, culprit)
            for n in names
        }
        since = self.snapshot(parent, culprit)
        fresh = 0
        while todo:
            order = (parent, culprit) if pol.base_first(fresh) else (culprit, parent)
            if fresh == 0 and all(self.counted(n) for n in todo):
                # a count: a second run of the culprit confirms it, the parent's runs count
                order = tuple(
                    sha for sha in order if sha == culprit or not self.m.runs(sha, todo[0])
                )
            for sha in order:
                self.m.add(sha, todo, 1)
            fresh += 1
            for n in list(todo):
                if self.m.error(parent, n) or self.m.error(culprit, n):
                    todo.remove(n)
                    continue
                spent = self.spent(parent, culprit, since=since)
                if not (pol.is_look(fresh) or pol.budget_spent(self.policy_for(n), spent)):
                    continue  # the error rate is spent per look: look at 1-6 pairs, then +25%
                par = self.logs_from(parent, n, start[(parent, n)])
                cul = self.logs_from(culprit, n, start[(culprit, n)])
                d = self.difference(n, par, cul, par, cul)
                j = pol.judge_confirm(
                    d,
                    self.threshold(n),
                    self.policy_for(n),
                    spent,
                    self.worse_high.get(n, True),
                    self.span_bound(n) if early_reject and not self.counted(n) else 0.0,
                    0.0 if self.counted(n) else self.span_estimate(n),
                )
                if j.decision is not Decision.MORE:
                    todo.remove(n)
                    # the ratio, interval and p of the test that decided (the pairs' own,
                    # once paired): a verdict shown beside another test's interval read
                    # "confirmed, 1.35x [0.90, 2.04], p=0.07"
                    found[n] = (j, self.comparison_of(par, cul, n, two_sided=False, d=d))
        return found

    def difference(
        self,
        name: str,
        base: Sequence[float],
        other: Sequence[float],
        base_pairs: Sequence[float],
        other_pairs: Sequence[float],
        paired: bool = True,
    ) -> pol.Difference:
        """other - base: from the runs measured in pairs (back to back, alternating) once there
        are enough of them to estimate their own spread, which a burst of load or a drift
        cannot bias; before that (or with `paired` False: the pairs' own few degrees of freedom
        would cost more power than the drift they guard against), from all runs with the noise
        pooled over the session, or the pairs' own spread when it is larger."""
        k = min(len(base_pairs), len(other_pairs))
        if paired and k >= PAIRED_FROM:
            v = [o - b for b, o in zip(base_pairs[:k], other_pairs[:k], strict=True)]
            scale = pol.pooled_scale([v])
            if scale.known and scale.df >= 4:
                return pol.paired(v, scale)
        return pol.unpaired(base, other, self.wider_scale(name, [base_pairs, other_pairs]))

    def wider_scale(self, name: str, groups: Sequence[Sequence[float]]) -> Scale:
        """The session's pooled noise, or these runs' own spread when it is larger: a burst of
        load that hit some of these runs and not others shows there, while the session's
        pooled noise knows nothing of it."""
        scale = self.scale(name)
        local = pol.pooled_scale(groups)
        if local.known and scale.known and local.sigma > scale.sigma:
            return replace(scale, sigma=local.sigma)
        return scale

    def logs_from(self, sha: str, name: str, start: int) -> list[float]:
        vals = self.m.runs(sha, name)[start:]
        if self.log_scale.get(name, True):
            return [math.log(max(v, 1e-300)) for v in vals]
        return vals

    # -- reporting -----------------------------------------------------------------------------

    def comparison(self, base: str, other: str, name: str, two_sided: bool) -> Comparison:
        return self.comparison_of(self.logs(base, name), self.logs(other, name), name, two_sided)

    def comparison_of(
        self,
        a: Sequence[float],
        b: Sequence[float],
        name: str,
        two_sided: bool,
        d: pol.Difference | None = None,
    ) -> Comparison:
        """Ratio of the two commits with its 95% interval and p-value, from the runs' logs: on
        the session's pooled noise, or from `d` (b - a as a decision measured it) when given."""
        scale = self.scale(name)
        if not a or not b:
            return Comparison(1.0, math.nan, math.nan, math.nan, len(a), len(b))
        diff = pol.location(b, scale) - pol.location(a, scale)
        se = scale.sigma * math.sqrt(1 / len(a) + 1 / len(b))
        df = scale.df
        if d is not None and d.df > 0 and math.isfinite(d.se):
            diff, se, df = d.diff, d.se, d.df
        elif not scale.known:
            return Comparison(
                1.0,
                _ratio(diff, self.log_scale.get(name, True), a),
                math.nan,
                math.nan,
                len(a),
                len(b),
            )
        q = pol.t_quantile(0.025, df)
        if se > 0:
            from scipy import stats as sps  # on first use: importing it takes a second

            t = diff / se
            worse = t if self.worse_high.get(name, True) else -t
            p = float(2 * sps.t.sf(abs(t), df)) if two_sided else float(sps.t.sf(worse, df))
        else:
            p = 0.0 if diff else 1.0
        log = self.log_scale.get(name, True)
        return Comparison(
            p,
            _ratio(diff, log, a),
            _ratio(diff - q * se, log, a),
            _ratio(diff + q * se, log, a),
            len(a),
            len(b),
        )

    def noise(self, name: str, shas: Sequence[str]) -> Noise:
        scale = self.scale(name)
        per = {}
        for sha in shas:
            xs = self.logs(sha, name)
            if len(xs) >= 2:
                mean = _mean(xs)
                per[sha] = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
        return Noise(scale.sigma, scale.df, per)


def _ratio(diff: float, log_scale: bool, base: Sequence[float]) -> float:
    if log_scale:
        return math.exp(diff)
    m = _mean(base)
    return (m + diff) / m if m else math.nan


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def _median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    n = len(s)
    if not n:
        return math.nan
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
