"""A build-dominated project bisected serially and on 2 and 3 local Dask workers, side by side.

The project (issue 11's target): a history of N commits whose build step sleeps B seconds and
writes the speed the benchmark then reads, and whose benchmark is a short Python process that
prints a number (--metric stdout, 2% jitter). One commit makes it `--slowdown` times slower.
Each configuration bisects the same repository with a fresh cache, one after the other, in one
run of this script, so the ratios to the serial time are comparable on a shared machine.

    python tools/dask_speedup.py --commits 256 --build-seconds 5 --trials 3 --seed 21
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bisect_tool.kary import rounds_bound  # noqa: E402

BUILD = """import pathlib, time
time.sleep({seconds})
pathlib.Path("built.txt").write_text(pathlib.Path("speed.txt").read_text())
"""
BENCH = """import pathlib, random
speed = float(pathlib.Path("built.txt").read_text())
print(f"took {speed * random.uniform(0.98, 1.02):.5f}")
"""


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"git {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout.strip()


def make_project(
    root: Path, commits: int, culprit: int, slowdown: float, build: float
) -> list[str]:
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Speedup")
    git(root, "config", "user.email", "speedup@example.invalid")
    (root / "build.py").write_text(BUILD.format(seconds=build))
    (root / "bench.py").write_text(BENCH)
    (root / ".gitignore").write_text("built.txt\n")
    shas = []
    for i in range(commits + 1):  # commit 0 is good
        (root / "speed.txt").write_text(f"{slowdown if i >= culprit else 1.0}\n")
        (root / "log.txt").write_text(f"change {i}\n")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", f"change {i}")
        shas.append(git(root, "rev-parse", "HEAD"))
    return shas


def bisect(
    repo: Path, good: str, workers: int | None, cache: Path, jobs: int | None = None
) -> dict[str, object]:
    args = [sys.executable, "-m", "bisect_tool", "--good", good]
    args += ["--cmd", f"{sys.executable} bench.py", "--metric", "stdout"]
    args += ["--build", f"{sys.executable} build.py", "--cache-dir", str(cache), "-q"]
    out = cache / "r.json"
    args += ["--json", str(out)]
    if workers:
        args += ["--workers", str(workers)]
    if jobs:
        args += ["--build-jobs", str(jobs)]
    started = time.perf_counter()
    res = subprocess.run(args, cwd=repo, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - started
    data = json.loads(out.read_text()) if out.exists() else {}
    culprits = data.get("culprits") or [{}]
    return {
        "exit": res.returncode,
        "wall": wall,
        "rounds": data.get("rounds"),
        "runs": (data.get("runs") or {}).get("total"),
        "culprit": culprits[0].get("sha"),
        "stderr": res.stderr.strip().splitlines()[-1:] if res.returncode else [],
    }


def label(config: str) -> str:
    workers, _, jobs = config.partition(":")
    if workers == "0":
        return "serial"
    return f"{workers} workers" + (f", --build-jobs {jobs}" if jobs else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--commits", type=int, default=256)
    ap.add_argument("--build-seconds", type=float, default=3.0)
    ap.add_argument("--slowdown", type=float, default=2.0)
    ap.add_argument("--trials", type=int, default=1)
    ap.add_argument(
        "--workers",
        default="0,2,3,2:10,3:17",
        help="configurations: 0 is the serial bisect, K is K workers, K:J K workers with "
        "--build-jobs J (K+2+K*(K+1) builds every possible next-round commit at once)",
    )
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    configs = args.workers.split(",")
    rows: dict[str, list[dict[str, object]]] = {w: [] for w in configs}
    for trial in range(args.trials):
        culprit = rng.randrange(2, args.commits)
        with tempfile.TemporaryDirectory(prefix="smbisect-speedup-") as tmp:
            repo = Path(tmp) / "proj"
            shas = make_project(repo, args.commits, culprit, args.slowdown, args.build_seconds)
            for i, w in enumerate(configs):
                cache = Path(tmp) / f"cache-{i}"
                cache.mkdir()
                workers, _, jobs = w.partition(":")
                got = bisect(repo, shas[0], int(workers) or None, cache, int(jobs or 0) or None)
                got["right"] = got["culprit"] == shas[culprit]
                rows[w].append(got)
                print(
                    f"trial {trial + 1} culprit {culprit}: {label(w)}: "
                    f"exit {got['exit']}, {got['wall']:.1f} s, rounds {got['rounds']}, "
                    f"runs {got['runs']}, right {got['right']} {got['stderr']}",
                    file=sys.stderr,
                )
    serial = rows.get("0")
    table = []
    for w in configs:
        runs = rows[w]
        wall = sum(float(r["wall"]) for r in runs) / len(runs)
        ratios = [
            float(r["wall"]) / float(s["wall"]) for r, s in zip(runs, serial or [], strict=False)
        ]
        table.append(
            [
                label(w),
                f"{sum(bool(r['right']) for r in runs)}/{len(runs)}",
                "/".join(str(r["rounds"]) for r in runs),
                rounds_bound(args.commits, max(int(w.partition(":")[0]), 1)),
                "/".join(str(r["runs"]) for r in runs),
                f"{wall:.1f}",
                f"{sum(ratios) / len(ratios):.2f}x" if ratios else "",
                f"{max(ratios):.2f}x" if ratios else "",
            ]
        )
    print(
        f"{args.commits} commits, build {args.build_seconds:g} s, {args.slowdown:g}x slowdown, "
        f"{args.trials} trial(s), seed {args.seed}"
    )
    print(
        tabulate(
            table,
            headers=[
                "bisect",
                "right",
                "rounds (all)",
                "ceil(log_{K+1} N)",
                "runs",
                "wall s (mean)",
                "wall / serial (mean)",
                "worst",
            ],
            tablefmt="github",
        )
    )


if __name__ == "__main__":
    main()
