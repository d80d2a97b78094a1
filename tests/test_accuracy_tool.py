"""Fast tests of the accuracy tool (tools/bisect_accuracy.py and its package tools/accuracy/):
the repository generator, scoring, intervals, tables and the competing load.

No benchmark runs here: the generator is checked with git itself, the parsers on fixed data,
the load by starting and stopping it.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

TOOLS = Path(__file__).resolve().parents[1] / "tools"
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))  # tools/ is not installed; its package is `accuracy`

from accuracy.changes import (  # noqa: E402
    ALL_RIGHT,
    INCOMPLETE,
    ChangesCase,
    commits_target,
    parse_changes,
    required,
    score_changes,
)
from accuracy.changes_run import make_changes_repo  # noqa: E402
from accuracy.cli import parse_args, setup_line  # noqa: E402
from accuracy.history import (  # noqa: E402
    BASE_SIZE,
    NUMPY_BASE_SIZE,
    NUMPY_DIM,
    Case,
    Node,
    Plan,
    build_cases,
    first_parent_culprit,
    make_case_repo,
    plan_history,
    trial_seed,
)
from accuracy.load import BurstyLoad, group_pids  # noqa: E402
from accuracy.run import SmbisectSettings, load_context, smbisect_argv  # noqa: E402
from accuracy.scoring import (  # noqa: E402
    ERROR,
    UNCONFIRMED,
    WRONG,
    CaseResult,
    ToolResult,
    load_jsonl,
    parse_asv_find,
    rate_with_interval,
    result_row,
    runs_target,
    score_asv_find,
    score_smbisect,
    wilson_interval,
)
from accuracy.tables import (  # noqa: E402
    HEADERS,
    SUMMARY_HEADERS,
    aggregate,
    render_report,
    render_table,
    summarize,
)


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


def _smb(
    outcome: str,
    commits: int = 8,
    samples: int = 100,
    wall: float = 10.0,
    runs: Any = None,
    to_culprit: int | None = None,
) -> Any:
    correct, wrong = outcome == "correct", outcome == "wrong+confirmed"
    exit_code = {"no regression": 3, "unconfirmed": 4, "inconclusive": 5, "error": 1}.get(
        outcome, 0
    )
    return ToolResult(
        "smbisect", "x", correct, wrong, commits, samples, wall, exit_code, correct or wrong,
        outcome=outcome, runs=samples if runs is None else runs,
        runs_source="samples" if runs is None else "runs.total", runs_to_culprit=to_culprit,
    )  # fmt: skip


def _asv(correct: bool, commits: int, wall: float) -> Any:
    return ToolResult("asv-find", "y", correct, not correct, commits, None, wall, 0, None, True)


def test_aggregate_rows() -> None:
    c32 = Case(32, "linear", 1.3, 0.05, 0, 1)
    c32b = Case(32, "linear", 1.3, 0.05, 1, 2)
    c256 = Case(256, "merges", 3.0, 0.15, 0, 3)
    rows = aggregate(
        [
            _result(c256, _smb("correct", 12, 150, 30.0, runs=20)),
            _result(c32, _smb("correct", 8, 100, 10.0, 14, 11), _asv(True, 6, 60.0)),
            _result(c32b, _smb("wrong+confirmed", 10, 120, 20.0, 20, 16), _asv(False, 8, 80.0)),
        ]
    )
    assert len(rows[0]) == len(HEADERS)
    half = "1/2 [0.09, 0.91]"
    assert dict(zip(HEADERS, rows[0], strict=True)) == {
        "N": 32, "shape": "linear", "slowdown": "1.3x", "noise": "5%", "load": "none",
        "setup": "asv/python", "trials": 2,
        "smb correct": half, "smb wrong+confirmed": half, "smb unconfirmed": "0/2",
        "smb no regression": "0/2", "smb inconclusive": "0/2", "smb error": "0/2",
        "smb commits": "9.0", "smb samples": "110", "smb runs": "17.0",
        "runs target": "16 missed", "smb runs to culprit": "13.5", "smb wall s": "15.0",
        "asv trials": 2, "asv correct": half, "asv first-parent ok": "=", "asv wrong": half,
        "asv commits": "7.0", "asv wall s": "70.0", "ceil(log2 N)": 5,
    }  # fmt: skip
    assert rows[1][:8] == [256, "merges", "3x", "15%", "none", "asv/python", 1, "1/1 [0.21, 1.00]"]
    assert rows[1][15:17] == ["20.0", "22 met"]
    assert rows[1][17] == "-"  # no runs.to_culprit reported
    assert rows[1][19:] == ["-", "-", "-", "-", "-", "-", 8]
    table = render_table([_result(c32, _smb("correct", runs=14))])
    assert "smb correct" in table and "ceil(log2 N)" in table and "| 1/1 [0.21, 1.00]" in table
    assert "*" not in table  # runs came from runs.total


def test_aggregate_separates_loads_and_setups_and_counts_every_outcome() -> None:
    plain = Case(32, "linear", 1.3, 0.05, 0, 1)
    loaded = Case(32, "linear", 1.3, 0.05, 0, 1, load="bursty")
    cmd = Case(32, "linear", 1.3, 0.05, 0, 1, workload="numpy", mode="cmd")
    outcomes = ["correct", "unconfirmed", "no regression", "inconclusive", "error"]
    results = [_result(loaded, _smb(o)) for o in outcomes]
    results += [_result(plain, _smb("correct")), _result(cmd, _smb("correct"))]
    rows = aggregate(results)
    assert [(r[4], r[5]) for r in rows] == [
        ("none", "asv/python"),
        ("none", "cmd/numpy"),
        ("bursty", "asv/python"),
    ]
    bursty = dict(zip(HEADERS, rows[2], strict=True))
    assert bursty["trials"] == 5
    for col in ("unconfirmed", "no regression", "inconclusive", "error"):
        assert bursty[f"smb {col}"] == "1/5"
    assert bursty["smb correct"].startswith("1/5 [")
    assert bursty["smb wrong+confirmed"].startswith("0/5 [0.00, ")
    assert bursty["smb runs"] == "100.0*"  # runs fell back to the sample count
    assert "no `runs` object" in render_table(results)


def test_summary_pools_lengths_shapes_and_trials_per_slowdown_noise_load() -> None:
    results = []
    for i, (length, shape) in enumerate([(32, "linear"), (256, "merges"), (1024, "linear")]):
        for trial in range(2):
            case = Case(length, shape, 1.3, 0.15, trial, i * 10 + trial, load="bursty")
            runs = runs_target(length) + (1 if trial else 0)  # trial 1 misses the target
            results.append(_result(case, _smb("correct", runs=runs), _asv(trial == 0, 5, 1.0)))
    results.append(_result(Case(32, "linear", 3.0, 0.15, 0, 99), _smb("wrong+confirmed", runs=9)))
    rows = summarize(results)
    assert len(rows) == 2
    row = dict(zip(SUMMARY_HEADERS, rows[0], strict=True))
    assert row["slowdown"] == "1.3x" and row["load"] == "bursty" and row["cases"] == 6
    assert row["smb correct"] == rate_with_interval(6, 6) == "6/6 [0.61, 1.00]"
    assert row["smb wrong+confirmed"] == "0/6 [0.00, 0.39]"
    assert row["smb runs <= target"] == "3/6"
    assert row["asv cases"] == 6 and row["asv correct"] == "3/6 [0.19, 0.81]"
    other = dict(zip(SUMMARY_HEADERS, rows[1], strict=True))
    assert other["slowdown"] == "3x" and other["load"] == "none"
    assert other["smb wrong+confirmed"] == "1/1 [0.21, 1.00]" and other["asv cases"] == "-"
    report = render_report(results)
    assert "Overall" in report and "smb runs <= target" in report


def test_wilson_interval() -> None:
    lo, hi = wilson_interval(38, 40)
    assert (round(lo, 2), round(hi, 2)) == (0.83, 0.99)
    assert rate_with_interval(38, 40) == "38/40 [0.83, 0.99]"
    assert wilson_interval(0, 0) == (0.0, 1.0) and rate_with_interval(0, 0) == "-"
    lo, hi = wilson_interval(0, 40)
    assert lo == 0.0 and 0.08 < hi < 0.09  # never a confirmed-wrong in 40 still allows ~9%
    assert wilson_interval(40, 40)[1] == 1.0
    # symmetric in successes and failures, and narrowing with more trials at the same rate
    a, b = wilson_interval(3, 10), wilson_interval(7, 10)
    assert a[0] == pytest.approx(1 - b[1]) and a[1] == pytest.approx(1 - b[0])
    wide, narrow = wilson_interval(5, 10), wilson_interval(50, 100)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]
    for k in range(11):
        lo, hi = wilson_interval(k, 10)
        assert 0.0 <= lo <= k / 10 <= hi <= 1.0
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_runs_target() -> None:
    assert [runs_target(n) for n in (2, 32, 33, 256, 1024)] == [8, 16, 18, 22, 26]


def test_score_smbisect_exit_codes_and_runs() -> None:
    def with_culprit(confirmed: bool) -> dict[str, Any]:
        return {**SMB_JSON, "culprits": [{**SMB_JSON["culprits"][0], "confirmed": confirmed}]}

    no_culprit = {"culprits": [], "steps": SMB_JSON["steps"]}
    inconclusive = score_smbisect(no_culprit, 5, "c" * 40, 3.0)
    assert inconclusive.outcome == "inconclusive" and inconclusive.error is None
    assert not inconclusive.correct and not inconclusive.wrong_confident
    assert score_smbisect(with_culprit(False), 5, "b" * 40, 1.0).outcome == "inconclusive"
    assert score_smbisect(no_culprit, 3, "c" * 40, 1.0).outcome == "no regression"
    assert score_smbisect(with_culprit(False), 4, "c" * 40, 1.0).outcome == "unconfirmed"
    assert score_smbisect(with_culprit(True), 0, "c" * 40, 1.0).outcome == "correct"
    assert score_smbisect(with_culprit(True), 0, "b" * 40, 1.0).outcome == "wrong+confirmed"
    assert score_smbisect(None, 1, "c" * 40, 1.0).outcome == "error"
    assert score_smbisect(None, 5, "c" * 40, 1.0).outcome == "inconclusive"
    # runs: smbisect's runs.total when it reports it, else the samples (older versions)
    old = score_smbisect(SMB_JSON, 0, "c" * 40, 1.0)
    assert (old.runs, old.runs_source, old.plain_bisect_runs) == (90, "samples", None)
    runs = {"total": 17, "per_commit": {"a" * 40: 4, "c" * 40: 6}, "plain_bisect": 5}
    new = score_smbisect({**SMB_JSON, "runs": runs}, 0, "c" * 40, 1.0)
    assert (new.runs, new.runs_source, new.plain_bisect_runs) == (17, "runs.total", 5)
    assert new.samples == 90 and new.runs_to_culprit is None and old.runs_to_culprit is None
    confirmed_at = score_smbisect({**SMB_JSON, "runs": {**runs, "to_culprit": 12}}, 0, "c" * 40, 1)
    assert (confirmed_at.runs, confirmed_at.runs_to_culprit) == (17, 12)


def test_jsonl_round_trip_rescores(tmp_path: Path) -> None:
    case = Case(32, "linear", 1.3, 0.05, 0, 1)
    smb = score_smbisect(SMB_JSON, 0, "c" * 40, 12.5)
    old_case = {k: v for k, v in vars(case).items() if k in ("length", "shape", "slowdown",
                "noise", "trial", "seed")}  # fmt: skip
    old_result = {k: v for k, v in vars(smb).items() if k not in ("outcome", "runs", "runs_source")}
    line = {
        "case": old_case,  # a line written before loads, workloads and modes existed
        "culprit": "c" * 40,
        "first_parent_culprit": "c" * 40,
        "merges": 0,
        "results": {"smbisect": {**old_result, "correct": False, "unknown_field": 1}},
    }
    loaded_case = Case(256, "merges", 3.0, 0.15, 1, 2, load="bursty", workload="numpy")
    fresh = _result(loaded_case, score_smbisect(None, 5, "c" * 40, 2.0))
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(line) + "\n\n" + json.dumps(result_row(fresh)) + "\n")
    loaded, again = load_jsonl([str(path)])
    assert loaded.case == case
    assert loaded.results["smbisect"].correct  # re-scored from named + confirmed
    assert loaded.results["smbisect"].outcome == "correct"
    assert loaded.results["smbisect"].runs == 90  # the samples, for want of runs
    assert aggregate([loaded])[0][7] == "1/1 [0.21, 1.00]"
    assert again.case == loaded_case and again.case.load == "bursty"
    assert again.results["smbisect"].outcome == "inconclusive"
    assert json.loads(path.read_text().splitlines()[-1])["load"] == "bursty"


# ---------------------------------------------------------------------------------------------
# Options, command lines, workloads
# ---------------------------------------------------------------------------------------------


def test_new_options() -> None:
    args = parse_args(
        ["--load", "--cmd-mode", "--workload", "numpy", "--smbisect-args", "--timeout 60 -v"]
    )
    assert args.load == "bursty" and args.load_workers == 2
    assert args.mode == "cmd" and args.cmd_metric == "stdout" and args.workload == "numpy"
    assert args.smbisect_argv == ["--timeout", "60", "-v"]
    assert "load: bursty (2 workers)" in setup_line(args)
    plain = parse_args([])
    assert plain.load == "none" and plain.mode == "asv" and plain.smbisect_argv == []
    assert setup_line(plain).startswith("load: none;")
    assert parse_args(["--load", "none"]).load == "none"
    cases = build_cases([32], ["linear"], [1.3], [0.05], 1, 7, load="bursty", mode="cmd")
    assert cases[0].load == "bursty" and cases[0].setup == "cmd/python"
    # the load and mode do not change the repository: same seed as without them
    assert cases[0].seed == build_cases([32], ["linear"], [1.3], [0.05], 1, 7)[0].seed
    for bad in (["--smbisect-args", "'unclosed"], ["--load", "heavy"], ["--workload", "c"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_smbisect_command_lines(tmp_path: Path) -> None:
    repo = make_case_repo(Case(8, "linear", 3.0, 0.0, 0, 5), tmp_path / "repo")
    out, cache = tmp_path / "o.json", tmp_path / "cache"
    asv = smbisect_argv(repo, out, cache, SmbisectSettings())
    assert asv[1:3] == ["-m", "bisect_tool"]
    assert asv[asv.index("--bench") + 1] == "time_work" and "--cmd" not in asv
    settings = SmbisectSettings("cmd", "stdout", ("--timeout", "60"))
    cmd = smbisect_argv(repo, out, cache, settings)
    assert "--bench" not in cmd and cmd[-2:] == ["--timeout", "60"]
    assert cmd[cmd.index("--metric") + 1] == "stdout"
    command = cmd[cmd.index("--cmd") + 1]
    assert command.endswith(" bench.py") and settings.bench_name == command
    # the command smbisect will run, from the checkout, with no PYTHONPATH
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run(
        command, shell=True, cwd=repo.path, env=env, capture_output=True, text=True, check=True
    )
    assert float(res.stdout.split()[-1]) > 0


def test_numpy_workload_repo_builds_and_its_bench_runs(tmp_path: Path) -> None:
    case = Case(16, "merges", 1.3, 0.05, 0, 9, workload="numpy")
    repo = make_case_repo(case, tmp_path / "repo")
    assert git(repo.path, "rev-list", "--count", f"{repo.good}..{repo.bad}") == "16"
    slow = round(NUMPY_BASE_SIZE * 1.3)
    assert size_at(repo.path, repo.good) == NUMPY_BASE_SIZE
    assert size_at(repo.path, repo.culprit) == slow == size_at(repo.path, repo.bad)
    parent = git(repo.path, "rev-parse", f"{repo.culprit}^")
    assert size_at(repo.path, parent) == NUMPY_BASE_SIZE
    core = git(repo.path, "show", f"{repo.bad}:acc/core.py")
    assert "import numpy as np" in core and "_A @ _B" in core
    conf = json.loads(git(repo.path, "show", f"{repo.bad}:asv.conf.json"))
    assert conf["matrix"] == {"req": {"numpy": ""}}  # asv find's virtualenv needs numpy
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    timings = []
    for _ in range(2):
        res = subprocess.run(
            [sys.executable, "bench.py"], cwd=repo.path, env=env, capture_output=True,
            text=True, check=True,
        )  # fmt: skip
        timings.append(float(res.stdout.split()[-1]))
    assert all(0 < t < 5 for t in timings)
    # the asv benchmark imports and runs too
    code = "import sys; sys.path.insert(0, '.'); from benchmarks.bench_acc import time_work; " + (
        "time_work(); print(time_work.number)"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=repo.path, capture_output=True, text=True, check=True
    )
    assert res.stdout.strip() == "1"


def test_numpy_work_is_size_matmuls(tmp_path: Path) -> None:
    """The slowdown is a longer loop of the same matmul, so the time scales by the factor: count
    the products work() computes (timing it here would be flaky on a shared machine)."""
    case = Case(4, "linear", 3.0, 0.0, 0, 3, workload="numpy")
    repo = make_case_repo(case, tmp_path / "repo")
    code = (
        "import sys; sys.path.insert(0, '.'); import acc.core as c\n"
        "class B:\n"
        "    __array_ufunc__ = None  # ndarray @ B defers to B.__rmatmul__\n"
        "    calls = 0\n"
        "    def __rmatmul__(self, other):\n"
        "        B.calls += 1\n"
        "        return other @ c._A\n"
        "c._B = B(); c.work(); print(c.SIZE, c.DIM, B.calls)"
    )
    for sha, size in ((repo.good, NUMPY_BASE_SIZE), (repo.bad, NUMPY_BASE_SIZE * 3)):
        git(repo.path, "checkout", "-q", sha)
        res = subprocess.run(
            [sys.executable, "-c", code], cwd=repo.path, capture_output=True, text=True, check=True
        )
        assert res.stdout.split() == [str(size), str(NUMPY_DIM), str(size)]


# ---------------------------------------------------------------------------------------------
# The competing load
# ---------------------------------------------------------------------------------------------


def _wait_for(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def test_load_starts_and_stops_cleanly() -> None:
    load = BurstyLoad(seed=1, workers=2)
    with load:
        pgid = load.pid
        assert pgid is not None and pgid != os.getpgrp()  # a group of its own
        assert _wait_for(lambda: len(group_pids(pgid)) == 3, 3.0)  # controller + 2 workers
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 2.0
    assert load.pid is None
    assert _wait_for(lambda: group_pids(pgid) == [], 1.0)
    load.stop()  # a second stop is harmless


def test_load_stops_on_errors_inside_the_block() -> None:
    with pytest.raises(KeyboardInterrupt), load_context("bursty", 2, 1) as load:
        pgid = load.pid
        assert _wait_for(lambda: len(group_pids(pgid)) == 2, 3.0)
        raise KeyboardInterrupt
    assert _wait_for(lambda: group_pids(pgid) == [], 2.0)
    with load_context("none", 2, 1) as nothing:
        assert nothing is None


def test_load_stops_by_itself_when_its_parent_dies() -> None:
    """A tool killed without stopping the load (SIGKILL) must not leave it running."""
    code = (
        "import os, sys, time; sys.path.insert(0, sys.argv[1]);"
        "from accuracy.load import BurstyLoad;"
        "load = BurstyLoad(3, 2).start(); print(load.pid, flush=True); time.sleep(0.5);"
        "os._exit(0)"  # no stop(), no cleanup
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(TOOLS)], capture_output=True, text=True, timeout=10
    )
    pgid = int(res.stdout.split()[0])
    assert _wait_for(lambda: group_pids(pgid) == [], 3.0), group_pids(pgid)


def test_entry_point_keeps_working(tmp_path: Path) -> None:
    """`python tools/bisect_accuracy.py` runs the package; --from-jsonl runs no tool."""
    path = tmp_path / "r.jsonl"
    smb = score_smbisect(SMB_JSON, 0, "c" * 40, 12.5)
    path.write_text(json.dumps(result_row(_result(Case(32, "linear", 1.3, 0.05, 0, 1), smb))))
    res = subprocess.run(
        [sys.executable, str(TOOLS / "bisect_accuracy.py"), "--from-jsonl", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "| 1/1 [0.21, 1.00]" in res.stdout and "Overall" in res.stdout
    assert re.search(r"\|\s+90\.0\*\s+\|\s+16 missed", res.stdout)


# ---------------------------------------------------------------------------------------------
# Several planted changes (--changes, issue 9)
# ---------------------------------------------------------------------------------------------


def test_parse_changes_and_which_changes_must_be_found() -> None:
    assert parse_changes("1.5,2") == (1.5, 2.0)
    assert parse_changes("2x, 0.7x") == (2.0, 0.7)
    for bad in ("2", "1.5,x", "2,1", "0.9,1.1", "2,-1", "1.1,1.1,1.1,1.1"):
        with pytest.raises(ValueError):
            parse_changes(bad)
    # slowdowns always; 0.7x after 2x hides part of it (2x > 1.4x net * 1.05): bisected too
    assert required((1.5, 2.0)) == (True, True)
    assert required((2.0, 0.7)) == (True, True)
    # 0.95x after 1.5x and 2x hides nothing (2x < 2.85x net): reported only, unless asked
    assert required((1.5, 2.0, 0.95)) == (True, True, False)
    assert required((1.5, 2.0, 0.95), "--improvements") == (True, True, True)
    # the threshold decides "hides": 2x vs 1.94x net is within 1.05x, not within 1.02x
    assert required((2.0, 0.97)) == (True, False)
    assert required((2.0, 0.97), "--threshold 1.02") == (True, True)
    assert required((2.0, 0.97), "--threshold=1.02") == (True, True)


def test_bad_changes_option_is_a_usage_error_without_traceback() -> None:
    res = subprocess.run(
        [sys.executable, str(TOOLS / "bisect_accuracy.py"), "--changes", "2,0.4"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert "--changes '2,0.4': the changes together must slow" in res.stderr


def test_planted_changes_multiply_the_constant_on_merge_histories(tmp_path: Path) -> None:
    case = ChangesCase(48, "merges", (1.5, 2.0), 0.0, 0, 12345)
    built = make_changes_repo(case, tmp_path / "repo")
    path = built.repo.path
    assert len(built.planted) == 2 and built.n1 + built.n2 == 48
    touching = git(path, "log", "--format=%H", "--no-merges", "--", "acc/core.py").split()
    assert set(touching) == {*built.planted, built.repo.good}
    older, newer = built.planted
    assert git(path, "rev-list", "--count", f"{built.repo.good}..{older}") == str(built.n1)
    for sha in git(path, "rev-list", f"{built.repo.good}..{built.repo.bad}").split():
        factor = 1.0
        for planted, f in zip(built.planted, case.factors, strict=True):
            anc = subprocess.run(["git", "merge-base", "--is-ancestor", planted, sha], cwd=path)
            factor *= f if anc.returncode == 0 else 1.0
        assert size_at(path, sha) == round(BASE_SIZE * factor), sha
    assert size_at(path, built.repo.bad) == round(BASE_SIZE * 3.0)
    assert commits_target(built.n1, built.n2) == (
        math.ceil(math.log2(max(2, built.n1))) + math.ceil(math.log2(max(2, built.n2))) + 8
    )


def _changes_json(entries: list[tuple[str, bool]], exit_code: int = 0) -> dict[str, Any]:
    return {
        "exit_code": exit_code,
        "culprits": [
            {"benchmark": "b", "sha": sha, "confirmed": ok, "kind": "regression", "ratio": 2.0}
            for sha, ok in entries
        ],
        "steps": [{"sha": str(i) * 40, "samples": {"b": [1.0]}} for i in range(9)],
        "runs": {"total": 120},
        "waterfall": [{"residual": {"ratio": 1.02}}],
    }


def test_score_changes_right_wrong_and_incomplete() -> None:
    a, b, c = "a" * 40, "b" * 40, "c" * 40
    right = score_changes(_changes_json([(b, True), (a, True)]), 0, [a, b], [True, True], 8, 8, 1)
    assert right.outcome == ALL_RIGHT and right.right and not right.wrong
    assert right.commits_measured == 9 and right.target == 14 and right.within_target
    assert right.runs == 120
    # one planted change in the residual: incomplete, not wrong
    half = score_changes(_changes_json([(b, True)]), 0, [a, b], [True, True], 8, 8, 1)
    assert half.outcome == INCOMPLETE and not half.right
    # both confirmed but exit 4 (something left unattributed): not right
    left = score_changes(_changes_json([(a, True), (b, True)], 4), 4, [a, b], [True, True], 8, 8, 1)
    assert left.outcome == INCOMPLETE
    # a confirmed commit that was not planted is wrong, even beside both right ones
    wrong = score_changes(
        _changes_json([(a, True), (b, True), (c, True)]), 0, [a, b], [True, True], 8, 8, 1
    )
    assert wrong.outcome == WRONG and wrong.wrong == [c]
    # a speedup that need not be found may be missing
    spare = score_changes(_changes_json([(a, True)]), 0, [a, b], [True, False], 8, 8, 1)
    assert spare.outcome == ALL_RIGHT
    # nothing confirmed: the exit code says what happened
    none = score_changes(_changes_json([(a, False)], 4), 4, [a, b], [True, True], 8, 8, 1)
    assert none.outcome == UNCONFIRMED
    assert score_changes(None, 1, [a, b], [True, True], 8, 8, 1).outcome == ERROR


def test_two_changes_end_to_end(tmp_path: Path) -> None:
    """A tiny two-change grid through the real tool: a generated repository, smbisect in
    command mode through real git bisect, scored, saved and re-rendered."""
    jsonl, md = tmp_path / "r.jsonl", tmp_path / "r.md"
    argv = [
        sys.executable, str(TOOLS / "bisect_accuracy.py"), "--lengths", "10",
        "--shapes", "linear", "--changes", "3,4", "--noise", "0", "--trials", "1",
        "--cmd-mode", "--seed", "3", "--jsonl", str(jsonl), "--markdown", str(md),
        "--timeout", "600",
    ]  # fmt: skip
    res = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "only smbisect is run" in res.stderr
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["kind"] == "changes"
    smb = rows[0]["smbisect"]
    assert len(smb["planted"]) == 2 and smb["needed"] == [True, True]
    # 3x then 4x without injected noise: both found and confirmed, nothing else
    assert smb["outcome"] == ALL_RIGHT, smb
    assert sorted(smb["confirmed"]) == sorted(smb["planted"]) and smb["exit_code"] == 0
    assert smb["n1"] + smb["n2"] == 10 and 0 < smb["commits_measured"] <= smb["target"]
    assert "| 10  | linear  | 3x then 4x" in res.stdout
    assert "1/1 [0.21, 1.00]" in res.stdout
    assert "3x then 4x" in md.read_text()
    again = subprocess.run(
        [sys.executable, str(TOOLS / "bisect_accuracy.py"), "--from-jsonl", str(jsonl)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "3x then 4x" in again.stdout and "all named+confirmed" in again.stdout
