"""One planted change: how often does attribution report a change that is not there?

Each bisect is the real smbisect Session on a synthetic history (bisect_tool/simulate.py) with
one planted slowdown. After the culprit is confirmed, attribution checks the segments on either
side of it, where nothing changed. Per scenario this prints how often the culprit was named and
confirmed, how often a wrong commit was confirmed, and how often any change was reported where
none was planted (`Outcome.false_changes`: a speedup reported without a bisect counts too),
with the exit codes and the mean runs. The noise models go beyond the other tools' on purpose:
Student-t tails, bursts of load, and an asv-like process (5 samples per run, noise inside the
process as well as between processes).

    python tools/simulate_false_changes.py --trials 100 --seed 8
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from accuracy.scoring import wilson_interval  # noqa: E402

from bisect_tool.simulate import Noise, make_history, simulate  # noqa: E402

NOISES = {
    "25%": Noise(sigma=0.25),
    "25% t3": Noise(sigma=0.25, tails=3),
    "15%+bursts": Noise(sigma=0.15, bursts=0.3, burst_seconds=5.0),
    "25% t3+bursts": Noise(sigma=0.25, tails=3, bursts=0.3, burst_seconds=5.0),
    "asv-like": Noise(sigma=0.15, tails=3, bursts=0.4, burst_seconds=8.0, within=0.1, per_run=5),
}


def run_one(args: tuple[int, str, float, str, int]) -> tuple[int, bool, bool, int, int]:
    n, shape, factor, noise, seed = args
    h = make_history(n, shape, random.Random(seed), (factor,))
    out, _ = simulate(h, NOISES[noise], seed=seed)
    return out.exit_code, out.right, out.wrong_confirmed, out.false_changes, out.runs


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=100, help="Bisects per scenario (default 100).")
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--lengths", default="3,16,64", help="History lengths (default 3,16,64).")
    ap.add_argument("--factors", default="10,2", help="The planted slowdowns (default 10,2).")
    ap.add_argument("--shapes", default="linear", help="linear, merges or both (default linear).")
    args = ap.parse_args(argv)
    lengths = [int(x) for x in args.lengths.split(",")]
    factors = [float(x) for x in args.factors.split(",")]
    shapes = [x.strip() for x in args.shapes.split(",")]
    rows, total, false_total, wrong_total = [], 0, 0, 0
    for n, shape, factor, noise in itertools.product(lengths, shapes, factors, NOISES):
        base = zlib.crc32(f"{args.seed}:{n}:{shape}:{factor}:{noise}".encode())
        jobs = [(n, shape, factor, noise, base + t) for t in range(args.trials)]
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(run_one, jobs))
        exits: dict[int, int] = {}
        for code, *_ in results:
            exits[code] = exits.get(code, 0) + 1
        right = sum(r[1] for r in results)
        wrong = sum(r[2] for r in results)
        false = sum(r[3] > 0 for r in results)
        runs = sum(r[4] for r in results) / len(results)
        total += len(results)
        false_total += false
        wrong_total += wrong
        row = [n, shape, f"{factor:g}x", noise, f"{right}/{len(results)}", wrong, false]
        rows.append([*row, f"{runs:.0f}", " ".join(f"{k}:{v}" for k, v in sorted(exits.items()))])
        print(" ".join(str(x) for x in rows[-1]), file=sys.stderr, flush=True)
    print(
        tabulate(
            rows,
            headers=[
                "N",
                "shape",
                "change",
                "noise",
                "right+confirmed",
                "wrong+confirmed",
                "false change reported",
                "mean runs",
                "exit codes",
            ],
            tablefmt="github",
        )
    )
    lo, hi = wilson_interval(false_total, total)
    print(
        f"\n{total} bisects: {wrong_total} wrong and confirmed; a change reported where none was "
        f"planted in {false_total} ({false_total / total:.2%}, 95% CI [{lo:.2%}, {hi:.2%}])"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
