"""Hints about what the user asked to measure: what was timed when a command's time shows no
regression, a file the command names that lives only in the user's working tree, and edits
that no commit holds.

`--cmd` with `--metric time` or `cputime` times the whole process: interpreter start-up and
imports included. A slowdown in one part of it shows only in proportion to that part: 1.3x in 6
ms of numpy work inside a 100 ms Python process is 1.02x of the process, which is "no
regression" at the 5% threshold, rightly for the process. The user who suspected that part
needs to hear how to time it alone.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from statistics import median

from .errors import EXIT_INCONCLUSIVE, EXIT_NOT_REPRODUCED
from .formatting import fmt_value
from .git import GitRepo
from .session import SessionResult

TIMED = {"time": "wall time", "cputime": "CPU time"}


def whole_command_note(result: SessionResult, metric: str) -> str | None:
    """Advice for a `--cmd` bisect by time that found no regression (exit 3) or could not
    tell (exit 5); None otherwise."""
    if metric not in TIMED or result.exit_code not in (EXIT_NOT_REPRODUCED, EXIT_INCONCLUSIVE):
        return None
    at_good = result.samples.get(result.good, {})
    runs = [v for o in result.outcomes for v in at_good.get(o.spec.name, [])]
    typical = f" ({fmt_value(median(runs), 'seconds')} a run at good)" if runs else ""
    return (
        f"smbisect measured the whole command's {TIMED[metric]}{typical}, interpreter start-up "
        "and imports included: a slowdown in one part of it shows only in proportion to that "
        "part. If the code you suspect takes a small share of the run, have the command print "
        "that part's time and use --metric stdout"
    )


def working_tree_only_file(
    repo: GitRepo, argv: Sequence[str], shas: Sequence[str], cwd: Path
) -> str | None:
    """`--cmd "python bench.py"` with bench.py written for the bisect but never committed: the
    command runs in each commit's checkout, where bench.py does not exist, so good and bad
    both fail. When an argument is a relative path that none of `shas` has and the user's
    working tree (or `cwd`) does, say so and give the command with that file's absolute path;
    None otherwise."""
    for i, token in enumerate(argv):
        if not token or token.startswith("-") or "=" in token or Path(token).is_absolute():
            continue
        found = next((p.resolve() for p in (repo.root / token, cwd / token) if p.is_file()), None)
        if found is None:
            continue
        if any(repo.read_file_at(sha, Path(token).as_posix()) is not None for sha in shas):
            continue
        fixed = [*argv[:i], str(found), *argv[i + 1 :]]
        hint = (
            f"{token} is in your working tree but in neither commit, and --cmd runs in each "
            f"commit's checkout: to run that file at every commit, "
            f"--cmd {shlex.quote(shlex.join(fixed))}"
        )
        caveat = script_imports_working_tree(repo, fixed)
        return f"{hint} ({caveat})" if caveat else hint
    return None


def script_imports_working_tree(repo: GitRepo, argv: Sequence[str]) -> str | None:
    """`python /path/in/the/working/tree/bench.py`: Python puts the script's own directory
    first on sys.path, so `import mylib` there imports the working tree's mylib at every
    commit, not the checkout's, and every commit measures the same code. Say so (None when
    the command is not such a script)."""
    if not argv or not PurePosixPath(argv[0]).name.startswith("python"):
        return None
    script = next((a for a in argv[1:] if not a.startswith("-")), None)
    if script is None or not script.endswith(".py") or not Path(script).is_absolute():
        return None
    folder = Path(script).resolve().parent
    if folder != repo.root and repo.root not in folder.parents:
        return None
    try:
        text = Path(script).read_text(errors="replace")
    except OSError:
        text = ""
    if any(word in text for word in ("getcwd()", "Path.cwd()", "sys.path.insert")):
        return None  # it chooses its import path itself
    return (
        f"Python puts the script's folder, {folder}, first on sys.path: unless the script "
        "puts the commit's checkout first (sys.path.insert(0, os.getcwd())), its imports "
        "load your working tree's code at every commit"
    )


def uncommitted_note(repo: GitRepo, bad_sha: str) -> str | None:
    """When bad is HEAD and tracked files differ from it: those edits are not measured."""
    changed = repo.uncommitted_changes() if bad_sha == repo.resolve("HEAD", "HEAD") else []
    if not changed:
        return None
    shown = ", ".join(changed[:3]) + (", ..." if len(changed) > 3 else "")
    return (
        f"your uncommitted changes ({shown}) are not measured: smbisect measures commits, "
        f"and bad is HEAD, {bad_sha[:10]}, as committed"
    )
