"""`smbisect check`: one commit against a baseline, exiting by git bisect run's conventions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from test_cli import BENCH, git, make_history, smbisect

CMD = f"{sys.executable} bench.py"


def check_args(good: str, tmp_path: Path) -> tuple[str, ...]:
    """The options every `smbisect check` call here shares."""
    return (
        "--good",
        good,
        "--cmd",
        CMD,
        "--metric",
        "stdout",
        "--threshold",
        "1.2",
        "--cache-dir",
        str(tmp_path / "c"),
    )


def test_check_exit_codes_on_a_real_repository(tmp_path: Path) -> None:
    repo = tmp_path / "proj"
    shas = make_history(repo, [1.0, 1.0, 1.02, 1.6, 1.6, 1.0], broken={4})
    common = check_args(shas[0], tmp_path)
    same = smbisect("check", shas[2], *common, cwd=repo)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "good" in same.stdout
    slower = smbisect("check", shas[3], *common, cwd=repo)
    assert slower.returncode == 1, slower.stdout + slower.stderr
    assert "bad" in slower.stdout
    # decided sequentially: an obvious 1.6x needs the first 3 runs a side, not a fixed 10
    (cache,) = (tmp_path / "c").glob("*.json")
    entries = json.loads(cache.read_text())["entries"]
    runs_at = {json.loads(k)[2]: len(v["samples"]) for k, v in entries.items()}
    assert runs_at[shas[3]] <= 4, runs_at
    broken = smbisect("check", shas[4], *common, cwd=repo)
    assert broken.returncode == 125, broken.stdout + broken.stderr
    assert "ImportError" in broken.stdout
    # usage errors must stop `git bisect run` (exit > 127), never read as "bad"
    unknown = smbisect("check", "no-such-rev", *common, cwd=repo)
    assert unknown.returncode == 128
    assert "does not name a commit" in unknown.stderr and "Traceback" not in unknown.stderr
    typo = smbisect("check", shas[3], *common, "--treshold", "2", cwd=repo)
    assert typo.returncode == 128 and "--treshold" in typo.stderr
    no_baseline = smbisect("check", shas[3], cwd=repo)
    assert no_baseline.returncode == 128 and "--good" in no_baseline.stderr


def test_git_bisect_run_with_smbisect_check_finds_the_culprit(tmp_path: Path) -> None:
    repo = tmp_path / "proj"
    costs = [1.0] * 7 + [1.5] * 7
    shas = make_history(repo, costs, bench=BENCH)
    git(repo, "bisect", "start", shas[-1], shas[0])
    run = subprocess.run(
        [
            "git",
            "bisect",
            "run",
            sys.executable,
            "-m",
            "bisect_tool",
            "check",
            "-q",
            *check_args(shas[0], tmp_path),
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{shas[7]} is the first bad commit" in run.stdout
    git(repo, "bisect", "reset")
