"""Thousands of simulated bisects across a grid of scenarios: the policy's error rates and cost.

Each bisect is the real smbisect Session (judge, policy, bisect loop, confirmation, retry) on a
synthetic history measured by a synthetic runner (bisect_tool/simulate.py). Per scenario it
prints how often the planted culprit was named and confirmed, how often a wrong commit was
confirmed (the failure that matters), how often the run ended without a confirmed culprit
(exit 3, 4 or 5), and the mean and maximum runs next to the obvious-regression target
2 * ceil(log2 N) + 6.

    python tools/simulate_policy.py --trials 100                 # the full grid
    python tools/simulate_policy.py --quick                      # a small grid, seconds
    python tools/simulate_policy.py --trials 100 --markdown docs/accuracy.md
    python tools/simulate_policy.py --trials 45 --exclude '1.1x spikes'  # all but those

Each scenario's row is printed to stderr as it finishes (a grid can run for an hour and more;
an interrupted one keeps what it printed), and the table, in grid order, at the end.
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import sys
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from accuracy.scoring import wilson_interval  # noqa: E402

from bisect_tool.policy import Policy  # noqa: E402
from bisect_tool.session import SessionResult  # noqa: E402
from bisect_tool.simulate import History, Noise, Outcome, make_history, simulate  # noqa: E402

NOISES: dict[str, Noise] = {
    "quiet 1%": Noise(sigma=0.01),
    "lognormal 5%": Noise(sigma=0.05),
    "lognormal 15%": Noise(sigma=0.15),
    "heavy tails 5% (t3)": Noise(sigma=0.05, tails=3),
    "bimodal 5% (+30% at p=.2)": Noise(sigma=0.05, bimodal=0.2),
    "bursts 15% (25% of time)": Noise(sigma=0.15, bursts=0.25),
    "bursts 5% (10% of time)": Noise(sigma=0.05, bursts=0.1),
    "drift 5% (+50%/h)": Noise(sigma=0.05, drift=0.5),
    "in-process 5%+3% x10": Noise(sigma=0.05, within=0.03, per_run=10),
    # what a fresh process of a few ms shows on a shared machine, harder: 10% per run, and one
    # run in ten 1.5-10x slower on its own (this VM: 3% of runs, docs/policy.md "Odd runs")
    "spikes 10% (1 run in 10 1.5-10x)": Noise(sigma=0.10, spikes=0.1),
}


@dataclass(frozen=True)
class Scenario:
    n: int
    shape: str
    factors: tuple[float, ...]
    noise: str
    broken: float = 0.0

    @property
    def label(self) -> str:
        f = "+".join(f"{x:g}x" for x in self.factors)
        b = f", {self.broken:.0%} broken" if self.broken else ""
        return f"{self.n} {self.shape} {f} {self.noise}{b}"


def grid(quick: bool) -> list[Scenario]:
    if quick:
        return [
            Scenario(n, shape, factors, noise)
            for n, shape, factors, noise in itertools.product(
                (32, 256),
                ("linear", "merges"),
                ((3.0,), (1.3,)),
                ("lognormal 5%", "bursts 15% (25% of time)"),
            )
        ]
    out = []
    for n, shape in itertools.product((32, 256, 1024), ("linear", "merges")):
        for factors in ((1.1,), (1.3,), (2.0,), (3.0,)):
            for noise in NOISES:
                out.append(Scenario(n, shape, factors, noise))
        out.append(Scenario(n, shape, (1.5, 2.0), "lognormal 5%"))
        out.append(Scenario(n, shape, (1.3, 0.8, 2.0), "lognormal 5%"))
        out.append(Scenario(n, shape, (2.0,), "lognormal 5%", broken=0.05))
    return out


@dataclass(frozen=True)
class Row:
    scenario: Scenario
    trials: int
    right: int
    wrong: int
    no_answer: int
    mean_runs: float
    max_runs: int
    mean_minutes: float
    false_changes: int = 0  # bisects that reported a change where none was planted


def one_bisect(
    sc: Scenario, seed: int, trial: int, policy: Policy, **hooks: Any
) -> tuple[int, History, Outcome, SessionResult]:
    """Trial `trial` of scenario `sc` under the grid's base seed: its own seed (derived from
    the three, so any one bisect of a grid can be replayed: tools/trace_simulated.py), its
    history and what the session made of it. `hooks`: simulate()'s trace and on_event."""
    s = zlib.crc32(f"{seed} {sc.label} {trial}".encode())
    h = make_history(sc.n, sc.shape, random.Random(s), sc.factors, sc.broken)
    out, result = simulate(h, NOISES[sc.noise], s, policy, **hooks)
    return s, h, out, result


def run_scenario(args: tuple[Scenario, int, int, Policy]) -> Row:
    sc, trials, seed, policy = args
    right = wrong = none = false = 0
    runs: list[int] = []
    secs: list[float] = []
    for t in range(trials):
        _, _, out, _ = one_bisect(sc, seed, t, policy)
        right += out.right
        wrong += out.wrong_confirmed
        none += not out.confirmed
        false += out.false_changes > 0
        runs.append(out.runs)
        secs.append(out.sim_seconds)
    return Row(
        sc,
        trials,
        right,
        wrong,
        none,
        sum(runs) / trials,
        max(runs),
        sum(secs) / trials / 60,
        false,
    )


def table(rows: Sequence[Row]) -> str:
    body = []
    for r in rows:
        sc = r.scenario
        lo, hi = wilson_interval(r.right, r.trials)
        target = 2 * math.ceil(math.log2(sc.n)) + 6
        body.append(
            [
                sc.n,
                sc.shape,
                "+".join(f"{x:g}x" for x in sc.factors),
                sc.noise + (f", {sc.broken:.0%} broken" if sc.broken else ""),
                r.trials,
                f"{r.right}/{r.trials} [{lo:.2f}, {hi:.2f}]",
                f"{r.wrong}/{r.trials}",
                f"{r.no_answer}/{r.trials}",
                f"{r.false_changes}/{r.trials}",
                f"{r.mean_runs:.1f}",
                r.max_runs,
                target,
            ]
        )
    return tabulate(
        body,
        headers=[
            "N",
            "shape",
            "changes",
            "noise",
            "trials",
            "right+confirmed [95% CI]",
            "wrong+confirmed",
            "no confirmed culprit",
            "false change reported",
            "mean runs",
            "max runs",
            "2*ceil(log2 N)+6",
        ],
        tablefmt="github",
    )


def run_all(
    scenarios: Sequence[Scenario], trials: int, seed: int, policy: Policy, jobs: int, started: float
) -> list[Row]:
    """Every scenario's row, in grid order; each one printed to stderr as it finishes."""
    rows: dict[int, Row] = {}
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        # the slowest first (spiky runs, long histories, small changes), so that none of them
        # is left running alone at the end
        order = sorted(
            range(len(scenarios)),
            key=lambda i: (
                "spikes" not in scenarios[i].noise,
                -scenarios[i].n,
                min(scenarios[i].factors),
            ),
        )
        futures = {
            pool.submit(run_scenario, (scenarios[i], trials, seed, policy)): i for i in order
        }
        for fut in as_completed(futures):
            r = fut.result()
            rows[futures[fut]] = r
            print(
                f"[{len(rows)}/{len(scenarios)}, {time.time() - started:.0f} s] "
                f"{r.scenario.label}: right {r.right}/{r.trials}, wrong {r.wrong}, "
                f"no confirmed culprit {r.no_answer}, mean runs {r.mean_runs:.1f}",
                file=sys.stderr,
                flush=True,
            )
    return [rows[i] for i in range(len(scenarios))]


def _override(p: argparse.ArgumentParser, policy: Policy, item: str) -> Policy:
    """--set NAME=VALUE: one number field of the policy, of the field's own type."""
    name, sep, value = item.partition("=")
    current = getattr(policy, name.strip(), None) if sep else None
    if isinstance(current, bool) or not isinstance(current, int | float):
        p.error(f"--set {item!r}: expected NAME=VALUE with NAME a number field of the policy")
    try:
        number = type(current)(value)
    except ValueError:
        p.error(f"--set {item!r}: {value!r} is not a {type(current).__name__}")
    return replace(policy, **{name.strip(): number})


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--trials", type=int, default=100, help="Bisects per scenario (default 100).")
    p.add_argument("--quick", action="store_true", help="A small grid.")
    p.add_argument("--seed", type=int, default=1, help="Base seed.")
    p.add_argument("--jobs", type=int, default=2, help="Worker processes (default 2).")
    p.add_argument("--markdown", metavar="FILE", help="Append the table to this file.")
    p.add_argument("--alpha-step", type=float, help="Override the policy's alpha_step.")
    p.add_argument("--alpha-confirm", type=float, help="Override the policy's alpha_confirm.")
    p.add_argument(
        "--set",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="Override any number field of the policy, e.g. --set min_reference_runs=2\n"
        "(repeatable; the names are bisect_tool.policy.Policy's fields).",
    )
    p.add_argument(
        "--noises",
        metavar="WORDS",
        help="Only the scenarios whose noise name starts with one of these comma-separated\n"
        "words (e.g. 'spikes' or 'bursts,heavy'); each keeps the seeds it has in the\n"
        "whole grid. Noises: " + "; ".join(NOISES).replace("%", "%%"),
    )
    p.add_argument(
        "--factors",
        metavar="X,Y",
        help="Only the single-change scenarios of these slowdowns (e.g. '2,3': the obvious\n"
        "cases), with the seeds they have in the whole grid.",
    )
    p.add_argument(
        "--exclude",
        metavar="WORDS",
        help="Leave out the scenarios whose label (e.g. '256 linear 1.1x spikes 10%% ...')\n"
        "contains one of these comma-separated strings, e.g. '1.1x spikes'; the rest keep\n"
        "their seeds.",
    )
    a = p.parse_args(argv)
    policy = Policy()
    if a.alpha_step:
        policy = replace(policy, alpha_step=a.alpha_step)
    if a.alpha_confirm:
        policy = replace(policy, alpha_confirm=a.alpha_confirm)
    for item in a.set:
        policy = _override(p, policy, item)
    scenarios = grid(a.quick)
    if a.noises:
        words = tuple(w.strip() for w in a.noises.split(",") if w.strip())
        scenarios = [sc for sc in scenarios if sc.noise.startswith(words)]
        if not scenarios:
            p.error(f"--noises {a.noises!r}: no scenario's noise starts with those words")
    if a.factors:
        wanted = {float(x) for x in a.factors.split(",") if x.strip()}
        scenarios = [sc for sc in scenarios if len(sc.factors) == 1 and sc.factors[0] in wanted]
        if not scenarios:
            p.error(f"--factors {a.factors!r}: no single-change scenario has those slowdowns")
    if a.exclude:
        words = tuple(w.strip() for w in a.exclude.split(",") if w.strip())
        scenarios = [sc for sc in scenarios if not any(w in sc.label for w in words)]
        if not scenarios:
            p.error(f"--exclude {a.exclude!r} leaves no scenario")
    started = time.time()
    rows = run_all(scenarios, a.trials, a.seed, policy, a.jobs, started)
    total = sum(r.trials for r in rows)
    wrong = sum(r.wrong for r in rows)
    lo, hi = wilson_interval(wrong, total)
    false = sum(r.false_changes for r in rows)
    flo, fhi = wilson_interval(false, total)
    text = table(rows)
    summary = (
        f"{total} simulated bisects in {time.time() - started:.0f} s; wrong+confirmed "
        f"{wrong}/{total} = {wrong / total:.4%} (95% CI [{lo:.4%}, {hi:.4%}]); "
        f"a change reported where none was planted (a speedup reported without a bisect "
        f"included) {false}/{total} = {false / total:.4%} (95% CI [{flo:.4%}, {fhi:.4%}]); "
        f"policy {policy}"
    )
    print(text)
    print()
    print(summary)
    if a.markdown:
        cmd = "python tools/simulate_policy.py " + " ".join(argv or sys.argv[1:])
        with open(a.markdown, "a") as fh:
            fh.write(f"\n### `{cmd.strip()}`\n\n{summary}\n\n{text}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
