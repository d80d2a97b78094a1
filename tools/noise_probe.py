"""How noisy is this machine per process? Times the accuracy tool's pure-Python loop (the
`acc.work()` of tools/accuracy/history.py, without injected jitter) in fresh processes, at a
few sizes, and prints the spread between processes: the noise a bisect sees per run.

    python tools/noise_probe.py --sizes 50000,500000,2000000 --runs 30

If the spread does not shrink with the size, the noise is a level each process gets (where it
lands, what else runs), not short interruptions that a longer benchmark would average out.
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys

CHILD = """
import sys, time
def work(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total
n = int(sys.argv[1])
work(n)
start = time.perf_counter()
work(n)
print(time.perf_counter() - start)
"""


def probe(size: int, runs: int) -> list[float]:
    return [
        float(
            subprocess.run(
                [sys.executable, "-c", CHILD, str(size)], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(runs)
    ]


def summary(values: list[float]) -> str:
    logs = [math.log(v) for v in values]
    steps = [abs(a - b) for a, b in zip(logs, logs[1:], strict=False)]
    # the median absolute difference of successive runs, scaled to a normal sigma (its
    # expectation is 0.954 sigma): robust to a few odd runs and to a slow drift
    robust = statistics.median(steps) / 0.954 if steps else math.nan
    spread = max(values) / min(values)
    return (
        f"median {statistics.median(values) * 1e3:.3g} ms, sigma(log) "
        f"{statistics.stdev(logs):.3f} (robust {robust:.3f}), max/min {spread:.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="50000,500000,2000000", help="Loop lengths (50000: 3-4 ms).")
    p.add_argument("--runs", type=int, default=30, help="Fresh processes per size.")
    args = p.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        p.error(f"--sizes: not a list of integers: {args.sizes!r}")
    if args.runs < 3 or not sizes or min(sizes) < 1:
        p.error("--runs must be at least 3, and --sizes positive integers")
    for size in sizes:
        print(f"size {size}: {summary(probe(size, args.runs))}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
