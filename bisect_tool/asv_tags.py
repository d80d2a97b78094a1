"""`smbisect asv-tags RESULT.json`: the bisect's culprits on the asv site's graphs.

The only annotation asv's site has (asv 0.6) is the git tag: `asv publish` reads the tags of the
repository and its graphs draw each one as a labelled vertical line at its commit. So the
culprits of a bisect reach the site as tags, one per commit (a commit blamed by several
benchmarks is tagged once), named `smbisect/<sha10>`, annotated with every benchmark that
blames it, its ratio and its share. Only confirmed culprits are tagged. Nothing is written
unless this command is run; `--delete` removes the tags it would write.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from . import compare_culprits
from .errors import EnvironmentProblem
from .git import GitRepo

PREFIX = "smbisect/"


@dataclass(frozen=True)
class Tag:
    name: str
    sha: str
    message: str


def plan(culprits: compare_culprits.Culprits) -> list[Tag]:
    """One tag per confirmed culprit commit, in the bisect's order (the largest first)."""
    lines: dict[str, list[str]] = {}
    for r in culprits.refs:
        if not (r.sha and r.confirmed):
            continue
        ratio = "" if r.ratio is None else f" {r.ratio:.3g}x"
        share = "" if r.share is None else f", {r.share * 100:+.0f}% of its change"
        lines.setdefault(r.sha, []).append(f"{r.benchmark}: {r.kind}{ratio}{share}")
    span = ""
    if culprits.good and culprits.bad:
        span = f" between {culprits.good[:10]} and {culprits.bad[:10]}"
    return [
        Tag(
            f"{PREFIX}{sha[:10]}",
            sha,
            f"smbisect culprit{span}\n\n" + "\n".join(found),
        )
        for sha, found in lines.items()
    ]


def _git(root: Path, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )


def apply(repo: GitRepo, tags: Sequence[Tag], delete: bool = False) -> list[str]:
    """Create (or refresh) the tags, or delete those that exist; returns the names touched."""
    done = []
    for tag in tags:
        full = repo.resolve(tag.sha, "culprit")  # a one-line error for a commit not here
        exists = _git(repo.root, ["rev-parse", "-q", "--verify", f"refs/tags/{tag.name}"])
        if delete:
            if exists.returncode == 0:
                res = _git(repo.root, ["tag", "-d", tag.name])
                if res.returncode != 0:
                    raise EnvironmentProblem(f"git tag -d {tag.name} failed: {res.stderr.strip()}")
                done.append(tag.name)
            continue
        res = _git(repo.root, ["tag", "-f", "-a", "-m", tag.message, tag.name, full])
        if res.returncode != 0:
            raise EnvironmentProblem(f"git tag {tag.name} failed: {res.stderr.strip()}")
        done.append(tag.name)
    return done


@click.command("asv-tags")
@click.argument("result", metavar="RESULT.json")
@click.option("--repo", "repo_path", default=".", show_default=True, help="The repository.")
@click.option("--delete", is_flag=True, help="Remove the tags of these culprits instead.")
@click.option("-q", "--quiet", count=True)
def command(result: str, repo_path: str, delete: bool, quiet: int) -> None:
    """Tag a bisect's confirmed culprits, so `asv publish` draws them on every graph.

    \b
    One annotated tag per culprit commit, smbisect/<sha10>, whose message lists each
    benchmark that blames it, with its ratio and share. Then `asv publish` as usual.
    Exit 0: done; 2: bad input (the file, or a commit not in the repository); 1: git failed.
    """
    import sys

    from .cli import run_guarded

    def go() -> int:
        culprits = compare_culprits.load(result, option="")
        repo = GitRepo(repo_path)
        tags = plan(culprits)
        done = apply(repo, tags, delete)
        if quiet <= 0:
            verb = "deleted" if delete else "tagged"
            for name in done:
                click.echo(f"{verb} {name}")
            if not tags:
                click.echo(f"no confirmed culprits in {result}: nothing to tag")
        return 0

    sys.exit(run_guarded(go))
