"""Repositories as users and CI really have them (issue 12), bisected for real through the CLI.

Legacy commit encodings, shallow and partial clones, the user's hooks, submodules, Git LFS,
GIT_DIR/GIT_WORK_TREE set as inside a git hook, and a report format that cannot be written.
Every error must be one line with a non-zero exit, and nothing may be left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from conftest import GitRepoBuilder

from bisect_tool.git import GitRepo, clean_text

BENCH = """import pathlib, random
p = pathlib.Path({path!r})
cost = float(p.read_text()) if p.is_file() else 1.0
print(f"took {{cost * random.uniform(0.98, 1.02):.5f}}")
"""

Factory = Callable[..., GitRepoBuilder]

# smbisect itself runs with the user's global and system git config ignored, like the fixtures
ISOLATED = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}


def run(args: list[str], cwd: Path, env: Mapping[str, str] | None = None) -> str:
    res = subprocess.run(
        args, cwd=cwd, env={**os.environ, **ISOLATED, **(env or {})}, capture_output=True
    )
    assert res.returncode == 0, f"{args} failed: {res.stderr.decode(errors='replace')}"
    return res.stdout.decode(errors="replace").strip()


def history(
    factory: Factory, costs: list[float], path: str = "cost.txt", name: str | None = None
) -> GitRepoBuilder:
    """One commit per cost (commit 0 is the good baseline) with a bench.py that prints it."""
    files: list[tuple[str, dict[str, str | None]]] = []
    for i, cost in enumerate(costs):
        change: dict[str, str | None] = {path: f"{cost}\n", "log.txt": f"change {i}\n"}
        if i == 0:
            change["bench.py"] = BENCH.format(path=path)
        files.append((f"change {i}", change))
    return factory(files, name=name)


def smbisect(
    repo: Path,
    tmp_path: Path,
    good: str,
    *extra: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """A --cmd bisect on bench.py with a private cache and a private TMPDIR."""
    scratch = tmp_path / "tmpdir"
    scratch.mkdir(exist_ok=True)
    args = [sys.executable, "-m", "bisect_tool", "--good", good]
    args += ["--cmd", f"{sys.executable} bench.py", "--metric", "stdout"]
    args += ["--cache-dir", str(tmp_path / "cache"), *extra]
    full_env = {**os.environ, **ISOLATED, "TMPDIR": str(scratch), **(env or {})}
    return subprocess.run(
        args,
        cwd=cwd or repo,
        env=full_env,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def one_line_error(res: subprocess.CompletedProcess[str], code: int) -> str:
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("smbisect:")]
    assert len(errors) == 1 and lines[-1] == errors[0], res.stderr  # after progress lines
    assert errors[0].startswith("smbisect: error: "), res.stderr
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr
    return errors[0]


def nothing_left(repo: Path, tmp_path: Path) -> None:
    """No private worktree, no bisect state, no temporary directory is left behind."""
    listed = run(["git", "worktree", "list", "--porcelain"], repo)
    assert listed.count("worktree ") == 1, listed
    assert run(["git", "for-each-ref", "refs/bisect"], repo) == ""
    gitdir = Path(run(["git", "rev-parse", "--absolute-git-dir"], repo))
    assert not (gitdir / "BISECT_LOG").exists()
    assert not (gitdir / "worktrees").exists() or not any((gitdir / "worktrees").iterdir())
    scratch = tmp_path / "tmpdir"
    assert not scratch.exists() or not any(scratch.iterdir()), list(scratch.iterdir())


def culprit_of(json_path: Path) -> str:
    data = json.loads(json_path.read_text(encoding="utf-8"))
    return data["culprits"][0]["sha"]


# -- 1. commit metadata in a legacy encoding ---------------------------------------------------


def latin1(text: str) -> str:
    """text as ISO-8859-1 bytes, in the str form subprocess passes through unchanged."""
    return text.encode("latin-1").decode("utf-8", "surrogateescape")


def test_latin1_commit_is_decoded_and_every_report_is_written(
    git_repo_factory: Factory, tmp_path: Path
) -> None:
    repo = history(git_repo_factory, [1.0] * 4)
    (tmp_path / "msg").write_bytes("café naïve blocking\n\nlonger body\n".encode("latin-1"))
    (repo.path / "cost.txt").write_text("1.6\n")
    repo.git("add", "cost.txt")
    repo.git(
        "-c",
        "i18n.commitEncoding=ISO-8859-1",
        "commit",
        "--quiet",
        "--author",
        latin1("René Müller <rene@example.invalid>"),
        "-F",
        str(tmp_path / "msg"),
    )
    culprit = repo.rev()
    raw = subprocess.run(
        ["git", "cat-file", "commit", culprit], cwd=repo.path, capture_output=True, check=True
    ).stdout
    assert b"\nencoding ISO-8859-1\n" in raw and "René".encode("latin-1") in raw
    repo.commits([(f"after {i}", {"log.txt": f"after {i}\n"}) for i in range(3)])

    out = {kind: tmp_path / f"r.{kind}" for kind in ("json", "md", "html")}
    res = smbisect(
        repo.path,
        tmp_path,
        repo.shas[0],
        *("--json", str(out["json"]), "--report", str(out["md"]), "--html", str(out["html"])),
    )
    assert res.returncode == 0, res.stderr
    data = json.loads(out["json"].read_text(encoding="utf-8"))
    commit = data["culprits"][0]["commit"]
    assert commit["sha"] == culprit
    assert commit["author"] == "René Müller <rene@example.invalid>"
    assert commit["subject"] == "café naïve blocking"
    for kind in ("md", "html"):
        text = out[kind].read_text(encoding="utf-8")
        assert "René Müller" in text and "café naïve blocking" in text, kind
    assert "René Müller" in res.stdout
    nothing_left(repo.path, tmp_path)


def test_undeclared_legacy_bytes_become_replacement_characters(git_repo_factory: Factory) -> None:
    repo = git_repo_factory(["first"])
    # no encoding header: git cannot know these bytes are latin-1 (git commit would have fixed
    # them up, so the object is written by hand, as old tools did)
    tree, parent = repo.git("rev-parse", "HEAD^{tree}"), repo.rev()
    who = b"Test Author <author@example.invalid> 1700000000 +0000"
    body = b"tree %s\nparent %s\nauthor %s\ncommitter %s\n\nd\xe9j\xe0 vu\n" % (
        tree.encode(),
        parent.encode(),
        who,
        who,
    )
    sha = (
        subprocess.run(
            ["git", "hash-object", "-t", "commit", "-w", "--stdin"],
            cwd=repo.path,
            input=body,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    info = GitRepo(repo.path).info(sha)
    assert info.subject == "d\ufffdj\ufffd vu"
    assert info.parents == (parent,)
    assert clean_text("caf\udce9") == "caf\ufffd" and clean_text("a\ud800") == "a\ufffd"


# -- 2. shallow clones ---------------------------------------------------------------------------


@pytest.fixture
def origin(git_repo_factory: Factory) -> GitRepoBuilder:
    repo = history(git_repo_factory, [1.0] * 5 + [1.6] * 3, name="origin")
    repo.git("config", "uploadpack.allowFilter", "true")
    return repo


def clone(origin: GitRepoBuilder, dest: Path, *options: str) -> Path:
    run(["git", "clone", "--quiet", *options, f"file://{origin.path}", str(dest)], dest.parent)
    return dest


@pytest.mark.parametrize(
    ("depth", "good"), [(1, "HEAD~1"), (1, "ORIGIN0"), (3, "HEAD~2"), (3, "HEAD~5")]
)
def test_shallow_clone_beyond_or_at_the_cut_off_is_one_usage_error(
    origin: GitRepoBuilder, tmp_path: Path, depth: int, good: str
) -> None:
    repo = clone(origin, tmp_path / f"depth{depth}", "--depth", str(depth))
    assert run(["git", "rev-parse", "--is-shallow-repository"], repo) == "true"
    good = origin.shas[0] if good == "ORIGIN0" else good
    res = smbisect(repo, tmp_path, good)
    line = one_line_error(res, 2)
    assert "shallow clone" in line
    assert "git fetch --unshallow" in line and "git fetch --deepen N" in line
    nothing_left(repo, tmp_path)


def test_shallow_clone_with_the_range_inside_its_history_bisects(
    origin: GitRepoBuilder, tmp_path: Path
) -> None:
    repo = clone(origin, tmp_path / "depth6", "--depth", "6")
    res = smbisect(repo, tmp_path, "HEAD~4", "--json", str(tmp_path / "r.json"))
    assert res.returncode == 0, res.stderr
    assert culprit_of(tmp_path / "r.json") == origin.shas[5]
    nothing_left(repo, tmp_path)


# -- 3. hooks ------------------------------------------------------------------------------------


def test_user_hooks_run_only_with_run_hooks(git_repo_factory: Factory, tmp_path: Path) -> None:
    repo = history(git_repo_factory, [1.0] * 3 + [1.6] * 3)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    marker = tmp_path / "hook-ran.txt"
    for name in ("post-checkout", "reference-transaction"):
        hook = hooks / name
        hook.write_text(f'#!/bin/sh\necho "{name} $PWD" >> "{marker}"\n')
        hook.chmod(0o755)
    repo.git("config", "core.hooksPath", str(hooks))
    before = repo.snapshot()

    res = smbisect(repo.path, tmp_path, repo.shas[0], "--json", str(tmp_path / "r.json"))
    assert res.returncode == 0, res.stderr
    assert not marker.exists(), marker.read_text()
    assert culprit_of(tmp_path / "r.json") == repo.shas[3]

    res = smbisect(repo.path, tmp_path, repo.shas[0], "--run-hooks")
    assert res.returncode == 0, res.stderr
    assert "post-checkout" in marker.read_text()
    assert repo.snapshot() == before
    nothing_left(repo.path, tmp_path)


# -- 4. submodules and Git LFS -------------------------------------------------------------------


@pytest.fixture
def superproject(git_repo_factory: Factory) -> tuple[GitRepoBuilder, str]:
    """A superproject whose submodule `sub` carries the slowdown: change 4 bumps it."""
    sub = git_repo_factory([("fast", {"cost.txt": "1.0\n"}), ("slow", {"cost.txt": "1.6\n"})])
    sup = git_repo_factory([("bench", {"bench.py": BENCH.format(path="sub/cost.txt")})])
    sup.git("-c", "protocol.file.allow=always", "submodule", "add", "--quiet", str(sub.path), "sub")
    run(["git", "checkout", "--quiet", sub.shas[0]], sup.path / "sub")
    sup.git("add", "sub")
    sup.shas = [sup.shas[0], sup.commit("add the submodule at its fast commit")]
    sup.shas += sup.commits([(f"change {i}", {"log.txt": f"{i}\n"}) for i in range(2, 4)])
    run(["git", "checkout", "--quiet", sub.shas[1]], sup.path / "sub")
    sup.git("add", "sub")
    culprit = sup.commit("bump the submodule")
    sup.shas.append(culprit)
    sup.shas += sup.commits([(f"change {i}", {"log.txt": f"{i}\n"}) for i in range(5, 8)])
    return sup, culprit


def test_submodule_commit_carrying_the_slowdown_is_found(
    superproject: tuple[GitRepoBuilder, str], tmp_path: Path
) -> None:
    sup, culprit = superproject
    before = sup.snapshot()
    res = smbisect(sup.path, tmp_path, sup.shas[1], "--json", str(tmp_path / "r.json"))
    assert res.returncode == 0, res.stderr
    assert culprit_of(tmp_path / "r.json") == culprit
    assert sup.snapshot() == before
    nothing_left(sup.path, tmp_path)


def test_submodules_of_a_fresh_clone_leave_its_config_alone(
    superproject: tuple[GitRepoBuilder, str], tmp_path: Path
) -> None:
    sup, culprit = superproject
    repo = tmp_path / "fresh"
    run(["git", "clone", "--quiet", str(sup.path), str(repo)], tmp_path)  # no --recurse
    config = (repo / ".git" / "config").read_text()
    res = smbisect(repo, tmp_path, sup.shas[1], "--json", str(tmp_path / "r.json"))
    assert res.returncode == 0, res.stderr
    assert culprit_of(tmp_path / "r.json") == culprit
    assert (repo / ".git" / "config").read_text() == config
    assert not (repo / ".git" / "modules").exists()
    nothing_left(repo, tmp_path)

    # without submodules every step sees an empty sub/: nothing regressed (20 runs at most
    # to call good and bad unchanged, see test_cli's test_regression_that_does_not_reproduce)
    res = smbisect(
        repo, tmp_path, sup.shas[1], "--no-submodules", "--no-cache", "--max-runs-per-commit", "20"
    )
    assert res.returncode == 3, res.stderr
    nothing_left(repo, tmp_path)


def lfs_history(factory: Factory) -> GitRepoBuilder:
    attributes = "*.bin filter=lfs diff=lfs merge=lfs -text\n"
    repo = factory([("track", {".gitattributes": attributes})])
    return repo


def test_lfs_repository_without_git_lfs_is_one_error(
    git_repo_factory: Factory, tmp_path: Path
) -> None:
    repo = git_repo_factory(
        [("track", {".gitattributes": "*.bin filter=lfs -text\n", "bench.py": "print(1)\n"})]
        + [(f"c{i}", {"data.bin": f"{i}\n"}) for i in range(4)]
    )
    only_git = tmp_path / "bin"
    only_git.mkdir()
    git = shutil.which("git")
    assert git is not None
    (only_git / "git").symlink_to(git)
    res = smbisect(
        repo.path,
        tmp_path,
        repo.shas[0],
        env={"PATH": str(only_git), "GIT_EXEC_PATH": run(["git", "--exec-path"], repo.path)},
    )
    line = one_line_error(res, 1)
    assert "Git LFS" in line and "git-lfs is not installed" in line
    nothing_left(repo.path, tmp_path)


def test_lfs_files_are_smudged_in_the_worktree(git_repo_factory: Factory, tmp_path: Path) -> None:
    if subprocess.run(["git", "lfs", "version"], capture_output=True).returncode != 0:
        pytest.skip("git-lfs is not installed (apt-get install -y git-lfs)")
    repo = git_repo_factory([("bench", {"bench.py": BENCH.format(path="data.bin")})])
    repo.git("lfs", "install", "--local", "--skip-repo")
    repo.git("lfs", "track", "*.bin")
    repo.git("add", ".gitattributes")
    repo.shas.append(repo.commit("track *.bin in LFS"))
    costs = [1.0] * 3 + [1.6] * 3
    repo.shas += repo.commits(
        [(f"cost {c} #{i}", {"data.bin": f"{c}\n"}) for i, c in enumerate(costs)]
    )
    blob = repo.git("cat-file", "-p", f"{repo.shas[-1]}:data.bin")
    assert blob.startswith("version https://git-lfs")
    # git-lfs is installed but not set up in any config smbisect sees: smbisect sets the filter
    repo.git("config", "--local", "--remove-section", "filter.lfs")
    res = smbisect(repo.path, tmp_path, repo.shas[1], "--json", str(tmp_path / "r.json"))
    assert res.returncode == 0, res.stderr
    assert culprit_of(tmp_path / "r.json") == repo.shas[5]
    nothing_left(repo.path, tmp_path)


# -- 5. partial clones, GIT_DIR and GIT_WORK_TREE ------------------------------------------------


def test_partial_clone_bisects_while_its_remote_is_there(
    origin: GitRepoBuilder, tmp_path: Path
) -> None:
    repo = clone(origin, tmp_path / "partial", "--filter=blob:none")
    assert run(["git", "config", "remote.origin.promisor"], repo) == "true"
    res = smbisect(repo, tmp_path, origin.shas[0], "--json", str(tmp_path / "r.json"))
    assert res.returncode == 0, res.stderr
    assert culprit_of(tmp_path / "r.json") == origin.shas[5]
    nothing_left(repo, tmp_path)


def test_partial_clone_without_its_remote_is_one_error(
    origin: GitRepoBuilder, tmp_path: Path
) -> None:
    repo = clone(origin, tmp_path / "partial", "--filter=blob:none")
    origin.path.rename(origin.path.with_name("gone"))
    res = smbisect(repo, tmp_path, origin.shas[0])
    line = one_line_error(res, 1)
    assert "partial clone" in line
    nothing_left(repo, tmp_path)


def test_git_dir_and_work_tree_as_inside_a_hook(git_repo_factory: Factory, tmp_path: Path) -> None:
    repo = history(git_repo_factory, [1.0] * 4 + [1.6] * 4)
    (repo.path / "log.txt").write_text("work in progress\n")
    (repo.path / "untracked.txt").write_text("mine\n")
    before = repo.snapshot()
    hook_env = {"GIT_DIR": ".git", "GIT_WORK_TREE": ".", "GIT_INDEX_FILE": ".git/index"}
    res = smbisect(
        repo.path, tmp_path, repo.shas[0], "--json", str(tmp_path / "r.json"), env=hook_env
    )
    assert res.returncode == 0, res.stderr
    assert culprit_of(tmp_path / "r.json") == repo.shas[4]
    assert repo.snapshot() == before
    nothing_left(repo.path, tmp_path)


def test_git_dir_of_another_repository_is_one_usage_error(
    git_repo_factory: Factory, tmp_path: Path
) -> None:
    repo = history(git_repo_factory, [1.0] * 2 + [1.6] * 2)
    other = git_repo_factory(["unrelated"])
    before = repo.snapshot()
    res = smbisect(repo.path, tmp_path, repo.shas[0], env={"GIT_DIR": str(other.path / ".git")})
    line = one_line_error(res, 2)
    assert "GIT_DIR" in line
    assert repo.snapshot() == before
    nothing_left(repo.path, tmp_path)
    nothing_left(other.path, tmp_path)


# -- 6. a report format that cannot be written ---------------------------------------------------


def test_one_unwritable_format_does_not_cost_the_others(
    git_repo_factory: Factory, tmp_path: Path
) -> None:
    repo = history(git_repo_factory, [1.0] * 3 + [1.6] * 3)
    blocked = tmp_path / "report.md"
    blocked.mkdir()  # a directory where the Markdown file should go
    out_json, out_html = tmp_path / "r.json", tmp_path / "r.html"
    res = smbisect(
        repo.path,
        tmp_path,
        repo.shas[0],
        *("--json", str(out_json), "--report", str(blocked), "--html", str(out_html)),
    )
    line = one_line_error(res, 1)
    assert "Markdown report" in line and str(blocked) in line
    assert culprit_of(out_json) == repo.shas[3]
    assert repo.shas[3] in out_html.read_text(encoding="utf-8")
    nothing_left(repo.path, tmp_path)


def test_the_json_alone_does_not_import_matplotlib(tmp_path: Path) -> None:
    """Writing only the JSON skips about a second of importing the plotting code."""
    probe = (
        "import sys\n"
        "from bisect_tool import cli, outputs\n"
        "assert not [m for m in sys.modules if m.startswith('matplotlib')], 'imported'\n"
        "from bisect_tool import html_report\n"
        "assert 'matplotlib' in sys.modules\n"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
