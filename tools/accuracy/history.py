"""Generated histories: the plan (pure, no git), the cases of a run, and the repository writer.

A case repository holds a tiny pip-installable package `acc` whose `work()` is CPU-bound, an
asv suite (`benchmarks/bench_acc.py::time_work`), an asv.conf.json and `bench.py`, a script
that times one call of `work()` for smbisect's command mode. Exactly one commit, the culprit,
multiplies the workload constant `SIZE` by the slowdown; every other commit changes an
unrelated file or is a --no-ff merge.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SHAPES = ("linear", "merges")
WORKLOADS = ("python", "numpy")
MODES = ("asv", "cmd")
LOADS = ("none", "bursty")

# SIZE at the good commit, per workload. `python`: loop iterations of a pure-Python loop, about
# 2 ms. `numpy`: repetitions of a NUMPY_DIM x NUMPY_DIM float64 matmul, about 3 ms. Either way
# the time of one call is proportional to SIZE, so the culprit's SIZE * slowdown scales the
# time by the slowdown.
BASE_SIZE = 50_000
NUMPY_BASE_SIZE = 60
NUMPY_DIM = 96
BASE_SIZES = {"python": BASE_SIZE, "numpy": NUMPY_BASE_SIZE}
BENCH = "time_work"


# ---------------------------------------------------------------------------------------------
# History plan (pure: no git)
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


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One trial. The first six fields define the repository; the rest say how it is measured
    (the same repository is built whatever the load, mode or smbisect arguments are, so runs
    that differ only in those measure the same histories)."""

    length: int
    shape: str
    slowdown: float
    noise: float
    trial: int
    seed: int
    load: str = "none"  # "none" or "bursty": a competing CPU load during each tool run
    workload: str = "python"  # what acc.work() does: "python" loop or "numpy" matmuls
    mode: str = "asv"  # how smbisect measures: "asv" (--bench) or "cmd" (--cmd bench.py)
    smbisect_args: str = ""  # extra smbisect arguments (--smbisect-args), as given

    @property
    def group(self) -> tuple[int, str, float, float, str, str]:
        return (self.length, self.shape, self.slowdown, self.noise, self.load, self.setup)

    @property
    def setup(self) -> str:
        """How smbisect measured, for the tables: mode/workload, plus any extra arguments."""
        text = f"{self.mode}/{self.workload}"
        return f"{text} {self.smbisect_args}" if self.smbisect_args else text

    @property
    def repo_label(self) -> str:
        label = (
            f"N={self.length} {self.shape} {self.slowdown:g}x noise={self.noise:g} "
            f"trial={self.trial} seed={self.seed}"
        )
        return label if self.workload == "python" else f"{label} workload={self.workload}"

    @property
    def label(self) -> str:
        extra = f" load={self.load}" if self.load != "none" else ""
        if self.mode != "asv":
            extra += f" mode={self.mode}"
        if self.smbisect_args:
            extra += f" smbisect-args={self.smbisect_args!r}"
        return self.repo_label + extra


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
    *,
    load: str = "none",
    workload: str = "python",
    mode: str = "asv",
    smbisect_args: str = "",
) -> list[Case]:
    """Trial-major order, so an interrupted run still covers every group at least once."""
    how = {"load": load, "workload": workload, "mode": mode, "smbisect_args": smbisect_args}
    cases = []
    for trial in range(trials):
        for length in lengths:
            for shape in shapes:
                for slowdown in slowdowns:
                    for noise in noises:
                        key = (length, shape, slowdown, noise)
                        seed = trial_seed(base_seed, key, trial)
                        cases.append(Case(length, shape, slowdown, noise, trial, seed, **how))
    return cases


# ---------------------------------------------------------------------------------------------
# Repository content
# ---------------------------------------------------------------------------------------------

_CORE_HEAD = '''"""The measured code: {what} whose length is SIZE, jittered by NOISE."""

import os
import random
import time
{imports}
SIZE = {size}
NOISE = {noise!r}  # relative spread (standard deviation) of the per-call workload factor
SEED = {seed}

# The trial seed plus per-process entropy: with the seed alone every benchmark process would
# replay the same factors, and the noise would cancel out between commits.
_rng = random.Random(f"{{SEED}}:{{os.getpid()}}:{{time.perf_counter_ns()}}")
'''

_PYTHON_WORK = """

def work() -> int:
    n = SIZE
    if NOISE:
        n = max(1, int(n * max(0.2, _rng.gauss(1.0, NOISE))))
    total = 0
    for i in range(n):
        total += i * i % 7
    return total
"""

_NUMPY_WORK = """DIM = {dim}

_gen = np.random.default_rng(SEED)
_A = _gen.standard_normal((DIM, DIM)) / DIM**0.5
_B = _gen.standard_normal((DIM, DIM)) / DIM**0.5


def work() -> float:
    n = SIZE
    if NOISE:
        n = max(1, round(n * max(0.2, _rng.gauss(1.0, NOISE))))
    c = _A
    for _ in range(n):
        c = _A @ _B
    return float(c[0, 0])
"""


def core_py(size: int, noise: float, seed: int, workload: str = "python") -> str:
    """acc/core.py: `SIZE` calls' worth of work, the only line the culprit changes."""
    if workload == "python":
        head = _CORE_HEAD.format(
            what="a CPU-bound loop", imports="", size=size, noise=noise, seed=seed
        )
        return head + _PYTHON_WORK
    if workload == "numpy":
        head = _CORE_HEAD.format(
            what="a loop of matrix products (numpy, BLAS)",
            imports="\nimport numpy as np\n",
            size=size,
            noise=noise,
            seed=seed,
        )
        return head + "\n" + _NUMPY_WORK.format(dim=NUMPY_DIM)
    raise ValueError(f"unknown workload {workload!r}")


def asv_conf(workload: str = "python") -> dict[str, Any]:
    conf: dict[str, Any] = {
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
    if workload == "numpy":
        # asv find builds a virtualenv: numpy has to be installed into it (once, by asv setup)
        conf["matrix"] = {"req": {"numpy": ""}}
    return conf


ASV_CONF: dict[str, Any] = asv_conf()

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

# smbisect's command mode runs a command in the commit's checkout, with no PYTHONPATH of its
# own: the script puts its own directory first on sys.path so it imports that commit's acc.
BENCH_SCRIPT = '''"""Time one call of acc.work(), after an untimed warm-up call; print the seconds.

    smbisect --cmd "python bench.py" --metric stdout
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from acc import work  # noqa: E402

work()
start = time.perf_counter()
work()
print(f"{time.perf_counter() - start:.9f}")
'''
BENCH_SCRIPT_NAME = "bench.py"


def base_tree(case_line: str, noise: float, seed: int, workload: str = "python") -> dict[str, str]:
    return {
        "README.md": f"# acc\n\nGenerated by tools/bisect_accuracy.py: {case_line}\n",
        "pyproject.toml": PYPROJECT,
        "asv.conf.json": json.dumps(asv_conf(workload), indent=2) + "\n",
        "acc/__init__.py": "from .core import work\n\n__all__ = ['work']\n",
        "acc/core.py": core_py(BASE_SIZES[workload], noise, seed, workload),
        "benchmarks/__init__.py": "",
        "benchmarks/bench_acc.py": BENCH_PY,
        BENCH_SCRIPT_NAME: BENCH_SCRIPT,
        ".gitignore": ".asv/\n*.egg-info/\nbuild/\n__pycache__/\n",
    }


# ---------------------------------------------------------------------------------------------
# Repository writer
# ---------------------------------------------------------------------------------------------


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


def git(repo: Path, *args: str, stdin: bytes | None = None) -> str:
    res = subprocess.run(["git", *args], cwd=repo, input=stdin, capture_output=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {res.stderr.decode(errors='replace')}")
    return res.stdout.decode()


def _data(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return b"data %d\n" % len(raw) + raw + b"\n"


def write_repo(
    path: Path,
    plan: Plan,
    slowdown: float,
    noise: float,
    seed: int,
    case_line: str,
    workload: str = "python",
    changes: Mapping[int, float] | None = None,
) -> GeneratedRepo:
    """Write the planned history with `git fast-import` (a 1024-commit repo takes a second).

    Each commit's full tree is written (deleteall + files), which makes merges exact: a merge
    holds the union of its parents' files. The workload constant of every commit is the base
    size times the factor of each planted change it contains: `changes` maps node ids to
    factors (several changes, tools/accuracy/changes.py), by default the culprit's slowdown.
    """
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Accuracy Bench")
    git(path, "config", "user.email", "acc@example.invalid")
    planted = dict(changes) if changes is not None else {plan.culprit: slowdown}
    contains: dict[int, frozenset[int]] = {}
    trees: dict[int, dict[str, str]] = {}
    stream = bytearray()
    stamp = 1_700_000_000
    for node in plan.nodes:
        inherited = frozenset().union(*(contains[p] for p in node.parents))
        contains[node.id] = inherited | ({node.id} if node.id in planted else set())
        size = int(round(BASE_SIZES[workload] * math.prod(planted[c] for c in contains[node.id])))
        if not node.parents:
            tree = base_tree(case_line, noise, seed, workload)
            msg = "Initial acc package, asv suite and config"
        else:
            tree = dict(trees[node.parents[0]])
            for other in node.parents[1:]:
                for name, content in trees[other].items():
                    tree.setdefault(name, content)  # main's own files are supersets
            # the constant of every planted change the commit contains (a merge: of both sides)
            tree["acc/core.py"] = core_py(size, noise, seed, workload)
            if node.id in planted:
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
    git(path, "fast-import", "--quiet", f"--export-marks={marks}", stdin=bytes(stream))
    shas: dict[int, str] = {}
    for line in marks.read_text().splitlines():
        mark, sha = line.split()
        shas[int(mark.lstrip(":"))] = sha
    marks.unlink()
    git(path, "reset", "-q", "--hard", "main")
    git(path, "tag", "good", shas[plan.good])
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


def make_case_repo(case: Case, path: Path) -> GeneratedRepo:
    rng = random.Random(case.seed)
    plan = plan_history(case.length, case.shape, rng)
    return write_repo(
        path, plan, case.slowdown, case.noise, case.seed, case.repo_label, case.workload
    )
