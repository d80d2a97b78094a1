"""Plots, the standalone HTML report and Markdown with PNGs, from a real bisect session.

The result comes from a real `Session` on a real temporary git repository. The runner reads each
benchmark's cost from `cost.txt` in the worktree it is handed (so the numbers follow the commit
really checked out) and adds seeded noise. One commit's subject and file name carry HTML, to
prove that what users write into git cannot inject markup into the report.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from conftest import GitRepoBuilder
from PIL import Image

from bisect_tool import html_report, report
from bisect_tool.errors import MeasurementFailed
from bisect_tool.git import GitRepo
from bisect_tool.runners import Batch, BenchmarkSpec
from bisect_tool.session import BenchmarkOutcome, BisectOptions, Session, SessionResult
from bisect_tool.store import MeasurementStore

SLOW2 = "bench.Suite.time_two(512)"  # 2x slower at commit 7: a linear y axis
SLOW5 = "bench.Suite.time_five"  # 5x slower at commit 4: a log y axis
STEADY = "bench.Suite.time_steady"  # never regresses, so never bisected
EVIL_SUBJECT = '<script>alert("x")</script> & "tune" the <b>inner</b> loop'
EVIL_FILE = "evil<i>.txt"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class CostRunner:
    """Samples = cost.txt value of the checked-out worktree times seeded log-normal noise."""

    settings_key = "html-test"
    machine = "html-test-machine"

    def __init__(self, names: Sequence[str], noise: float = 0.02, seed: int = 7) -> None:
        self.names = list(names)
        self.rng = np.random.default_rng(seed)
        self.noise = noise
        self.measured: set[str] = set()

    def list_benchmarks(self) -> list[BenchmarkSpec]:
        return [BenchmarkSpec(n, "seconds", True, 1, "time") for n in self.names]

    def measure(self, worktree: Path, commit: str, names: Sequence[str], rounds: int) -> Batch:
        self.measured.add(commit)
        if (worktree / "broken").exists():
            raise MeasurementFailed("import failed: <broken> module", "ModuleNotFoundError")
        costs = {}
        for line in (worktree / "cost.txt").read_text().splitlines():
            name, value = line.rsplit(" ", 1)
            costs[name] = float(value)
        return Batch(
            samples={
                n: list(costs[n] * np.exp(self.rng.normal(0.0, self.noise, rounds))) for n in names
            }
        )


@dataclass
class Bisected:
    result: SessionResult
    shas: list[str]
    measured: set[str]


def cost_text(costs: dict[str, float]) -> str:
    return "".join(f"{k} {v!r}\n" for k, v in sorted(costs.items()))


def bisected_session(path: Path, broken: Iterable[int] = (10,)) -> Bisected:
    """12 commits: SLOW5 goes 5x at commit 4, SLOW2 2x at commit 7 (the one with HTML in it);
    the `broken` commits cannot be measured."""
    broken = set(broken)
    costs = {SLOW2: 0.010, SLOW5: 0.002, STEADY: 0.004}
    repo = GitRepoBuilder(path)
    shas = []
    for i in range(12):
        files: dict[str, str | None] = {"notes.txt": f"change {i}\n"}
        subject = f"step {i}: routine change"
        if i == 4:
            costs[SLOW5] *= 5
            subject = "step 4: rewrite the five kernel"
        if i == 7:
            costs[SLOW2] *= 2
            subject = EVIL_SUBJECT
            files[EVIL_FILE] = "x\n"
        files["cost.txt"] = cost_text(costs)
        files["broken"] = "x\n" if i in broken else None
        shas.append(repo.commit(subject, files))
    runner = CostRunner([SLOW2, SLOW5, STEADY])
    session = Session(
        GitRepo(repo.path),
        runner,
        MeasurementStore(None),
        BisectOptions(good=shas[0], bad=shas[-1]),
    )
    result = session.run()
    return Bisected(result, shas, runner.measured)


@pytest.fixture(scope="module")
def bisected(tmp_path_factory: pytest.TempPathFactory) -> Bisected:
    """One real session shared by the tests here (they only read it)."""
    return bisected_session(tmp_path_factory.mktemp("html") / "repo")


def outcome(b: Bisected, name: str):
    return next(o for o in b.result.bisected if o.spec.name == name)


class Dom(HTMLParser):
    """Just enough DOM for the tests: every element's tag, attributes and text, by id."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None], list[str]]] = []
        self.stack: list[tuple[str, dict[str, str | None], list[str]]] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        el = (tag, dict(attrs), [])
        self.elements.append(el)
        if tag not in self.VOID:
            self.stack.append(el)

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        for el in self.stack:
            el[2].append(data)

    def by_id(self, ident: str) -> tuple[str, dict[str, str | None], str]:
        (el,) = [e for e in self.elements if e[1].get("id") == ident]
        return el[0], el[1], "".join(el[2])

    def all(self, tag: str) -> list[tuple[dict[str, str | None], str]]:
        return [(e[1], "".join(e[2])) for e in self.elements if e[0] == tag]


# -- the session the reports are made from -----------------------------------------------------


def test_the_session_found_both_culprits(bisected: Bisected) -> None:
    assert {o.spec.name for o in bisected.result.bisected} == {SLOW2, SLOW5}
    assert outcome(bisected, SLOW2).culprit == bisected.shas[7]
    assert outcome(bisected, SLOW5).culprit == bisected.shas[4]
    assert all(o.confirmed for o in bisected.result.bisected)


# -- plot --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [SLOW2, SLOW5])
def test_plot_png_is_a_readable_png_of_the_documented_size(bisected: Bisected, name: str) -> None:
    png = html_report.plot_png(bisected.result, outcome(bisected, name))
    assert png.startswith(PNG_MAGIC)
    with Image.open(io.BytesIO(png)) as im:
        assert im.format == "PNG"
        assert im.size == html_report.PLOT_SIZE_PX
        pixels = np.asarray(im.convert("RGB"), dtype=int)
    # it drew something: far from a blank canvas, and in colour (the verdict markers)
    saturated = (pixels.max(axis=2) - pixels.min(axis=2)) > 80
    assert saturated.sum() > 500
    arr = matplotlib.image.imread(io.BytesIO(png), format="png")
    assert arr.shape[:2] == (html_report.PLOT_SIZE_PX[1], html_report.PLOT_SIZE_PX[0])


def test_plot_is_deterministic(bisected: Bisected) -> None:
    o = outcome(bisected, SLOW2)
    assert html_report.plot_png(bisected.result, o) == html_report.plot_png(bisected.result, o)


def test_plot_contents_follow_the_session(bisected: Bisected) -> None:
    r = bisected.result
    o = outcome(bisected, SLOW2)
    fig = html_report.plot_figure(r, o)
    (ax,) = fig.axes
    order = [r.good, *r.range_commits]
    assert ax.get_yscale() == "linear"  # 2x is not enough for a log axis
    assert "seconds" in ax.get_ylabel()
    # every sample of every measured commit is drawn once, jittered around its position
    drawn: dict[int, int] = {}
    for coll in ax.collections:
        offsets = np.asarray(coll.get_offsets())
        if len(offsets) and coll.get_sizes()[0] < 20:  # the faint sample dots
            for x, _y in offsets:
                k = round(x)
                assert abs(x - k) < 0.2
                drawn[k] = drawn.get(k, 0) + 1
    expected = {order.index(sha): len(s[SLOW2]) for sha, s in r.samples.items() if SLOW2 in s}
    assert drawn == expected
    # threshold, good and bad medians as horizontal lines; the culprit as a vertical one
    horizontal = {ln.get_ydata()[0] for ln in ax.lines if ln.get_ydata()[0] == ln.get_ydata()[1]}
    good_med = np.median(r.samples[r.good][SLOW2])
    bad_med = np.median(r.samples[r.bad][SLOW2])
    assert sorted(horizontal) == pytest.approx(sorted([o.cut, good_med, bad_med]))
    vertical = [ln.get_xdata()[0] for ln in ax.lines if ln.get_xdata()[0] == ln.get_xdata()[1]]
    assert vertical == [order.index(o.culprit)]
    notes = [t.get_text() for t in ax.texts]
    assert any(o.culprit[:10] in t and "<script>" in t for t in notes)
    # tick labels carry the unit through fmt_value
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert labels and all(lb.endswith(" ms") for lb in labels)


def test_large_regressions_get_a_log_axis(bisected: Bisected) -> None:
    o = outcome(bisected, SLOW5)
    (ax,) = html_report.plot_figure(bisected.result, o).axes
    assert ax.get_yscale() == "log"
    assert o.reference.ratio > html_report.LOG_SCALE_RATIO


def test_skipped_commit_is_marked_as_failed(tmp_path: Path) -> None:
    """A commit that could not be measured has no samples, but the plot still shows it."""
    b = bisected_session(tmp_path / "r", broken=range(1, 7))
    o = outcome(b, SLOW2)
    failed = [sha for sha in b.result.skipped if sha in b.result.range_commits]
    assert failed, "the bisect should have met a broken commit"
    (ax,) = html_report.plot_figure(b.result, o).axes
    order = [b.result.good, *b.result.range_commits]
    marks = [c for c in ax.collections if c.get_label() == "failed to measure"]
    assert len(marks) == 1
    xs = sorted(round(x) for x, _ in marks[0].get_offsets())
    assert xs == sorted(order.index(s) for s in failed)


# -- HTML --------------------------------------------------------------------------------------


def test_html_culprit_block_plot_table_and_log(bisected: Bisected) -> None:
    r = bisected.result
    page = html_report.to_html(r)
    dom = Dom(page)
    slugs = html_report.benchmark_slugs(r)
    assert slugs[SLOW2] == "bench-suite-time-two-512"
    title = dom.all("title")[0][1]
    assert r.good[:10] in title and r.bad[:10] in title
    for name in (SLOW2, SLOW5):
        o = outcome(bisected, name)
        info = r.commits[o.culprit].info
        tag, attrs, text = dom.by_id(f"culprit-{slugs[name]}")
        assert "culprit" in (attrs.get("class") or "").split()
        assert info.sha in text and info.author in text and info.date in text
        assert info.subject in text  # after unescaping: the exact subject, as text
        c = o.confirmation
        assert f"{c.ratio:.3f}x" in text and f"p={c.p_value:.2g}" in text
        # the plot: an <img> whose data: URI decodes to exactly plot_png's bytes
        _tag, img, _ = dom.by_id(f"plot-{slugs[name]}")
        assert _tag == "img" and name in (img["alt"] or "")
        prefix = "data:image/png;base64,"
        assert img["src"].startswith(prefix)
        assert base64.b64decode(img["src"][len(prefix) :]) == html_report.plot_png(r, o)
        # the table: one row per commit this benchmark was measured or judged at
        _tag, _a, table_text = dom.by_id(f"steps-{slugs[name]}")
        rows = re.findall(r"<tr>", _steps_html(page, slugs[name]))
        shown = [
            sha
            for sha in bisected.measured
            if name in r.samples.get(sha, {}) or name in r.commits[sha].verdicts
        ]
        assert len(rows) - 1 == len(shown)  # minus the header row
        for sha in shown:
            assert sha[:10] in table_text
        # git bisect log, verbatim
        (log,) = [
            t
            for a, t in dom.all("pre")
            if a.get("class") == "bisect-log" and o.culprit in t and o.bisect_log.strip() in t
        ]
        assert "# first bad commit" in log
    assert "wall time" in page and f"{r.wall_seconds:.1f} s" in page


def _steps_html(page: str, ident: str) -> str:
    m = re.search(rf'<div class="steps" id="steps-{ident}">(.*?)</div>', page, re.S)
    assert m
    return m.group(1)


def test_html_escapes_what_users_wrote(bisected: Bisected) -> None:
    page = html_report.to_html(bisected.result)
    assert "<script" not in page.lower()  # the report has no scripts, and injects none
    assert "<b>inner" not in page and "<i>.txt" not in page
    culprit_block = re.search(
        r'<section class="culprit[^"]*" id="culprit-bench-suite-time-two-512">(.*?)</section>',
        page,
        re.S,
    )
    assert culprit_block
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;tune&quot;" in (
        culprit_block.group(1)
    )
    assert "evil&lt;i&gt;.txt" in culprit_block.group(1)
    assert "&lt;script&gt;alert" in _steps_html(page, "bench-suite-time-two-512")
    # and the parsed page reads back the exact strings
    dom = Dom(page)
    assert EVIL_SUBJECT in dom.by_id("culprit-bench-suite-time-two-512")[2]


def test_write_html_returns_the_path(bisected: Bisected, tmp_path: Path) -> None:
    target = tmp_path / "out.html"
    assert html_report.write_html(bisected.result, target) == target
    assert target.read_text(encoding="utf-8") == html_report.to_html(bisected.result)


def test_html_without_a_regression_says_so(tmp_path: Path) -> None:
    repo = GitRepoBuilder(tmp_path / "flat")
    shas = [
        repo.commit(f"c{i}", {"cost.txt": cost_text({STEADY: 0.004}), "n": str(i)})
        for i in range(3)
    ]
    r = Session(
        GitRepo(repo.path),
        CostRunner([STEADY]),
        MeasurementStore(None),
        BisectOptions(good=shas[0], bad=shas[-1]),
    ).run()
    page = html_report.to_html(r)
    assert r.bisected == [] and "nothing to bisect" in page
    assert "<img" not in page and 'class="culprit' not in page


def test_slugs_are_unique(bisected: Bisected) -> None:
    assert html_report.slug("kernels.MatMul.time_matmul(512)") == "kernels-matmul-time-matmul-512"
    assert html_report.slug("((()))") == "benchmark"
    # two names that clean up to the same slug still get distinct element ids and file names
    ref = bisected.result.outcomes[0].reference
    twins = [
        BenchmarkOutcome(BenchmarkSpec(name), ref, reproduces=True)
        for name in ("a(1)", "a-1", "A 1")
    ]
    r = dataclasses.replace(bisected.result, outcomes=twins)
    assert html_report.benchmark_slugs(r) == {"a(1)": "a-1", "a-1": "a-1-2", "A 1": "a-1-3"}


# -- Markdown ----------------------------------------------------------------------------------


def test_markdown_with_plots_writes_every_png_it_links(bisected: Bisected, tmp_path: Path) -> None:
    r = bisected.result
    md_path = tmp_path / "My Report.md"
    text = html_report.to_markdown_with_plots(r, md_path)
    base = report.to_markdown(r)
    # the plain report is all there, with the image lines added
    added = [ln for ln in text.split("\n") if ln not in base.split("\n")]
    assert all(ln.startswith("![") for ln in added) and len(added) == 2
    links = re.findall(r"!\[([^\]]*)\]\(([^)]+)\)", text)
    assert len(links) == 2
    lines = text.split("\n")
    for name in (SLOW2, SLOW5):
        o = outcome(bisected, name)
        ((alt, href),) = [(a, h) for a, h in links if name in a]
        png = md_path.parent / href.replace("%20", " ")
        assert png.parent == tmp_path and png.name.startswith("My Report-")
        assert png.read_bytes() == html_report.plot_png(r, o)
        # the image sits right under its benchmark's heading
        i = lines.index(f"## {name}")
        assert lines[i + 1 : i + 3] == ["", f"![{alt}]({href})"]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(
        p.name for p in html_report.plot_paths(r, md_path).values()
    )
    out = html_report.write_markdown_with_plots(r, tmp_path / "r2.md")
    assert out.read_text(encoding="utf-8").count("](r2-bench-suite-") == 2


def test_html_names_the_metric_when_the_caller_gave_it(bisected: Bisected) -> None:
    import dataclasses

    assert "<td>metric</td>" not in html_report.to_html(bisected.result)
    counted = dataclasses.replace(bisected.result, metric="instructions")
    page = html_report.to_html(counted)
    assert "<td>metric</td><td>instructions (instructions executed" in page
