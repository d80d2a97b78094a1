"""Attribution (issue 9) in the simulator: histories with two planted changes, every change named?

Each bisect is the real smbisect Session on a synthetic history (bisect_tool/simulate.py), with
two changes planted at random non-merge commits: a slowdown and a second slowdown, or a slowdown
and a speedup. Per scenario it prints how often both changes were named and confirmed (and
nothing else confirmed), how often any wrong commit was confirmed, and the commits measured
against the target ceil(log2 N1) + ceil(log2 N2) + 8, where N1 is the number of commits from good
to the older change and N2 the rest of the range.

    python tools/simulate_attribution.py --trials 100
    python tools/simulate_attribution.py --quick
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import sys
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from accuracy.scoring import wilson_interval  # noqa: E402

from bisect_tool.simulate import History, Noise, make_history, simulate  # noqa: E402

PAIRS = {
    "1.5x then 2x": (1.5, 2.0),
    "2x and 0.7x": (2.0, 0.7),
    # a small change beside a large one: what the share rule of a segment check (waterfall.
    # material, policy.segment_share) may leave in the residual
    "4x and 1.3x": (4.0, 1.3),
    # two equal slowdowns: the commits between them sit at the midpoint cut (a plateau that
    # judge.move_cut_off_plateau moves the careful pass's cut off)
    "2x then 2x": (2.0, 2.0),
}
DEFAULT_PAIRS = "1.5x then 2x,2x and 0.7x"
NOISES = {
    "5%": Noise(sigma=0.05),
    "15%": Noise(sigma=0.15),
    # what a 2-5 ms command measures per fresh process on the project's VM (docs/accuracy.md)
    "25%": Noise(sigma=0.25),
    # 15% with bursts of load (1.2-3x slower) a third of the time, a few seconds each
    "15%+bursts": Noise(sigma=0.15, bursts=0.3, burst_seconds=5.0),
}
DEFAULT_NOISES = "5%,15%"


@dataclass(frozen=True)
class Scenario:
    n: int
    shape: str
    pair: str
    noise: str


@dataclass
class Row:
    scenario: Scenario
    trials: int = 0
    both: int = 0
    wrong: int = 0
    within_target: int = 0
    commits: int = 0
    runs: int = 0
    exits: dict[int, int] | None = None
    false: int = 0


def target(h: History) -> int:
    """ceil(log2 N1) + ceil(log2 N2) + 8, N1 commits from good to the older change."""
    first = min(h.culprits)
    n1 = bin(h.anc[first] & ~h.anc[0]).count("1")
    n2 = max(1, h.bad - n1)
    return math.ceil(math.log2(max(2, n1))) + math.ceil(math.log2(max(2, n2))) + 8


def run_one(args: tuple[Scenario, int]) -> tuple[bool, bool, bool, int, int, int, int]:
    sc, seed = args
    rng = random.Random(seed)
    factors = PAIRS[sc.pair]
    h = make_history(sc.n, sc.shape, rng, factors)
    out, _ = simulate(h, NOISES[sc.noise], seed=seed)
    return (
        out.all_right,
        out.wrong_confirmed,
        out.commits <= target(h),
        out.commits,
        out.runs,
        out.exit_code,
        out.false_changes,
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--quick", action="store_true", help="N=64 only, 10 trials.")
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--lengths", default="64,256", help="History lengths, e.g. 64,256.")
    ap.add_argument(
        "--noises",
        default=DEFAULT_NOISES,
        help=f"Noise models, comma-separated, of {', '.join(NOISES)} "
        f"(default {DEFAULT_NOISES})".replace("%", "%%"),
    )
    ap.add_argument(
        "--pairs",
        default=DEFAULT_PAIRS,
        help=f"The planted pairs, comma-separated, of {', '.join(PAIRS)} (default {DEFAULT_PAIRS})",
    )
    args = ap.parse_args(argv)
    pairs = [x.strip() for x in args.pairs.split(",") if x.strip()]
    unknown_pairs = [x for x in pairs if x not in PAIRS]
    if unknown_pairs:
        ap.error(f"unknown pair {unknown_pairs[0]!r}; known: {', '.join(PAIRS)}")
    lengths = (64,) if args.quick else tuple(int(x) for x in args.lengths.split(","))
    trials = 10 if args.quick else args.trials
    noises = [x.strip() for x in args.noises.split(",") if x.strip()]
    unknown = [x for x in noises if x not in NOISES]
    if unknown:
        ap.error(f"unknown noise model {unknown[0]!r}; known: {', '.join(NOISES)}")
    rows = []
    for n, shape, pair, noise in itertools.product(lengths, ("linear", "merges"), pairs, noises):
        sc = Scenario(n, shape, pair, noise)
        base = zlib.crc32(f"{args.seed}:{n}:{shape}:{pair}:{noise}".encode())
        jobs = [(sc, base + t) for t in range(trials)]
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(run_one, jobs))
        row = Row(sc, trials, exits={})
        for both, wrong, ok, commits, runs, code, false in results:
            row.false += false > 0
            row.both += both
            row.wrong += wrong
            row.within_target += ok
            row.commits += commits
            row.runs += runs
            assert row.exits is not None
            row.exits[code] = row.exits.get(code, 0) + 1
        rows.append(row)
        print(
            f"{n} {shape} {pair} {noise}: {row.both}/{trials} both, {row.wrong} wrong, "
            f"{row.false} false, {row.within_target}/{trials} within target, "
            f"{row.commits / trials:.1f} commits, "
            f"{row.runs / trials:.0f} runs, exits {row.exits}",
            file=sys.stderr,
            flush=True,
        )
    body = []
    for r in rows:
        lo, hi = wilson_interval(r.both, r.trials)
        body.append(
            [
                r.scenario.n,
                r.scenario.shape,
                r.scenario.pair,
                r.scenario.noise,
                f"{r.both}/{r.trials} [{lo:.2f}, {hi:.2f}]",
                r.wrong,
                r.false,
                f"{r.within_target}/{r.trials}",
                f"{r.commits / r.trials:.1f}",
                f"{r.runs / r.trials:.0f}",
                " ".join(f"{k}:{v}" for k, v in sorted((r.exits or {}).items())),
            ]
        )
    print(
        tabulate(
            body,
            headers=[
                "N",
                "shape",
                "changes",
                "noise",
                "both named+confirmed [95% CI]",
                "wrong+confirmed",
                "false change reported",
                "commits within target",
                "mean commits",
                "mean runs",
                "exit codes",
            ],
            tablefmt="github",
        )
    )
    total = sum(r.trials for r in rows)
    both = sum(r.both for r in rows)
    wrong = sum(r.wrong for r in rows)
    false = sum(r.false for r in rows)
    print(
        f"\nall: {both}/{total} both named and confirmed; {wrong} wrong and confirmed; "
        f"{false} reported a change where none was planted"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
