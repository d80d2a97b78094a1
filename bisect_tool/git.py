"""The only module that talks to git: revisions, commit facts, a private worktree, git bisect.

Bisect runs inside a dedicated linked worktree. Its HEAD, index and refs/bisect/* are private to
that worktree (git keeps them per worktree), so the user's checkout, index, stash and any bisect of
their own are never touched. The worktree is locked with our pid as the reason, which lets a later
run find worktrees whose owner died and remove them.

Repositories come in many shapes, and each is handled here:

- Commit metadata in a legacy encoding (an `encoding` header, i18n.commitEncoding) is re-encoded
  to UTF-8 by git itself; bytes that are not valid UTF-8 become replacement characters.
- Shallow clones: a range that reaches the clone's cut-off, or a revision beyond it, is a usage
  error that names `git fetch --unshallow` / `git fetch --deepen N`.
- The user's hooks (and fsmonitor) never run for the private worktree unless asked for.
- Submodules are checked out at the recorded commits at every step, without writing to the
  user's config; Git LFS files are smudged, and a missing git-lfs is one clear error.
- Partial clones fetch missing blobs on demand; when that fails, the error says so.
- GIT_DIR, GIT_WORK_TREE, GIT_INDEX_FILE and friends (set inside git hooks) are checked against
  the repository and removed from this process's environment, so that no git command of ours,
  and no benchmark, writes into the user's checkout or index through them.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import socket
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import git as gitpython
from git.exc import GitCommandError, InvalidGitRepositoryError, NoSuchPathError

from .errors import EnvironmentProblem, UsageError
from .locks import file_lock

WORKTREE_PREFIX = "smbisect-wt-"
LOCK_REASON_PREFIX = "smbisect pid "
_LOCK_REASON = re.compile(r"^smbisect pid (\d+) host (\S+)$")

# Variables that redirect git away from the repository of the current directory. git sets some of
# them for its hooks; a git command run with them would read or write the user's checkout, index
# or object store instead of the private worktree's.
_REPO_ENV_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_COMMON_DIR",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_QUARANTINE_PATH",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
)
_FETCH_MORE = "run `git fetch --unshallow` (or `git fetch --deepen N` for N more commits) first"
_LFS_FILTER = (
    "filter.lfs.smudge=git-lfs smudge -- %f",
    "filter.lfs.process=git-lfs filter-process",
    "filter.lfs.required=true",
)

_SURROGATES = re.compile("[\ud800-\udfff]")
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
    """A user's repository, opened read-only except for worktree bookkeeping in its .git.

    `run_hooks` lets the user's git hooks run for the private worktree (off by default);
    `submodules` checks out the recorded submodule commits at every step (on by default).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, run_hooks: bool = False, submodules: bool = True
    ) -> None:
        _adopt_git_environment(path)
        try:
            self.repo = gitpython.Repo(path, search_parent_directories=True)
        except (InvalidGitRepositoryError, NoSuchPathError):
            raise UsageError(f"not a git repository: {path}") from None
        except gitpython.GitCommandNotFound:  # pragma: no cover - git missing on the machine
            raise EnvironmentProblem("git is not installed or not on PATH") from None
        if self.repo.bare:
            raise UsageError(f"bare repositories are not supported: {path}")
        self.root = Path(self.repo.working_tree_dir or path).resolve()
        self.run_hooks = run_hooks
        self.submodules = submodules
        self.config = _private_config(run_hooks)
        _plain_git(self.repo, self.config)
        self._shallow: frozenset[str] | None = None
        self._lfs: bool | None = None

    # -- revisions ---------------------------------------------------------------------------

    def resolve(self, rev: str, what: str) -> str:
        """Full sha of a commit-ish, or a one-line usage error naming the option."""
        if not rev or rev.startswith("-"):
            raise UsageError(f"{what} revision {rev!r} is not a valid revision")
        try:
            return self.repo.git.rev_parse(
                "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"
            )
        except GitCommandError:
            if self.shallow_boundary():
                raise UsageError(
                    f"{what} revision {rev!r} does not name a commit in {self.root}, which is a "
                    f"shallow clone: if the commit is older than its history, {_FETCH_MORE}"
                ) from None
            raise UsageError(
                f"{what} revision {rev!r} does not name a commit in {self.root}"
            ) from None

    def uncommitted_changes(self) -> list[str]:
        """Tracked files whose working-tree or staged content differs from HEAD (untracked
        files are not listed): what a bisect of commits does not measure."""
        try:
            out = self.repo.git.status("--porcelain", "--untracked-files=no", "-z")
        except GitCommandError:
            return []
        return [entry[3:] for entry in out.split("\0") if len(entry) > 3 and entry[2] == " "]

    def has_ref(self, ref: str) -> bool:
        try:
            self.repo.git.rev_parse("--verify", "--quiet", ref)
        except GitCommandError:
            return False
        return True

    def is_ancestor(self, older: str, newer: str) -> bool:
        """Is older an ancestor of newer? In a shallow clone whose history below newer is cut
        off, a "no" may only mean the history is missing: that is a usage error."""
        if self._merge_base_is_ancestor(older, newer):
            return True
        if self._history_cut_off(newer) and not self._merge_base_is_ancestor(newer, older):
            raise UsageError(
                f"cannot tell whether {older[:10]} is an ancestor of {newer[:10]}: {self.root} "
                f"is a shallow clone whose history is cut off; {_FETCH_MORE}"
            )
        return False

    def _merge_base_is_ancestor(self, older: str, newer: str) -> bool:
        try:
            self.repo.git.merge_base("--is-ancestor", older, newer)
        except GitCommandError as exc:
            if exc.status == 1:
                return False
            raise EnvironmentProblem(f"git merge-base failed: {_one_line(exc)}") from None
        return True

    def merges_between(self, good: str, bad: str) -> list[tuple[str, tuple[str, ...]]]:
        """The merge commits in good..bad, each with its parents."""
        out = self.repo.git.rev_list("--merges", "--parents", f"{good}..{bad}")
        merges = []
        for line in out.splitlines():
            sha, *parents = line.split()
            merges.append((sha, tuple(parents)))
        return merges

    def candidates(self, good: str, bad: str) -> dict[str, tuple[str, ...]]:
        """The commits a bisect of good..bad starts from, each with its parents."""
        out = self.repo.git.rev_list("--parents", bad, "--not", good)
        dag: dict[str, tuple[str, ...]] = {}
        for line in out.splitlines():
            sha, *parents = line.split()
            dag[sha] = tuple(parents)
        return dag

    def merge_base(self, *shas: str) -> str | None:
        """The best common ancestor of the commits (of all of them at once for three or more:
        `git merge-base --octopus`), or None."""
        try:
            out = self.repo.git.merge_base(*(["--octopus"] if len(shas) > 2 else []), *shas)
        except GitCommandError:
            return None  # no common ancestor
        return out.strip() or None

    def commits_between(self, good: str, bad: str) -> list[str]:
        """Commits in good..bad, oldest first in topological order (what bisect chooses among).

        In a shallow clone, a range that reaches the cut-off commit (good included) is refused:
        git would bisect a history that is not the real one.
        """
        out = self.repo.git.rev_list("--topo-order", "--reverse", f"{good}..{bad}")
        commits = [line for line in out.splitlines() if line]
        boundary = self.shallow_boundary()
        reached = [sha for sha in (good, *commits) if sha in boundary]
        if reached:
            raise UsageError(
                f"{self.root} is a shallow clone and the range {good[:10]}..{bad[:10]} reaches "
                f"its cut-off commit {reached[0][:10]}, whose parents are missing; {_FETCH_MORE}"
            )
        return commits

    def shallow_boundary(self) -> frozenset[str]:
        """The commits a shallow clone is cut off at (their parents are missing); empty if the
        repository has its whole history."""
        if self._shallow is None:
            try:
                shallow = self.repo.git.rev_parse("--is-shallow-repository") == "true"
            except GitCommandError:  # pragma: no cover - git older than 2.15
                shallow = (self.common_dir() / "shallow").is_file()
            lines: list[str] = []
            if shallow:
                with suppress(OSError):
                    lines = (self.common_dir() / "shallow").read_text().split()
            self._shallow = frozenset(lines)
        return self._shallow

    def _history_cut_off(self, rev: str) -> bool:
        boundary = self.shallow_boundary()
        if not boundary:
            return False
        reachable = self.repo.git.rev_list(rev).split()
        return any(sha in boundary for sha in reachable)

    def is_partial_clone(self) -> bool:
        """Was the repository cloned with --filter (a remote promises the objects it lacks)?"""
        for args in (
            ("--get", "extensions.partialClone"),
            ("--get-regexp", r"^remote\..*\.promisor$"),
        ):
            with suppress(GitCommandError):
                if any(
                    line.split()[-1] not in ("false", "")
                    for line in self.repo.git.config(*args).splitlines()
                ):
                    return True
        return False

    # -- commit facts ------------------------------------------------------------------------

    def info(self, sha: str) -> CommitInfo:
        """Author, date, subject, files and parents of a commit, decoded the way git does.

        git re-encodes a message in a legacy encoding (its `encoding` header) to UTF-8; what is
        still not UTF-8 becomes U+FFFD. Parents honour a shallow clone's cut-off, and files are
        the diff against the first parent (against nothing for a root or cut-off commit).
        """
        fields = ("%H", "%an", "%ae", "%cI", "%P", "%B")
        try:
            raw = self.repo.git.log(
                "-1",
                "--no-show-signature",
                "--encoding=UTF-8",
                "--format=" + "%x00".join(fields),
                sha,
                "--",
                stdout_as_string=False,
            )
        except GitCommandError as exc:
            raise EnvironmentProblem(f"git log {sha[:10]} failed: {_one_line(exc)}") from None
        full, name, email, date, parents_text, message = _decode(raw).split("\0", 5)
        parents = tuple(parents_text.split())
        base = [parents[0]] if parents else ["--root"]
        try:
            listing = self.repo.git.diff_tree(
                "-r",
                "--no-commit-id",
                "--name-only",
                "-z",
                "--no-renames",
                *base,
                full,
                stdout_as_string=False,
            )
        except GitCommandError as exc:
            raise EnvironmentProblem(f"git diff-tree {sha[:10]} failed: {_one_line(exc)}") from None
        files = tuple(sorted(n for n in _decode(listing).split("\0") if n))
        return CommitInfo(
            sha=full,
            author=f"{name} <{email}>",
            date=date,
            subject=message.strip("\n").split("\n", 1)[0].rstrip("\r"),
            files=files,
            parents=parents,
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
        """The repository's git directory (shared by its worktrees), absolute. git prints it
        relative to the repository's top, not to this process's directory."""
        found = Path(self.repo.git.rev_parse("--git-common-dir"))
        if not found.is_absolute():
            found = Path(self.repo.git.working_dir) / found
        return found.resolve()

    # -- Git LFS and submodules --------------------------------------------------------------

    def uses_lfs(self, sha: str) -> bool:
        """Does any .gitattributes at sha route files through the LFS filter?"""
        try:
            self.repo.git.grep(
                "-q", "-I", "-e", "filter=lfs", sha, "--", ":(glob)**/.gitattributes"
            )
        except GitCommandError:
            return False
        return True

    def lfs_installed(self) -> bool:
        if self._lfs is None:
            try:
                self.repo.git.lfs("version")
                self._lfs = True
            except GitCommandError:
                self._lfs = False
        return self._lfs

    def require_lfs(self, sha: str) -> None:
        """One clear error when sha needs Git LFS and git-lfs is missing."""
        if not self.lfs_installed() and self.uses_lfs(sha):
            raise EnvironmentProblem(
                f"{self.root} stores files in Git LFS (filter=lfs in .gitattributes at "
                f"{sha[:10]}) but git-lfs is not installed; install it (e.g. apt-get install "
                "git-lfs) so that the real files, not LFS pointers, are measured"
            )

    def _lfs_config(self) -> tuple[str, ...]:
        """The LFS filter, for checkouts, when git-lfs is installed but not set up in config."""
        if not self.lfs_installed():
            return ()
        try:
            self.repo.git.config("--get", "filter.lfs.process")
        except GitCommandError:
            return _LFS_FILTER
        return ()

    def submodule_config(self, gitmodules: Path) -> list[str]:
        """`-c` settings that make `git submodule update --init` in the private worktree write
        nothing into the shared .git/config: each submodule is made active, with a URL.

        The URL is the user's own clone of the submodule in .git/modules when there is one
        (offline, and already trusted), else the URL the user configured, else the one in
        .gitmodules (a relative one resolved against origin, or the main checkout).
        """
        try:
            listing = self.repo.git.config(
                "--file", str(gitmodules), "--null", "--get-regexp", r"^submodule\..*\.url$"
            )
        except GitCommandError:
            return []
        common = self.common_dir()
        settings: list[str] = []
        for entry in listing.split("\0"):
            key, _, url = entry.partition("\n")
            if not key.startswith("submodule.") or not key.endswith(".url"):
                continue
            name = key[len("submodule.") : -len(".url")]
            local = common / "modules" / name
            if (local / "HEAD").is_file():
                url = str(local)
            else:
                with suppress(GitCommandError):
                    url = self.repo.git.config("--get", key) or url
                url = self._absolute_url(url)
            settings += [f"submodule.{name}.url={url}", f"submodule.{name}.active=true"]
        return settings

    def _absolute_url(self, url: str) -> str:
        if not url.startswith(("./", "../")):
            return url
        try:
            base = self.repo.git.config("--get", "remote.origin.url")
        except GitCommandError:
            base = str(self.root)
        base = base.rstrip("/")
        rest = url
        while True:
            if rest.startswith("./"):
                rest = rest[2:]
            elif rest.startswith("../"):
                rest = rest[3:]
                base = posixpath.dirname(base) if "/" in base else base.rpartition(":")[0]
            else:
                break
        return f"{base}/{rest}"

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
        self.require_lfs(start)
        config = [*self.config, *self._lfs_config()]
        parent = Path(tempfile.mkdtemp(prefix="smbisect-"))
        path = parent / f"{WORKTREE_PREFIX}{os.getpid()}"
        reason = f"{LOCK_REASON_PREFIX}{os.getpid()} host {socket.gethostname()}"
        try:
            try:
                self.repo.git(c=config).worktree(
                    "add", "--detach", "--lock", "--reason", reason, str(path), start
                )
            except GitCommandError as exc:
                raise EnvironmentProblem(
                    f"could not create a worktree: {_one_line(exc)}{self._partial_hint()}"
                ) from None
            wt = Worktree(path, owner=self, config=config)
            try:
                wt.update_submodules(start)
                yield wt
            finally:
                wt.bisect_reset()
        finally:
            self.remove_worktree(path)
            shutil.rmtree(parent, ignore_errors=True)

    def _partial_hint(self) -> str:
        if self.is_partial_clone():
            return (
                " (this is a partial clone: files it lacks are fetched from its remote, "
                "which must be reachable)"
            )
        return ""


class Worktree:
    """A linked worktree where git bisect checks out each commit under test."""

    def __init__(
        self, path: Path, owner: GitRepo | None = None, config: Sequence[str] = ()
    ) -> None:
        self.path = path
        self.owner = owner
        self.config = list(config)
        self.repo = gitpython.Repo(path)
        _plain_git(self.repo, self.config)
        self._bisecting = False
        self._last_marked: str | None = None

    def head(self) -> str:
        return self.repo.git.rev_parse("HEAD")

    def checkout(self, sha: str) -> None:
        """Check out sha, clean, and bring its submodules to their recorded commits."""
        if self.owner is not None:
            self.owner.require_lfs(sha)
        try:
            self.repo.git.checkout("--detach", "--force", "--quiet", sha)
            self.repo.git.clean("-fdxq")
        except GitCommandError as exc:
            hint = self.owner._partial_hint() if self.owner is not None else ""
            raise EnvironmentProblem(
                f"git checkout {sha[:10]} in the private worktree failed: {_one_line(exc)}{hint}"
            ) from None
        self.update_submodules(sha)

    def update_submodules(self, sha: str) -> None:
        """Check out the submodule commits recorded in sha, recursively, and clean them."""
        gitmodules = self.path / ".gitmodules"
        if self.owner is None or not self.owner.submodules or not gitmodules.is_file():
            return
        # File-protocol submodules are refused by default since git 2.38.1 (CVE-2022-39253).
        # smbisect runs this repository's own code at every step, so its submodule URLs are
        # no less trusted than that code; the clones live in the private worktree only.
        config = ["protocol.file.allow=always", *self.owner.submodule_config(gitmodules)]
        try:
            self.repo.git(c=config).submodule(
                "update", "--init", "--recursive", "--force", "--quiet"
            )
        except GitCommandError as exc:
            raise EnvironmentProblem(
                f"could not check out the submodules of {sha[:10]}: {_one_line(exc)} "
                "(--no-submodules leaves them out)"
            ) from None
        _clean_submodules(self.repo, self.path)

    def bisect_start(self, bad: str, good: str, *also_good: str) -> BisectStep:
        """`git bisect start bad good [more good...]`: the extra good commits take their
        ancestors out of the search (attribution marks branches that lack a culprit so)."""
        self.bisect_reset()
        try:
            out = self.repo.git.bisect("start", "--no-checkout", bad, good, *also_good)
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
            raise EnvironmentProblem(
                f"git bisect did not move on from {nxt[:10]}: {clean_text(out[-200:])}"
            )
        return BisectStep(next_commit=nxt)

    def bisect_candidates(self) -> tuple[str, dict[str, tuple[str, ...]], set[str]]:
        """The current bisect's bad, its candidates (each with its parents) and the skipped
        commits among them: what `git rev-list --bisect-all` walks (k-ary search, kary.py)."""
        refs = self.repo.git.for_each_ref("--format=%(refname) %(objectname)", "refs/bisect")
        bad, goods, skips = "", [], set()
        for line in refs.splitlines():
            name, _, sha = line.partition(" ")
            if name == "refs/bisect/bad":
                bad = sha
            elif name.startswith("refs/bisect/good-"):
                goods.append(sha)
            elif name.startswith("refs/bisect/skip-"):
                skips.add(sha)
        if not bad:
            raise EnvironmentProblem("git bisect has no bad commit marked")
        out = self.repo.git.rev_list("--parents", bad, "--not", *goods)
        dag: dict[str, tuple[str, ...]] = {}
        for line in out.splitlines():
            sha, *parents = line.split()
            dag[sha] = tuple(parents)
        return bad, dag, skips & set(dag)

    def bisect_log(self) -> str:
        try:
            return _decode(self.repo.git.bisect("log", stdout_as_string=False))
        except GitCommandError:
            return ""

    def bisect_reset(self) -> None:
        if not self._bisecting:
            return
        with suppress(GitCommandError):
            self.repo.git.bisect("reset", "--quiet")
        self._bisecting = False


def _clean_submodules(repo: gitpython.Repo, top: Path) -> None:
    """`git clean -fdx` inside every checked-out submodule, recursively (the superproject's
    own clean does not enter them)."""
    try:
        listing = repo.git.ls_files("--stage", "-z")
    except GitCommandError:
        return
    for entry in listing.split("\0"):
        meta, _, name = entry.partition("\t")
        if not meta.startswith("160000 ") or not (top / name / ".git").exists():
            continue
        sub = gitpython.Repo(top / name)
        _plain_git(sub, ())
        with suppress(GitCommandError):
            sub.git.clean("-fdxq")
        _clean_submodules(sub, top / name)


def _parse_skipped(text: str) -> BisectStep:
    tail = text.split("The first bad commit could be any of:", 1)[-1]
    shas = tuple(dict.fromkeys(re.findall(r"\b[0-9a-f]{40,64}\b", tail)))
    return BisectStep(candidates=shas)


def _plain_git(repo: gitpython.Repo, config: Sequence[str]) -> None:
    """Parse git's messages in English whatever the user's locale; apply `-c` settings."""
    repo.git.update_environment(LC_ALL="C", LANGUAGE="C")
    if config:
        repo.git.set_persistent_git_options(c=list(config))


def _private_config(run_hooks: bool) -> list[str]:
    """`-c` settings for every git command of ours; none of them is written to a config file.

    Logs come out in UTF-8 whatever i18n.logOutputEncoding says (BISECT_LOG included), no
    fsmonitor daemon is started for the private worktree, and unless `run_hooks`, no hook of
    the user's runs (post-checkout, reference-transaction, ...).
    """
    config = ["i18n.logOutputEncoding=UTF-8", "core.fsmonitor=false"]
    if not run_hooks:
        config.append(f"core.hooksPath={os.devnull}")
    return config


def _adopt_git_environment(path: str | os.PathLike[str]) -> None:
    """Drop GIT_DIR, GIT_WORK_TREE, GIT_INDEX_FILE, ... from this process's environment.

    Inside a git hook they are set and point at the user's repository, checkout and index;
    left in place, every git command run in the private worktree (and every benchmark that
    calls git) would act on those instead. When they name another repository than `path`,
    it is ambiguous which one the user means: that is a usage error.
    """
    present = [name for name in _REPO_ENV_VARS if os.environ.get(name)]
    if not present:
        return
    plain = {k: v for k, v in os.environ.items() if k not in _REPO_ENV_VARS}
    here = Path(path)
    as_given = _git_location(None, os.environ)
    as_path = _git_location(here, plain) if here.is_dir() else None
    located = {"GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR"} & set(present)
    if located and as_given != as_path:
        names = "/".join(sorted(located))
        where = as_given[0] if as_given else "no usable repository"
        raise UsageError(
            f"{names} in the environment (as inside a git hook) point to {where}, not to the "
            f"repository at {here.resolve()}; unset {names} or pass --repo to match them"
        )
    for name in present:
        del os.environ[name]


def _git_location(cwd: Path | None, env: Mapping[str, str]) -> tuple[str, str] | None:
    """(git dir, top level) git itself sees from cwd with env, or None if it sees none."""
    try:
        res = subprocess.run(
            ["git", "rev-parse", "--absolute-git-dir", "--show-toplevel"],
            cwd=cwd,
            env={**env, "LC_ALL": "C"},
            capture_output=True,
            text=True,
            errors="replace",
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except OSError:
        return None
    lines = res.stdout.splitlines()
    if res.returncode != 0 or len(lines) != 2:
        return None
    return str(Path(lines[0]).resolve()), str(Path(lines[1]).resolve())


def _decode(raw: bytes | str) -> str:
    """git's output as text: UTF-8, with U+FFFD for anything that is not."""
    if isinstance(raw, str):
        return clean_text(raw)
    return raw.decode("utf-8", "replace")


def clean_text(text: str) -> str:
    """Text that can be written as UTF-8: surrogates (bytes that were not UTF-8, kept by
    Python's surrogateescape) become those bytes decoded with U+FFFD for what is invalid."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        except UnicodeEncodeError:  # lone surrogates that were never bytes
            return _SURROGATES.sub("\ufffd", text)
    return text


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
    text = clean_text(str(exc.stderr or exc.stdout or exc)).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1].removeprefix("stderr: ").strip("'") if lines else str(exc.status)


class Checkouts:
    """Commits checked out side by side, one directory each, from a private clone of `source`
    (a path or a clone URL): where a build step runs once per commit and its output stays
    while other commits are measured (--build), and where Dask workers measure. Nothing of
    the source repository is written: the clone is `git clone --no-checkout` into `root`.

    `keep`: at most that many trees, the least recently used removed first; None keeps every
    tree until close(), which is what several processes sharing `root` need (the Dask workers
    of one machine share their checkouts and builds). Every git command on the shared clone
    runs under an exclusive lock on `root/git.lock`, so they may."""

    def __init__(self, source: str, root: Path, keep: int | None = 6) -> None:
        self.source = source
        self.root = root
        self.keep = None if keep is None else max(2, keep)
        self._trees: dict[str, Path] = {}  # sha -> directory, least recently used first
        root.mkdir(parents=True, exist_ok=True)
        clone = root / "clone"
        with file_lock(root / "git.lock"):
            try:
                if (clone / ".git").is_dir():
                    self.repo = gitpython.Repo(clone)
                else:
                    self.repo = gitpython.Repo.clone_from(
                        source, clone, no_checkout=True, quiet=True, env={"LC_ALL": "C"}
                    )
            except (GitCommandError, InvalidGitRepositoryError, NoSuchPathError) as exc:
                raise EnvironmentProblem(f"could not clone {source}: {_one_line(exc)}") from None
            _plain_git(self.repo, _private_config(False))

    def path_of(self, sha: str) -> Path:
        return self.root / f"tree-{sha[:16]}"

    def tree(self, sha: str) -> tuple[Path, bool]:
        """sha's directory, and whether it was just checked out (and so needs its build)."""
        if sha in self._trees and (self._trees[sha] / ".git").exists():
            self._trees[sha] = self._trees.pop(sha)
            return self._trees[sha], False
        self._trees.pop(sha, None)  # removed by another process (a stopped build)
        path = self.path_of(sha)
        with file_lock(self.root / "git.lock"):
            if self.keep is None and (path / ".git").exists():  # another process made it
                self._trees[sha] = path
                return path, False
            self._have(sha)
            while self.keep is not None and len(self._trees) >= self.keep:
                self._drop(next(iter(self._trees)))
            shutil.rmtree(path, ignore_errors=True)
            try:
                self.repo.git.worktree("add", "--detach", "--force", str(path), sha)
            except GitCommandError as exc:
                raise EnvironmentProblem(
                    f"could not check out {sha[:10]}: {_one_line(exc)}"
                ) from None
        self._trees[sha] = path
        return path, True

    def drop(self, sha: str) -> None:
        """Remove sha's directory (and its build marker), whichever process made it."""
        with file_lock(self.root / "git.lock"):
            self._trees.setdefault(sha, self.path_of(sha))
            self._drop(sha)

    def _drop(self, sha: str) -> None:
        path = self._trees.pop(sha, None)
        if path is None:
            return
        with suppress(GitCommandError):
            self.repo.git.worktree("remove", "--force", "--force", str(path))
        shutil.rmtree(path, ignore_errors=True)
        path.with_suffix(".built").unlink(missing_ok=True)

    def have(self, sha: str) -> None:
        """Fetch sha into the clone if it lacks it."""
        with file_lock(self.root / "git.lock"):
            self._have(sha)

    def _have(self, sha: str) -> None:
        try:
            self.repo.git.cat_file("-e", f"{sha}^{{commit}}")
            return
        except GitCommandError:
            pass
        try:
            self.repo.git.fetch("--quiet", "origin", "+refs/heads/*:refs/remotes/origin/*")
            self.repo.git.cat_file("-e", f"{sha}^{{commit}}")
        except GitCommandError:
            try:
                self.repo.git.fetch("--quiet", "origin", sha)
            except GitCommandError as exc:
                raise EnvironmentProblem(
                    f"commit {sha[:10]} is not in {self.source}: {_one_line(exc)}"
                ) from None

    def close(self) -> None:
        with file_lock(self.root / "git.lock"):
            for sha in list(self._trees):
                self._drop(sha)
