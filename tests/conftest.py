"""Shared fixtures: real, throw-away git repositories that do not depend on the user's git setup.

`git_repo_factory(commits)` builds a repository in a temporary directory from a list of
commits (each a message plus the files it writes or deletes) and returns a `GitRepoBuilder`,
which can keep adding commits, branches and --no-ff merges. Every git command runs with the
global and system config ignored, a fixed identity in the repository's own config and fixed,
increasing commit dates, so the same commits always get the same shas on any machine.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from threadpoolctl import threadpool_limits

BASE_EPOCH = 1_700_000_000  # 2023-11-14T22:13:20Z; commit i is dated BASE_EPOCH + 60 * i

# git run by the tests (not by the code under test) ignores ~/.gitconfig and /etc/gitconfig.
_ISOLATED_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
    "LC_ALL": "C",
}


@dataclass(frozen=True)
class Commit:
    """One commit to create: `files` maps a path to its new content, or to None to delete it."""

    message: str
    files: Mapping[str, str | None] = field(default_factory=dict)


CommitLike = Commit | tuple[str, Mapping[str, str | None]] | str


def _as_commit(c: CommitLike) -> Commit:
    if isinstance(c, Commit):
        return c
    if isinstance(c, str):
        return Commit(c)
    message, files = c
    return Commit(message, files)


class GitRepoBuilder:
    """A real git repository under construction, with helpers to run git in it."""

    def __init__(self, path: Path, branch: str = "main") -> None:
        self.path = path
        self.shas: list[str] = []  # the commits the factory was asked for, in order
        self._tick = 0
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "--quiet", f"--initial-branch={branch}")
        for key, value in (
            ("user.name", "Test Author"),
            ("user.email", "author@example.invalid"),
            ("commit.gpgsign", "false"),
            ("tag.gpgsign", "false"),
            ("core.autocrlf", "false"),
            ("core.hooksPath", os.devnull),
            ("gc.auto", "0"),
        ):
            self.git("config", key, value)

    # -- running git -------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(_ISOLATED_ENV)
        date = f"@{BASE_EPOCH + 60 * self._tick} +0000"
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = date
        return env

    def git(self, *args: str, check: bool = True) -> str:
        """Run git in the repository; return stdout without the trailing newline."""
        res = subprocess.run(
            ["git", *args],
            cwd=self.path,
            env=self.env(),
            capture_output=True,
            text=True,
        )
        if check and res.returncode != 0:
            raise AssertionError(
                f"git {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
            )
        return res.stdout.rstrip("\n")

    def rev(self, rev: str = "HEAD") -> str:
        return self.git("rev-parse", "--verify", f"{rev}^{{commit}}")

    # -- building history --------------------------------------------------------------------

    def commit(self, message: str, files: Mapping[str, str | None] | None = None) -> str:
        """Write/delete files, commit everything (empty commits allowed); return the sha."""
        for name, content in (files or {}).items():
            target = self.path / name
            if content is None:
                self.git("rm", "--quiet", "--ignore-unmatch", "--", name)
                target.unlink(missing_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content)
                self.git("add", "--", name)
        self.git("commit", "--quiet", "--allow-empty", "--no-verify", "-m", message)
        self._tick += 1
        return self.rev()

    def commits(self, commits: Iterable[CommitLike]) -> list[str]:
        return [self.commit(c.message, c.files) for c in map(_as_commit, commits)]

    def branch(self, name: str, start: str = "HEAD") -> None:
        """Create branch `name` at `start` and check it out."""
        self.git("checkout", "--quiet", "-b", name, start)

    def checkout(self, rev: str) -> None:
        self.git("checkout", "--quiet", rev)

    def merge(self, branch: str, message: str | None = None) -> str:
        """Merge `branch` into the current branch with a real merge commit (--no-ff)."""
        self.git(
            "merge", "--quiet", "--no-ff", "--no-edit", "-m", message or f"Merge {branch}", branch
        )
        self._tick += 1
        return self.rev()

    # -- inspecting --------------------------------------------------------------------------

    def log(self, *revs: str) -> list[str]:
        """Shas reachable from revs, oldest first in topological order."""
        out = self.git("rev-list", "--topo-order", "--reverse", *(revs or ("HEAD",)))
        return out.split()

    def snapshot(self) -> dict[str, str]:
        """Everything of the user's repository state that a bisect tool must leave alone."""
        gitdir = Path(self.git("rev-parse", "--absolute-git-dir"))
        state = {
            "status": self.git("status", "--porcelain=v1", "--ignored", "--untracked-files=all"),
            "head": self.git("rev-parse", "HEAD"),
            "symbolic_head": self.git("symbolic-ref", "--quiet", "HEAD", check=False),
            "refs": self.git("for-each-ref", "--format=%(refname) %(objectname)"),
            "stash": self.git("stash", "list", "--format=%gd %H %s"),
            "worktrees": self.git("worktree", "list", "--porcelain"),
            "index": self.git("ls-files", "--stage"),
            "diff": self.git("diff", "HEAD", "--binary"),
        }
        for name in ("BISECT_LOG", "BISECT_START", "BISECT_TERMS", "BISECT_NAMES", "BISECT_HEAD"):
            f = gitdir / name
            state[name] = f.read_text() if f.exists() else "<absent>"
        state["bisect_log"] = self.git("bisect", "log", check=False)
        return state


@pytest.fixture(scope="session", autouse=True)
def single_threaded_blas() -> Iterator[None]:
    """BLAS on one thread in the test process, as benchmarks/__init__.py pins it for the suite.

    A multi-threaded OpenBLAS that competes with other processes for a small machine's cores
    runs SmallMind's small matrices 5-10x slower (training 40 steps: 2 s alone, 27 s next to
    other work), and gains nothing at these sizes. Results are the same to the tolerances the
    tests use; child processes keep their own settings.
    """
    import numpy  # noqa: F401  (loads OpenBLAS, so there is a pool to limit)

    with threadpool_limits(limits=1):
        yield


@pytest.fixture
def git_repo_factory(tmp_path: Path) -> Callable[..., GitRepoBuilder]:
    """Build real git repositories: `git_repo_factory(commits, name="repo", branch="main")`.

    `commits` is a sequence of `Commit`, `(message, {path: content-or-None})` or plain message
    strings (an empty commit). The returned builder's `shas` lists the created commits in order.
    """
    counter = 0

    def make(
        commits: Sequence[CommitLike] = (), name: str | None = None, branch: str = "main"
    ) -> GitRepoBuilder:
        nonlocal counter
        counter += 1
        builder = GitRepoBuilder(tmp_path / (name or f"repo{counter}"), branch)
        builder.shas = builder.commits(commits)
        return builder

    return make
