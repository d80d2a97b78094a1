"""`smbisect compare ... --culprits RESULT.json`: the bisect's culprits beside the comparison.

The reading and rendering on fixed numbers; then the whole path on a real asv project: a real
bisect (two planted changes, real git bisect, results exported to the asv results directory),
and `smbisect compare --from-results --culprits` on what that bisect stored.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bisect_tool import compare as C
from bisect_tool import compare_culprits as CC
from bisect_tool import compare_render as R
from bisect_tool.errors import UsageError
from bisect_tool.runners import BenchmarkSpec

WORK = "bench_tiny.time_work"
OTHER = "bench_tiny.time_other"
BASE = [1.00, 1.01, 0.99, 1.02, 0.98, 1.00, 1.01, 0.99, 1.03, 0.97]
A, B, G, H = "a" * 40, "b" * 40, "1" * 40, "2" * 40


def bisect_json(path: Path) -> Path:
    path.write_text(
        json.dumps(
            {
                "good": G,
                "bad": H,
                "culprits": [
                    {"benchmark": WORK, "sha": B, "kind": "regression", "ratio": 5.0,
                     "share": 0.6, "confirmed": True, "commit": {"subject": "five times"}},
                    {"benchmark": WORK, "sha": A, "kind": "regression", "ratio": 3.0,
                     "share": 0.4, "confirmed": True, "commit": {"subject": "three times"}},
                    {"benchmark": "gone.time_x", "sha": None, "kind": "improvement",
                     "ratio": 0.8, "share": None, "confirmed": False, "segment": [A, B]},
                ],
            }
        )
    )  # fmt: skip
    return path


def comparison() -> C.Comparison:
    specs = [BenchmarkSpec(WORK, "seconds", True, 5, "time"), BenchmarkSpec(OTHER)]
    base = {WORK: BASE, OTHER: BASE}
    head = {WORK: [x * 15 for x in BASE], OTHER: BASE[::-1]}
    return C.compare_samples(specs, base, head, base_sha=G, head_sha=H)


def test_culprits_in_every_format(tmp_path: Path) -> None:
    loaded = CC.load(bisect_json(tmp_path / "r.json"))
    assert [r.sha for r in loaded.refs] == [B, A, None] and loaded.good == G
    located = CC.locate(loaded, {A: True, B: False}.get)
    assert [r.in_range for r in located.refs] == [False, True, False]  # segment: its newer end
    c = comparison()
    table = CC.render(c, "table", located)
    assert table.startswith(R.render(c, "table").rstrip("\n"))  # the comparison, unchanged
    section = table.split("Culprits from the bisect")[1]
    lines = section.splitlines()
    work = [ln for ln in lines if ln.startswith(WORK)]
    assert len(work) == 2 and B[:10] in work[0] and A[:10] in work[1]
    assert "+60%" in work[0] and "regression (15x)" in work[0] and work[0].endswith("no")
    assert "+40%" in work[1] and "three times" in work[1] and work[1].endswith("yes")
    gone = next(ln for ln in lines if ln.startswith("gone.time_x"))
    assert "not compared" in gone and f"{A[:10]}..{B[:10]}" in gone and "not bisected" in gone
    md = CC.render(c, "markdown", located)
    assert f"## Culprits from the bisect ({tmp_path / 'r.json'}, bisected" in md
    assert f"| {WORK}" in md and "| +60%" in md
    data = json.loads(CC.render(c, "json", located))
    plain = R.to_dict(c)
    assert {k: data[k] for k in plain} == plain  # every field of compare's JSON kept
    assert [(e["sha"], e["share"], e["in_range"], e["compared"]) for e in data["culprits"]] == [
        (B, 0.6, False, True),
        (A, 0.4, True, True),
        (None, None, False, False),
    ]
    assert data["culprits_source"] == {"file": str(tmp_path / "r.json"), "good": G, "bad": H}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("{not json", "not JSON"),
        ('{"endpoints": []}', "no `culprits` list"),
        ('{"culprits": [{"sha": "abc"}]}', r"culprits\[0\] has no benchmark name"),
        ('{"culprits": [{"benchmark": "x", "sha": 3}]}', "not a string"),
    ],
)
def test_bad_culprits_files(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UsageError, match=message):
        CC.load(path)


def test_bad_culprits_file_at_the_command_line_is_one_line(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "bisect_tool", "compare", "HEAD~1", "HEAD",
         "--culprits", str(tmp_path / "missing.json")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [
        f"smbisect: error: --culprits {tmp_path / 'missing.json'}: no such file"
    ]


@pytest.mark.slow
@pytest.mark.xdist_group("asv")  # asv's machine file in $HOME: see test_asv_bisect.py
def test_compare_names_the_culprits_of_a_real_bisect(tmp_path: Path) -> None:
    from test_asv_bisect import run_smbisect, tiny_asv_repo

    repo = tmp_path / "tiny"
    shas = tiny_asv_repo(repo, [3000] * 4 + [9000] * 4 + [45000] * 4, broken=set())
    out = tmp_path / "r.json"
    res = run_smbisect(
        "--good", shas[0], "--bench", "time_work", "--json", str(out),
        "--cache-dir", str(tmp_path / "cache"), cwd=repo,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    bisected = json.loads(out.read_text())
    assert {c["sha"] for c in bisected["culprits"]} == {shas[4], shas[8]}
    # compare what the bisect stored in the asv results, with its culprits
    res = run_smbisect(
        "compare", shas[0], shas[-1], "--from-results", "--bench", "time_work",
        "--culprits", str(out), "--format", "json", cwd=repo,
    )  # fmt: skip
    assert res.returncode == 1, res.stdout + res.stderr  # a regression, as asv continuous says
    data = json.loads(res.stdout)
    (row,) = data["benchmarks"]
    assert row["name"] == WORK and row["verdict"] == C.REGRESSION
    got = [(e["benchmark"], e["sha"], e["share"], e["in_range"]) for e in data["culprits"]]
    want = [(c["benchmark"], c["sha"], c["share"], True) for c in bisected["culprits"]]
    assert got == want
    assert math.isclose(sum(e["share"] for e in data["culprits"]), 1.0, abs_tol=0.25)
    # a narrower comparison: the older culprit is BASE itself, so not in BASE..HEAD
    res = run_smbisect(
        "compare", shas[4], shas[-1], "--from-results", "--bench", "time_work",
        "--culprits", str(out), cwd=repo,
    )  # fmt: skip
    # the culprit was measured (and confirmed against its parent), so asv holds its results
    assert res.returncode in (0, 1), res.stdout + res.stderr
    section = res.stdout.split("Culprits from the bisect")[1]
    line_old = next(ln for ln in section.splitlines() if shas[4][:10] in ln)
    line_new = next(ln for ln in section.splitlines() if shas[8][:10] in ln)
    assert line_old.endswith("no") and line_new.endswith("yes")
    # the asv site: the same culprits, tagged, drawn by `asv publish` on every graph
    res = run_smbisect("asv-tags", str(out), cwd=repo)
    assert res.returncode == 0, res.stdout + res.stderr
    names = {f"smbisect/{c['sha'][:10]}": c["sha"] for c in bisected["culprits"]}
    assert set(res.stdout.split()) == {"tagged", *names}
    publish = subprocess.run(
        [sys.executable, "-m", "asv", "publish"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert publish.returncode == 0, publish.stdout + publish.stderr
    index = json.loads((repo / ".asv" / "html" / "index.json").read_text())
    assert set(names) <= set(index["tags"])
    for name, sha in names.items():  # asv keeps a short hash per revision
        assert sha.startswith(index["revision_to_hash"][str(index["tags"][name])])
