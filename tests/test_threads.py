"""--threads: one thread per numerical library when threaded runs are too noisy (threads.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_asv_bisect import tiny_asv_repo
from test_cli import make_history

from bisect_tool import threads

# With the libraries' default threads (no OMP_NUM_THREADS=1 in its environment) every run is
# 7.4x or 0.14x its cost, alternately (run n of the session, counted in a file): noise far above
# judge.HIGH_NOISE that no number of runs makes a 3x change clear early. With one thread, 2%.
THREADED_BENCH = """import os, pathlib, random
counter = pathlib.Path({counter!r})
n = int(counter.read_text()) if counter.exists() else 0
counter.write_text(str(n + 1))
cost = float(pathlib.Path("cost.txt").read_text())
if os.environ.get("OMP_NUM_THREADS") == "1" and os.environ.get("OPENBLAS_NUM_THREADS") == "1":
    factor = random.Random(n).lognormvariate(0, 0.02)
else:
    factor = 7.4 if n % 2 == 0 else 0.135
print(f"took {{cost * factor:.6f}}")
"""


def run(repo: Path, tmp: Path, good: str, *extra: str, env: dict[str, str] | None = None):
    base = {k: v for k, v in os.environ.items() if k not in threads.THREAD_VARS}
    base["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    out = tmp / "r.json"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "bisect_tool",
            "--good",
            good,
            "--cmd",
            f"{sys.executable} bench.py",
            "--metric",
            "stdout",
            "--cache-dir",
            str(tmp / "c"),
            "--json",
            str(out),
            *extra,
        ],
        cwd=repo,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    return res, (json.loads(out.read_text()) if out.exists() else None)


def history(tmp: Path) -> tuple[Path, list[str]]:
    repo = tmp / "proj"
    bench = THREADED_BENCH.format(counter=str(tmp / "runs"))
    return repo, make_history(repo, [1.0] * 8 + [3.0] * 8, bench=bench)


def test_auto_switches_to_one_thread_and_measures_the_endpoints_again(tmp_path):
    repo, shas = history(tmp_path)
    res, data = run(repo, tmp_path, shas[0])
    assert res.returncode == 0, res.stdout + res.stderr
    assert data["culprits"][0]["sha"] == shas[8] and data["culprits"][0]["confirmed"]
    assert data["threads"] == {"setting": "auto", "one_thread": True}
    assert any("OPENBLAS_NUM_THREADS=1" in a and "from then on" in a for a in data["advice"])
    assert "from now on every benchmark process runs with" in res.stderr
    # the runs before the switch are counted (they were spent) but not used: every sample of
    # good in the result is one of the one-thread runs (within 2% of its cost of 1.0)
    (good,) = [s for s in data["steps"] if s["sha"] == shas[0]]
    values = [v for vs in good["samples"].values() for v in vs]
    assert values and all(0.9 < v < 1.1 for v in values)
    assert data["runs"]["per_commit"][shas[0]] > 6
    # the report does not advise setting what was already set
    assert "(--threads one)" not in res.stdout


@pytest.mark.parametrize(
    ("extra", "env"),
    [(("--threads", "keep"), None), ((), {"OMP_NUM_THREADS": "2"})],
    ids=["keep", "set-by-user"],
)
def test_keep_and_the_users_own_setting_are_left_alone(tmp_path, extra, env):
    repo, shas = history(tmp_path)
    res, data = run(repo, tmp_path, shas[0], "--max-runs-per-commit", "8", *extra, env=env)
    assert res.returncode == 5, res.stdout + res.stderr
    assert data["threads"]["one_thread"] is False
    assert "OMP_NUM_THREADS=1" in res.stderr  # the advice, while measuring
    assert not any("from then on" in a for a in data["advice"])


def test_one_runs_every_process_on_one_thread(tmp_path):
    repo, shas = history(tmp_path)
    res, data = run(repo, tmp_path, shas[0], "--threads", "one", env={"OMP_NUM_THREADS": "4"})
    assert res.returncode == 0, res.stdout + res.stderr
    assert data["culprits"][0]["sha"] == shas[8]
    assert data["threads"] == {"setting": "one", "one_thread": True}
    assert any("--threads one" in a for a in data["advice"])
    # nothing to switch: 3 runs per endpoint decide a 3x change at 2% noise
    assert data["runs"]["per_commit"][shas[0]] <= 4


def test_one_thread_sets_every_librarys_variable():
    env = threads.one_thread()
    assert set(env) == set(threads.THREAD_VARS) and set(env.values()) == {"1"}
    assert threads.set_by_user({"MKL_NUM_THREADS": "2", "PATH": "/bin"}) == ["MKL_NUM_THREADS"]
    assert threads.set_by_user({"PATH": "/bin"}) == []


TRACK_BENCH = """import os

import tiny


def track_cost():
    # 100x unless the process runs with one thread per library: shows the setting it ran with
    one = os.environ.get("OPENBLAS_NUM_THREADS") == "1" and os.environ.get("OMP_NUM_THREADS") == "1"
    return tiny.COST * (1.0 if one else 100.0)
"""


@pytest.mark.slow
@pytest.mark.xdist_group("asv")
def test_one_thread_reaches_asv_benchmark_processes(tmp_path):
    repo = tmp_path / "tiny"
    shas = tiny_asv_repo(repo, [1.0] * 4 + [3.0] * 4, set(), bench=TRACK_BENCH, lib="COST = {n}\n")
    out = tmp_path / "r.json"
    base = {k: v for k, v in os.environ.items() if k not in (*threads.THREAD_VARS, "PYTHONPATH")}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "bisect_tool",
            "--good",
            shas[0],
            "--threads",
            "one",
            "--json",
            str(out),
            "--cache-dir",
            str(tmp_path / "c"),
        ],
        cwd=repo,
        env=base,
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    data = json.loads(out.read_text())
    assert data["culprits"][0]["sha"] == shas[4]
    assert data["threads"]["one_thread"] is True
    (good,) = [s for s in data["steps"] if s["sha"] == shas[0]]
    assert {v for vs in good["samples"].values() for v in vs} == {1.0}


def test_one_with_dask_workers_is_a_usage_error(tmp_path):
    repo, shas = history(tmp_path)
    res, data = run(repo, tmp_path, shas[0], "--threads", "one", "--workers", "2")
    assert res.returncode == 2 and data is None
    assert "--threads one does not reach Dask workers" in res.stderr
    assert "Traceback" not in res.stderr
