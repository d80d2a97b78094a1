"""The smbisect command as a user runs it: a real process, real git repositories, --cmd mode."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCH = """import pathlib, random, sys
if pathlib.Path("broken").exists():
    sys.exit("ImportError: cannot import name 'fast_path' from 'lib'")
cost = float(pathlib.Path("cost.txt").read_text())
print(f"took {cost * random.uniform(0.97, 1.03):.5f}")
"""

SLOW_BENCH = """import pathlib, time
time.sleep(float(pathlib.Path("cost.txt").read_text()))
"""

# SLOW_BENCH, and then held for two minutes once the file named by SMBISECT_TEST_HOLD exists:
# a test that creates it knows the bisect is still running when it sends its signal
HELD_BENCH = """import os, pathlib, time
time.sleep(float(pathlib.Path("cost.txt").read_text()))
if pathlib.Path(os.environ["SMBISECT_TEST_HOLD"]).exists():
    time.sleep(120)
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def make_history(
    root: Path,
    costs: list[float],
    bench: str = BENCH,
    broken: set[int] = frozenset(),
    bench_file: str = "bench.py",
) -> list[str]:
    """One commit per cost (commit 0 is the good baseline); returns shas oldest first."""
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Test Author")
    git(root, "config", "user.email", "test@example.invalid")
    (root / bench_file).write_text(bench)
    shas = []
    for i, cost in enumerate(costs):
        (root / "cost.txt").write_text(f"{cost}\n")
        (root / "log.txt").write_text(f"change {i}\n")
        marker = root / "broken"
        if i in broken:
            marker.write_text("x")
        elif marker.exists():
            marker.unlink()
        git(root, "add", "-A")
        env = {
            **os.environ,
            "GIT_AUTHOR_DATE": f"{1_700_000_000 + i * 60} +0000",
            "GIT_COMMITTER_DATE": f"{1_700_000_000 + i * 60} +0000",
        }
        subprocess.run(["git", "commit", "-q", "-m", f"change {i}"], cwd=root, check=True, env=env)
        shas.append(git(root, "rev-parse", "HEAD"))
    return shas


def smbisect(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bisect_tool", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def cmd_bisect(
    repo: Path,
    tmp_path: Path,
    good: str,
    *extra: str,
    metric: str | None = "stdout",
    cache: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """smbisect in --cmd mode on bench.py, with a cache private to the test."""
    args = ["--good", good, "--cmd", f"{sys.executable} bench.py"]
    if metric:
        args += ["--metric", metric]
    args += ["--cache-dir", cache or str(tmp_path / "c")]
    return smbisect(*args, *extra, cwd=repo)


def repo_state(repo: Path) -> dict[str, str]:
    """Everything a user would notice changing in their checkout."""
    return {
        "status": git(repo, "status", "--porcelain", "--ignored"),
        "head": git(repo, "rev-parse", "HEAD"),
        "symbolic": git(repo, "rev-parse", "--symbolic-full-name", "HEAD"),
        "refs": git(repo, "for-each-ref"),
        "stash": git(repo, "stash", "list"),
        "worktrees": git(repo, "worktree", "list", "--porcelain"),
        "files": "\n".join(
            sorted(
                f"{p.relative_to(repo)}:{p.read_bytes().hex()}"
                for p in repo.rglob("*")
                if p.is_file() and ".git" not in p.parts
            )
        ),
    }


@pytest.fixture
def user_repo(tmp_path: Path) -> tuple[Path, list[str]]:
    costs = [1.0] * 9 + [1.6] * 8
    repo = tmp_path / "proj"
    shas = make_history(repo, costs)
    # the user has work in progress: a modified file, an untracked file and a stash entry
    (repo / "notes.md").write_text("draft\n")
    git(repo, "stash", "push", "-q", "-u", "-m", "wip")
    (repo / "log.txt").write_text("edited, not committed\n")
    (repo / "scratch.txt").write_text("untracked\n")
    return repo, shas


def test_cmd_bisect_names_culprit_and_leaves_checkout_alone(user_repo, tmp_path):
    repo, shas = user_repo
    before = repo_state(repo)
    out_json = tmp_path / "result.json"
    out_md = tmp_path / "result.md"
    res = cmd_bisect(
        repo,
        tmp_path,
        shas[0],
        "--json",
        str(out_json),
        "--report",
        str(out_md),
        cache=str(tmp_path / "cache"),
    )
    assert res.returncode == 0, res.stderr
    assert repo_state(repo) == before
    data = json.loads(out_json.read_text())
    assert [c["sha"] for c in data["culprits"]] == [shas[9]]
    assert data["culprits"][0]["confirmed"] is True
    assert 1.4 < data["culprits"][0]["ratio"] < 1.8
    measured = {s["sha"] for s in data["steps"]}
    assert {shas[0], shas[-1], shas[9], shas[8]} <= measured
    assert all(s["samples"] for s in data["steps"])
    assert data["skipped"] == []
    # steps stay near the log2 floor on a clean case
    assert len(data["steps"]) - 2 <= data["log2_bound"] + 2
    assert shas[9] in res.stdout and "git bisect log" in res.stdout
    assert "first bad commit" in res.stdout
    md = out_md.read_text()
    assert shas[9] in md and "| commit" in md


def test_failing_commits_are_skipped_and_reported(tmp_path):
    costs = [1.0] * 5 + [1.0, 1.0] + [2.0] * 6
    repo = tmp_path / "proj"
    shas = make_history(repo, costs, broken={5, 6})
    out_json = tmp_path / "r.json"
    res = cmd_bisect(repo, tmp_path, shas[0], "--json", str(out_json))
    data = json.loads(out_json.read_text())
    skipped = {s["sha"]: s["error"] for s in data["skipped"]}
    if res.returncode == 0:
        assert data["culprits"][0]["sha"] == shas[7]
    else:
        # the broken commits sit right before the culprit: git cannot tell them apart
        assert res.returncode == 4, res.stderr
        assert set(data["culprits"][0]["candidates"]) >= {shas[7]}
        assert set(skipped) <= {shas[5], shas[6]}
    assert skipped, "the broken commits must be measured and skipped"
    assert all("ImportError" in err for err in skipped.values())


def test_regression_that_does_not_reproduce_exits_3(tmp_path):
    repo = tmp_path / "proj"
    shas = make_history(repo, [1.0] * 6)
    out_json = tmp_path / "r.json"
    # good and bad are the same: when bad happens to look a little worse, the command (a
    # named benchmark) is measured to the budget before it is called unchanged; 20 runs bound
    # that (the default, 200, cost a minute on a busy machine about every other time)
    res = cmd_bisect(
        repo, tmp_path, shas[0], "--json", str(out_json), "--max-runs-per-commit", "20"
    )
    assert res.returncode == 3, res.stderr
    data = json.loads(out_json.read_text())
    assert data["culprits"] == []
    assert {s["sha"] for s in data["steps"]} == {shas[0], shas[-1]}
    assert "no regression" in res.stdout


def test_wall_time_metric_finds_a_slower_sleep(tmp_path):
    repo = tmp_path / "proj"
    shas = make_history(repo, [0.01] * 4 + [0.06] * 4, bench=SLOW_BENCH)
    res = cmd_bisect(repo, tmp_path, shas[0], "--json", str(tmp_path / "r.json"), metric=None)
    assert res.returncode == 0, res.stderr
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["culprits"][0]["sha"] == shas[4]


@pytest.mark.parametrize(("metric", "hinted"), [(None, True), ("stdout", False)])
def test_no_regression_of_a_whole_command_says_what_was_timed(tmp_path, metric, hinted):
    # wall time (the default for --cmd) is the whole process's: exit 3 or 5 then says so and
    # points to --metric stdout; a time the command prints itself needs no such advice
    repo = tmp_path / "proj"
    if metric is None:
        shas = make_history(repo, [0.02] * 5, bench=SLOW_BENCH)
    else:
        shas = make_history(repo, [1.0] * 5)
    out = tmp_path / "r.json"
    res = cmd_bisect(
        repo, tmp_path, shas[0], "--json", str(out), "--max-runs-per-commit", "20", metric=metric
    )
    assert res.returncode in (3, 5), res.stderr
    advice = " ".join(json.loads(out.read_text())["advice"])
    assert ("interpreter start-up and imports included" in advice) is hinted
    assert ("--metric stdout" in advice) is hinted
    assert ("interpreter start-up" in res.stdout) is hinted


def test_threshold_factor_above_the_regression_means_no_bisect(tmp_path):
    repo = tmp_path / "proj"
    shas = make_history(repo, [1.0] * 3 + [1.3] * 3)
    # bad looks worse (1.3x), so the command, a named benchmark, is measured to the budget
    # before it is called within the threshold: 12 runs, not the default 200, per endpoint
    res = cmd_bisect(repo, tmp_path, shas[0], "--threshold", "1.5", "--max-runs-per-commit", "12")
    assert res.returncode == 3, res.stderr


def test_cache_is_reused_by_a_second_run(tmp_path):
    repo = tmp_path / "proj"
    runs = tmp_path / "runs.log"
    counting = BENCH + f"open({str(runs)!r}, 'a').write('run\\n')\n"
    shas = make_history(repo, [1.0] * 4 + [2.0] * 4, bench=counting)
    args = (
        "--good",
        shas[0],
        "--cmd",
        f"{sys.executable} bench.py",
        "--metric",
        "stdout",
        "--cache-dir",
        str(tmp_path / "c"),
    )

    def count() -> int:
        return len(runs.read_text().splitlines()) if runs.exists() else 0

    first = smbisect(*args, cwd=repo)
    n_first = count()
    assert first.returncode == 0, first.stderr
    (cache_file,) = (tmp_path / "c").glob("*.json")
    entries = json.loads(cache_file.read_text())["entries"]
    second = smbisect(*args, cwd=repo)
    assert second.returncode == 0, second.stderr
    n_second = count() - n_first
    after = json.loads(cache_file.read_text())["entries"]
    # endpoints and bisect steps come from the cache; only the confirmation of the culprit
    # against its parent is measured afresh (it must be interleaved to mean anything)
    grown = {
        json.loads(k)[2] for k in entries if len(after[k]["samples"]) > len(entries[k]["samples"])
    }
    assert grown == {shas[4], shas[3]}
    third = smbisect(*args, "--no-cache", cwd=repo)
    assert third.returncode == 0, third.stderr
    n_third = count() - n_first - n_second
    assert n_second < n_first and n_third > n_second


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--good", "no-such-rev"], "does not name a commit"),
        (["--good", "HEAD"], "same commit"),
        (["--good", "HEAD", "--bad", "HEAD~3"], "not an ancestor"),
        (["--good", "HEAD~2", "--threshold", "0.5"], "--threshold must be"),
        (["--good", "HEAD~2", "--threshold", "1.2", "--threshold-ms", "3"], "not both"),
        (["--good", "HEAD~2", "--cmd", "python 'unclosed"], "cannot be split"),
        (["--good", "HEAD~2", "--cmd", "x", "--json", "/no/such/dir/r.json"], "does not exist"),
        (["--good", "HEAD~2"], "no asv config"),
        (["--good", "HEAD~2", "--cmd", "x", "--bench", "y"], "cannot be combined"),
        (
            ["--good", "HEAD~2", "--cmd", "x", "--metric", "stdout", "--threshold-ms", "5"],
            "needs --metric time",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, needle):
    repo = tmp_path / "proj"
    make_history(repo, [1.0] * 5)
    before = repo_state(repo)
    res = smbisect(*args, "--cache-dir", str(tmp_path / "c"), cwd=repo)
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], res.stderr
    assert "Traceback" not in res.stderr
    assert repo_state(repo) == before


def test_not_a_repository(tmp_path):
    res = smbisect("--good", "HEAD~1", "--repo", str(tmp_path), "--cmd", "true", cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip().endswith(f"not a git repository: {tmp_path}")


def test_missing_good_is_one_line_and_exits_2(tmp_path):
    res = smbisect(cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip() == "smbisect: error: --good REV is required (see smbisect --help)"


def _start(
    repo: Path, tmp_path: Path, good: str, bad: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bisect_tool",
            "--good",
            good,
            "--bad",
            bad,
            "--cmd",
            f"{sys.executable} bench.py",
            "--cache-dir",
            str(tmp_path / "c"),
        ],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
        env=env,
        # as from a terminal: a shell without job control starts background jobs with SIGINT
        # ignored, which Python then keeps ignoring (a CI rehearsal run with `&` did)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for_step(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen += line
        if "step 1 of" in line:
            return seen
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"no bisect step seen: {seen}")


def _smbisect_worktrees(repo: Path) -> list[str]:
    return [
        ln
        for ln in git(repo, "worktree", "list", "--porcelain").splitlines()
        if ln.startswith("worktree ") and "smbisect-wt-" in ln
    ]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_mid_bisect_cleans_up(tmp_path, sig):
    repo = tmp_path / "proj"
    # after step 1 the test creates the hold file, and the next run of the benchmark waits two
    # minutes: the signal lands mid-bisect however fast the bisect or however slow this test's
    # reading of the output (with plain runs of 0.2 and 0.8 s, a bisect under CI's load once
    # finished before the signal arrived, at exit 0)
    shas = make_history(repo, [0.2] * 7 + [0.8] * 6, bench=HELD_BENCH)
    hold = tmp_path / "hold"
    # the user is in the middle of a bisect of their own; it must survive ours
    git(repo, "bisect", "start", "HEAD", "HEAD~5")
    before = repo_state(repo)
    user_log = git(repo, "bisect", "log")
    proc = _start(
        repo, tmp_path, shas[0], shas[-1], env={**os.environ, "SMBISECT_TEST_HOLD": str(hold)}
    )
    _wait_for_step(proc)
    assert _smbisect_worktrees(repo), "the bisect runs in its own worktree"
    hold.write_text("")
    time.sleep(2)  # the run under way ends within 0.8 s; the next one is held
    assert proc.poll() is None, "the bisect ended before it was interrupted"
    started = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert time.monotonic() - started < 30, "the held benchmark run was not stopped"
    assert "interrupted" in err and "Traceback" not in err
    assert _smbisect_worktrees(repo) == []
    assert repo_state(repo) == before
    assert git(repo, "bisect", "log") == user_log


def test_worktree_left_by_a_killed_run_is_removed_by_the_next(tmp_path):
    repo = tmp_path / "proj"
    shas = make_history(repo, [0.02] * 7 + [0.08] * 6, bench=SLOW_BENCH)
    proc = _start(repo, tmp_path, shas[0], shas[-1])
    _wait_for_step(proc)
    proc.kill()  # SIGKILL: no cleanup can run
    proc.communicate(timeout=30)
    left = _smbisect_worktrees(repo)
    assert len(left) == 1
    # HEAD~3..HEAD do not differ: at most 20 runs an endpoint to call them unchanged (see
    # test_regression_that_does_not_reproduce_exits_3)
    res = cmd_bisect(
        repo,
        tmp_path,
        "HEAD~3",
        "--threshold",
        "1.5",
        "--max-runs-per-commit",
        "20",
        metric=None,
        cache=str(tmp_path / "c2"),
    )
    assert res.returncode in (0, 3, 4), res.stderr
    assert _smbisect_worktrees(repo) == []
    assert not Path(left[0].split(" ", 1)[1]).exists()
