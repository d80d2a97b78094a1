"""asv mode with an existing Python: one discovery per suite revision, then only benchmark
processes per run (issue 8), with samples and asv results files as `asv run` gives them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_asv_bisect import ASV_CONF  # the same tiny asv project config

import bisect_tool.asv_measure as asv_measure_mod
from bisect_tool.asv_measure import AsvRunner, AsvSettings
from bisect_tool.git import GitRepo

# Under pytest-xdist (pyproject's addopts) the tests that run asv share one worker, one at a
# time: they share asv's machine file in $HOME, and keep each other's timings out of theirs.
pytestmark = pytest.mark.xdist_group("asv")

BENCHMARKS = """import os

import tiny


def time_work():
    tiny.work()


def track_items_per_s():
    return tiny.throughput()


track_items_per_s.unit = "items/s"


def track_asv_env():
    # asv sets ASV=true in the benchmark process; the direct runner must too
    return 1.0 if os.environ.get("ASV") == "true" else 0.0


class Sizes:
    params = ([10, 20], ["a", "b"])
    param_names = ["n", "tag"]

    def time_sum(self, n, tag):
        sum(range(n * 100))


class Cached:
    def setup_cache(self):
        return tiny.work()

    def time_from_cache(self, value):
        sum(range(value % 1000))
"""

LIB = """N = {n}


def work():
    return sum(i * i for i in range(N))


def throughput():
    return 1000.0
"""

WORK = "bench_tiny.time_work"
TRACK = "bench_tiny.track_items_per_s"
ENV = "bench_tiny.track_asv_env"
PARAM = "bench_tiny.Sizes.time_sum(20, 'b')"
CACHED = "bench_tiny.Cached.time_from_cache"
NAMES = [WORK, TRACK, ENV, PARAM, CACHED]


def tiny_project(git_repo_factory, sizes: list[int]):
    commits = []
    for i, n in enumerate(sizes):
        files = {"tiny/__init__.py": LIB.format(n=n), "CHANGES": f"release {i}\n"}
        if i == 0:
            files |= {
                "asv.conf.json": json.dumps(ASV_CONF),
                "benchmarks/__init__.py": "",
                "benchmarks/bench_tiny.py": BENCHMARKS,
            }
        commits.append((f"step {i}: N={n}", files))
    return git_repo_factory(commits, name="tiny")


def counting(runner: AsvRunner) -> list[list[str]]:
    """Record every asv command line the runner starts (`python -m asv ...`)."""
    calls: list[list[str]] = []
    real = runner._asv

    def spy(args, cwd, env=None, timeout=None):
        calls.append(list(args))
        return real(args, cwd, env, timeout)

    runner._asv = spy  # type: ignore[method-assign]
    return calls


def stored_samples(results_dir: Path, commit: str) -> dict[str, int]:
    from asv.results import iter_results_for_machine_and_hash

    from bisect_tool.asv_measure import _expand_params

    out: dict[str, int] = {}
    machines = [p.name for p in results_dir.iterdir() if p.is_dir()]
    for machine in machines:
        for result in iter_results_for_machine_and_hash(str(results_dir), machine, commit):
            for key in result.get_all_result_keys():
                for label, samples in _expand_params(result, key):
                    if samples:
                        out[label] = len(samples)
    return out


def test_one_discovery_per_suite_revision_then_only_benchmark_processes(git_repo_factory, tmp_path):
    repo = tiny_project(git_repo_factory, [1000, 1000, 5000])
    git = GitRepo(repo.path)
    export = tmp_path / "exported"
    settings = AsvSettings(suite_rev=repo.shas[-1], repeat=3, export_results=str(export))
    runner = AsvRunner(git, settings, tmp_path / "scratch")
    calls = counting(runner)
    assert runner.discoveries == 0

    names = {s.name for s in runner.list_benchmarks()}
    assert set(NAMES) <= names
    assert "bench_tiny.Sizes.time_sum(10, 'a')" in names
    # (the code is the checkout's, HEAD, for every commit: only the shapes matter here)
    batches = [runner.measure(repo.path, sha, NAMES, 1) for sha in repo.shas]
    again = runner.measure(repo.path, repo.shas[0], NAMES, 2)

    # one `asv run --bench just-discover` for the suite revision, and no `asv run` per run
    assert runner.discoveries == 1
    assert [c[:3] for c in calls] == [["run", "--bench", "just-discover"]]
    # samples per round as `asv run` gives them: `repeat` for time_, one for track_
    for batch in batches:
        assert batch.errors == {}
        assert {n: len(s) for n, s in batch.samples.items()} == {
            WORK: 3,
            TRACK: 1,
            ENV: 1,
            PARAM: 3,
            CACHED: 3,
        }
        assert batch.samples[TRACK] == [1000.0]
        assert batch.samples[ENV] == [1.0]
    assert again.errors == {}
    assert {n: len(s) for n, s in again.samples.items()} == {
        WORK: 6,
        TRACK: 2,
        ENV: 2,
        PARAM: 6,
        CACHED: 6,
    }
    # asv results files as before: in the scratch results and exported, readable by asv
    for sha in repo.shas:
        assert stored_samples(export, sha).keys() >= {WORK, PARAM, CACHED}
        assert stored_samples(runner.results_dir, sha)[WORK] >= 3
    assert (export / "benchmarks.json").is_file()


def test_a_new_runner_for_another_suite_revision_discovers_again(git_repo_factory, tmp_path):
    repo = tiny_project(git_repo_factory, [1000, 1000])
    git = GitRepo(repo.path)
    counts = []
    for i, sha in enumerate(repo.shas):
        settings = AsvSettings(suite_rev=sha, repeat=2, export_results=None)
        runner = AsvRunner(git, settings, tmp_path / f"scratch{i}")
        for commit in repo.shas:
            batch = runner.measure(repo.path, commit, [WORK], 1)
            assert len(batch.samples[WORK]) == 2
        counts.append(runner.discoveries)
    assert counts == [1, 1]


def test_import_failure_at_a_commit_is_a_benchmark_error(git_repo_factory, tmp_path):
    repo = tiny_project(git_repo_factory, [1000])
    broken = repo.commit("break it", {"tiny/__init__.py": "from tiny._fast import work\n"})
    git = GitRepo(repo.path)
    settings = AsvSettings(suite_rev=repo.shas[0], repeat=2, export_results=None)
    runner = AsvRunner(git, settings, tmp_path / "scratch")
    batch = runner.measure(repo.path, broken, [WORK, TRACK], 1)  # checked out
    assert batch.samples == {}
    assert set(batch.errors) == {WORK, TRACK}
    assert "tiny._fast" in batch.errors[WORK] or "ModuleNotFoundError" in batch.errors[WORK]


@pytest.mark.slow
def test_falls_back_to_asv_run_when_the_direct_runner_is_unavailable(
    git_repo_factory, tmp_path, monkeypatch
):
    def unavailable(_runner):
        raise ImportError("no asv.runner here")

    monkeypatch.setattr(asv_measure_mod, "_DirectAsv", unavailable)
    repo = tiny_project(git_repo_factory, [1000])
    notes: list[str] = []
    settings = AsvSettings(suite_rev=repo.shas[0], repeat=2, export_results=None)
    runner = AsvRunner(GitRepo(repo.path), settings, tmp_path / "scratch", notes.append)
    calls = counting(runner)
    batch = runner.measure(repo.path, repo.shas[0], [WORK, PARAM], 1)
    assert {n: len(s) for n, s in batch.samples.items()} == {WORK: 2, PARAM: 2}
    assert any("asv run" in n and "no asv.runner here" in n for n in notes)
    assert [c[0] for c in calls] == ["run", "run"]  # the discovery, then one `asv run`
    assert runner.discoveries == 1


def test_no_module_of_ours_shadows_an_installed_package_for_the_build_child():
    """asv_build_child.py runs as a script, so bisect_tool/ comes first on its sys.path: a
    module there named like a package asv imports (asv_runner, say) would be imported in its
    place and break every --python virtualenv build on a Dask worker."""
    import importlib.util

    import bisect_tool

    ours = Path(bisect_tool.__file__).parent
    # what the child imports (asv's config, environment and repo machinery), without our
    # directory on the path; then which of those top-level names are also modules of ours
    script = (
        "import sys\n"
        f"ours = {str(ours)!r}\n"
        "sys.path = [p for p in sys.path if p not in ('', ours) and not p.startswith(ours)]\n"
        "import asv.config, asv.environment, asv.repo, asv.plugin_manager\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[1:]))))\n"
    )
    names = sorted(p.stem for p in ours.glob("*.py") if not p.stem.startswith("__"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run(
        [sys.executable, "-c", script, *names],
        capture_output=True,
        text=True,
        cwd=ours.parent.parent,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    assert importlib.util.find_spec("asv_runner") is not None  # the name that bit once
    assert res.stdout.split() == [], f"modules of bisect_tool shadow packages: {res.stdout}"
