"""--metric instructions and cycles: counting under valgrind, and real bisects under load.

The tests that run valgrind skip only when it is absent (.ci/run installs it).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli import git, make_history, smbisect

from bisect_tool import instructions
from bisect_tool.errors import MeasurementFailed, UsageError
from bisect_tool.runners import CommandRunner

HAVE_VALGRIND = shutil.which("valgrind") is not None
needs_valgrind = pytest.mark.skipif(
    not HAVE_VALGRIND, reason="valgrind not installed (apt-get install valgrind)"
)

# A CPU-bound pure-Python loop whose length is cost.txt times {iters} (about 1650 instructions
# an iteration on CPython 3.11; `python -S -c pass` is about 28 million).
LOOP = """with open("cost.txt") as f:
    n = int(float(f.read()) * {iters})
s = 0
for i in range(n):
    s += i * i % 7
"""

CG_FILE = """desc: I1 cache:         32768 B, 64 B, 8-way associative
cmd: python bench.py
events: Ir I1mr ILmr Dr D1mr DLmr Dw D1mw DLmw Bc Bcm Bi Bim
fl=bench.c
fn=main
1 5 1 0 0 0 0 0 0 0 0 0 0 0
summary: 1000 10 2 300 20 3 100 5 1 50 7 10 4
"""


# -- pure parts ----------------------------------------------------------------------------------


def test_parse_counts_reads_the_summary_line() -> None:
    counts = instructions.parse_counts(CG_FILE)
    assert counts["Ir"] == 1000 and counts["Bcm"] == 7 and counts["DLmw"] == 1
    assert instructions.parse_counts("events: Ir\n") == {}  # killed before its summary


def test_estimated_cycles_weights() -> None:
    counts = instructions.parse_counts(CG_FILE)
    # Ir + 10 * (I1mr + D1mr + D1mw) + 100 * (ILmr + DLmr + DLmw) + 10 * (Bcm + Bim)
    expected = 1000 + 10 * (10 + 20 + 5) + 100 * (2 + 3 + 1) + 10 * (7 + 4)
    assert instructions.estimated_cycles(counts) == expected


def test_collect_sums_the_process_tree(tmp_path: Path) -> None:
    (tmp_path / "cg.101").write_text(CG_FILE)
    (tmp_path / "cg.102").write_text("events: Ir\nsummary: 234\n")
    (tmp_path / "cg.103").write_text("events: Ir\n")  # no summary: not counted
    (tmp_path / "vg.101.log").write_text("==101== valgrind's own messages\n")
    counts = instructions.collect(tmp_path)
    assert counts.processes == 2
    assert counts.instructions == 1234
    assert counts.value("instructions") == 1234.0


def test_counting_env_pins_hash_seed_and_threads_but_keeps_the_users_choice() -> None:
    env = instructions.counting_env({"PATH": "/bin", "OMP_NUM_THREADS": "4"})
    assert env["PYTHONHASHSEED"] == "0"
    assert env["OPENBLAS_NUM_THREADS"] == "1"
    assert env["OMP_NUM_THREADS"] == "4"
    assert env["PATH"] == "/bin"


def test_valgrind_argv_traces_children_into_one_file_per_process(tmp_path: Path) -> None:
    argv = instructions.valgrind_argv("instructions", tmp_path, ["python", "b.py"], "valgrind")
    assert "--trace-children=yes" in argv and "--cache-sim=no" in argv
    assert f"--cachegrind-out-file={tmp_path}/cg.%p" in argv
    assert argv[-2:] == ["python", "b.py"]
    fixed = instructions.valgrind_argv("instructions", tmp_path, ["x"], "vg", ("setarch", "-R"))
    assert fixed[:3] == ["setarch", "-R", "vg"]  # the layout is fixed for valgrind's tree
    cycles = instructions.valgrind_argv("cycles", tmp_path, ["x"], "valgrind")
    assert "--cache-sim=yes" in cycles and "--branch-sim=yes" in cycles
    assert any(a.startswith("--LL=") for a in cycles)  # fixed geometry, machine-independent


def test_min_effect_follows_the_spread() -> None:
    assert instructions.min_effect(0.0) == pytest.approx(1.001)
    assert instructions.min_effect(1e-6) == pytest.approx(1.001)
    assert instructions.min_effect(0.001) == pytest.approx(math.exp(0.01))
    assert instructions.min_effect(0.5) == pytest.approx(1.05)  # never above the timing floor
    assert instructions.min_effect(math.nan) == pytest.approx(1.05)


def test_higher_is_better_makes_no_sense_for_counts() -> None:
    with pytest.raises(UsageError):
        CommandRunner("python bench.py", "instructions", higher_is_better=True)


def test_missing_valgrind_is_one_line_saying_how_to_install(tmp_path: Path) -> None:
    """Only git on PATH: smbisect stops before measuring, with exit 1 and one line."""
    shas = make_history(tmp_path / "proj", [1.0, 1.0, 2.0], bench="print(1)\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    git_path = shutil.which("git")
    assert git_path
    (bin_dir / "git").symlink_to(git_path)
    res = subprocess.run(
        [sys.executable, "-m", "bisect_tool", "--good", shas[0], "--cmd", "python bench.py"]
        + ["--metric", "instructions", "--cache-dir", str(tmp_path / "c")],
        cwd=tmp_path / "proj",
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": str(bin_dir)},
        timeout=60,
    )
    assert res.returncode == 1, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "valgrind" in lines[0] and "apt-get install valgrind" in lines[0]
    assert git(tmp_path / "proj", "worktree", "list").count("\n") == 0  # nothing left behind


# -- counting for real ---------------------------------------------------------------------------


@needs_valgrind
def test_counts_repeat_exactly_and_see_a_ten_percent_longer_loop(tmp_path: Path) -> None:
    (tmp_path / "bench.py").write_text(LOOP.format(iters=6000))
    runner = CommandRunner(f"{sys.executable} -S bench.py", "instructions")
    (tmp_path / "cost.txt").write_text("1.0\n")
    base = runner.measure(tmp_path, "c1", [runner.command], 2).samples[runner.command]
    (tmp_path / "cost.txt").write_text("1.1\n")
    slow = runner.measure(tmp_path, "c2", [runner.command], 1).samples[runner.command]
    assert base[0] > 1e6
    assert abs(base[1] / base[0] - 1) < 1e-4  # run-to-run spread
    loop = slow[0] - base[0]  # 600 iterations more
    assert 600 * 500 < loop < 600 * 5000
    spec = runner.list_benchmarks()[0]
    assert spec.unit == "instructions" and spec.worse_is_higher is True


@needs_valgrind
@pytest.mark.skipif(
    not instructions.fixed_layout_prefix(), reason="setarch -R does not work on this machine"
)
def test_counted_processes_run_without_address_randomisation(tmp_path: Path) -> None:
    """Where objects and libraries land moves a count by tens of instructions: the counted
    tree runs with ADDR_NO_RANDOMIZE (0x0040000), children included."""
    argv = ["sh", "-c", "cat /proc/self/personality"]
    counts, code, out, err = instructions.count(argv, tmp_path)
    assert code == 0, err
    assert int(out.strip(), 16) & 0x0040000
    assert counts.instructions > 0
    plain = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert not int(plain.stdout.strip(), 16) & 0x0040000  # not so outside the count


@needs_valgrind
def test_counts_include_child_processes(tmp_path: Path) -> None:
    child = "import subprocess, sys\nsubprocess.run([sys.executable, '-S', '-c', 'pass'])\n"
    (tmp_path / "parent.py").write_text(child)
    alone = CommandRunner(f"{sys.executable} -S -c pass", "instructions")
    tree = CommandRunner(f"{sys.executable} -S parent.py", "instructions")
    one = alone.measure(tmp_path, "c", [alone.command], 1).samples[alone.command][0]
    both = tree.measure(tmp_path, "c", [tree.command], 1).samples[tree.command][0]
    assert both > 1.8 * one


@needs_valgrind
def test_cycles_exceed_instructions(tmp_path: Path) -> None:
    ins = CommandRunner(f"{sys.executable} -S -c pass", "instructions")
    cyc = CommandRunner(f"{sys.executable} -S -c pass", "cycles")
    n_ins = ins.measure(tmp_path, "c", [ins.command], 1).samples[ins.command][0]
    n_cyc = cyc.measure(tmp_path, "c", [cyc.command], 1).samples[cyc.command][0]
    assert n_cyc > n_ins * 1.05
    assert cyc.list_benchmarks()[0].unit == "cycles"
    assert cyc.settings_key != ins.settings_key


@needs_valgrind
def test_a_failing_command_under_valgrind_keeps_its_exit_code_and_message(tmp_path: Path) -> None:
    (tmp_path / "bench.py").write_text("import sys\nsys.exit('ImportError: no fast_path')\n")
    runner = CommandRunner(f"{sys.executable} -S bench.py", "instructions")
    with pytest.raises(MeasurementFailed, match="exited 1: ImportError: no fast_path"):
        runner.measure(tmp_path, "c", [runner.command], 1)
    (tmp_path / "bench.py").write_text("import sys\nsys.exit(125)\n")
    with pytest.raises(MeasurementFailed, match="125"):
        runner.measure(tmp_path, "c", [runner.command], 1)


@pytest.fixture
def competing_load() -> Iterator[None]:
    """A process spinning on the CPU for the duration of the test (killed afterwards)."""
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        spin.kill()
        spin.wait()


@needs_valgrind
def test_bisect_by_instructions_under_load_names_the_culprit_in_few_runs(
    tmp_path: Path, competing_load: None
) -> None:
    """A 1.1x slowdown of a loop that is most of the command's instructions (the 5% floor
    applies), bisected while another process spins: right, confirmed, and about one run per
    commit (a second run of good shows the spread, a second of the culprit confirms it)."""
    costs = [1.0] * 5 + [1.1] * 7
    repo = tmp_path / "proj"
    shas = make_history(repo, costs, bench=LOOP.format(iters=34000))
    out = tmp_path / "r.json"
    res = smbisect(
        "--good",
        shas[0],
        "--cmd",
        f"{sys.executable} -S bench.py",
        "--metric",
        "instructions",
        "--cache-dir",
        str(tmp_path / "c"),
        "--json",
        str(out),
        cwd=repo,
    )
    assert res.returncode == 0, res.stderr + res.stdout
    data = json.loads(out.read_text())
    assert [c["sha"] for c in data["culprits"]] == [shas[5]]
    assert data["culprits"][0]["confirmed"] is True
    assert 1.05 < data["culprits"][0]["ratio"] < 1.1
    # one run per commit and the checks: ceil(log2 N) + 4 (issue 10's target), and one more
    # when the culprit's parent was not a step
    assert data["runs"]["total"] <= data["log2_bound"] + 4 + 1, data["runs"]
    assert "instructions" in res.stdout


# A regression that instruction counts cannot see: the same work, a longer sleep. A shell
# script (sh and sleep, both counted), since under valgrind it starts in a fraction of the time
# Python takes, and this bisect counts about 9 runs an endpoint before it calls them unchanged.
SLEEPER = """read cost < cost.txt
case $cost in
    1.0) sleep 0.05 ;;
    *) sleep 0.15 ;;
esac
"""


@needs_valgrind
def test_a_sleep_regression_is_invisible_to_instructions_and_the_report_says_so(
    tmp_path: Path,
) -> None:
    costs = [1.0, 1.0, 1.0, 3.0, 3.0]
    shas = make_history(tmp_path / "proj", costs, bench=SLEEPER, bench_file="bench.sh")
    out = tmp_path / "r.json"
    res = subprocess.run(
        [sys.executable, "-m", "bisect_tool", "--good", shas[0]]
        + ["--cmd", "sh bench.sh", "--metric", "instructions"]
        + ["--cache-dir", str(tmp_path / "c"), "--json", str(out)],
        cwd=tmp_path / "proj",
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 3, res.stdout + res.stderr  # instructions: no regression
    assert "but wall time does" in res.stdout and "--metric time" in res.stdout
    data = json.loads(out.read_text())
    (advice,) = data["advice"]
    assert "wall time does" in advice
    assert git(tmp_path / "proj", "worktree", "list").count("\n") == 0  # nothing left behind
