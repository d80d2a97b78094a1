"""The git layer's safety rules, on real repositories."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from bisect_tool.git import GitRepo


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "proj"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "T")
    git(repo, "config", "user.email", "t@example.invalid")
    (repo / "a.txt").write_text("a\n")
    git(repo, "add", "a.txt")
    git(repo, "commit", "-qm", "a")
    return repo


def add_worktree(repo: Path, path: Path, lock_reason: str | None = None) -> None:
    lock = ["--lock", "--reason", lock_reason] if lock_reason else []
    git(repo, "worktree", "add", "-q", "--detach", *lock, str(path), "HEAD")


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_only_our_dead_worktrees_are_stale(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    host = socket.gethostname()
    dead = _dead_pid()
    ours = tmp_path / "smbisect-1" / "smbisect-wt-1"
    users = tmp_path / "elsewhere" / "smbisect-wt-2"  # the user's, named alike, not locked
    other_host = tmp_path / "smbisect-3" / "smbisect-wt-3"
    alive = tmp_path / "smbisect-4" / "smbisect-wt-4"
    add_worktree(repo, ours, f"smbisect pid {dead} host {host}")
    add_worktree(repo, users)
    add_worktree(repo, other_host, f"smbisect pid {dead} host another-machine")
    add_worktree(repo, alive, f"smbisect pid {subprocess.os.getpid()} host {host}")
    g = GitRepo(repo)
    assert g.stale_worktrees() == [ours]
    with g.private_worktree("HEAD") as wt:  # creating one cleans up the stale one first
        assert wt.path.is_dir()
    listed = git(repo, "worktree", "list", "--porcelain")
    assert str(ours) not in listed and not ours.parent.exists()
    for kept in (users, other_host, alive):
        assert str(kept) in listed and kept.is_dir()


def test_a_missing_user_worktree_is_not_pruned(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    unmounted = tmp_path / "usb" / "feature"
    add_worktree(repo, unmounted)
    subprocess.run(["rm", "-rf", str(unmounted)], check=True)
    with GitRepo(repo).private_worktree("HEAD"):
        pass
    assert str(unmounted) in git(repo, "worktree", "list", "--porcelain")


def test_a_skipped_commit_can_be_judged_later(git_repo_factory) -> None:
    # what the session's second chance relies on: git takes a verdict on a commit it was told
    # to skip, and then names the culprit (marked good) or lists only it (marked bad)
    repo = git_repo_factory([f"c{i}" for i in range(8)])
    s = repo.shas
    for second, expect in (("good", (s[6], ())), ("bad", (None, (s[5],)))):
        with GitRepo(repo.path).private_worktree(s[7]) as wt:
            wt.bisect_start(s[7], s[0])
            wt.mark("skip", s[5])
            wt.mark("bad", s[6])
            step = wt.mark("good", s[4])
            assert step.done and not step.culprit and set(step.candidates) == {s[5], s[6]}
            step = wt.mark(second, s[5])
            assert step.done and (step.culprit, tuple(step.candidates)) == expect
            assert f"git bisect {second} {s[5]}" in wt.bisect_log()
            wt.bisect_reset()


def test_the_git_directory_is_the_repository_s_own_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # git prints ".git" relative to the repository; resolved against this process's directory
    # it named another repository (the cache, the builds' and the Dask workers' source)
    repo = _repo(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert GitRepo(repo).common_dir() == (repo / ".git").resolve()
    wt = tmp_path / "wt"
    add_worktree(repo, wt)
    assert GitRepo(wt).common_dir() == (repo / ".git").resolve()


def test_uncommitted_changes_lists_tracked_files_only(git_repo_factory):
    b = git_repo_factory([("start", {"a.py": "1\n", "b.py": "2\n", "c d.py": "3\n"})])
    repo = GitRepo(b.path)
    assert repo.uncommitted_changes() == []
    (b.path / "a.py").write_text("changed\n")
    (b.path / "c d.py").write_text("changed\n")
    (b.path / "new.py").write_text("untracked\n")
    b.git("add", "c d.py")  # staged counts too
    assert sorted(repo.uncommitted_changes()) == ["a.py", "c d.py"]
