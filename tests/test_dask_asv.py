"""asv suites on Dask workers (issue 11): real asv, real temporary git repositories, a real
LocalCluster, through the command line. --python same puts each worker's checkout on
PYTHONPATH; --python virtualenv builds every commit once, into asv's own build cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from asv_dask_project import buildable_asv_repo, git
from test_asv_bisect import tiny_asv_repo
from test_repo_shapes import one_line_error

pytest.importorskip("distributed")

pytestmark = pytest.mark.xdist_group("asv")


def run(repo: Path, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    """smbisect in asv mode, with a private TMPDIR (the workers' scratch) and cache."""
    scratch = tmp_path / "tmpdir"
    scratch.mkdir(exist_ok=True)
    full = [sys.executable, "-m", "bisect_tool", *args, "--cache-dir", str(tmp_path / "cache")]
    return subprocess.run(
        full,
        cwd=repo,
        env={**os.environ, "TMPDIR": str(scratch), **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )


def left_in_tmpdir(tmp_path: Path) -> list[str]:
    scratch = tmp_path / "tmpdir"
    return [p.name for p in scratch.iterdir() if p.name != "smbisect-measure.lock"]


def test_an_asv_suite_on_two_workers_with_python_same(tmp_path: Path) -> None:
    repo = tmp_path / "tiny"
    shas = tiny_asv_repo(repo, [3000] * 5 + [30000] * 5, broken=set())
    status = git(repo, "status", "--porcelain")
    out = tmp_path / "r.json"
    res = run(
        repo, tmp_path, "--good", shas[0], "-b", "time_work", "--workers", "2", "--json", str(out)
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    data = json.loads(out.read_text())
    (culprit,) = data["culprits"]
    assert culprit["sha"] == shas[5] and culprit["confirmed"]
    assert len(data["workers"]) == 2, res.stdout[-3000:] + res.stderr[-3000:]
    # every worker measured good and bad itself; every step names the worker that judged it
    steps = [s for s in data["steps"] if s["sha"] not in (shas[0], shas[-1])]
    assert steps and all(s["worker"].get("bench_tiny.time_work") for s in steps)
    assert data["rounds"] >= 2
    assert git(repo, "status", "--porcelain") == status
    assert left_in_tmpdir(tmp_path) == []  # the workers' clones and checkouts are gone


# 2.5-3 min on a loaded 2-core machine (asv creates a virtualenv, and every measurement is an
# `asv run` that installs the commit): too long for the default suite, run on demand
@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("SMBISECT_TEST_VIRTUALENV"),
    reason="takes about 3 minutes; set SMBISECT_TEST_VIRTUALENV=1 to run it",
)
def test_an_asv_suite_on_two_workers_with_python_virtualenv(tmp_path: Path) -> None:
    repo = tmp_path / "tinyv"
    shas = buildable_asv_repo(repo, 2, 3)
    log = tmp_path / "builds.log"
    out = tmp_path / "r.json"
    res = run(
        repo,
        tmp_path,
        "--good",
        shas[0],
        "--python",
        "virtualenv",
        "--workers",
        "2",
        "--json",
        str(out),
        env={"SMBISECT_TEST_BUILD_LOG": str(log)},
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (culprit,) = json.loads(out.read_text())["culprits"]
    assert culprit["sha"] == shas[2] and culprit["confirmed"]
    built = log.read_text().split()
    measured = {s["sha"] for s in json.loads(out.read_text())["steps"]}
    assert measured <= set(built)  # every measured commit was built by asv's build_command
    assert len(built) == len(set(built)), built  # and no commit twice
    # the builds are in asv's own build cache in the config's env_dir, as `asv run` keeps them
    caches = list((repo / ".asv" / "env").glob("*/asv-build-cache"))
    assert caches and any((caches[0] / f"{sha}.timestamp").is_file() for sha in measured)
    assert left_in_tmpdir(tmp_path) == []


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--python", "config", "--workers", "2"], "not with --python config"),
        (["--build-jobs", "4", "--workers", "2"], "--build-jobs is for local Dask workers"),
        (["--build", "make", "--workers", "2"], "--build works with --cmd"),
    ],
)
def test_asv_options_on_dask_that_stay_refused(
    tmp_path: Path, extra: list[str], needle: str
) -> None:
    repo = tmp_path / "tiny"
    shas = tiny_asv_repo(repo, [3000, 30000], broken=set())
    assert needle in one_line_error(run(repo, tmp_path, "--good", shas[0], *extra), 2)
