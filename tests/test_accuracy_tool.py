"""Fast tests of tools/bisect_accuracy.py: the repository generator and the scoring/aggregation.

No benchmark runs here: the generator is checked with git itself, the parsers on fixed data.
"""

from __future__ import annotations

import importlib.util
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def _load_tool() -> object:
    """tools/ is not a package on sys.path under pytest; load the script as a module."""
    path = Path(__file__).resolve().parents[1] / "tools" / "bisect_accuracy.py"
    spec = importlib.util.spec_from_file_location("bisect_accuracy", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


acc: Any = _load_tool()
BASE_SIZE = acc.BASE_SIZE
Case = acc.Case
CaseResult = acc.CaseResult
Node = acc.Node
Plan = acc.Plan
ToolResult = acc.ToolResult
aggregate = acc.aggregate
build_cases = acc.build_cases
first_parent_culprit = acc.first_parent_culprit
make_case_repo = acc.make_case_repo
parse_args = acc.parse_args
parse_asv_find = acc.parse_asv_find
plan_history = acc.plan_history
render_table = acc.render_table
score_asv_find = acc.score_asv_find
score_smbisect = acc.score_smbisect
trial_seed = acc.trial_seed


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()


def size_at(repo: Path, sha: str) -> int:
    text = git(repo, "show", f"{sha}:acc/core.py")
    line = next(ln for ln in text.splitlines() if ln.startswith("SIZE = "))
    return int(line.split("=")[1])


@pytest.mark.parametrize("shape", ["linear", "merges"])
@pytest.mark.parametrize("length", [2, 32, 257])
def test_plan_has_exact_length_and_one_culprit(length: int, shape: str) -> None:
    plan = plan_history(length, shape, random.Random(length))
    assert len(plan.range_ids) == length
    assert sum(n.kind == "culprit" for n in plan.nodes) == 1 or length == 2
    if length > 2:
        assert plan.culprit != 2  # never the first commit after good
    assert plan.good == 1


def test_plan_is_deterministic_per_seed() -> None:
    a = plan_history(256, "merges", random.Random(5))
    b = plan_history(256, "merges", random.Random(5))
    c = plan_history(256, "merges", random.Random(6))
    assert a == b
    assert a != c


@pytest.mark.parametrize("shape", ["linear", "merges"])
def test_generated_repo_culprit_is_where_the_constant_changes(tmp_path: Path, shape: str) -> None:
    case = Case(64, shape, 1.3, 0.05, 0, trial_seed(1, (64, shape, 1.3, 0.05), 0))
    repo = make_case_repo(case, tmp_path / "repo")
    assert git(repo.path, "rev-list", "--count", f"{repo.good}..{repo.bad}") == "64"
    assert repo.length == 64
    slow = round(BASE_SIZE * 1.3)
    # the constant changes in exactly one commit, the culprit, and nowhere else
    touching = git(repo.path, "log", "--format=%H", "--no-merges", "--", "acc/core.py").split()
    assert touching[0] == repo.culprit
    assert set(touching) == {repo.culprit, repo.good}
    parent = git(repo.path, "rev-parse", f"{repo.culprit}^")
    assert size_at(repo.path, parent) == BASE_SIZE
    assert size_at(repo.path, repo.culprit) == slow
    assert size_at(repo.path, repo.good) == BASE_SIZE
    assert size_at(repo.path, repo.bad) == slow
    # every commit of the range has the slow constant exactly when it contains the culprit
    for sha in git(repo.path, "rev-list", f"{repo.good}..{repo.bad}").split()[::7]:
        has = (
            subprocess.run(
                ["git", "merge-base", "--is-ancestor", repo.culprit, sha], cwd=repo.path
            ).returncode
            == 0
        )
        assert size_at(repo.path, sha) == (slow if has else BASE_SIZE)
    assert "NOISE = 0.05" in git(repo.path, "show", f"{repo.good}:acc/core.py")
    assert git(repo.path, "status", "--porcelain") == ""


def test_merge_shape_has_real_merges_and_linear_has_none(tmp_path: Path) -> None:
    merges = make_case_repo(Case(128, "merges", 3.0, 0.0, 0, 11), tmp_path / "m")
    linear = make_case_repo(Case(128, "linear", 3.0, 0.0, 0, 11), tmp_path / "l")
    n_merges = int(git(merges.path, "rev-list", "--count", "--merges", "good..main"))
    assert n_merges == merges.merges > 5
    assert git(linear.path, "rev-list", "--count", "--merges", "good..main") == "0"
    # some merges join lines that really diverged (main moved on while the feature was open)
    diverged = 0
    for sha in git(merges.path, "rev-list", "--merges", "good..main").split():
        p1, p2 = git(merges.path, "rev-parse", f"{sha}^1", f"{sha}^2").split()
        if git(merges.path, "merge-base", p1, p2) != p1:
            diverged += 1
    assert diverged > 0
    # first_parent_culprit is the culprit itself or the first-parent commit that brings it in
    fp = merges.first_parent_culprit
    first_parent = git(merges.path, "rev-list", "--first-parent", "good..main").split()
    assert fp in first_parent
    assert (
        subprocess.run(
            ["git", "merge-base", "--is-ancestor", merges.culprit, fp], cwd=merges.path
        ).returncode
        == 0
    )
    assert linear.first_parent_culprit == linear.culprit


def test_first_parent_culprit_on_a_feature_branch() -> None:
    # 1 - 2 - 5(merge of 4) ; feature: 2 - 3 - 4, culprit 3
    nodes = (
        Node(1, (), "main", "base"),
        Node(2, (1,), "main", "change"),
        Node(3, (2,), "feature-1", "culprit"),
        Node(4, (3,), "feature-1", "change"),
        Node(5, (2, 4), "main", "merge"),
        Node(6, (5,), "main", "change"),
    )
    assert first_parent_culprit(Plan(nodes, 1, 6, 3)) == 5


def test_cases_seeds_and_trial_major_order() -> None:
    cases = build_cases([32, 256], ["linear"], [1.3, 3.0], [0.05], 2, 7)
    assert len(cases) == 8
    assert [c.trial for c in cases] == [0] * 4 + [1] * 4
    assert len({c.seed for c in cases}) == 8
    again = build_cases([32, 256], ["linear"], [1.3, 3.0], [0.05], 2, 7)
    assert cases == again


def test_quick_and_list_options() -> None:
    quick = parse_args(["--quick"])
    assert quick.length_list == [32, 256] and quick.shape_list == ["linear"]
    assert quick.slowdown_list == [1.3, 3.0] and quick.noise_list == [0.05]
    assert quick.trials == 1
    args = parse_args(["--noise", "0,5%,15%", "--slowdowns", "1.1x,3", "--tools", "smbisect"])
    assert args.noise_list == [0.0, 0.05, 0.15]
    assert args.slowdown_list == [1.1, 3.0]
    assert args.tool_list == ["smbisect"]
    with pytest.raises(SystemExit):
        parse_args(["--shapes", "spiral"])


SMB_JSON = {
    "exit_code": 0,
    "commits_in_range": 32,
    "log2_bound": 5,
    "culprits": [
        {"benchmark": "bench_acc.time_work", "sha": "c" * 40, "confirmed": True, "steps": 5}
    ],
    "steps": [
        {"sha": "a" * 40, "role": "good", "samples": {"bench_acc.time_work": [1.0] * 15}},
        {"sha": "b" * 40, "role": "step", "samples": {"bench_acc.time_work": [1.0] * 5}},
        {"sha": "c" * 40, "role": "step", "samples": {"bench_acc.time_work": [2.0] * 30}},
        {"sha": "d" * 40, "role": "parent", "samples": {"bench_acc.time_work": [1.0] * 25}},
        {"sha": "e" * 40, "role": "step", "samples": {}},  # skipped, never measured
        {"sha": "f" * 40, "role": "bad", "samples": {"bench_acc.time_work": [2.0] * 15}},
    ],
}


def test_score_smbisect_right_wrong_and_unconfirmed() -> None:
    right = score_smbisect(SMB_JSON, 0, "c" * 40, 12.5)
    assert right.correct and not right.wrong_confident and right.confirmed
    assert right.commits_measured == 5 and right.samples == 90 and right.wall == 12.5
    wrong = score_smbisect(SMB_JSON, 0, "b" * 40, 1.0)
    assert not wrong.correct and wrong.wrong_confident
    unconfirmed = {
        **SMB_JSON,
        "culprits": [{**SMB_JSON["culprits"][0], "confirmed": False}],
    }
    hedged = score_smbisect(unconfirmed, 4, "b" * 40, 1.0)
    assert not hedged.correct and not hedged.wrong_confident
    right_unconfirmed = score_smbisect(unconfirmed, 4, "c" * 40, 1.0)
    assert right_unconfirmed.named_right and not right_unconfirmed.correct
    none = score_smbisect({"culprits": [], "steps": SMB_JSON["steps"][:1]}, 3, "c" * 40, 1.0)
    assert none.named is None and not none.correct and not none.wrong_confident
    crashed = score_smbisect(None, 1, "c" * 40, 1.0)
    assert crashed.error and crashed.commits_measured == 0


ASV_LOG = """\
· Discovering benchmarks
· Running approximately 4 benchmarks within 31 commits
· Testing <-----------------------------O----------------------------->
·· For acc commit 1a2b3c4d <main~30>:
··· Building for virtualenv-py3.11
··· bench_acc.time_work                                       1.62±0.02ms
·· For acc commit 5e6f7a8b <main~15>:
··· bench_acc.time_work                                       2.11±0.1ms
·· For acc commit 9c0d1e2f <main>:
··· bench_acc.time_work                                       2.15±0.03ms
· Testing <--------------O-------------->----------------------------
·· For acc commit 0a1b2c3d <main~22>:
··· bench_acc.time_work                                       2.08±0.05ms
· Greatest regression found: 0a1b2c3d <main~22>
"""


def test_parse_and_score_asv_find() -> None:
    named, measured = parse_asv_find(ASV_LOG)
    assert named == "0a1b2c3d"
    assert measured == ["1a2b3c4d", "5e6f7a8b", "9c0d1e2f", "0a1b2c3d"]
    culprit = "0a1b2c3d" + "0" * 32
    ok = score_asv_find(ASV_LOG, 0, culprit, culprit, 80.0)
    assert ok.correct and not ok.wrong_confident and ok.commits_measured == 4
    wrong = score_asv_find(ASV_LOG, 0, "f" * 40, "0a1b2c3d" + "1" * 32, 80.0)
    assert not wrong.correct and wrong.wrong_confident and wrong.first_parent_correct
    failed = score_asv_find("· Discovering benchmarks\n", 1, culprit, culprit, 3.0)
    assert failed.named is None and not failed.wrong_confident and failed.error


def _result(case: Any, smb: Any, asv: Any = None) -> Any:
    r = CaseResult(case, "c" * 40, "c" * 40, 0)
    r.results["smbisect"] = smb
    if asv:
        r.results["asv-find"] = asv
    return r


def test_aggregate_rows() -> None:
    def smb(correct: bool, wrong: bool, commits: int, samples: int, wall: float) -> Any:
        return ToolResult("smbisect", "x", correct, wrong, commits, samples, wall, 0, True)

    def asv(correct: bool, commits: int, wall: float) -> Any:
        return ToolResult("asv-find", "y", correct, not correct, commits, None, wall, 0, None, True)

    c32 = Case(32, "linear", 1.3, 0.05, 0, 1)
    c32b = Case(32, "linear", 1.3, 0.05, 1, 2)
    c256 = Case(256, "merges", 3.0, 0.15, 0, 3)
    rows = aggregate(
        [
            _result(c256, smb(True, False, 12, 150, 30.0)),
            _result(c32, smb(True, False, 8, 100, 10.0), asv(True, 6, 60.0)),
            _result(c32b, smb(False, True, 10, 120, 20.0), asv(False, 8, 80.0)),
        ]
    )
    assert rows[0] == [
        32, "linear", "1.3x", "5%", 2, "1/2", "1/2", "0/2", "9.0", "110", "15.0",
        2, "1/2", "=", "1/2", "7.0", "70.0", 5,
    ]  # fmt: skip
    assert rows[1][:6] == [256, "merges", "3x", "15%", 1, "1/1"]
    assert rows[1][11:18] == ["-", "-", "-", "-", "-", "-", 8]
    table = render_table([_result(c32, smb(True, False, 8, 100, 10.0))])
    assert "smb correct" in table and "ceil(log2 N)" in table and "| 1/1" in table


def test_jsonl_round_trip_rescores(tmp_path: Path) -> None:
    import json

    case = Case(32, "linear", 1.3, 0.05, 0, 1)
    smb = score_smbisect(SMB_JSON, 0, "c" * 40, 12.5)
    line = {
        "case": vars(case),
        "culprit": "c" * 40,
        "first_parent_culprit": "c" * 40,
        "merges": 0,
        "results": {"smbisect": {**vars(smb), "correct": False, "unknown_field": 1}},
    }
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(line) + "\n\n")
    (loaded,) = acc.load_jsonl([str(path)])
    assert loaded.case == case
    assert loaded.results["smbisect"].correct  # re-scored from named + confirmed
    assert aggregate([loaded])[0][5] == "1/1"
