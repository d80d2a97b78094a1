"""The measurement policy: how much to measure, and when the evidence decides. Pure.

It is given samples and answers "decided", "measure more", or "the budget is spent", for the
three questions a bisect asks: do the endpoints differ (`judge_endpoints`), which endpoint does
this commit resemble (`judge_step`), and is the culprit worse than its parent
(`judge_confirm`). The session asks it with real measurements; the simulator asks it with
synthetic ones, thousands of times, to measure its error rates. The method is described, with
its assumptions, in docs/policy.md.

The unit of evidence is a run: one benchmark process. Samples that shared a process are not
independent (the process's warm caches, its memory layout and the machine's load at that moment
are shared), so each run contributes one observation, the log of its median sample. Decisions
are sequential t-tests on those log observations: a commit is judged as soon as its mean is far
enough from the cut, in standard errors, to hold the stated error rate; the noise scale is pooled
over every commit measured, with a robust, outlier-clipped estimator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import Enum
from functools import lru_cache
from statistics import NormalDist

MIN_EFFECT = 1.05  # below a 5% change the endpoints are not called a regression
_MAD_PAIR = 0.9538725524  # median |X1 - X2| of two standard normals: sqrt(2) * 0.6745
_CLIP = 3.5  # residuals beyond this many robust scales are clipped before the variance


def _clips(xs: Sequence[float], centre: float, limit: float) -> bool:
    """Whether clipping at `limit` from `centre` removes odd runs, not a mode: at most one run
    in five (at least one) may lie beyond it. When more do, a burst of load hit several runs,
    the runs are two populations, and clipping would pull every run to the side that holds
    the majority: on 5 runs a side, 3 of the culprit's and 2 of its parent's under a burst,
    clipped means showed a 1.8x change between two commits of one level (the simulator,
    seed 141), which the plain means put at 1.24x with a spread that decides nothing."""
    beyond = sum(1 for x in xs if abs(x - centre) > limit)
    return beyond <= max(1, len(xs) // 5)


class Decision(str, Enum):
    GOOD = "good"  # a step resembles good
    BAD = "bad"  # a step resembles bad
    REGRESSED = "regressed"  # endpoints: bad is worse than good beyond the threshold
    UNCHANGED = "unchanged"  # endpoints: bad is shown to be within the threshold of good
    CONFIRMED = "confirmed"  # the culprit is worse than its parent
    REJECTED = "rejected"  # the culprit is shown not to be worse than its parent by much
    MORE = "more"  # measure more
    UNCLEAR = "unclear"  # the budget is spent and the evidence does not decide


@dataclass(frozen=True)
class Budget:
    """What a user can understand: time per commit and in total, plus a cap on runs."""

    seconds_per_commit: float = 300.0
    seconds_total: float | None = None
    # a safety cap: the time per commit is the budget. 200 bound a 5 ms benchmark long before
    # its 300 s, and left 1.1x steps at 25% noise per run unclear (docs/policy.md)
    runs_per_commit: int = 500


@dataclass(frozen=True)
class Policy:
    """The constants of the policy, chosen with the simulator (tools/simulate_policy.py)."""

    alpha_endpoints: float = 0.001  # one-sided, per look
    alpha_step: float = 0.01  # one-sided, per look (the confirmation guards the answer)
    alpha_confirm: float = 0.0005  # one-sided, per look
    min_reference_runs: int = 3  # per endpoint, before any endpoint verdict
    # per endpoint, before "unchanged" (exit 3): with 3 runs a side, a burst of load on good's
    # runs and a chance-small spread once called a real 1.3x regression unchanged
    min_unchanged_runs: int = 8
    min_confirm_runs: int = 2  # fresh, interleaved runs of culprit and parent each
    careful_step_runs: int = 3  # runs per step when bisecting again after a failed confirm
    noisy_ratio: float = 0.25  # noise scale above this fraction of the change is "high"
    # attribution: fresh runs per end at most, to see if a segment changed. 16 left a real 1.5x
    # segment 3.2 standard errors from none at 40% noise per run (docs/accuracy.md, "Two
    # changes"); the runs are spent only while the estimate stays beyond the threshold
    segment_runs: int = 48
    # a segment is "unchanged" only when its interval (estimate +- segment_none_z standard
    # errors) excludes a change of segment_material (a log ratio; or the threshold times
    # segment_material_factor on the raw scale), never because a change merely failed to show:
    # "not significant on 3 runs" missed real 1.5x and 0.7x segments at 25% noise per run
    segment_material: float = 0.2
    segment_material_factor: float = 4.0
    segment_none_z: float = 2.0
    # ... or, when larger, this share of the whole log change good -> bad: next to a 237x
    # regression (pygments, docs/real-projects.md) ruling out 20% at 35% noise per run cost
    # 60 runs where the bisect took 20, for a change that would be under a tenth of the whole
    segment_share: float = 0.1
    # a commit the per-commit run cap left unclear, when the bisect then ends among it and its
    # neighbours (skips next to the change), is measured again up to this many times the cap
    # (the time per commit still holds): at 1.1x and 25% noise per run a step needs about 200
    # blocks (docs/policy.md)
    second_chance: int = 3
    # the first confirmation rejects a commit early once its runs favour "no change" over this
    # share of the good-to-bad change (judge_confirm): the commit a bisect names carries all of
    # the change when the range holds one, at least half with two slowdowns; with 1.0 (the
    # whole change) a commit carrying exactly half, where two equal changes meet the midpoint
    # cut, was rejected half the time and the careful pass then ended at no commit
    # (tests/test_session.py::test_a_step_at_the_midpoint_of_two_changes_leads_to_one_of_them)
    early_reject_share: float = 1 / 3
    budget: Budget = Budget()

    def with_run_cap(self, runs: int) -> Policy:
        return replace(self, budget=replace(self.budget, runs_per_commit=runs))

    def for_odd_runs(self, odd: int, runs: int) -> Policy:
        """Where `odd` of `runs` runs have lain beyond the clipping limit (`Scale.odd`): enough
        fresh runs a side before a confirmation decides that all of the culprit's being odd
        is less likely than alpha_confirm, at the rate of odd runs seen ((odd + 1) / (runs +
        2)), and at least 3, so that one odd run can be clipped (at most 8). A mean of two
        runs cannot be clipped: with one run in ten 1.5-10x slower, one such run among a
        culprit's 2 made a commit at its parent's level 5.5x worse, p = 0.0005, confirmed; and
        3 of 3 once made one 3.5x worse (the simulator, docs/policy.md)."""
        if odd <= 0:
            return self
        rate = (odd + 1) / (runs + 2)
        need = math.ceil(math.log(self.alpha_confirm) / math.log(rate)) if rate < 1 else 8
        return replace(self, min_confirm_runs=max(self.min_confirm_runs, 3, min(need, 8)))

    def counted(self) -> Policy:
        """For a count that repeats (instructions, cycles: docs/instructions.md): one run per
        commit, a second run of good to show the spread, and a second run of the culprit to
        confirm it (judge.py). There is no drift of the machine for fresh, interleaved runs to
        guard against, and a verdict that is unclear still gets more runs."""
        return replace(self, min_reference_runs=1, min_unchanged_runs=1, min_confirm_runs=1)


@dataclass(frozen=True)
class Spent:
    """What has been spent so far, for the budget."""

    runs: int = 0  # at the commit under judgement
    seconds: float = 0.0  # at the commit under judgement
    seconds_total: float = 0.0  # in the whole session


@dataclass(frozen=True)
class Judgement:
    decision: Decision
    reason: str
    z: float = math.nan  # the test statistic, in standard errors (positive: toward bad)
    more_runs: int = 0  # with MORE: runs to add at the commit under judgement
    refresh_references: bool = False  # with MORE: measure good and bad again too (interleave)
    estimate: float = math.nan  # log ratio of the estimate (other / base)
    low: float = math.nan  # its confidence interval, log scale
    high: float = math.nan


@dataclass(frozen=True)
class Scale:
    sigma: float  # pooled noise per run, in log units
    df: int  # degrees of freedom behind it
    # where a run is clipped, from its commit's median, in a location: the limit sigma was
    # computed with (pooled_scale); infinite when not given, then 3.5 sigma
    clip: float = math.inf
    # runs seen beyond that limit (pooled_scale): odd runs happen on this machine, and a mean
    # of two runs, which cannot be clipped, is then not to be trusted (Policy.for_odd_runs)
    odd: int = 0
    runs: int = 0  # the runs behind the scale (of commits with two or more)

    @property
    def known(self) -> bool:
        return self.df > 0 and math.isfinite(self.sigma)


# -- observations -------------------------------------------------------------------------------


def run_values(samples: Sequence[float], per_run: int) -> list[float]:
    """One value per run: the median of each run's samples (runs return them in order)."""
    per_run = max(1, per_run)
    if per_run == 1 or len(samples) % per_run:
        return list(samples) if per_run == 1 else _chunk_medians(samples, per_run)
    return _chunk_medians(samples, per_run)


def _chunk_medians(samples: Sequence[float], size: int) -> list[float]:
    out = []
    for i in range(0, len(samples), size):
        chunk = sorted(samples[i : i + size])
        m = len(chunk)
        out.append(chunk[m // 2] if m % 2 else (chunk[m // 2 - 1] + chunk[m // 2]) / 2)
    return out


def log_values(values: Sequence[float], log_scale: bool) -> list[float]:
    """Log of each run's value, so effects are ratios; raw values when some are not positive."""
    if not log_scale:
        return [float(v) for v in values]
    return [math.log(v) for v in values]


def can_use_log(*groups: Sequence[float]) -> bool:
    return all(v > 0 for g in groups for v in g)


def _median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    n = len(s)
    if n == 0:
        return math.nan
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def pooled_scale(groups: Sequence[Sequence[float]]) -> Scale:
    """The noise per run, pooled over commits: robust first, then a clipped standard deviation.

    The robust scale is the median of within-commit successive differences (unbiased for
    normal noise at any group size). A commit's runs beyond 3.5 of those from its median are
    clipped to that limit (when they are odd runs: `_clips`), and the spread is that of the
    clipped values around their mean, the same values `location` averages with the limit
    returned here. So one burst of load cannot blow the scale up, but heavy tails still widen
    it: the estimate is honest about noise that comes often. The result is divided by the
    share of runs left unclipped, as the standard error of a clipped mean is (Huber's
    sandwich): clipped runs still move a mean by up to the limit each.
    """
    diffs = []
    df = 0
    for g in groups:
        n = len(g)
        if n < 2:
            continue
        df += n - 1
        # successive differences: as good as all pairs for independent runs, O(n), and a slow
        # drift of the machine barely enters them
        diffs.extend(abs(g[i + 1] - g[i]) for i in range(n - 1))
    if df == 0:
        return Scale(math.nan, 0)
    robust = _median(diffs) / _MAD_PAIR
    limit = _CLIP * robust
    ss = 0.0
    runs = clipped = 0
    for g in groups:
        n = len(g)
        if n < 2:
            continue
        runs += n
        if n == 2:
            # two runs: which one is odd cannot be told, and their mean is not clipped, but
            # one spike must not blow up the session's scale: their residuals (+-d/2) are
            # clipped at limit/sqrt(2)
            clip2 = limit * math.sqrt(0.5)
            ss += 2 * min(abs(g[1] - g[0]) / 2, clip2) ** 2
            continue
        w = _clipped(g, limit)
        if w is not g:
            med = _median(g)
            clipped += sum(1 for x in g if abs(x - med) > limit)
        mean = sum(w) / n
        ss += sum((x - mean) ** 2 for x in w)
    sigma = max(math.sqrt(ss / df), robust) / (1 - clipped / runs)
    return Scale(sigma, df, limit, _odd_runs(groups, _CLIP * sigma), runs)


def _odd_runs(groups: Sequence[Sequence[float]], limit: float) -> int:
    """Runs beyond `limit` (3.5 of the final scale) of their commit's median, and pairs of
    runs further apart than twice limit/sqrt(2): odd runs. Measured against the final scale,
    not the robust one, which a few successive differences can put low by chance: against
    that, a quiet machine's normal runs looked odd in about one bisect in five and cost
    confirmation runs there (the simulator, lognormal 5%)."""
    odd = 0
    for g in groups:
        if len(g) == 2:
            odd += abs(g[1] - g[0]) / 2 > limit * math.sqrt(0.5)
        elif len(g) >= 3:
            med = _median(g)
            odd += sum(1 for x in g if abs(x - med) > limit)
    return odd


def _clipped(xs: Sequence[float], limit: float) -> Sequence[float]:
    """A commit's runs clipped to within `limit` of their median; the runs themselves (the
    same object) when there are fewer than 3, or when more than odd runs lie beyond it (a
    burst over several runs: `_clips`)."""
    if len(xs) < 3 or not math.isfinite(limit):
        return xs
    med = _median(xs)
    if not _clips(xs, med, limit):
        return xs
    return [min(max(x, med - limit), med + limit) for x in xs]


def location(xs: Sequence[float], scale: Scale) -> float:
    """Mean of a commit's log values, each clipped to within the scale's limit of their median
    (3.5 robust scales: `pooled_scale`; 3.5 sigma for a scale given without one); the plain
    mean when more than one run in five lies beyond that (`_clips`). The limit is the one
    the scale's spread was computed with: clipping at a wider one (3.5 sigma, when sigma is
    above the robust scale) let a run spiking 1.5-10x move a mean by more than the spread
    counts, and a confirmation of 87 runs a side called 1.22x p = 0.0003 between commits of
    one level (the simulator, runs spiking at random: docs/policy.md)."""
    if not xs:
        return math.nan
    if not scale.known:
        return sum(xs) / len(xs)
    limit = scale.clip if math.isfinite(scale.clip) else _CLIP * scale.sigma
    w = _clipped(xs, limit)
    return sum(w) / len(w)


def fresh_shift(old: Sequence[float], new: Sequence[float], scale: Scale) -> tuple[float, float]:
    """How far a reference's fresh runs lie from its earlier ones, and the standard error of
    that: the drift check. Locations are clipped (`location`); two fresh runs cannot be, so
    where odd runs have been seen (`Scale.odd`) the one nearer the earlier runs stands for
    both, judged as one run: one odd run among them is then no drift. Before, the plain mean
    of two fresh runs was used, and one run 1.5-10x slower among them "moved" the reference to
    the two, which then misplaced the cut (the simulator, docs/policy.md)."""
    base = location(old, scale)
    if len(new) >= 3 or not scale.odd:
        return location(new, scale) - base, scale.sigma * math.sqrt(1 / len(new) + 1 / len(old))
    near = min(new, key=lambda x: abs(x - base))
    return near - base, scale.sigma * math.sqrt(1 + 1 / len(old))


@lru_cache(maxsize=4096)
def t_quantile(alpha: float, df: int) -> float:
    """The one-sided critical value of Student's t: P(T > q) = alpha."""
    from scipy import stats as sps  # on first use: importing it takes a second

    return float(sps.t.isf(alpha, max(1, df)))


def _bound(policy: Policy, spent: Spent) -> str | None:
    """Why the budget for this commit (or the session) is spent, or None."""
    b = policy.budget
    if spent.runs >= b.runs_per_commit:
        return f"{spent.runs} runs (the per-commit cap)"
    if spent.seconds >= b.seconds_per_commit:
        return f"{spent.seconds:.0f} s at this commit (budget {b.seconds_per_commit:g} s)"
    if b.seconds_total is not None and spent.seconds_total >= b.seconds_total:
        return f"{spent.seconds_total:.0f} s in total (budget {b.seconds_total:g} s)"
    return None


@lru_cache(maxsize=1)
def _looks() -> frozenset[int]:
    out, n = set(range(1, 7)), 6
    while n < 1_000_000:
        n = math.ceil(n * 1.25)
        out.add(n)
    return frozenset(out)


def is_look(n: int) -> bool:
    """Whether a test that is measured one run (or pair, or block) at a time looks at the
    data after the n-th: at 1-6, then each time n has grown by a quarter (8, 10, 13, 17,
    ..., 24 looks up to 500). Every look spends some of the error rate, and a look after
    every run multiplied the chances of a burst of load passing for a change."""
    return n in _looks()


def base_first(k: int) -> bool:
    """Whether the k-th pair (from 0) of a comparison measured in pairs runs the base commit
    first: base, other, base, other, then other, base, other, base, and so on. Every 4 pairs a
    steady drift favours neither side, as with base, other, other, base (ABBA); but the first
    two pairs never put the other commit's runs back to back, where one burst of load that hit
    exactly those two runs confirmed a commit at its parent's level on 2 + 2 runs (the
    simulator, seed 141). A burst that hits both of the other's runs now hits a base run too,
    which then differs from the other base run: the spread of these runs shows it."""
    return k % 4 < 2


def budget_spent(policy: Policy, spent: Spent) -> bool:
    return _bound(policy, spent) is not None


def next_increment(runs: int) -> int:
    """Runs to add to a commit that is not decided yet: one at a time, then growing by half."""
    return 1 if runs < 4 else max(1, runs // 2)


def within_cap(runs: int, policy: Policy, spent: Spent, commits: int = 1) -> int:
    """An increment that does not take the commit past the per-commit cap on runs, nor (at
    the seconds a run has taken so far) past its seconds or the session's, which `commits`
    commits measured with this increment share (at least one run: the caller asks only while
    the budget is not spent). Growing by half without the cap took a cap of 30 runs to 42,
    the default 500 to 711, and a budget of 60 s to up to 90 s."""
    b = policy.budget
    cap = min(runs, b.runs_per_commit - spent.runs)
    per_run = spent.seconds / spent.runs if spent.runs and spent.seconds > 0 else 0.0
    if per_run > 0:
        left = b.seconds_per_commit - spent.seconds
        if b.seconds_total is not None:
            left = min(left, (b.seconds_total - spent.seconds_total) / max(1, commits))
        cap = min(cap, math.ceil(left / per_run))
    return max(1, cap)


# -- the three questions -----------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    """other - base on the policy's scale, with its standard error and degrees of freedom."""

    diff: float
    se: float
    df: int
    n: int  # runs (or pairs) on the smaller side
    sigma: float  # the noise per run (or pair) behind it
    paired: bool = False


def unpaired(base: Sequence[float], other: Sequence[float], scale: Scale) -> Difference:
    diff = location(other, scale) - location(base, scale)
    se = scale.sigma * math.sqrt(1 / len(base) + 1 / len(other))
    return Difference(diff, se, scale.df, min(len(base), len(other)), scale.sigma)


def paired(v: Sequence[float], scale: Scale) -> Difference:
    """From pairs measured back to back, v = other - base of each pair: a burst of load or a
    drift that hits both runs of a pair cancels out."""
    return Difference(
        location(v, scale), scale.sigma / math.sqrt(len(v)), scale.df, len(v), scale.sigma, True
    )


def judge_endpoints(
    d: Difference,
    threshold: float,
    policy: Policy,
    spent: Spent,
    worse_is_higher: bool | None = True,
    named: bool = False,
) -> Judgement:
    """Is bad worse than good by more than `threshold` (a log ratio, or an absolute difference
    on the raw scale), significantly; shown within it; or not known yet?

    `named`: the user named this benchmark, so it is measured to the budget before it is called
    unchanged when bad merely looks worse.
    """
    if d.n < policy.min_reference_runs or d.df < 1 or not math.isfinite(d.se):
        need = policy.min_reference_runs - d.n
        return Judgement(Decision.MORE, "too few runs of the endpoints yet", more_runs=max(1, need))
    diff, se = d.diff, d.se
    q = t_quantile(policy.alpha_endpoints, d.df)
    est = {"estimate": diff, "low": diff - q * se, "high": diff + q * se}
    directions = [worse_is_higher] if worse_is_higher is not None else [True, False]
    # oriented so that positive is worse; with no known direction, the larger change counts
    w = max((diff if up else -diff) for up in directions)
    z = w / se if se > 0 else (math.copysign(math.inf, w) if w else 0.0)
    low, high = w - q * se, w + q * se
    if w > threshold and low > 0:
        return Judgement(
            Decision.REGRESSED, f"bad is worse by {_pct(w)} (at least {_pct(low)})", z, **est
        )
    why = _bound(policy, spent)
    enough = d.n >= policy.min_unchanged_runs or why is not None
    if high < threshold and enough and not (named and w > 0 and why is None):
        return Judgement(
            Decision.UNCHANGED,
            f"bad is within the threshold of good: at most {_pct(high)} worse",
            z,
            **est,
        )
    kind = "pair" if d.paired else "run"
    if why is not None:
        return Judgement(
            Decision.UNCLEAR,
            f"cannot tell after {why}: bad/good {_pct(diff)} [{_pct(diff - q * se)}, "
            f"{_pct(diff + q * se)}] with noise {_pct(d.sigma)} per {kind}",
            z,
            **est,
        )
    return Judgement(
        Decision.MORE,
        f"endpoints not decided yet ({_pct(diff)}, noise {_pct(d.sigma)} per {kind})",
        z,
        more_runs=within_cap(next_increment(d.n), policy, spent, commits=2),
        **est,
    )


def judge_step(
    x: Sequence[float],
    good: Sequence[float],
    bad: Sequence[float],
    scale: Scale,
    policy: Policy,
    spent: Spent,
    cut_offset: float | None = None,
    min_runs: int = 1,
) -> Judgement:
    """Does commit x resemble good or bad? The cut is the midpoint of the endpoints, or, with
    a fixed --threshold, `cut_offset` beyond good (toward bad, on the scale of the values)."""
    nx = len(x)
    if nx < min_runs:
        return Judgement(Decision.MORE, "first runs", more_runs=min_runs - nx)
    mg, mb, mx = location(good, scale), location(bad, scale), location(x, scale)
    sign = 1.0 if mb >= mg else -1.0
    span = abs(mb - mg)
    if cut_offset is None:
        cut = (mg + mb) / 2
        var_cut = (1 / len(good) + 1 / len(bad)) / 4
    else:
        cut = mg + sign * cut_offset
        var_cut = 1 / len(good)
    se = scale.sigma * math.sqrt(1 / nx + var_cut)
    dist = sign * (mx - cut)
    z = dist / se if se > 0 else (math.copysign(math.inf, dist) if dist else 0.0)
    q = t_quantile(policy.alpha_step, scale.df)
    noisy = scale.sigma > policy.noisy_ratio * span
    # beyond either end by more than the whole change: what a burst of load (or its end)
    # since the references were measured looks like. On a few runs, measure again; on more,
    # judge it in blocks, against references measured beside it
    beyond = max(sign * (mx - mb), sign * (mg - mx))
    far = beyond > span and span > 0
    if far and _bound(policy, spent) is None:
        reason = (
            f"far beyond {'bad' if sign * (mx - mb) > 0 else 'good'} "
            f"({_pct(sign * (mx - mg))} over good): a burst of load?"
        )
        if nx >= 3:
            return Judgement(Decision.MORE, reason, math.nan, more_runs=1, refresh_references=True)
    elif z >= q:
        return Judgement(Decision.BAD, f"{z:.1f} standard errors beyond the cut", z)
    elif z <= -q:
        return Judgement(Decision.GOOD, f"{-z:.1f} standard errors within the cut", z)
    else:
        reason = f"{abs(z):.1f} standard errors from the cut, {q:.1f} needed"
    why = _bound(policy, spent)
    if why is not None:
        return Judgement(Decision.UNCLEAR, f"still unclear after {why}: {reason}", z)
    refresh = noisy and min(len(good), len(bad)) < 2 * (nx + next_increment(nx))
    return Judgement(
        Decision.MORE,
        reason,
        z,
        more_runs=within_cap(next_increment(nx), policy, spent),
        refresh_references=refresh,
    )


def judge_paired(
    u: Sequence[float],
    scale: Scale,
    alpha: float,
    policy: Policy,
    spent: Spent,
    span: float = 0.0,
) -> Judgement:
    """The paired form of a step, for a noisy machine: each u is one block of runs measured
    back to back (good, commit, bad), as the commit's log value minus the cut computed from
    that block's own references, oriented so that positive means the bad side. A burst of load
    or a drift that hits the whole block cancels out of u. Decides on the mean of u.

    `span`: a lower bound on the good-to-bad distance (0: unknown, or the cut is not the
    midpoint). With it, Wald's sequential probability ratio test also decides: a commit of a
    single change sits at good (mean u = -span/2) or at bad (+span/2), and the log likelihood
    ratio of those two, k * span * mean(u) / sigma^2, crossing log(1/alpha) decides with error
    rates at most alpha over all looks. Near either end it needs about 2.4 times fewer blocks
    than the t-test on the mean at the same alpha (docs/policy.md)."""
    k = len(u)
    if k < 2 or not scale.known:
        return Judgement(Decision.MORE, "first blocks", more_runs=1)
    mean = location(u, scale)
    se = scale.sigma / math.sqrt(k)
    z = mean / se if se > 0 else (math.copysign(math.inf, mean) if mean else 0.0)
    q = t_quantile(alpha, scale.df)
    look = is_look(k) or budget_spent(policy, spent)
    if look and z >= q:
        return Judgement(Decision.BAD, f"{z:.1f} standard errors beyond the cut, in {k} blocks", z)
    if look and z <= -q:
        return Judgement(
            Decision.GOOD, f"{-z:.1f} standard errors within the cut, in {k} blocks", z
        )
    llr = sprt_llr(mean, k, span, scale, alpha)
    if llr is not None and abs(llr) >= math.log(1 / alpha):
        side = Decision.BAD if llr > 0 else Decision.GOOD
        return Judgement(
            side,
            f"likelihood ratio {math.exp(min(abs(llr), 700)):.0f}:1 for {side.value} "
            f"(sequential test), in {k} blocks",
            z,
        )
    reason = f"{abs(z):.1f} standard errors from the cut in {k} blocks, {q:.1f} needed"
    why = _bound(policy, spent)
    if why is not None:
        return Judgement(Decision.UNCLEAR, f"still unclear after {why}: {reason}", z)
    return Judgement(Decision.MORE, reason, z, more_runs=1)


def sprt_llr(mean: float, k: int, span: float, scale: Scale, alpha: float) -> float | None:
    """Log likelihood ratio of "bad" (mean u = +span/2) against "good" (-span/2) for k blocks
    with this mean, or None when it does not apply. The spread is widened by the ratio of
    Student's t to the normal quantile, for being estimated from `scale.df` degrees."""
    if span <= 0 or not scale.known or scale.sigma <= 0 or scale.df < 4:
        return None
    sigma = scale.sigma * _widen(alpha, scale.df)
    return k * span * mean / sigma**2


def judge_confirm(
    d: Difference,
    threshold: float,
    policy: Policy,
    spent: Spent,
    worse_is_higher: bool,
    span: float = 0.0,
    whole: float = 0.0,
) -> Judgement:
    """Is the culprit worse than its parent? `d` is culprit - parent over the confirmation's
    own runs, which must number min_confirm_runs on each side first.

    `span` (0: not used): a lower bound on the whole change from good to bad. The commit a
    bisect names (the change that crosses the midpoint cut) carries all of it when the range
    holds one change, and at least half when it holds two slowdowns. With
    it the confirmation also stops early, rejected, when the runs favour "no change" over
    "early_reject_share of the change" by a likelihood ratio of 1/alpha_step (Wald's
    sequential test, as for a step): a misjudged step names a commit that did not change, and
    showing such a commit within the threshold of its parent took hundreds of runs a side at
    25% noise per run (docs/policy.md, "A commit that did not change"). Only the first
    confirmation uses it: a culprit rejected so is bisected again with more runs per step and
    confirmed with the full test.

    `whole` (0: not used): the whole change from good to bad. A culprit worse than its
    parent by more than twice that lies beyond bad by more than the whole change (when its
    parent is at good's level), what a step far beyond bad is: not what one commit of the
    range does, but what odd runs look like, a burst or spikes that hit the culprit's few
    runs. It is measured more, as such a step is. All three of a culprit's runs 2-9x slower
    than its level (one run in ten spikes so on its own) confirmed a commit at its parent's
    level at 6.1x [3.0, 12.3] in a 2.03x range (the simulator, docs/policy.md)."""
    if d.n < policy.min_confirm_runs or d.df < 1 or not math.isfinite(d.se):
        return Judgement(Decision.MORE, "confirmation runs", more_runs=1)
    diff, se = d.diff, d.se
    w = diff if worse_is_higher else -diff
    q = t_quantile(policy.alpha_confirm, d.df)
    low, high = w - q * se, w + q * se
    z = w / se if se > 0 else (math.copysign(math.inf, w) if w else 0.0)
    est = {"estimate": diff, "low": diff - q * se, "high": diff + q * se}
    if whole > 0 and w > 2 * whole and _bound(policy, spent) is None:
        return Judgement(
            Decision.MORE,
            f"worse than its parent by {_pct(w)}, beyond bad by more than the whole change "
            f"({_pct(whole)}): odd runs?",
            z,
            more_runs=1,
            **est,
        )
    if low > 0:
        return Judgement(Decision.CONFIRMED, f"worse than its parent by {_pct(w)}", z, **est)
    part = policy.early_reject_share * span
    llr = part_of_change_llr(w, part, d, policy.alpha_step)
    if llr is not None and llr <= -math.log(1 / policy.alpha_step):
        return Judgement(
            Decision.REJECTED,
            f"carries no part of the change from good to bad ({_pct(w)} over its parent; "
            f"likelihood ratio {math.exp(min(-llr, 700)):.0f}:1 for no change over "
            f"{_pct(part)}, in {d.n} runs a side)",
            z,
            **est,
        )
    if high < threshold:
        return Judgement(
            Decision.REJECTED,
            f"not worse than its parent by the threshold ({_pct(high)})",
            z,
            **est,
        )
    why = _bound(policy, spent)
    if why is not None:
        return Judgement(Decision.UNCLEAR, f"unclear after {why}", z, **est)
    return Judgement(
        Decision.MORE, f"{z:.1f} standard errors, {q:.1f} needed", z, more_runs=1, **est
    )


def part_of_change_llr(w: float, part: float, d: Difference, alpha: float) -> float | None:
    """Log likelihood ratio of "the commit changes by `part`" (w = part) against "no change"
    (w = 0) for an estimate w with standard error d.se (widened, as in sprt_llr, for a spread
    estimated from d.df degrees), or None when it does not apply."""
    if part <= 0 or d.df < 4 or not d.se > 0:
        return None
    return part * (w - part / 2) / (d.se * _widen(alpha, d.df)) ** 2


def _widen(alpha: float, df: int) -> float:
    """Student's t over the normal quantile at alpha: how much wider a spread estimated from
    df degrees of freedom is taken in a sequential likelihood ratio."""
    return t_quantile(alpha, df) / NormalDist().inv_cdf(1 - alpha)


def _pct(log_ratio: float) -> str:
    """A log ratio as a signed percentage."""
    if not math.isfinite(log_ratio):
        return "n/a"
    return f"{(math.exp(log_ratio) - 1) * 100:+.1f}%"
