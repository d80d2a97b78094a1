"""The only module that talks to git: revisions, commit facts, a private worktree, git bisect.

Bisect runs inside a dedicated linked worktree. Its HEAD, index and refs/bisect/* are private to
that worktree (git keeps them per worktree), so the user's checkout, index, stash and any bisect of
their own are never touched. The worktree is locked with our pid as the reason, which lets a later
run find worktrees whose owner died and remove them.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import git as gitpython
from git.exc import GitCommandError, InvalidGitRepositoryError, NoSuchPathError

from .errors import EnvironmentProblem, UsageError

WORKTREE_PREFIX = "smbisect-wt-"
LOCK_REASON_PREFIX = "smbisect pid "
_LOCK_REASON = re.compile(r"^smbisect pid (\d+) host (\S+)$")

_FIRST_BAD = re.compile(r"^([0-9a-f]{40,64}) is the first bad commit", re.MULTILINE)
_SKIPPED_ONLY = "There are only 'skip'ped commits left to test."


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    author: str
    date: str
    subject: str
    files: tuple[str, ...] = field(default_factory=tuple)
    parents: tuple[str, ...] = field(default_factory=tuple)

    @property
    def short(self) -> str:
        return self.sha[:10]


@dataclass(frozen=True)
class BisectStep:
    """What git bisect said after a verdict: the next commit to test, or the end."""

    next_commit: str | None = None
    culprit: str | None = None
    candidates: tuple[str, ...] = ()

    @property
    def done(self) -> bool:
        return self.next_commit is None


class GitRepo:
    """A user's repository, opened read-only except for worktree bookkeeping in its .git."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        try:
            self.repo = gitpython.Repo(path, search_parent_directories=True)
        except (InvalidGitRepositoryError, NoSuchPathError):
            raise UsageError(f"not a git repository: {path}") from None
        except gitpython.GitCommandNotFound:  # pragma: no cover - git missing on the machine
            raise EnvironmentProblem("git is not installed or not on PATH") from None
        if self.repo.bare:
            raise UsageError(f"bare repositories are not supported: {path}")
        self.root = Path(self.repo.working_tree_dir or path).resolve()
        _plain_git(self.repo)

    def resolve(self, rev: str, what: str) -> str:
        """Full sha of a commit-ish, or a one-line usage error naming the option."""
        if not rev or rev.startswith("-"):
            raise UsageError(f"{what} revision {rev!r} is not a valid revision")
        try:
            return self.repo.git.rev_parse(
                "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"
            )
        except GitCommandError:
            raise UsageError(
                f"{what} revision {rev!r} does not name a commit in {self.root}"
            ) from None

    def has_ref(self, ref: str) -> bool:
        try:
            self.repo.git.rev_parse("--verify", "--quiet", ref)
        except GitCommandError:
            return False
        return True

    def is_ancestor(self, older: str, newer: str) -> bool:
        try:
            self.repo.git.merge_base("--is-ancestor", older, newer)
        except GitCommandError as exc:
            if exc.status == 1:
                return False
            raise EnvironmentProblem(f"git merge-base failed: {_one_line(exc)}") from None
        return True

    def commits_between(self, good: str, bad: str) -> list[str]:
        """Commits in good..bad, oldest first in topological order (what bisect chooses among)."""
        out = self.repo.git.rev_list("--topo-order", "--reverse", f"{good}..{bad}")
        return [line for line in out.splitlines() if line]

    def info(self, sha: str) -> CommitInfo:
        c = self.repo.commit(sha)
        files = tuple(sorted(str(p) for p in c.stats.files))
        return CommitInfo(
            sha=c.hexsha,
            author=f"{c.author.name} <{c.author.email}>",
            date=c.committed_datetime.isoformat(),
            subject=c.summary if isinstance(c.summary, str) else c.summary.decode(),
            files=files,
            parents=tuple(p.hexsha for p in c.parents),
        )

    def read_file_at(self, sha: str, path: str) -> str | None:
        try:
            return self.repo.git.show(f"{sha}:{path}")
        except GitCommandError:
            return None

    def export_tree(self, sha: str, subdir: str, dest: Path) -> bool:
        """Copy the files of `subdir` at `sha` into `dest` (without touching any checkout)."""
        try:
            listing = self.repo.git.ls_tree("-r", "--name-only", "-z", sha, "--", subdir)
        except GitCommandError:
            return False
        names = [n for n in listing.split("\0") if n]
        if not names:
            return False
        for name in names:
            blob = self.repo.commit(sha).tree / name
            target = dest / Path(name).relative_to(subdir)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(blob.data_stream.read())
        return True

    def export_commit(self, sha: str, dest: Path) -> None:
        """The whole tree of a commit, as files in dest (git archive; no checkout touched)."""
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile() as tar:
            try:
                self.repo.git.archive(sha, output_stream=tar)
            except GitCommandError as exc:
                raise EnvironmentProblem(
                    f"git archive {sha[:10]} failed: {_one_line(exc)}"
                ) from None
            tar.seek(0)
            with tarfile.open(fileobj=tar) as archive:
                archive.extractall(dest, filter="data")

    def common_dir(self) -> Path:
        return Path(self.repo.git.rev_parse("--git-common-dir")).resolve()

    # -- worktree lifecycle ------------------------------------------------------------------

    def stale_worktrees(self) -> list[Path]:
        """Our worktrees whose owning process no longer runs (left by a killed smbisect).

        Only linked worktrees locked by smbisect on this host count: the lock reason names
        the pid and host, so a live run elsewhere, or anything of the user's, is never taken.
        """
        stale = []
        for path, reason in self._linked_worktree_locks():
            found = _LOCK_REASON.match(reason)
            if not found or not path.name.startswith(WORKTREE_PREFIX):
                continue
            pid, host = int(found.group(1)), found.group(2)
            if host == socket.gethostname() and not _pid_alive(pid):
                stale.append(path)
        return stale

    def _linked_worktree_locks(self) -> Iterator[tuple[Path, str]]:
        out = self.repo.git.worktree("list", "--porcelain")
        entries = out.split("\n\n")
        for entry in entries[1:]:  # the first entry is the main worktree
            path: Path | None = None
            reason = ""
            for line in entry.splitlines():
                if line.startswith("worktree "):
                    path = Path(line[len("worktree ") :])
                elif line.startswith("locked"):
                    reason = line[len("locked") :].strip()
            if path is not None:
                yield path, reason

    def remove_worktree(self, path: Path) -> None:
        """Remove one of our worktrees and its bisect state, even half-created or deleted."""
        for args in (("unlock", str(path)), ("remove", "--force", "--force", str(path))):
            with suppress(GitCommandError):
                self.repo.git.worktree(*args)
        parent = path.parent
        if parent.name.startswith("smbisect-") and path.name.startswith(WORKTREE_PREFIX):
            shutil.rmtree(parent, ignore_errors=True)

    @contextmanager
    def private_worktree(self, start: str) -> Iterator[Worktree]:
        """A detached worktree at `start`, locked with our pid; always removed on exit."""
        for stale in self.stale_worktrees():
            self.remove_worktree(stale)
        parent = Path(tempfile.mkdtemp(prefix="smbisect-"))
        path = parent / f"{WORKTREE_PREFIX}{os.getpid()}"
        reason = f"{LOCK_REASON_PREFIX}{os.getpid()} host {socket.gethostname()}"
        try:
            try:
                self.repo.git.worktree(
                    "add", "--detach", "--lock", "--reason", reason, str(path), start
                )
            except GitCommandError as exc:
                raise EnvironmentProblem(f"could not create a worktree: {_one_line(exc)}") from None
            wt = Worktree(path)
            try:
                yield wt
            finally:
                wt.bisect_reset()
        finally:
            self.remove_worktree(path)
            shutil.rmtree(parent, ignore_errors=True)


class Worktree:
    """A linked worktree where git bisect checks out each commit under test."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.repo = gitpython.Repo(path)
        _plain_git(self.repo)
        self._bisecting = False
        self._last_marked: str | None = None

    def head(self) -> str:
        return self.repo.git.rev_parse("HEAD")

    def checkout(self, sha: str) -> None:
        self.repo.git.checkout("--detach", "--force", "--quiet", sha)
        self.repo.git.clean("-fdxq")

    def bisect_start(self, bad: str, good: str) -> BisectStep:
        self.bisect_reset()
        try:
            out = self.repo.git.bisect("start", "--no-checkout", bad, good)
        except GitCommandError as exc:
            raise EnvironmentProblem(f"git bisect start failed: {_one_line(exc)}") from None
        self._bisecting = True
        return self._after(out)

    def mark(self, verdict: str, sha: str) -> BisectStep:
        """Tell git bisect `good`, `bad` or `skip` for sha; return what comes next."""
        self._last_marked = sha
        try:
            out = self.repo.git.bisect(verdict, sha)
        except GitCommandError as exc:
            # `git bisect skip` exits 2 when only skipped commits are left; that is an answer.
            text = f"{exc.stdout or ''}\n{exc.stderr or ''}"
            if _SKIPPED_ONLY in text:
                return _parse_skipped(text)
            raise EnvironmentProblem(f"git bisect {verdict} failed: {_one_line(exc)}") from None
        return self._after(out)

    def _after(self, out: str) -> BisectStep:
        found = _FIRST_BAD.search(out)
        if found:
            return BisectStep(culprit=found.group(1))
        if _SKIPPED_ONLY in out:
            return _parse_skipped(out)
        nxt = self.repo.git.rev_parse("BISECT_HEAD")
        if nxt == self._last_marked:
            raise EnvironmentProblem(f"git bisect did not move on from {nxt[:10]}: {out[-200:]}")
        return BisectStep(next_commit=nxt)

    def bisect_log(self) -> str:
        try:
            return self.repo.git.bisect("log")
        except GitCommandError:
            return ""

    def bisect_reset(self) -> None:
        if not self._bisecting:
            return
        with suppress(GitCommandError):
            self.repo.git.bisect("reset", "--quiet")
        self._bisecting = False


def _parse_skipped(text: str) -> BisectStep:
    tail = text.split("The first bad commit could be any of:", 1)[-1]
    shas = tuple(dict.fromkeys(re.findall(r"\b[0-9a-f]{40,64}\b", tail)))
    return BisectStep(candidates=shas)


def _plain_git(repo: gitpython.Repo) -> None:
    """Parse git's messages in English whatever the user's locale."""
    repo.git.update_environment(LC_ALL="C", LANGUAGE="C")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _one_line(exc: GitCommandError) -> str:
    text = (exc.stderr or exc.stdout or str(exc)).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1].removeprefix("stderr: ").strip("'") if lines else str(exc.status)
