"""A bench script written for the bisect but never committed: `--cmd "python bench.py"` runs in
each commit's checkout, where it does not exist, and `python /abs/bench.py` imports the working
tree's code at every commit. smbisect says so (bisect_tool/command_hint.py)."""

from __future__ import annotations

import shlex
import sys

from test_asv_layouts import run_smbisect as run

from bisect_tool.command_hint import script_imports_working_tree, working_tree_only_file
from bisect_tool.git import GitRepo

BENCH = "import lib, time\nt = time.perf_counter()\nlib.work()\nprint(time.perf_counter() - t)\n"
CWD_FIRST = "import os, sys\nsys.path.insert(0, os.getcwd())\n" + BENCH


def lib(n: int) -> str:
    return f"def work():\n    return sum(i * i for i in range({n}))\n"


def make_repo(git_repo_factory):
    b = git_repo_factory([("start", {"lib.py": lib(2000), "out.txt": "x\n"})])
    for i, n in enumerate([2000, 1500000, 1500000], 1):  # a 3-10x slower process
        b.commit(f"step {i}", {"lib.py": lib(n) + f"# {i}\n"})
    return b


def test_an_uncommitted_bench_script_fails_in_one_line_that_gives_the_command_to_use(
    git_repo_factory, tmp_path
):
    b = make_repo(git_repo_factory)
    (b.path / "bench.py").write_text(BENCH)
    with (b.path / "lib.py").open("a") as fh:
        fh.write("# an edit not committed\n")
    before = b.snapshot()
    cmd = f"{shlex.quote(sys.executable)} bench.py"
    res = run("--good", b.shas[0], "--cmd", cmd, "--cache-dir", str(tmp_path / "c"), cwd=b.path)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    (line,) = [ln for ln in res.stderr.splitlines() if ln.startswith("smbisect: error:")]
    assert "could not be measured" in line
    assert "bench.py is in your working tree but in neither commit" in line
    assert str((b.path / "bench.py").resolve()) in line  # the command to use instead
    assert "sys.path" in line  # and the import trap that command has
    # bad is HEAD: the edit of lib.py is not in it, and smbisect says so before measuring
    assert "note: your uncommitted changes (lib.py) are not measured" in res.stderr
    assert b.snapshot() == before


def test_a_script_beside_the_code_is_warned_about_and_one_that_imports_from_the_checkout_is_not(
    git_repo_factory, tmp_path
):
    b = make_repo(git_repo_factory)
    (b.path / "bench.py").write_text(BENCH)
    (b.path / "bench_cwd.py").write_text(CWD_FIRST)
    common = ["--good", b.shas[0], "--cache-dir", str(tmp_path / "c"), "--max-culprits", "1"]
    trap = f"{shlex.quote(sys.executable)} {b.path / 'bench.py'}"
    res = run(*common, "--cmd", trap, "--max-time-per-commit", "4", cwd=b.path)
    # the working tree's lib.py, the slow one, at every commit: nothing changes (exit 3), or
    # the few seconds allowed cannot tell (exit 5)
    assert res.returncode in (3, 5), res.stdout[-2000:] + res.stderr[-2000:]
    assert "note: Python puts the script's folder" in res.stderr
    assert "sys.path.insert(0, os.getcwd())" in res.stdout  # in the advice of exit 3 / 5
    fixed = f"{shlex.quote(sys.executable)} {b.path / 'bench_cwd.py'}"
    res = run(*common, "--cmd", fixed, cwd=b.path)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "Python puts the script's folder" not in res.stderr + res.stdout
    assert f"culprit {b.log()[2][:10]} confirmed" in res.stderr


def test_only_a_working_tree_file_that_no_endpoint_has_gets_the_hint(git_repo_factory):
    b = make_repo(git_repo_factory)
    (b.path / "bench.py").write_text(BENCH)
    repo = GitRepo(b.path)
    shas = (b.shas[0], b.shas[-1])
    py = sys.executable
    hint = working_tree_only_file(repo, [py, "bench.py"], shas, b.path)
    assert hint is not None and str((b.path / "bench.py").resolve()) in hint
    # committed files, options, missing files and absolute paths are the user's business
    assert working_tree_only_file(repo, [py, "lib.py"], shas, b.path) is None
    assert working_tree_only_file(repo, ["cat", "out.txt"], shas, b.path) is None
    assert working_tree_only_file(repo, [py, "--x=bench.py", "nope.py"], shas, b.path) is None
    assert working_tree_only_file(repo, [py, str(b.path / "bench.py")], shas, b.path) is None
    # found from where smbisect was started (a subdirectory of the repository) too
    sub = b.path / "sub"
    sub.mkdir()
    (sub / "b2.py").write_text(BENCH)
    assert working_tree_only_file(repo, [py, "b2.py"], shas, sub) is not None
    # the import trap only for a Python script inside the working tree
    assert script_imports_working_tree(repo, [py, str(b.path / "bench.py")]) is not None
    assert script_imports_working_tree(repo, ["sh", str(b.path / "bench.py")]) is None
    assert script_imports_working_tree(repo, [py, __file__]) is None  # outside the repository
