"""Where the wall time of one bisect of tools/dask_speedup.py's project goes, serial or on Dask.

Runs smbisect in this process with timers around its phases (cluster start and shutdown,
endpoints, each round, the confirmation, every measurement and build the client sees) and
prints a timeline. Only for finding the time; the numbers for docs/ come from dask_speedup.py.

    python tools/dask_timeline.py --commits 256 --build-seconds 5 --workers 3 --seed 21
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

T0 = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dask_speedup import make_project  # noqa: E402

EVENTS: list[tuple[float, float, str, str]] = []
_LOCK = threading.Lock()


def timed(owner: Any, attr: str, label: str, describe: Callable[..., str] | None = None) -> None:
    func = getattr(owner, attr)

    @functools.wraps(func)
    def wrapper(*args: Any, **kw: Any) -> Any:
        start = time.perf_counter()
        try:
            return func(*args, **kw)
        finally:
            end = time.perf_counter()
            what = describe(*args, **kw) if describe else ""
            with _LOCK:
                EVENTS.append((start - T0, end - T0, label, what))

    setattr(owner, attr, wrapper)


def instrument() -> None:
    from bisect_tool import (
        attribution,
        builds,
        confirmation,
        dask_pool,
        parallel,
        parallel_cli,
        session,
    )

    timed(dask_pool.Pool, "start", "cluster start")
    timed(dask_pool.Pool, "close", "cleanup (pool.close)")
    timed(parallel, "prebuild", "prebuild submit")
    timed(parallel, "endpoints", "endpoints (all lanes)")
    timed(parallel, "_judge_all", "round", lambda lanes, picks, *a: f"{len(picks)} picks")
    timed(session.Session, "bisect_one", "serial bisect")
    timed(session.Session, "_endpoints", "endpoints (session)")
    timed(confirmation.Confirmations, "confirm_all", "confirmation")
    timed(session.Session, "retry_unconfirmed", "retry unconfirmed")
    timed(attribution, "attribute", "attribution")
    session.attribute = attribution.attribute  # type: ignore[attr-defined]
    timed(
        dask_pool.RemoteRunner,
        "measure",
        "  measure",
        lambda self, wt, sha, names, rounds: f"{self.worker.name} {sha[:7]} x{rounds}",
    )
    timed(
        builds.BuildingRunner,
        "measure",
        "  build+measure",
        lambda self, wt, sha, names, rounds: f"{sha[:7]} x{rounds}",
    )
    timed(builds.Builder, "prepare", "  client build", lambda self, sha, *a: sha[:7])
    _ = parallel_cli


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--commits", type=int, default=256)
    ap.add_argument("--build-seconds", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=3, help="0: serial")
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("extra", nargs="*", help="more smbisect options, after --")
    args = ap.parse_args()
    culprit = random.Random(args.seed).randrange(2, args.commits)
    with tempfile.TemporaryDirectory(prefix="smbisect-timeline-") as tmp:
        repo = Path(tmp) / "proj"
        shas = make_project(repo, args.commits, culprit, 2.0, args.build_seconds)
        imported = time.perf_counter()
        from bisect_tool.cli import main as cli

        instrument()
        ready = time.perf_counter()
        argv = ["--repo", str(repo), "--good", shas[0], "--cmd", f"{sys.executable} bench.py"]
        argv += ["--metric", "stdout", "--build", f"{sys.executable} build.py", "-q"]
        argv += ["--cache-dir", str(Path(tmp) / "cache"), "--json", str(Path(tmp) / "r.json")]
        if args.workers:
            argv += ["--workers", str(args.workers)]
        start = time.perf_counter()
        with contextlib.suppress(SystemExit):
            cli(argv + args.extra, standalone_mode=False)
        end = time.perf_counter()
        data = json.loads((Path(tmp) / "r.json").read_text())
    print(
        f"import {ready - imported:.2f} s; run {end - start:.2f} s; culprit right: "
        f"{data['culprits'][0]['sha'] == shas[culprit]}; rounds {data['rounds']}"
    )
    base = start - T0
    for s, e, label, what in sorted(EVENTS):
        print(f"{s - base:7.2f} {e - base:7.2f} {e - s:6.2f}  {label} {what}")


if __name__ == "__main__":
    main()
