"""Accuracy and cost of smbisect against `asv find`, on generated histories with a planted slowdown.

Every case is a fresh git repository holding a tiny pip-installable package `acc` whose `work()`
is CPU-bound (about 2 ms), an asv suite (`benchmarks/bench_acc.py::time_work`) and an
asv.conf.json. Exactly one commit, the culprit, multiplies the workload constant by the
slowdown factor; every other commit changes an unrelated file (or is a --no-ff merge). Optional
noise multiplies the workload of every call by a random factor with the given relative spread,
inside the measured code. Both tools are run on the same repository and scored.

    python tools/bisect_accuracy.py --quick
    python tools/bisect_accuracy.py --lengths 32,256,1024 --shapes linear,merges \\
        --slowdowns 1.3,3 --noise 0.05,0.15 --trials 3 --markdown docs/accuracy.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tabulate import tabulate

BASE_SIZE = 50_000  # loop iterations of work() at the good commit: about 2 ms
BENCH = "time_work"
TOOLS = ("smbisect", "asv-find")
SHAPES = ("linear", "merges")
EXIT_CONFIRMED, EXIT_NOT_REPRODUCED, EXIT_NO_CULPRIT = 0, 3, 4

# ---------------------------------------------------------------------------------------------
# History plan (pure: no git) and repository writer
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """One commit of a planned history. Ids are 1-based in creation order; 1 is `good`."""

    id: int
    parents: tuple[int, ...]
    branch: str  # "main" or "feature-K"
    kind: str  # "base", "change", "culprit", "merge"


@dataclass(frozen=True)
class Plan:
    nodes: tuple[Node, ...]
    good: int
    bad: int
    culprit: int

    @property
    def range_ids(self) -> list[int]:
        """The commits `git bisect` walks: ancestors of bad that are not ancestors of good."""
        return [n.id for n in self.nodes if n.id != self.good]


def plan_history(length: int, shape: str, rng: random.Random) -> Plan:
    """A history of `length` commits after `good`, with one culprit among its non-merge commits.

    `linear` is a single chain. `merges` grows a main line in which feature branches of 1-5
    commits fork off and come back through a --no-ff merge, while main may gain 0-2 commits of
    its own meanwhile, so the merges really join diverged lines. Every commit in the plan is an
    ancestor of bad, so `git rev-list good..bad` has exactly `length` commits. The culprit is
    never the first commit after good (asv find cannot name that one: it searches good..bad,
    which does not include good, so it has no good commit before it to compare against).
    """
    if length < 2:
        raise ValueError("a history needs at least 2 commits after good")
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}")
    nodes: list[Node] = [Node(1, (), "main", "base")]
    tip = 1
    features = 0

    def add(parents: tuple[int, ...], branch: str, kind: str = "change") -> int:
        nodes.append(Node(len(nodes) + 1, parents, branch, kind))
        return len(nodes)

    remaining = length
    while remaining > 0:
        if shape == "merges" and remaining >= 3 and rng.random() < 0.4:
            features += 1
            branch = f"feature-{features}"
            on_feature = rng.randint(1, min(5, remaining - 1))
            on_main = rng.randint(0, min(2, remaining - 1 - on_feature))
            ftip = tip
            for _ in range(on_feature):
                ftip = add((ftip,), branch)
            for _ in range(on_main):
                tip = add((tip,), "main")
            tip = add((tip, ftip), "main", "merge")
            remaining -= on_feature + on_main + 1
        else:
            tip = add((tip,), "main")
            remaining -= 1
    eligible = [n.id for n in nodes if n.kind == "change" and n.id != 2]
    culprit = rng.choice(eligible)
    nodes = [Node(n.id, n.parents, n.branch, "culprit") if n.id == culprit else n for n in nodes]
    return Plan(tuple(nodes), good=1, bad=tip, culprit=culprit)


def ancestors(plan: Plan, node_id: int) -> set[int]:
    """node_id and every commit reachable from it."""
    by_id = {n.id: n for n in plan.nodes}
    seen: set[int] = set()
    todo = [node_id]
    while todo:
        cur = todo.pop()
        if cur not in seen:
            seen.add(cur)
            todo.extend(by_id[cur].parents)
    return seen


def first_parent_culprit(plan: Plan) -> int:
    """The first commit on bad's first-parent line that contains the culprit: the culprit itself
    on a linear history, or the merge that brought it in when it sits on a feature branch. That
    is the best answer a first-parent search such as `asv find` can give."""
    by_id = {n.id: n for n in plan.nodes}
    line = [plan.bad]
    while by_id[line[-1]].parents and line[-1] != plan.good:
        line.append(by_id[line[-1]].parents[0])
    for node_id in reversed(line):
        if plan.culprit in ancestors(plan, node_id):
            return node_id
    raise AssertionError("bad does not contain the culprit")


def _core_py(size: int, noise: float, seed: int) -> str:
    return f'''"""The measured code: a CPU-bound loop whose length is SIZE, jittered by NOISE."""

import os
import random
import time

SIZE = {size}
NOISE = {noise!r}  # relative spread (standard deviation) of the per-call workload factor
SEED = {seed}

# The trial seed plus per-process entropy: with the seed alone every benchmark process would
# replay the same factors, and the noise would cancel out between commits.
_rng = random.Random(f"{{SEED}}:{{os.getpid()}}:{{time.perf_counter_ns()}}")


def work() -> int:
    n = SIZE
    if NOISE:
        n = max(1, int(n * max(0.2, _rng.gauss(1.0, NOISE))))
    total = 0
    for i in range(n):
        total += i * i % 7
    return total
'''


ASV_CONF: dict[str, Any] = {
    "version": 1,
    "project": "acc",
    "project_url": "https://example.invalid/acc",
    "repo": ".",
    "branches": ["main"],
    "environment_type": "virtualenv",
    "pythons": [f"{sys.version_info.major}.{sys.version_info.minor}"],
    "build_command": [
        "python -m pip wheel --no-deps --no-build-isolation -w {build_cache_dir} {build_dir}"
    ],
    "install_command": ["in-dir={env_dir} python -m pip install --no-deps {wheel_file}"],
    "uninstall_command": ["return-code=any python -m pip uninstall -y {project}"],
    "matrix": {},
    "benchmark_dir": "benchmarks",
    "env_dir": ".asv/env",
    "results_dir": ".asv/results",
    "html_dir": ".asv/html",
}

PYPROJECT = """[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "acc"
version = "0.1.0"

[tool.setuptools]
packages = ["acc"]
"""

BENCH_PY = """from acc import work


def time_work():
    work()


# one call per sample, so a sample carries the full per-call jitter
time_work.number = 1
"""


def _base_tree(case_line: str, noise: float, seed: int) -> dict[str, str]:
    return {
        "README.md": f"# acc\n\nGenerated by tools/bisect_accuracy.py: {case_line}\n",
        "pyproject.toml": PYPROJECT,
        "asv.conf.json": json.dumps(ASV_CONF, indent=2) + "\n",
        "acc/__init__.py": "from .core import work\n\n__all__ = ['work']\n",
        "acc/core.py": _core_py(BASE_SIZE, noise, seed),
        "benchmarks/__init__.py": "",
        "benchmarks/bench_acc.py": BENCH_PY,
        ".gitignore": ".asv/\n*.egg-info/\nbuild/\n",
    }


@dataclass(frozen=True)
class GeneratedRepo:
    path: Path
    good: str
    bad: str
    culprit: str
    first_parent_culprit: str
    length: int
    merges: int
    shas: dict[int, str]


def _git(repo: Path, *args: str, stdin: bytes | None = None) -> str:
    res = subprocess.run(["git", *args], cwd=repo, input=stdin, capture_output=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {res.stderr.decode(errors='replace')}")
    return res.stdout.decode()


def _data(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return b"data %d\n" % len(raw) + raw + b"\n"


def write_repo(
    path: Path, plan: Plan, slowdown: float, noise: float, seed: int, case_line: str
) -> GeneratedRepo:
    """Write the planned history with `git fast-import` (a 1024-commit repo takes a second).

    Each commit's full tree is written (deleteall + files), which makes merges exact: a merge
    holds the union of its parents' files, and the slow workload constant if either parent has it.
    """
    path.mkdir(parents=True, exist_ok=True)
    _git(path, "init", "-q", "-b", "main")
    _git(path, "config", "user.name", "Accuracy Bench")
    _git(path, "config", "user.email", "acc@example.invalid")
    slow_size = int(round(BASE_SIZE * slowdown))
    trees: dict[int, dict[str, str]] = {}
    stream = bytearray()
    stamp = 1_700_000_000
    for node in plan.nodes:
        if not node.parents:
            tree = _base_tree(case_line, noise, seed)
            msg = "Initial acc package, asv suite and config"
        else:
            tree = dict(trees[node.parents[0]])
            for other in node.parents[1:]:
                for name, content in trees[other].items():
                    if name == "acc/core.py":
                        if f"SIZE = {slow_size}\n" in content:
                            tree[name] = content  # the slow constant wins: it is newer
                    else:
                        tree.setdefault(name, content)  # main's own files are supersets
            if node.kind == "culprit":
                tree["acc/core.py"] = _core_py(slow_size, noise, seed)
                msg = "Tune the workload batch size"
            elif node.kind == "merge":
                feature = next(n.branch for n in plan.nodes if n.id == node.parents[1])
                msg = f"Merge branch '{feature}'"
            else:
                hist = f"history/{node.branch}.txt"
                tree[hist] = tree.get(hist, "") + f"change {node.id}\n"
                msg = f"Update {node.branch} notes ({node.id})"
        trees[node.id] = tree
        stamp += 60
        ref = "refs/heads/main" if node.branch == "main" else f"refs/heads/{node.branch}"
        who = f"Accuracy Bench <acc@example.invalid> {stamp} +0000\n".encode()
        stream += f"commit {ref}\nmark :{node.id}\n".encode()
        stream += b"author " + who + b"committer " + who + _data(msg)
        if node.parents:
            stream += f"from :{node.parents[0]}\n".encode()
            for other in node.parents[1:]:
                stream += f"merge :{other}\n".encode()
        stream += b"deleteall\n"
        for name in sorted(tree):
            stream += f"M 100644 inline {name}\n".encode() + _data(tree[name])
        stream += b"\n"
    marks = path / ".git" / "acc-marks"
    _git(path, "fast-import", "--quiet", f"--export-marks={marks}", stdin=bytes(stream))
    shas: dict[int, str] = {}
    for line in marks.read_text().splitlines():
        mark, sha = line.split()
        shas[int(mark.lstrip(":"))] = sha
    marks.unlink()
    _git(path, "reset", "-q", "--hard", "main")
    _git(path, "tag", "good", shas[plan.good])
    merges = sum(1 for n in plan.nodes if n.kind == "merge")
    return GeneratedRepo(
        path=path,
        good=shas[plan.good],
        bad=shas[plan.bad],
        culprit=shas[plan.culprit],
        first_parent_culprit=shas[first_parent_culprit(plan)],
        length=len(plan.range_ids),
        merges=merges,
        shas=shas,
    )


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    length: int
    shape: str
    slowdown: float
    noise: float
    trial: int
    seed: int

    @property
    def group(self) -> tuple[int, str, float, float]:
        return (self.length, self.shape, self.slowdown, self.noise)

    @property
    def label(self) -> str:
        return (
            f"N={self.length} {self.shape} {self.slowdown:g}x noise={self.noise:g} "
            f"trial={self.trial} seed={self.seed}"
        )


def trial_seed(base_seed: int, case: tuple[int, str, float, float], trial: int) -> int:
    """A stable per-trial seed: the same grid point and trial always get the same history."""
    key = f"{base_seed}:{case[0]}:{case[1]}:{case[2]:g}:{case[3]:g}:{trial}"
    return random.Random(key).randrange(1, 2**31)


def build_cases(
    lengths: Sequence[int],
    shapes: Sequence[str],
    slowdowns: Sequence[float],
    noises: Sequence[float],
    trials: int,
    base_seed: int,
) -> list[Case]:
    """Trial-major order, so an interrupted run still covers every group at least once."""
    cases = []
    for trial in range(trials):
        for length in lengths:
            for shape in shapes:
                for slowdown in slowdowns:
                    for noise in noises:
                        key = (length, shape, slowdown, noise)
                        seed = trial_seed(base_seed, key, trial)
                        cases.append(Case(length, shape, slowdown, noise, trial, seed))
    return cases


def make_case_repo(case: Case, path: Path) -> GeneratedRepo:
    rng = random.Random(case.seed)
    plan = plan_history(case.length, case.shape, rng)
    return write_repo(path, plan, case.slowdown, case.noise, case.seed, case.label)


# ---------------------------------------------------------------------------------------------
# Results and parsing (pure)
# ---------------------------------------------------------------------------------------------


@dataclass
class ToolResult:
    tool: str
    named: str | None  # the commit the tool names (full sha when known, else a prefix)
    correct: bool
    wrong_confident: bool
    commits_measured: int
    samples: int | None
    wall: float
    exit_code: int | None
    confirmed: bool | None = None
    first_parent_correct: bool | None = None
    error: str | None = None
    named_right: bool | None = None  # named the culprit, confirmed or not


@dataclass
class CaseResult:
    case: Case
    culprit: str
    first_parent_culprit: str
    merges: int
    results: dict[str, ToolResult] = field(default_factory=dict)


def _same(named: str | None, sha: str) -> bool:
    return bool(named) and len(named or "") >= 7 and sha.startswith(named or "-")


def score_smbisect(
    data: dict[str, Any] | None,
    exit_code: int,
    culprit: str,
    wall: float,
    bench: str = BENCH,
) -> ToolResult:
    """Score smbisect's --json output.

    Correct means the culprit was named and confirmed (exit 0): the answer a user acts on. A
    right but unconfirmed name (exit 4) is not counted correct, only `named_right`.
    Wrong-and-confident means a confirmed wrong culprit.
    """
    if not data:
        return ToolResult(
            "smbisect",
            None,
            False,
            False,
            0,
            0,
            wall,
            exit_code,
            error=f"exit {exit_code}, no JSON",
        )
    entry = next((c for c in data.get("culprits", []) if c.get("benchmark") == bench), None)
    if entry is None and data.get("culprits"):
        entry = data["culprits"][0]
    named = entry.get("sha") if entry else None
    confirmed = bool(entry and entry.get("confirmed"))
    steps = data.get("steps", [])
    samples = sum(len(v) for s in steps for v in (s.get("samples") or {}).values())
    measured = sum(1 for s in steps if any(s.get("samples") or {}))
    right = named == culprit
    return ToolResult(
        tool="smbisect",
        named=named,
        correct=right and confirmed,
        wrong_confident=bool(named) and confirmed and not right,
        commits_measured=measured,
        samples=samples,
        wall=wall,
        exit_code=exit_code,
        confirmed=confirmed,
        first_parent_correct=right,
        named_right=right,
    )


_FOUND = re.compile(r"Greatest (?:regression|improvement) found:\s*([0-9a-f]{7,40})")
_MEASURED = re.compile(r"For \S+ commit ([0-9a-f]{7,40})")


def parse_asv_find(output: str) -> tuple[str | None, list[str]]:
    """The commit `asv find` names, and the commits it benchmarked, from its log output.

    asv find logs "For <project> commit <hash8>[ <ref>]:" before each benchmark run (cached
    commits are not re-run and not re-logged) and ends with
    "Greatest regression found: <hash8>[ <ref>]".
    """
    found = _FOUND.findall(output)
    measured: list[str] = []
    for sha in _MEASURED.findall(output):
        if sha not in measured:
            measured.append(sha)
    return (found[-1] if found else None), measured


def score_asv_find(
    output: str,
    exit_code: int,
    culprit: str,
    first_parent: str,
    wall: float,
) -> ToolResult:
    """asv find always names one commit, so every wrong answer counts as wrong-and-confident."""
    named, measured = parse_asv_find(output)
    correct = named is not None and _same(named, culprit)
    error = None if named else f"exit {exit_code}: no 'Greatest regression found' line"
    return ToolResult(
        tool="asv-find",
        named=named,
        correct=correct,
        wrong_confident=named is not None and not correct,
        commits_measured=len(measured),
        samples=None,
        wall=wall,
        exit_code=exit_code,
        first_parent_correct=named is not None and _same(named, first_parent),
        error=error,
        named_right=correct,
    )


# ---------------------------------------------------------------------------------------------
# Running the tools
# ---------------------------------------------------------------------------------------------


def ensure_asv_machine(python: str = sys.executable) -> None:
    """asv refuses to run without ~/.asv-machine.json knowing this host: create asv's default."""
    path = Path.home() / ".asv-machine.json"
    host = platform.node()
    try:
        known = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        known = {}
    if host not in known:
        subprocess.run(
            [python, "-m", "asv", "machine", "--yes", "--machine", host],
            check=True,
            capture_output=True,
            cwd=tempfile.gettempdir(),
        )


def run_smbisect(repo: GeneratedRepo, work: Path, timeout: float) -> ToolResult:
    out = work / "smbisect.json"
    cache = work / "smbisect-cache"
    argv = [
        sys.executable, "-m", "bisect_tool", "--repo", str(repo.path),
        "--good", repo.good, "--bad", repo.bad, "--bench", BENCH,
        "--json", str(out), "--cache-dir", str(cache), "-q",
    ]  # fmt: skip
    start = time.perf_counter()
    try:
        res = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, cwd=repo.path, check=False
        )
        code, stderr = res.returncode, res.stderr
    except subprocess.TimeoutExpired:
        code, stderr = -1, f"timed out after {timeout:g} s"
    wall = time.perf_counter() - start
    (work / "smbisect.stderr").write_text(stderr)
    data = json.loads(out.read_text()) if out.is_file() else None
    result = score_smbisect(data, code, repo.culprit, wall)
    if code not in (EXIT_CONFIRMED, EXIT_NOT_REPRODUCED, EXIT_NO_CULPRIT):
        result.error = (stderr.strip().splitlines() or [f"exit {code}"])[-1][:300]
    return result


def asv_find_config(repo: GeneratedRepo, work: Path, env_dir: Path) -> Path:
    conf = dict(json.loads((repo.path / "asv.conf.json").read_text()))
    conf.update(
        repo=str(repo.path),
        benchmark_dir=str(repo.path / "benchmarks"),
        results_dir=str(work / "asv-results"),
        html_dir=str(work / "asv-html"),
        env_dir=str(env_dir),
    )
    path = work / "asv.conf.json"
    path.write_text(json.dumps(conf, indent=2))
    return path


def asv_setup(conf: Path, cwd: Path) -> float:
    """Create the virtualenv once per invocation (not charged to any case); returns seconds."""
    start = time.perf_counter()
    # `asv setup` exits 1 even on success (it returns its list of environments to sys.exit),
    # so its exit code says nothing; a failed setup shows up in the first asv find instead.
    subprocess.run(
        [sys.executable, "-m", "asv", "setup", "--config", str(conf)],
        cwd=cwd,
        capture_output=True,
        check=False,
    )
    return time.perf_counter() - start


def run_asv_find(repo: GeneratedRepo, work: Path, env_dir: Path, timeout: float) -> ToolResult:
    conf = asv_find_config(repo, work, env_dir)
    argv = [
        sys.executable, "-m", "asv", "find", f"{repo.good}..{repo.bad}", BENCH,
        "--config", str(conf), "--machine", platform.node(),
    ]  # fmt: skip
    start = time.perf_counter()
    try:
        res = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, cwd=repo.path, check=False
        )
        code, output = res.returncode, res.stdout + res.stderr
    except subprocess.TimeoutExpired as exc:
        code = -1
        output = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else ""
    wall = time.perf_counter() - start
    (work / "asv-find.log").write_text(output)
    return score_asv_find(output, code, repo.culprit, repo.first_parent_culprit, wall)


# ---------------------------------------------------------------------------------------------
# Aggregation and output (pure)
# ---------------------------------------------------------------------------------------------

HEADERS = [
    "N",
    "shape",
    "slowdown",
    "noise",
    "trials",
    "smb correct",
    "smb wrong+confirmed",
    "smb unconfirmed",
    "smb commits",
    "smb samples",
    "smb wall s",
    "asv trials",
    "asv correct",
    "asv first-parent ok",
    "asv wrong",
    "asv commits",
    "asv wall s",
    "ceil(log2 N)",
]


def _rate(values: Iterable[bool]) -> str:
    vals = list(values)
    if not vals:
        return "-"
    return f"{sum(vals)}/{len(vals)}"


def _mean(values: Iterable[float | int | None], fmt: str = "{:.1f}") -> str:
    vals = [float(v) for v in values if v is not None]
    return fmt.format(statistics.fmean(vals)) if vals else "-"


def aggregate(results: Sequence[CaseResult]) -> list[list[Any]]:
    """One row per (length, shape, slowdown, noise), in the order groups first appear."""
    groups: dict[tuple[int, str, float, float], list[CaseResult]] = {}
    for r in results:
        groups.setdefault(r.case.group, []).append(r)
    rows = []
    for key in sorted(groups, key=lambda k: (k[0], SHAPES.index(k[1]), k[2], k[3])):
        rs = groups[key]
        smb = [r.results["smbisect"] for r in rs if "smbisect" in r.results]
        asv = [r.results["asv-find"] for r in rs if "asv-find" in r.results]
        length, shape, slowdown, noise = key
        rows.append(
            [
                length,
                shape,
                f"{slowdown:g}x",
                f"{noise * 100:g}%",
                len(rs),
                _rate(t.correct for t in smb),
                _rate(t.wrong_confident for t in smb),
                _rate(not t.confirmed for t in smb),
                _mean(t.commits_measured for t in smb),
                _mean((t.samples for t in smb), "{:.0f}"),
                _mean(t.wall for t in smb),
                len(asv) if asv else "-",
                _rate(t.correct for t in asv),
                _rate(bool(t.first_parent_correct) for t in asv) if shape == "merges" else "=",
                _rate(t.wrong_confident for t in asv),
                _mean(t.commits_measured for t in asv),
                _mean(t.wall for t in asv),
                math.ceil(math.log2(length)),
            ]
        )
    return rows


def load_jsonl(paths: Sequence[str]) -> list[CaseResult]:
    """Results saved with --jsonl, re-scored with the current rules (so older files still fit)."""
    out = []
    for path in paths:
        for line in Path(path).read_text().splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            r = CaseResult(
                Case(**row["case"]), row["culprit"], row["first_parent_culprit"], row["merges"]
            )
            for name, raw in row["results"].items():
                known = {k: v for k, v in raw.items() if k in ToolResult.__dataclass_fields__}
                t = ToolResult(**known)
                if name == "smbisect":
                    right = t.named == r.culprit
                    t.named_right = right
                    t.correct = right and bool(t.confirmed)
                    t.wrong_confident = bool(t.named) and bool(t.confirmed) and not right
                r.results[name] = t
            out.append(r)
    return out


def render_table(results: Sequence[CaseResult], fmt: str = "github") -> str:
    return tabulate(aggregate(results), headers=HEADERS, tablefmt=fmt, disable_numparse=True)


def machine_info() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.node()}: {platform.system()} {platform.release()}, {cpu}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
    )


def smbisect_version() -> str:
    """The smbisect code that runs: HEAD of this checkout, and whether bisect_tool/ differs."""
    here = Path(__file__).resolve().parents[1]
    try:
        head = _git(here, "rev-parse", "--short=10", "HEAD").strip()
        dirty = _git(here, "status", "--porcelain", "--", "bisect_tool").strip()
    except (RuntimeError, OSError):
        return "unknown"
    return f"{head}{' + uncommitted changes in bisect_tool/' if dirty else ''}"


def case_line(r: CaseResult) -> str:
    parts = [f"{r.case.label} culprit={r.culprit[:10]}"]
    for name, t in r.results.items():
        verdict = "ok" if t.correct else ("WRONG" if t.named else "none")
        extra = f" confirmed={t.confirmed}" if t.confirmed is not None else ""
        parts.append(
            f"{name}: {verdict} named={(t.named or '-')[:10]}{extra} exit={t.exit_code} "
            f"commits={t.commits_measured} samples={t.samples} wall={t.wall:.1f}s"
            + (f" error={t.error}" if t.error else "")
        )
    return " | ".join(parts)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def _floats(text: str) -> list[float]:
    return [float(x.rstrip("x%")) / (100.0 if x.endswith("%") else 1.0) for x in _items(text)]


def _items(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Measure smbisect's accuracy and cost against asv find on generated "
        "histories with one planted slowdown.",
    )
    p.add_argument("--quick", action="store_true", help="Small subset, under 5 minutes.")
    p.add_argument("--trials", type=int, default=3, help="Trials per grid point (default 3).")
    p.add_argument("--lengths", default="32,256,1024", help="History lengths (commits).")
    p.add_argument("--shapes", default="linear,merges", help="linear and/or merges.")
    p.add_argument("--slowdowns", default="1.1,1.3,3", help="Slowdown factors, e.g. 1.3,3.")
    p.add_argument(
        "--noise", default="0,0.05,0.15", help="Relative jitter, e.g. 0,0.05,0.15 or 5%%,15%%."
    )
    p.add_argument("--tools", default="smbisect,asv-find", help="smbisect and/or asv-find.")
    p.add_argument(
        "--asv-find-max-length",
        type=int,
        default=None,
        help="Run asv find only on histories at most this long.",
    )
    p.add_argument(
        "--asv-find-trials",
        type=int,
        default=None,
        help="Run asv find only on the first K trials of each grid point.",
    )
    p.add_argument("--seed", type=int, default=20240601, help="Base seed.")
    p.add_argument("--markdown", metavar="FILE", help="Append the table to this Markdown file.")
    p.add_argument("--jsonl", metavar="FILE", help="Append one JSON line per case here.")
    p.add_argument("--timeout", type=float, default=1800.0, help="Per tool run, seconds.")
    p.add_argument("--keep", metavar="DIR", help="Build the repositories here and keep them.")
    p.add_argument(
        "--from-jsonl",
        metavar="FILE[,FILE]",
        help="Run nothing: print the table of results saved earlier with --jsonl.",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.lengths, args.shapes, args.slowdowns, args.noise = "32,256", "linear", "1.3,3", "0.05"
        args.trials = 1
        if args.asv_find_max_length is None:
            args.asv_find_max_length = 32
    args.length_list = [int(x) for x in _items(args.lengths)]
    args.shape_list = _items(args.shapes)
    args.slowdown_list = _floats(args.slowdowns)
    args.noise_list = _floats(args.noise)
    args.tool_list = _items(args.tools)
    for s in args.shape_list:
        if s not in SHAPES:
            p.error(f"--shapes: unknown shape {s!r} (use {', '.join(SHAPES)})")
    for t in args.tool_list:
        if t not in TOOLS:
            p.error(f"--tools: unknown tool {t!r} (use {', '.join(TOOLS)})")
    if any(x < 2 for x in args.length_list):
        p.error("--lengths must be at least 2")
    if any(x <= 1.0 for x in args.slowdown_list):
        p.error("--slowdowns must be above 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_jsonl:
        print(render_table(load_jsonl(_items(args.from_jsonl))))
        return 0
    cases = build_cases(
        args.length_list,
        args.shape_list,
        args.slowdown_list,
        args.noise_list,
        args.trials,
        args.seed,
    )
    command = " ".join(["python tools/bisect_accuracy.py", *(argv or sys.argv[1:])])
    started = time.perf_counter()
    version = smbisect_version()
    print(f"{len(cases)} cases; {machine_info()}; smbisect {version}", file=sys.stderr, flush=True)
    ensure_asv_machine()
    results: list[CaseResult] = []
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bisect-accuracy-"))
    root.mkdir(parents=True, exist_ok=True)
    env_dir = root / "asv-env"
    env_ready = False
    try:
        for i, case in enumerate(cases, 1):
            work = root / f"case-{i:03d}"
            repo = make_case_repo(case, work / "repo")
            result = CaseResult(case, repo.culprit, repo.first_parent_culprit, repo.merges)
            if "smbisect" in args.tool_list:
                result.results["smbisect"] = run_smbisect(repo, work, args.timeout)
            want_asv = (
                "asv-find" in args.tool_list
                and (args.asv_find_max_length is None or case.length <= args.asv_find_max_length)
                and (args.asv_find_trials is None or case.trial < args.asv_find_trials)
            )
            if want_asv:
                if not env_ready:
                    secs = asv_setup(asv_find_config(repo, work, env_dir), repo.path)
                    print(f"asv setup (virtualenv, once): {secs:.1f} s", file=sys.stderr)
                    env_ready = True
                result.results["asv-find"] = run_asv_find(repo, work, env_dir, args.timeout)
            results.append(result)
            print(f"[{i}/{len(cases)}] {case_line(result)}", file=sys.stderr, flush=True)
            if args.jsonl:
                with open(args.jsonl, "a") as fh:
                    row = {
                        "case": asdict(case),
                        "culprit": result.culprit,
                        "first_parent_culprit": result.first_parent_culprit,
                        "merges": result.merges,
                        "results": {k: asdict(v) for k, v in result.results.items()},
                    }
                    fh.write(json.dumps(row) + "\n")
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    elapsed = time.perf_counter() - started
    table = render_table(results)
    print(table)
    print(f"\n{len(results)} cases in {elapsed:.0f} s", file=sys.stderr)
    if args.markdown:
        stamp = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        with open(args.markdown, "a") as fh:
            fh.write(
                f"\n### `{command}`\n\n{stamp}; {machine_info()}; smbisect {version} at start; "
                f"{len(results)} cases in {elapsed:.0f} s.\n\n{table}\n"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
