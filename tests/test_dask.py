"""Bisecting on Dask workers (issue 11): a real LocalCluster, real temporary git repositories,
real git bisect, through the command line. k-ary rounds, merges, skipped commits, a worker
that is slower than the others, a worker killed in the middle of a measurement, --build."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import GitRepoBuilder
from test_cli import make_history, repo_state
from test_repo_shapes import one_line_error, smbisect

pytest.importorskip("distributed")

from bisect_tool import kary  # noqa: E402

BENCH = """import os, pathlib, random, signal
if pathlib.Path("broken").exists():
    raise SystemExit(125)
cost = float(pathlib.Path("cost.txt").read_text())
if pathlib.Path("built.txt").exists():
    cost *= float(pathlib.Path("built.txt").read_text())
worker = os.environ.get("SMBISECT_WORKER", "")
if worker == os.environ.get("SLOW_WORKER", "-"):
    cost *= 1.5
counter = os.environ.get("KILL_COUNTER")
if counter and worker == "1":
    c = pathlib.Path(counter)
    n = int(c.read_text()) + 1 if c.exists() else 1
    c.write_text(str(n))
    if n == int(os.environ["KILL_AT"]):
        os.kill(os.getppid(), signal.SIGKILL)  # the Dask worker process running this
print(f"took {cost * random.uniform(0.98, 1.02):.5f}")
"""


def dask_bisect(
    repo: Path, tmp_path: Path, good: str, *extra: str, env: dict[str, str] | None = None
) -> tuple[Any, dict[str, Any]]:
    out = tmp_path / "r.json"
    res = smbisect(repo, tmp_path, good, "--json", str(out), *extra, env=env)
    data = json.loads(out.read_text()) if out.exists() else {}
    return res, data


def no_worker_left_overs(tmp_path: Path) -> None:
    scratch = tmp_path / "tmpdir"
    left = [p.name for p in scratch.iterdir()] if scratch.exists() else []
    assert not [n for n in left if n != "smbisect-measure.lock"], left


def test_three_workers_find_the_culprit_in_k_ary_rounds(tmp_path: Path) -> None:
    repo = tmp_path / "proj"
    shas = make_history(repo, [1.0] * 41 + [3.0] * 23, bench=BENCH)
    before = repo_state(repo)
    res, data = dask_bisect(repo, tmp_path, shas[0], "--workers", "3")
    assert res.returncode == 0, res.stdout + res.stderr
    assert data["culprits"][0]["sha"] == shas[41]
    assert data["culprits"][0]["confirmed"]
    assert len(data["workers"]) == 3, res.stdout[-3000:] + res.stderr[-3000:]
    # endpoints, ceil(log4 63) = 3 rounds of three commits, the confirmation
    assert data["rounds"] <= 1 + kary.rounds_bound(63, 3) + 1, data["rounds"]
    judged = [s for s in data["steps"] if s["role"] == "step"]
    assert {w for s in judged for w in s["worker"].values()} <= set(data["workers"])
    assert len({w for s in judged for w in s["worker"].values()}) >= 2
    assert all(set(s["runs_per_worker"]) <= set(data["workers"]) for s in data["steps"])
    assert "Dask workers" in res.stdout and "rounds" in res.stdout
    assert repo_state(repo) == before
    no_worker_left_overs(tmp_path)


def test_a_culprit_on_a_merged_branch_and_skipped_commits(
    git_repo_factory: Any, tmp_path: Path
) -> None:
    repo: GitRepoBuilder = git_repo_factory(
        [("c0", {"bench.py": BENCH, "cost.txt": "1.0\n"})]
        + [(f"main {i}", {"log.txt": f"{i}\n"}) for i in range(1, 8)]
    )
    fork = repo.rev()
    repo.branch("feature", fork)
    repo.commit("feature 1", {"notes.txt": "a\n"})
    culprit = repo.commit("feature 2: slower", {"cost.txt": "3.0\n"})
    repo.commit("feature 3", {"notes.txt": "b\n"})
    repo.checkout("main")
    broken = {
        repo.commit("main 8: broken", {"broken": "x"}),
        repo.commit("main 9: still broken", {"log.txt": "9\n"}),
    }
    repo.commit("main 10: fixed", {"broken": None})
    repo.merge("feature")
    for i in range(11, 20):
        repo.commit(f"main {i}", {"log.txt": f"{i}\n"})
    res, data = dask_bisect(repo.path, tmp_path, repo.shas[0], "--workers", "2")
    assert res.returncode == 0, res.stdout + res.stderr
    assert data["culprits"][0]["sha"] == culprit, res.stdout
    skipped = {s["sha"] for s in data["skipped"]}
    assert skipped <= broken  # only the broken commits
    no_worker_left_overs(tmp_path)


def test_a_worker_killed_mid_measurement_costs_a_retry(tmp_path: Path) -> None:
    repo = tmp_path / "proj"
    shas = make_history(repo, [1.0] * 20 + [2.5] * 12, bench=BENCH)
    counter = tmp_path / "runs-on-worker-1"
    res, data = dask_bisect(
        repo,
        tmp_path,
        shas[0],
        "--workers",
        "2",
        env={"KILL_COUNTER": str(counter), "KILL_AT": "8"},  # after its 3+3 reference runs
    )
    assert int(counter.read_text()) >= 8  # the kill happened
    assert res.returncode == 0, res.stdout + res.stderr
    assert data["culprits"][0]["sha"] == shas[20] and data["culprits"][0]["confirmed"]
    no_worker_left_overs(tmp_path)


BUILD = """import pathlib, time
time.sleep(0.3)
pathlib.Path("built.txt").write_text(pathlib.Path("speed.txt").read_text())
"""


@pytest.mark.parametrize("workers", [None, "2"])
def test_build_runs_once_per_commit_and_its_output_is_measured(
    tmp_path: Path, workers: str | None
) -> None:
    # the regression lives in what the build writes (speed.txt -> built.txt): only a commit
    # that was built shows it; a build that exits 125 skips its commit
    repo = tmp_path / "proj"
    shas = make_history(repo, [1.0] * 16, bench=BENCH)
    git = ["git", "-C", str(repo)]
    import subprocess

    (repo / "build.py").write_text(BUILD)
    for i, speed in enumerate(["1.0"] * 6 + ["2.0"] * 10):
        (repo / "speed.txt").write_text(speed + "\n")
        (repo / "log.txt").write_text(f"speed {i}\n")
        if i == 3:
            (repo / "build.py").write_text("raise SystemExit(125)\n")
        elif i == 4:
            (repo / "build.py").write_text(BUILD)
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-q", "-m", f"speed {i}"], check=True)
    log = subprocess.run([*git, "rev-list", "--reverse", "HEAD"], capture_output=True, text=True)
    all_shas = log.stdout.split()
    culprit = all_shas[len(shas) + 6]
    extra = ["--build", f"{sys.executable} build.py"]
    if workers:
        extra += ["--workers", workers]
    res, data = dask_bisect(repo, tmp_path, all_shas[len(shas)], *extra)
    assert res.returncode == 0, res.stdout + res.stderr
    assert data["culprits"][0]["sha"] == culprit
    assert all("build" not in (s["error"] or "") or "125" in s["error"] for s in data["steps"])
    no_worker_left_overs(tmp_path)


@pytest.mark.parametrize(
    ("extra", "code", "needle"),
    [
        (["--workers", "2", "--scheduler", "tcp://127.0.0.1:9"], 2, "not both"),
        (["--repo-url", "/somewhere"], 2, "--repo-url is for Dask workers"),
        (["--build", "python 'unclosed"], 2, "--build cannot be split"),
        (["--build", "true", "--build-jobs", "4"], 2, "--build-jobs is for local Dask workers"),
        (["--scheduler", "tcp://127.0.0.1:9"], 1, "could not connect to the Dask scheduler"),
    ],
)
def test_bad_parallel_options_are_one_line_errors(
    tmp_path: Path, extra: list[str], code: int, needle: str
) -> None:
    repo = tmp_path / "proj"
    shas = make_history(repo, [1.0, 2.0], bench=BENCH)
    res = smbisect(repo, tmp_path, shas[0], *extra)
    assert needle in one_line_error(res, code)


def test_workers_refuse_python_config(tmp_path: Path) -> None:
    repo = tmp_path / "proj"
    shas = make_history(repo, [1.0, 2.0], bench=BENCH)
    args = ["--good", shas[0], "--python", "config", "--workers", "2"]
    res = subprocess_run_smbisect(repo, args)
    assert res.returncode == 2 and "not with --python config" in res.stderr
    assert "Traceback" not in res.stderr
    zero = subprocess_run_smbisect(repo, ["--good", shas[0], "--cmd", "true", "--workers", "0"])
    assert zero.returncode == 2 and "--workers" in zero.stderr


def subprocess_run_smbisect(repo: Path, args: list[str]) -> Any:
    import subprocess

    return subprocess.run(
        [sys.executable, "-m", "bisect_tool", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )


def test_a_worker_with_another_smbisect_version_is_refused(monkeypatch: Any) -> None:
    from distributed import Client, LocalCluster

    from bisect_tool import dask_pool
    from bisect_tool.errors import EnvironmentProblem

    cluster = LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None)
    client = Client(cluster)
    try:
        monkeypatch.setattr(dask_pool, "__version__", "0.0.0-other")
        with pytest.raises(EnvironmentProblem, match="install the same version on every worker"):
            dask_pool.Pool(client, cluster)
    finally:
        client.close()
        cluster.close()


def test_a_cluster_started_with_the_dask_command_line(tmp_path: Path) -> None:
    """`dask scheduler` and two `dask worker`s, as a team starts them on its machines; one
    worker is 1.5x slower than the other. The repository is reached by --repo-url."""
    import subprocess
    import time

    dask = Path(sys.executable).with_name("dask")
    if not dask.exists():
        pytest.skip("the dask command is not installed beside this interpreter")
    sched_file = tmp_path / "scheduler.json"
    procs = [
        subprocess.Popen(
            [
                str(dask),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(sched_file),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        for _ in range(120):
            if sched_file.exists() and sched_file.read_text().strip():
                break
            time.sleep(0.5)
        address = json.loads(sched_file.read_text())["address"]
        for name in ("alpha", "beta"):
            env = {**os.environ, "SLOW_WORKER": "beta"}
            procs.append(
                subprocess.Popen(
                    [
                        str(dask),
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--name",
                        name,
                        "--no-dashboard",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=env,
                )
            )
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        repo = tmp_path / "proj"
        shas = make_history(repo, [1.0] * 23 + [1.3] * 17, bench=BENCH)
        res, data = dask_bisect(
            repo, tmp_path, shas[0], "--scheduler", address, "--repo-url", str(repo)
        )
        assert res.returncode == 0, res.stdout + res.stderr
        assert data["culprits"][0]["sha"] == shas[23]
        assert sorted(w.rsplit("/", 1)[1] for w in data["workers"]) == ["alpha", "beta"]
        assert "alpha" in res.stdout and "beta" in res.stdout  # the machine per measurement
        # against alpha's references, beta's good commits (1.5) would look worse than the
        # cut between 1.0 and 1.3; against its own they do not
        on_beta = [s for s in data["steps"] if s["role"] == "step" and "beta" in str(s["worker"])]
        assert on_beta, "the slow worker judged no commit"
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


LOGGED_BUILD = """import os, pathlib, time
log = pathlib.Path(os.environ["BUILD_LOG"])
me = pathlib.Path("log.txt").read_text().strip()
with log.open("a") as f:
    f.write(f"start {me}\\n")
time.sleep(0.8)
pathlib.Path("built.txt").write_text("1.0")
with log.open("a") as f:
    f.write(f"end {me}\\n")
"""


def test_speculative_builds_are_never_measured_and_leave_nothing(tmp_path: Path) -> None:
    """With room for every possible next-round commit, the next round's commits are built
    while a round measures; the commits that round did not pick are built (or stopped) but
    never measured, the culprit is the same, and no checkout is left."""
    import subprocess

    repo = tmp_path / "proj"
    make_history(repo, [1.0], bench=BENCH)
    git = ["git", "-C", str(repo)]
    (repo / "build.py").write_text(LOGGED_BUILD)
    shas = []
    for i, cost in enumerate([1.0] * 31 + [2.0] * 20):
        (repo / "cost.txt").write_text(f"{cost}\n")
        (repo / "log.txt").write_text(f"change-{i}\n")
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-qm", f"change {i}"], check=True)
        shas.append(
            subprocess.run(
                [*git, "rev-parse", "HEAD"], capture_output=True, text=True
            ).stdout.strip()
        )
    log = tmp_path / "builds.log"
    res, data = dask_bisect(
        repo,
        tmp_path,
        shas[0],
        *("--build", f"{sys.executable} build.py", "--workers", "2", "--build-jobs", "12"),
        env={"BUILD_LOG": str(log)},
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert data["culprits"][0]["sha"] == shas[31] and data["culprits"][0]["confirmed"]
    events = [line.split(" ", 1) for line in log.read_text().splitlines()]
    started = {shas[int(who.split("-")[1])] for what, who in events if what == "start"}
    ended = {shas[int(who.split("-")[1])] for what, who in events if what == "end"}
    measured = {s["sha"] for s in data["steps"] if sum(s["runs_per_worker"].values())}
    assert measured <= ended, "a commit was measured before its build ended"
    assert len(measured) == len(data["steps"]), data["steps"]
    ahead = started - measured
    assert ahead, "nothing was built ahead that the bisect did not need"
    assert not ahead & {s["sha"] for s in data["steps"]}, "a speculative build was measured"
    no_worker_left_overs(tmp_path)


HELD_BUILD = """import os, pathlib, time
while os.path.exists(os.environ["HOLD"]) and pathlib.Path("held.txt").exists():
    time.sleep(0.05)
pathlib.Path("built.txt").write_text(pathlib.Path("log.txt").read_text())
"""


def test_a_build_no_longer_wanted_is_stopped_and_leaves_no_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BuildQueue on a real repository: a running speculative build that the next want()
    leaves out is stopped, its checkout and marker removed; wanted again, it is built from a
    clean checkout. The commit that stays wanted is built."""
    import subprocess

    from bisect_tool.builds import Builder, BuildQueue
    from bisect_tool.git import Checkouts

    repo = tmp_path / "proj"
    make_history(repo, [1.0], bench=BENCH)
    git = ["git", "-C", str(repo)]
    (repo / "build.py").write_text(HELD_BUILD)
    shas = []
    for i in range(3):
        (repo / "log.txt").write_text(f"{i}\n")
        held = repo / "held.txt"
        if i:
            held.write_text("x")  # commits 1 and 2 build until HOLD goes away
        elif held.exists():
            held.unlink()
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-qm", f"c{i}"], check=True)
        out = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
        shas.append(out.stdout.strip())
    hold = tmp_path / "hold"
    hold.write_text("x")
    monkeypatch.setenv("HOLD", str(hold))
    checkouts = Checkouts(str(repo), tmp_path / "builds", keep=None)
    queue = BuildQueue(Builder([sys.executable, "build.py"], checkouts, 60), jobs=3)
    a, b, c = shas
    queue.want([a], [b, c])
    import time

    deadline = time.monotonic() + 60
    while not (checkouts.path_of(a).with_suffix(".built").exists() and len(queue.started) == 3):
        assert time.monotonic() < deadline, queue.started
        time.sleep(0.05)
    queue.want([a], [c])  # b is no longer wanted: its build stops
    while b not in queue.cancelled:
        assert time.monotonic() < deadline, queue.cancelled
        time.sleep(0.05)
    assert not checkouts.path_of(b).exists()
    assert not checkouts.path_of(b).with_suffix(".built").exists()
    assert checkouts.path_of(c).is_dir()  # still wanted, still building
    hold.unlink()
    queue.want([b])  # wanted again: built from a fresh checkout
    path, _ = queue.builder.prepare(b)  # waits for the queue's build, or builds
    assert (path / "built.txt").read_text() == "1\n"
    assert checkouts.path_of(a).with_suffix(".built").read_text() == ""  # a built fine
    queue.close()
    checkouts.close()
    assert not checkouts.path_of(c).exists()
