"""`smbisect compare`: verdicts and rendering on fixed numbers; measure_two and load_stored on a
real asv project in a temporary git repository."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bisect_tool import compare as C
from bisect_tool import compare_render as R
from bisect_tool.asv_measure import AsvRunner, AsvSettings
from bisect_tool.errors import UsageError
from bisect_tool.git import GitRepo
from bisect_tool.runners import BenchmarkSpec, machine_name

BASE = [1.00, 1.01, 0.99, 1.02, 0.98, 1.00, 1.01, 0.99, 1.03, 0.97]  # median 1.0, +-3%


def scaled(samples: list[float], k: float) -> list[float]:
    return [x * k for x in samples]


TIME = BenchmarkSpec("k.MatMul.time_matmul(512)", "seconds", True, 5, "time")
GELU = BenchmarkSpec("k.Gelu.time_gelu", "seconds", True, 5, "time")
THROUGHPUT = BenchmarkSpec("m.Training.track_training_throughput", "samples/s", False, 1, "track")
PEAK_A = BenchmarkSpec("mem.Memory.peakmem_training_step", "bytes", True, 1, "peakmemory")
PEAK_B = BenchmarkSpec("mem.Memory.peakmem_medium_inference", "bytes", True, 1, "peakmemory")
ALLOC_A = BenchmarkSpec("mem.Memory.track_training_alloc_bytes", "bytes", True, 1, "track")
ALLOC_B = BenchmarkSpec("mem.Memory.track_matmul_backward_alloc_bytes", "bytes", True, 1, "track")
OTHER_BYTES = BenchmarkSpec("mem.Memory.track_cache_size", "bytes", True, 1, "track")


def suite() -> tuple[list[BenchmarkSpec], dict[str, list[float]], dict[str, list[float]]]:
    """A SmallMind-like report: matmul 4x slower, throughput down 4x, allocations down 7x."""
    specs = [TIME, GELU, THROUGHPUT, PEAK_A, PEAK_B, ALLOC_A, ALLOC_B, OTHER_BYTES]
    base = {
        TIME.name: scaled(BASE, 0.010),
        GELU.name: scaled(BASE, 0.005),
        THROUGHPUT.name: scaled(BASE, 43_000),
        PEAK_A.name: scaled(BASE, 100e6),
        PEAK_B.name: scaled(BASE, 300e6),
        ALLOC_A.name: [2.0e9] * 10,
        ALLOC_B.name: [0.5e9] * 10,
        OTHER_BYTES.name: [7e9] * 10,
    }
    head = {
        TIME.name: scaled(BASE, 0.040),
        GELU.name: scaled(BASE[::-1], 0.005),
        THROUGHPUT.name: scaled(BASE, 10_750),
        PEAK_A.name: scaled(BASE[::-1], 100e6),
        PEAK_B.name: scaled(BASE, 310e6),
        ALLOC_A.name: [0.25e9] * 10,
        ALLOC_B.name: [0.10e9] * 10,
        OTHER_BYTES.name: [1e9] * 10,
    }
    return specs, base, head


# -- verdicts ----------------------------------------------------------------------------------


def test_regression_improvement_and_unchanged_time_benchmarks():
    assert C.judge(BASE, scaled(BASE, 1.5), True)[2] == C.REGRESSION
    assert C.judge(BASE, scaled(BASE, 1 / 1.5), True)[2] == C.IMPROVEMENT
    ratio, p, verdict = C.judge(BASE, BASE[::-1], True)
    assert (ratio, verdict) == (1.0, C.NO_CHANGE) and p is not None and p > 0.5
    ratio, p, _ = C.judge(BASE, scaled(BASE, 2.0), True)
    assert ratio == pytest.approx(2.0) and p < 1e-3


def test_a_big_change_in_the_medians_is_not_a_regression_when_it_is_noise():
    base = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    head = [1, 2, 3, 4, 6.5, 7, 7, 8, 9, 10]
    ratio, p, verdict = C.judge(base, head, True)
    assert ratio > 1.2  # beyond the factor...
    assert p is not None and p > C.stats.DEFAULT_ALPHA  # ...but indistinguishable
    assert verdict == C.NO_CHANGE


def test_factor_is_respected():
    head = scaled(BASE, 1.05)  # significant (every sample shifted) but only 5% slower
    assert C.judge(BASE, head, True)[1] < C.stats.DEFAULT_ALPHA
    assert C.judge(BASE, head, True, factor=1.1)[2] == C.NO_CHANGE
    assert C.judge(BASE, head, True, factor=1.02)[2] == C.REGRESSION
    assert C.judge(BASE, scaled(BASE, 1 / 1.05), True, factor=1.02)[2] == C.IMPROVEMENT
    assert C.judge(BASE, scaled(BASE, 1.5), True, factor=2.0)[2] == C.NO_CHANGE


def test_throughput_is_worse_when_lower():
    assert C.judge(BASE, scaled(BASE, 0.5), False)[2] == C.REGRESSION
    assert C.judge(BASE, scaled(BASE, 2.0), False)[2] == C.IMPROVEMENT
    comp = C.compare_samples(
        [THROUGHPUT], {THROUGHPUT.name: BASE}, {THROUGHPUT.name: scaled(BASE, 0.5)}
    )
    (row,) = comp.rows
    assert row.verdict == C.REGRESSION and not row.worse_is_higher
    assert row.ratio == pytest.approx(0.5) and row.change_pct == pytest.approx(-50.0)
    assert C.has_regression(comp)


def test_unknown_direction_counts_higher_as_worse_and_unknown_specs_are_time():
    spec = BenchmarkSpec("cmd", "value", None, 1, "command")
    comp = C.compare_samples([spec], {"cmd": BASE, "x": BASE}, {"cmd": scaled(BASE, 2), "x": BASE})
    rows = {r.name: r for r in comp.rows}
    assert rows["cmd"].verdict == C.REGRESSION and rows["cmd"].worse_is_higher
    assert rows["x"].kind == "time" and rows["x"].verdict == C.NO_CHANGE


def test_single_stored_values_are_judged_by_the_factor_alone():
    assert C.judge([1.0], [1.5], True) == (1.5, None, C.REGRESSION)
    assert C.judge([1.0], [1.05], True) == (1.05, None, C.NO_CHANGE)
    assert C.judge([2.0], [1.0], False)[2] == C.REGRESSION


def test_missing_benchmarks_are_reported_not_compared():
    comp = C.compare_samples(
        [TIME, GELU, THROUGHPUT],
        {TIME.name: BASE, GELU.name: BASE},
        {TIME.name: BASE},
        errors={THROUGHPUT.name: "abc123: ImportError: no module tiny._fast"},
    )
    assert [r.name for r in comp.rows] == [TIME.name]
    assert comp.missing == {
        GELU.name: "no result at head",
        THROUGHPUT.name: "abc123: ImportError: no module tiny._fast",
    }
    assert not C.has_regression(comp)


def test_rows_are_ordered_regressions_first_worst_first():
    specs, base, head = suite()
    comp = C.compare_samples(specs, base, head)
    verdicts = {r.name: r.verdict for r in comp.rows}
    assert verdicts == {
        TIME.name: C.REGRESSION,
        THROUGHPUT.name: C.REGRESSION,
        GELU.name: C.NO_CHANGE,
        PEAK_A.name: C.NO_CHANGE,
        PEAK_B.name: C.NO_CHANGE,  # every sample 3.3% up: significant, but under the factor
        ALLOC_A.name: C.IMPROVEMENT,
        ALLOC_B.name: C.IMPROVEMENT,
        OTHER_BYTES.name: C.IMPROVEMENT,
    }
    order = [r.name for r in comp.rows]
    assert order[:2] == [TIME.name, THROUGHPUT.name]  # 4x slower before 4x less throughput
    assert order[2:5] == [ALLOC_A.name, OTHER_BYTES.name, ALLOC_B.name]  # 8x, 7x, 5x better
    assert order[5] == PEAK_B.name  # the biggest of the insignificant changes


# -- summary -----------------------------------------------------------------------------------


def test_summary_totals_throughput_and_peak():
    specs, base, head = suite()
    rows = {s.metric: s for s in C.compare_samples(specs, base, head).summary_rows}
    assert list(rows) == [
        "Total runtime",
        "Total allocations",
        f"Throughput {THROUGHPUT.name}",
        "Peak memory",
    ]
    runtime = rows["Total runtime"]
    assert (runtime.base, runtime.head) == (pytest.approx(0.015), pytest.approx(0.045))
    assert runtime.change_pct == pytest.approx(200.0) and runtime.verdict == C.REGRESSION
    alloc = rows["Total allocations"]  # only bytes benchmarks named alloc: not cache_size
    assert (alloc.base, alloc.head) == (2.5e9, 0.35e9)
    assert alloc.change_pct == pytest.approx(-86.0) and alloc.verdict == C.IMPROVEMENT
    assert set(alloc.benchmarks) == {ALLOC_A.name, ALLOC_B.name}
    tp = rows[f"Throughput {THROUGHPUT.name}"]
    assert tp.change_pct == pytest.approx(-75.0) and tp.verdict == C.REGRESSION
    assert tp.unit == "samples/s"
    peak = rows["Peak memory"]  # the max, not the sum
    assert (peak.base, peak.head) == (pytest.approx(300e6), pytest.approx(310e6))
    assert peak.verdict == C.NO_CHANGE


def test_a_total_needs_a_significant_benchmark_behind_it():
    noisy = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    moved = [1, 2, 3, 4, 6.5, 7, 7, 8, 9, 10]  # median +23%, not significant
    comp = C.compare_samples([TIME], {TIME.name: noisy}, {TIME.name: moved})
    (total,) = comp.summary_rows
    assert total.change_pct > 20 and total.verdict == C.NO_CHANGE
    # a significant 20% regression in a benchmark that is 1% of the total does not move it
    big = BenchmarkSpec("big.time_x")
    comp = C.compare_samples(
        [TIME, big],
        {TIME.name: scaled(BASE, 0.01), big.name: BASE},
        {TIME.name: scaled(BASE, 0.012), big.name: BASE[::-1]},
    )
    assert {r.name: r.verdict for r in comp.rows}[TIME.name] == C.REGRESSION
    assert comp.summary_rows[0].verdict == C.NO_CHANGE
    assert C.has_regression(comp)  # the exit policy goes by benchmarks, not totals


# -- charts and rendering ----------------------------------------------------------------------


def test_bar_chart_proportions():
    chart = R.bar_chart([("alpha", 30.0), ("b", 15.0), ("c", 5.0)], width=20)
    lines = chart.splitlines()
    assert [ln.count("█") for ln in lines] == [20, 10, 3]
    assert [re.search(r"\(\s*([\d.]+)%\)", ln).group(1) for ln in lines] == ["60.0", "30.0", "10.0"]
    assert lines[1].startswith("b:") and lines[0].startswith("alpha:")
    assert len({ln.index("(") for ln in lines}) == 1  # the columns line up
    assert R.bar_chart([]) == ""
    assert R.bar_chart([("z", 0.0)]).count("█") == 0


def test_top_items_fold_the_rest_into_other():
    items = [(f"b{i}", float(i)) for i in range(1, 11)]
    top = R.top_items(items, 3)
    assert top == [("b10", 10.0), ("b9", 9.0), ("b8", 8.0), ("Other (7 benchmarks)", 28.0)]
    assert R.top_items(items[:4], 3) == R.top_items(items[:4], 4)  # no "Other (1 benchmarks)"


def test_distributions_use_the_current_revision():
    specs, base, head = suite()
    comp = C.compare_samples(specs, base, head)
    assert R.runtime_distribution(comp) == [
        (TIME.name, pytest.approx(0.040)),
        (GELU.name, pytest.approx(0.005)),
    ]
    assert R.memory_distribution(comp) == [(ALLOC_A.name, 0.25e9), (ALLOC_B.name, 0.10e9)]
    no_alloc = C.compare_samples([TIME, PEAK_A, PEAK_B], base, head)
    assert R.memory_distribution(no_alloc) == []  # peaks do not add up to a total
    text = R.render(no_alloc, "table")
    assert "Runtime distribution" in text and "Memory distribution" not in text


def _md_section(text: str, heading: str) -> list[list[str]]:
    """The cells of the Markdown table under `heading`."""
    lines = text.splitlines()
    start = lines.index(heading)
    rows = []
    for ln in lines[start + 1 :]:
        if ln.startswith("## "):
            break
        if ln.startswith("|") and not set(ln) <= set("|-: "):
            rows.append([cell.strip() for cell in ln.strip("|").split("|")])
    return rows


def test_markdown_parses_back():
    specs, base, head = suite()
    comp = C.compare_samples(specs, base, head, base_sha="a" * 40, head_sha="b" * 40)
    text = R.render(comp, "markdown")
    assert text.startswith("# smbisect compare: `aaaaaaaaaa` → `bbbbbbbbbb`")
    header, *rows = _md_section(text, "## Benchmarks")
    assert header == ["benchmark", "baseline", "current", "ratio", "change", "p", "n", "verdict"]
    by_name = {r[0].strip("`"): dict(zip(header, r, strict=True)) for r in rows}
    assert set(by_name) == {s.name for s in specs}
    matmul = by_name[TIME.name]
    assert matmul["baseline"] == "10 ms" and matmul["current"] == "40 ms"
    assert matmul["ratio"] == "4.000x" and matmul["change"] == "+300.0%"
    assert matmul["verdict"] == "🔴 regression" and matmul["n"] == "10/10"
    assert by_name[ALLOC_A.name]["verdict"] == "🟢 improvement"
    assert by_name[GELU.name]["verdict"] == "⚪ no significant change"
    summary = {r[0]: r for r in _md_section(text, "## Executive summary")[1:]}
    assert summary["**Throughput m.Training.track_training_throughput**"][1:4] == [
        "43,000 samples/s",
        "10,750 samples/s",
        "**-75.0%**",
    ]
    assert "Total runtime: 45 ms" in text and "Total allocations: 334 MiB" in text


def test_json_parses_back_and_is_finite():
    specs, base, head = suite()
    zero = BenchmarkSpec("z.track_errors_count", "count", True, 1, "track")
    base[zero.name], head[zero.name] = [0.0] * 10, [2.0] * 10
    comp = C.compare_samples([*specs, zero], base, head, errors={"q.time_gone": "boom"})
    data = json.loads(R.render(comp, "json"))
    assert data["has_regression"] is True and data["factor"] == 1.1
    rows = {r["name"]: r for r in data["benchmarks"]}
    assert rows[TIME.name]["verdict"] == "regression"
    assert rows[TIME.name]["baseline_samples"] == pytest.approx(scaled(BASE, 0.010))
    assert rows[TIME.name]["ratio"] == pytest.approx(4.0)
    assert rows[zero.name]["ratio"] is None and rows[zero.name]["change_pct"] is None
    assert rows[zero.name]["verdict"] == "regression"  # from nothing to something
    summary = {s["metric"]: s for s in data["summary"]}
    assert summary["Total runtime"]["current"] == pytest.approx(0.045)
    assert [i["name"] for i in data["runtime_distribution"]] == [TIME.name, GELU.name]
    assert data["runtime_distribution"][0]["percent"] == pytest.approx(800 / 9)
    memory = data["memory_distribution"]
    assert [i["percent"] for i in memory] == pytest.approx([500 / 7, 200 / 7])
    assert data["not_compared"] == {"q.time_gone": "boom"}


def test_terminal_table_and_bad_format():
    specs, base, head = suite()
    comp = C.compare_samples(specs, base, head, base_sha="a" * 40, head_sha="b" * 40)
    text = R.render(comp, "table")
    assert "3 regressed" not in text and "2 regressed, 3 improved, 8 compared" in text
    line = next(ln for ln in text.splitlines() if ln.startswith(TIME.name))
    assert line.split()[-1] == "regression" and "+300.0%" in line
    assert "Runtime distribution (current, bbbbbbbbbb):" in text
    with pytest.raises(UsageError):
        R.render(comp, "html")


# -- real asv ----------------------------------------------------------------------------------

from test_asv_bisect import ASV_CONF  # noqa: E402  (the same tiny asv project config)

BENCHMARKS = """import tiny


def time_work():
    tiny.work()


def peakmem_buffer():
    tiny.buffer()


def track_items_per_s():
    return tiny.throughput()


track_items_per_s.unit = "items/s"
"""

LIB = """N = {n}


def work():
    return sum(i * i for i in range(N))


def buffer():
    return len(b"x" * 30_000_000)


def throughput():
    return 1000.0
"""


def tiny_project(git_repo_factory, sizes: list[int]):
    """A real asv project: commit i has work() of size sizes[i]; nothing else changes."""
    commits = []
    for i, n in enumerate(sizes):
        files = {"tiny/__init__.py": LIB.format(n=n), "CHANGES": f"release {i}\n"}
        if i == 0:
            files |= {
                "asv.conf.json": json.dumps(ASV_CONF),
                "benchmarks/__init__.py": "",
                "benchmarks/bench_tiny.py": BENCHMARKS,
            }
        commits.append((f"step {i}: N={n}", files))
    return git_repo_factory(commits, name="tiny")


WORK = "bench_tiny.time_work"
PEAK = "bench_tiny.peakmem_buffer"
TRACK = "bench_tiny.track_items_per_s"


@pytest.mark.slow
@pytest.mark.xdist_group("asv")  # see test_asv_bisect.py
def test_measure_two_finds_the_5x_slower_benchmark_only(git_repo_factory, tmp_path):
    repo = tiny_project(git_repo_factory, [3000, 15000])
    base_sha, head_sha = repo.shas
    before = repo.snapshot()
    git = GitRepo(repo.path)
    runner = AsvRunner(git, AsvSettings(suite_rev=head_sha, python="same"), tmp_path / "scratch")
    said: list[str] = []
    measured = C.measure_two(git, runner, base_sha, head_sha, samples=6, progress=said.append)
    assert measured.errors == {}
    assert {s.name for s in measured.specs} == {WORK, PEAK, TRACK}
    # time: one asv run per half, `repeat` (5) samples each; track/peakmem: one per sample
    assert {n: (len(measured.base[n]), len(measured.head[n])) for n in measured.base} == {
        WORK: (10, 10),
        PEAK: (6, 6),
        TRACK: (6, 6),
    }
    assert [s.split(":")[0] for s in said] == [
        f"measuring base {base_sha[:10]}",
        f"measuring head {head_sha[:10]}",
        f"measuring head {head_sha[:10]}",
        f"measuring base {base_sha[:10]}",
    ]
    comp = C.compare_measured(measured, base_sha, head_sha)
    rows = {r.name: r for r in comp.rows}
    assert rows[WORK].verdict == C.REGRESSION and rows[WORK].ratio > 3
    assert rows[PEAK].verdict != C.REGRESSION and C.is_peakmem(rows[PEAK]), rows[PEAK]
    assert rows[TRACK].verdict == C.NO_CHANGE and rows[TRACK].ratio == 1.0
    assert not rows[TRACK].worse_is_higher and rows[TRACK].unit == "items/s"
    assert C.has_regression(comp)
    summary = {s.metric: s for s in comp.summary_rows}
    assert summary["Total runtime"].verdict == C.REGRESSION
    assert summary[f"Throughput {TRACK}"].verdict == C.NO_CHANGE
    assert summary["Peak memory"].base > 30e6  # the 30 MB buffer is in the RSS
    # the private worktree is gone; the user's checkout, refs and index are untouched
    after = repo.snapshot()
    for key in ("head", "refs", "worktrees", "index", "diff", "stash", "BISECT_LOG"):
        assert after[key] == before[key], key


def _asv_run_stored(repo, sha: str) -> None:
    """What a user does: `asv run --python=same --set-commit-hash SHA --record-samples`."""
    repo.checkout(sha)
    env = {**os.environ, "PYTHONPATH": str(repo.path), "ASV_PYTHONPATH": str(repo.path)}
    machine = machine_name()
    known = Path.home() / ".asv-machine.json"
    if not known.is_file() or machine not in json.loads(known.read_text()):
        subprocess.run(
            [sys.executable, "-m", "asv", "machine", "--yes", "--machine", machine],
            cwd=repo.path,
            check=True,
            capture_output=True,
        )
    args = ["--python=same", "--set-commit-hash", sha, "--record-samples", "--machine", machine]
    attrs = ["-a", "repeat=5", "-a", "rounds=2", "-a", "warmup_time=0.05"]
    res = subprocess.run(
        [sys.executable, "-m", "asv", "run", *args, *attrs],
        cwd=repo.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.slow
@pytest.mark.xdist_group("asv")  # see test_asv_bisect.py
def test_load_stored_reads_what_asv_run_recorded(git_repo_factory, tmp_path):
    repo = tiny_project(git_repo_factory, [3000, 15000, 15000])
    base_sha, head_sha, never_run = repo.shas
    results = repo.path / ".asv" / "results"
    assert C.load_stored(results, None, base_sha, head_sha) is None  # nothing stored yet
    for sha in (base_sha, head_sha):
        _asv_run_stored(repo, sha)
    stored = C.load_stored(results, None, base_sha, head_sha)
    assert stored is not None and stored.errors == {}
    assert len(stored.base[WORK]) == 10 and len(stored.head[WORK]) == 10  # recorded samples
    assert len(stored.base[TRACK]) == 1  # asv keeps one value for track benchmarks
    specs = {s.name: s for s in stored.specs}
    assert specs[TRACK].unit == "items/s" and specs[TRACK].worse_is_higher is False
    assert specs[PEAK].kind == "peakmemory"  # asv's name for the peakmem_ type
    comp = C.compare_measured(stored, base_sha, head_sha)
    rows = {r.name: r for r in comp.rows}
    assert rows[WORK].verdict == C.REGRESSION and rows[WORK].p_value < 0.01
    assert rows[TRACK].verdict == C.NO_CHANGE and rows[TRACK].p_value is None
    assert rows[PEAK].verdict != C.REGRESSION
    assert C.load_stored(results, machine_name(), base_sha[:8], head_sha) is not None
    assert C.load_stored(results, None, base_sha, never_run) is None
    assert C.load_stored(results, "no-such-machine", base_sha, head_sha) is None
    assert C.load_stored(tmp_path / "nowhere", None, base_sha, head_sha) is None
