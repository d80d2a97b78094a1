"""asv mode by instructions (issue 10, point 2): asv's own runner under valgrind, the body's
count as a run of the benchmark minus a run with an empty body.

Real git repositories, the real asv and asv_runner, real valgrind (the tests that need it skip
only when it is absent; .ci/run installs it). Under valgrind a Python process costs seconds,
so the suites here are tiny.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import GitRepoBuilder
from test_asv_bisect import ASV_CONF  # the tiny asv project config

from bisect_tool.asv_instructions import AsvCountingRunner, labels_of
from bisect_tool.asv_measure import AsvRunner, AsvSettings
from bisect_tool.asv_results import counted_entry, export_run
from bisect_tool.git import GitRepo

Factory = Callable[..., GitRepoBuilder]

needs_valgrind = pytest.mark.skipif(
    shutil.which("valgrind") is None, reason="valgrind not installed (apt-get install valgrind)"
)

SUITE = """import tiny


def time_work():
    tiny.work()


class Heavy:
    def setup(self):
        self.data = tiny.heavy_setup()

    def time_light(self):
        tiny.light(self.data)


class Sizes:
    params = [1, 2]

    def time_scaled(self, k):
        tiny.scaled(k)


def track_n():
    return tiny.N
"""

LIB = """N = {n}
SETUP = {setup}


def work():
    s = 0
    for i in range(N):
        s += i * i % 7
    return s


def heavy_setup():
    return [i * i % 7 for i in range(SETUP)]


def light(data):
    return sum(data[:1000])


def scaled(k):
    return sum(range(1000 * k))
"""

WORK = "bench_tiny.time_work"
LIGHT = "bench_tiny.Heavy.time_light"


def project(factory: Factory, versions: list[tuple[int, int]]) -> GitRepoBuilder:
    """One commit per (N, SETUP): the loop's length and the setup's."""
    first = {
        "asv.conf.json": json.dumps(ASV_CONF),
        ".gitignore": ".asv/\n",
        "benchmarks/__init__.py": "",
        "benchmarks/bench_tiny.py": SUITE,
    }
    commits = []
    for i, (n, setup) in enumerate(versions):
        files = {"tiny/__init__.py": LIB.format(n=n, setup=setup), "CHANGES": f"{i}\n"}
        commits.append((f"release {i}", (first if i == 0 else {}) | files))
    return factory(commits, name="tinycount")


def smbisect(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    base["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])  # smbisect itself only
    return subprocess.run(
        [sys.executable, "-m", "bisect_tool", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=1500,
        stdin=subprocess.DEVNULL,
    )


def one_line_error(res: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in res.stderr, res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("smbisect: error:")]
    assert len(errors) == 1, res.stderr
    return errors[0]


# -- names and the results directory, without valgrind ----------------------------------------


def test_labels_are_asvs_parameter_combinations_with_their_index() -> None:
    info = {"name": "m.C.time_x", "params": [["1", "2"], ["'a'"]]}
    assert labels_of(info) == [("m.C.time_x(1, 'a')", 0), ("m.C.time_x(2, 'a')", 1)]
    assert labels_of({"name": "m.time_y", "params": []}) == [("m.time_y", None)]


def test_counted_entry_is_a_track_benchmark_in_the_metrics_unit() -> None:
    info = {
        "name": "m.C.time_x",
        "type": "time",
        "unit": "seconds",
        "params": [["1"]],
        "param_names": ["n"],
        "version": "abc",
        "number": 0,
        "repeat": 0,
        "warmup_time": -1,
    }
    entry = counted_entry(info, "instructions")
    assert entry["name"] == "m.C.time_x.instructions"
    assert entry["type"] == "track" and entry["unit"] == "instructions"
    assert entry["version"] == "abc" and entry["params"] == [["1"]]  # follows the code
    assert "number" not in entry and "warmup_time" not in entry
    assert entry["pretty_name"] == "time_x (instructions)"


def test_exports_keep_each_others_benchmarks_json_entries(tmp_path: Path) -> None:
    """A timing export rewrites benchmarks.json as asv does, but keeps the counted entries; a
    counted export adds its entries and keeps the rest."""
    dest = tmp_path / "results"
    timed, counted = tmp_path / "timed", tmp_path / "counted"
    for d in (timed, counted):
        (d / "m1").mkdir(parents=True)
    time_entry = {"name": "b.time_x", "type": "time", "params": [], "version": "1"}
    (timed / "benchmarks.json").write_text(json.dumps({"b.time_x": time_entry, "version": 2}))
    entry = counted_entry(time_entry, "instructions")
    (counted / "benchmarks.json").write_text(json.dumps({entry["name"]: entry, "version": 2}))

    export_run(timed, dest, "m1", "0" * 40)
    export_run(counted, dest, "m1", "0" * 40, add_only=True)
    both = json.loads((dest / "benchmarks.json").read_text())
    assert {"b.time_x", "b.time_x.instructions", "version"} == set(both)
    export_run(timed, dest, "m1", "1" * 40)  # a later timing bisect
    assert "b.time_x.instructions" in json.loads((dest / "benchmarks.json").read_text())


# -- one-line errors ----------------------------------------------------------------------------


def test_without_valgrind_asv_mode_is_one_line_saying_how_to_install(
    git_repo_factory: Factory, tmp_path: Path
) -> None:
    b = project(git_repo_factory, [(2000, 10), (2600, 10)])
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    git_path = shutil.which("git")
    assert git_path
    (bin_dir / "git").symlink_to(git_path)
    res = smbisect(
        "--good", b.shas[0], "--metric", "instructions", "-b", "time_work",
        "--cache-dir", str(tmp_path / "c"),
        cwd=b.path,
        env={"PATH": str(bin_dir)},
    )  # fmt: skip
    assert res.returncode == 1, res.stderr
    line = one_line_error(res)
    assert "needs valgrind" in line and "apt-get install valgrind" in line
    assert not (b.path / ".asv").exists()  # stopped before asv was started


def test_asv_build_modes_are_one_line(git_repo_factory: Factory, tmp_path: Path) -> None:
    b = project(git_repo_factory, [(2000, 10), (2600, 10)])
    res = smbisect(
        "--good", b.shas[0], "--metric", "instructions", "--python", "virtualenv",
        "--cache-dir", str(tmp_path / "c"),
        cwd=b.path,
    )  # fmt: skip
    assert res.returncode == 2
    assert "--python same or a path" in one_line_error(res)
    res = smbisect("--good", b.shas[0], "--metric", "cputime", cwd=b.path)
    assert res.returncode == 2
    assert "--metric cputime applies to --cmd only" in one_line_error(res)


@needs_valgrind
@pytest.mark.slow
@pytest.mark.xdist_group("asv")
def test_track_benchmarks_are_not_counted_one_line(
    git_repo_factory: Factory, tmp_path: Path
) -> None:
    b = project(git_repo_factory, [(2000, 10), (2600, 10)])
    res = smbisect(
        "--good", b.shas[0], "--metric", "instructions", "-b", "track_n",
        "--cache-dir", str(tmp_path / "c"),
        cwd=b.path,
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    line = one_line_error(res)
    assert "counts asv time_ benchmarks only" in line and "bench_tiny.track_n" in line


# -- counting for real --------------------------------------------------------------------------


@needs_valgrind
@pytest.mark.slow
@pytest.mark.xdist_group("asv")  # asv's machine file in $HOME: see test_asv_bisect.py
def test_setup_is_not_counted_and_counts_go_to_the_results_directory(
    git_repo_factory: Factory, tmp_path: Path
) -> None:
    """The setup triples between the commits (millions of instructions); the body, a sum over
    1000 items, does not change, and neither does its count."""
    b = project(git_repo_factory, [(2000, 30_000), (2000, 90_000)])
    notes: list[str] = []
    runner = AsvRunner(GitRepo(b.path), AsvSettings(), tmp_path / "scratch", notes.append)
    counting = AsvCountingRunner(runner, "instructions", [], notes.append)
    specs = {s.name: s for s in counting.list_benchmarks()}
    assert LIGHT in specs and "bench_tiny.Sizes.time_scaled(2)" in specs
    assert "bench_tiny.track_n" not in specs  # left out, with a note
    assert any("left out 1 (bench_tiny.track_n)" in n for n in notes)
    assert specs[LIGHT].unit == "instructions"

    counts = {}
    for sha in b.shas:
        b.checkout(sha)
        batch = counting.measure(b.path, sha, [LIGHT], 1)
        assert not batch.errors, batch.errors
        counts[sha] = batch.samples[LIGHT][0]
    small, large = counts[b.shas[0]], counts[b.shas[1]]
    assert 10_000 < small < 1_000_000  # about 65 thousand on CPython 3.11
    assert abs(large / small - 1) < 0.005  # the setup's 3x is not in it
    subtracted = [n for n in notes if n.startswith(LIGHT)]
    assert subtracted and "subtracted" in subtracted[0]

    # the values, under a distinct name, in the project's asv results directory
    results = b.path / ".asv" / "results"
    entries = json.loads((results / "benchmarks.json").read_text())
    assert entries[f"{LIGHT}.instructions"]["unit"] == "instructions"
    assert entries[f"{LIGHT}.instructions"]["type"] == "track"
    files = [
        p for p in results.rglob("*.json") if p.name not in ("benchmarks.json", "machine.json")
    ]
    assert len(files) == 2
    stored = [json.loads(p.read_text())["results"][f"{LIGHT}.instructions"] for p in files]
    assert sorted(r[0][0] for r in stored) == sorted(counts.values())

    # and asv publish graphs them
    pub = subprocess.run(
        [sys.executable, "-m", "asv", "publish", "--config", "asv.conf.json"],
        cwd=b.path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pub.returncode == 0, pub.stdout + pub.stderr
    graphs = list((b.path / ".asv" / "html" / "graphs").rglob(f"{LIGHT}.instructions.json"))
    assert graphs
    points = json.loads(graphs[0].read_text())
    assert len(points) == 2 and all(v == pytest.approx(small, rel=0.005) for _, v in points)


@needs_valgrind
@pytest.mark.slow
@pytest.mark.xdist_group("asv")
def test_bisect_by_instructions_finds_a_planted_loop_in_few_runs(
    git_repo_factory: Factory, tmp_path: Path
) -> None:
    """A loop doing 1.3x more work from commit 2 on, found and confirmed, runs counted."""
    b = project(git_repo_factory, [(2000, 10), (2000, 10), (2600, 10), (2600, 10)])
    out = tmp_path / "r.json"
    res = smbisect(
        "--good", b.shas[0], "--metric", "instructions", "-b", r"time_work$",
        "--json", str(out), "--cache-dir", str(tmp_path / "cache"),
        cwd=b.path,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    data = json.loads(out.read_text())
    (endpoint,) = data["endpoints"]
    assert endpoint["benchmark"] == WORK and endpoint["unit"] == "instructions"
    assert endpoint["ratio"] == pytest.approx(1.3, rel=0.05)
    (culprit,) = data["culprits"]
    assert culprit["sha"] == b.shas[2] and culprit["confirmed"]
    # a count repeats: one run per commit, a second of good (its spread) and of the culprit
    # (to confirm it): ceil(log2 N) + 4 in all, issue 10's target
    assert data["runs"]["total"] <= 2 + 4, data["runs"]
    assert max(data["runs"]["per_commit"].values()) == 2, data["runs"]
    assert "instructions per call" in res.stderr and "subtracted" in res.stderr


RANDOM_SUITE = """import tiny


def time_spin():
    tiny.spin()
"""

RANDOM_LIB = """import os


def spin():
    # as much work as the OS's random bytes say: up to 65535 iterations
    for _ in range(int.from_bytes(os.urandom(2), "little")):
        pass
"""


@needs_valgrind
@pytest.mark.slow
@pytest.mark.xdist_group("asv")
def test_a_body_whose_work_depends_on_os_random_bytes_counts_the_same_every_run(
    git_repo_factory: Factory, tmp_path: Path
) -> None:
    """numpy.random seeds itself from os.urandom on import, and its cost depends on the bytes
    (thousands of instructions). The counted processes get a fixed stream instead; here the
    body's whole work depends on it, so two samples agree only if the stream is fixed."""
    b = git_repo_factory(
        [
            (
                "release 0",
                {
                    "asv.conf.json": json.dumps(ASV_CONF),
                    ".gitignore": ".asv/\n",
                    "benchmarks/__init__.py": "",
                    "benchmarks/bench_random.py": RANDOM_SUITE,
                    "tiny/__init__.py": RANDOM_LIB,
                },
            )
        ],
        name="tinyrandom",
    )
    runner = AsvRunner(GitRepo(b.path), AsvSettings(export_results=None), tmp_path / "s", None)
    counting = AsvCountingRunner(runner, "instructions")
    counting.list_benchmarks()
    batch = counting.measure(b.path, b.shas[0], ["bench_random.time_spin"], 2)
    assert not batch.errors, batch.errors
    first, second = batch.samples["bench_random.time_spin"]
    assert first == second
    assert first > 1000  # the loop ran: the bytes are not all zero


# -- when time is the only truth (issue 10, point 4) --------------------------------------------

WAIT_SUITE = """import tiny


def time_wait():
    tiny.wait()
"""

WAIT_LIB = """import time

PAUSE = {pause}


def wait():
    time.sleep(PAUSE)
"""


@needs_valgrind
@pytest.mark.slow
@pytest.mark.xdist_group("asv")
def test_a_sleep_in_an_asv_benchmark_is_invisible_to_instructions_and_the_report_says_so(
    git_repo_factory: Factory, tmp_path: Path
) -> None:
    """The body sleeps 5x longer at bad: the same instructions, 5x the wall time. The counted
    bisect finds nothing (exit 3); asv's own timings of the endpoints show the regression, and
    the report says so and suggests --metric time."""
    first = {
        "asv.conf.json": json.dumps(ASV_CONF),
        ".gitignore": ".asv/\n",
        "benchmarks/__init__.py": "",
        "benchmarks/bench_wait.py": WAIT_SUITE,
    }
    commits = [
        (f"release {i}", (first if i == 0 else {}) | {"tiny/__init__.py": WAIT_LIB.format(pause=p)})
        for i, p in enumerate([0.01, 0.01, 0.05])
    ]
    b = git_repo_factory(commits, name="tinywait")
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    res = smbisect(
        "--good", b.shas[0], "--metric", "instructions", "-b", "time_wait",
        "--json", str(out), "--report", str(md), "--cache-dir", str(tmp_path / "cache"),
        cwd=b.path,
    )  # fmt: skip
    assert res.returncode == 3, res.stdout[-3000:] + res.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["metric"] == "instructions"
    (endpoint,) = data["endpoints"]
    assert endpoint["unit"] == "instructions" and endpoint["status"] == "unchanged"
    assert endpoint["ratio"] == pytest.approx(1.0, abs=1e-3)  # the sleep costs no instructions
    (check,) = data["time_check"]
    assert check["benchmark"] == "bench_wait.time_wait" and check["metric"] == "time"
    assert check["regressed"] and check["suggest"] == "--metric time"
    assert check["ratio"] > 2  # 50 ms against 10 ms
    (advice,) = data["advice"]
    assert "but wall time does" in advice and "--metric time -b" in advice
    assert "Metric: instructions" in res.stdout and "but wall time does" in res.stdout
    report_md = md.read_text()
    assert "Metric: instructions" in report_md and "but wall time does" in report_md
