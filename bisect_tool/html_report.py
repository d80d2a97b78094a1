"""Reports with pictures: a plot per bisected benchmark, a standalone HTML page, Markdown + PNGs.

A table of medians hides what a reader needs to trust a culprit: how noisy each commit was and
where the threshold lay. The plot shows every sample along the bisected range. Plots are drawn
with matplotlib's object API on an Agg canvas (never pyplot), so making a report changes no
global matplotlib state for whoever else uses it in the same process. The HTML page inlines its
plots as data: URIs and needs no scripts, so one file can be mailed or attached to a ticket.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

from . import report, stats, waterfall_plot, waterfall_report
from .git import clean_text
from .session import BenchmarkOutcome, SessionResult
from .stats import Verdict

PLOT_INCHES = (10.0, 5.0)
PLOT_DPI = 100
PLOT_SIZE_PX = (int(PLOT_INCHES[0] * PLOT_DPI), int(PLOT_INCHES[1] * PLOT_DPI))  # (w, h)
JITTER_SEED = 20240229
LOG_SCALE_RATIO = 3.0  # bad/good beyond this is drawn on a log axis so good stays readable

# category -> (colour, legend label); colour-blind-safe Okabe-Ito hues.
_STYLE: dict[str, tuple[str, str]] = {
    "good": ("#009E73", "good"),
    "bad": ("#D55E00", "bad"),
    "culprit": ("#CC0000", "culprit"),
    "skip": ("#999999", "skip / unclear"),
    "parent": ("#0072B2", "culprit's parent"),
    "other": ("#BBBBBB", "measured on the way (another benchmark's step, a merge base)"),
}


# -- names --------------------------------------------------------------------------------------


def slug(name: str) -> str:
    """A file- and id-safe form of a benchmark name (`kernels.MatMul.time_matmul(512)` ->
    `kernels-matmul-time-matmul-512`)."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "benchmark"


def benchmark_slugs(result: SessionResult) -> dict[str, str]:
    """Unique slug per bisected benchmark: distinct names can share a slug (`a(1)`, `a-1`)."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for o in result.bisected:
        base = slug(o.spec.name)
        candidate, k = base, 2
        while candidate in used:
            candidate, k = f"{base}-{k}", k + 1
        used.add(candidate)
        out[o.spec.name] = candidate
    return out


# -- the plot -----------------------------------------------------------------------------------


def _category(result: SessionResult, outcome: BenchmarkOutcome, sha: str) -> str:
    """What colour a commit gets for this benchmark: its verdict, or its role if it had none."""
    if sha == outcome.culprit:
        return "culprit"
    rec = result.commits[sha]
    verdict = rec.verdicts.get(outcome.spec.name)
    if sha == result.good or verdict is Verdict.GOOD:
        return "good"
    if sha == result.bad or verdict is Verdict.BAD:
        return "bad"
    if verdict in (Verdict.SKIP, Verdict.UNKNOWN):
        return "skip"
    if rec.role == "parent":
        return "parent"
    return "other"  # a step of another benchmark's bisect, measured here on the way


def _median_of(result: SessionResult, sha: str, name: str) -> float:
    samples = result.samples.get(sha, {}).get(name, [])
    return stats.median(samples) if samples else math.nan


def plot_png(result: SessionResult, outcome: BenchmarkOutcome) -> bytes:
    """PNG of one benchmark along good..bad: every sample, medians by verdict, cut, culprit."""
    buf = io.BytesIO()
    plot_figure(result, outcome).savefig(
        buf, format="png", dpi=PLOT_DPI, metadata={"Software": None}
    )
    return buf.getvalue()


def plot_figure(result: SessionResult, outcome: BenchmarkOutcome) -> Figure:
    """The plot as a matplotlib Figure on its own Agg canvas (callers may save it as SVG/PDF)."""
    name, unit = outcome.spec.name, outcome.spec.unit
    order = [result.good, *result.range_commits]
    pos = {sha: i for i, sha in enumerate(order)}
    rng = np.random.default_rng(JITTER_SEED)

    fig = Figure(figsize=PLOT_INCHES, dpi=PLOT_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()

    measured = [sha for sha in order if sha in result.commits]
    shown: set[str] = set()
    failed_x: list[int] = []
    for sha in measured:
        x = pos[sha]
        samples = result.samples.get(sha, {}).get(name, [])
        cat = _category(result, outcome, sha)
        if not samples:
            if cat == "skip":  # it failed to build, import or run: no samples to show
                failed_x.append(x)
            continue
        colour, label = _STYLE[cat]
        jitter = rng.uniform(-0.18, 0.18, len(samples))
        ax.scatter(x + jitter, samples, s=9, color=colour, alpha=0.28, linewidths=0, zorder=2)
        ax.scatter(
            [x],
            [stats.median(samples)],
            s=70 if cat == "culprit" else 46,
            marker="D" if cat == "culprit" else "o",
            color="white" if cat == "other" else colour,
            edgecolors=colour if cat == "other" else "black",
            linewidths=1.2 if cat == "other" else 0.6,
            zorder=4,
            label=None if label in shown else label,
        )
        shown.add(label)
    if failed_x:
        ax.scatter(
            failed_x,
            [0.03] * len(failed_x),
            transform=ax.get_xaxis_transform(),
            marker="x",
            s=40,
            color=_STYLE["skip"][0],
            zorder=4,
            label="failed to measure",
        )

    good_med = _median_of(result, result.good, name)
    bad_med = _median_of(result, result.bad, name)
    if not math.isnan(good_med):
        label = f"good median {report.fmt_value(good_med, unit)}"
        ax.axhline(good_med, color=_STYLE["good"][0], ls="--", lw=1, zorder=1, label=label)
    if not math.isnan(bad_med):
        label = f"bad median {report.fmt_value(bad_med, unit)}"
        ax.axhline(bad_med, color=_STYLE["bad"][0], ls="--", lw=1, zorder=1, label=label)
    if outcome.cut is not None and math.isfinite(outcome.cut):
        label = f"threshold {report.fmt_value(outcome.cut, unit)}"
        ax.axhline(outcome.cut, color="black", ls=":", lw=1.2, zorder=1, label=label)

    if outcome.culprit and outcome.culprit in pos:
        cx = pos[outcome.culprit]
        info = result.commits[outcome.culprit].info
        ax.axvline(cx, color=_STYLE["culprit"][0], lw=1.2, alpha=0.7, zorder=1)
        text = f"{info.sha[:10]} {_clip(info.subject, 48)}"
        # Put the note on the side of the culprit with more room, so it stays inside the axes.
        left = cx > (len(order) - 1) / 2
        ax.annotate(
            text,
            xy=(cx, 0.75),
            xycoords=ax.get_xaxis_transform(),
            xytext=(-6 if left else 6, 0),
            textcoords="offset points",
            ha="right" if left else "left",
            va="center",
            fontsize=9,
            color=_STYLE["culprit"][0],
            bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": "none", "alpha": 0.85},
            zorder=5,
        )
    for i, sha in enumerate(c for c in outcome.candidates if c in pos):
        ax.axvspan(
            pos[sha] - 0.5,
            pos[sha] + 0.5,
            color=_STYLE["skip"][0],
            alpha=0.15,
            lw=0,
            label=None if i else "candidate culprits",
        )

    _format_axes(ax, result, outcome, order, pos, measured, good_med, bad_med)
    return fig


def _format_axes(
    ax: Axes,
    result: SessionResult,
    outcome: BenchmarkOutcome,
    order: list[str],
    pos: dict[str, int],
    measured: list[str],
    good_med: float,
    bad_med: float,
) -> None:
    """Units on y, short shas of the measured commits on x, log y for large regressions."""
    unit = outcome.spec.unit
    ratio = bad_med / good_med if good_med and bad_med and good_med > 0 else 1.0
    if bad_med > 0 and good_med > 0 and max(ratio, 1 / ratio) > LOG_SCALE_RATIO:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: report.fmt_value(v, unit)))
    ax.set_ylabel(f"{outcome.spec.name}\nmedian and samples ({unit or 'value'})")
    ticks = sorted({pos[s] for s in measured})
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    labels = {pos[s]: s[:7] for s in measured}
    ax.set_xticklabels(
        [labels[t] for t in ticks], rotation=60, ha="right", fontsize=8, family="monospace"
    )
    ax.set_xlim(-0.7, len(order) - 0.3)
    ax.set_xlabel(
        f"commit position, oldest first ({len(result.range_commits)} commits after good = 0)"
    )
    change = f"{report.fmt_value(good_med, unit)} -> {report.fmt_value(bad_med, unit)}"
    ax.set_title(f"{outcome.spec.name}: {change}", fontsize=11)
    ax.grid(True, axis="y", alpha=0.3, which="major")
    ax.legend(fontsize=8, loc="best", framealpha=0.85)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


# -- HTML ---------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
pre { background: #f6f6f6; padding: .8em; overflow-x: auto; font-size: .85em; }
table { border-collapse: collapse; font-size: .9em; }
td, th { border: 1px solid #ddd; padding: .25em .6em; text-align: left; }
th { background: #f0f0f0; }
.culprit { border-left: 4px solid #c00; background: #fff5f5; padding: .6em 1em; margin: 1em 0; }
.culprit.unconfirmed, .culprit.ambiguous { border-left-color: #e69f00; background: #fffaf0; }
.culprit dt { font-weight: 600; float: left; clear: left; width: 7em; }
.culprit dd { margin-left: 8em; font-family: ui-monospace, monospace; }
.plot img { max-width: 100%; height: auto; }
.summary td:first-child { font-weight: 600; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _culprit_html(result: SessionResult, outcome: BenchmarkOutcome, ident: str) -> str:
    """The culprit with the evidence, as a definition list (the data of report.culprit_lines)."""
    name = outcome.spec.name
    parts: list[str] = []
    if outcome.culprit:
        info = result.commits[outcome.culprit].info
        status = "confirmed" if outcome.confirmed else "NOT confirmed"
        cls = "culprit confirmed" if outcome.confirmed else "culprit unconfirmed"
        parts.append(f'<section class="{cls}" id="culprit-{ident}">')
        parts.append(f"<h3>Culprit for {_e(name)} ({status})</h3>")
        rows: list[tuple[str, str]] = [
            ("commit", f'<code class="sha">{_e(info.sha)}</code>'),
            ("author", _e(info.author)),
            ("date", _e(info.date)),
            ("subject", f'<span class="subject">{_e(info.subject)}</span>'),
            ("files", _e(", ".join(info.files) or "(none)")),
        ]
        c = outcome.confirmation
        if c is not None:
            rows.append(
                (
                    "slowdown",
                    _e(
                        f"{c.ratio:.3f}x over its parent (95% CI {c.ci_low:.3f}-{c.ci_high:.3f}, "
                        f"p={c.p_value:.2g}, n={c.n_base}+{c.n_other}, measured interleaved)"
                    ),
                )
            )
        parts.append("<dl>")
        parts += [f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows]
        parts.append("</dl>")
    else:
        parts.append(f'<section class="culprit ambiguous" id="culprit-{ident}">')
        parts.append(f"<h3>No single culprit for {_e(name)}</h3>")
        parts.append("<p>The first bad commit is one of:</p><ul>")
        for sha in outcome.candidates:
            rec = result.commits[sha]
            info = rec.info
            why = rec.reasons.get(name, "") if rec.verdicts.get(name) is Verdict.SKIP else ""
            parts.append(
                f'<li><code class="sha">{_e(info.sha)}</code> {_e(info.subject)}'
                + (f" <em>(skipped: {_e(why)})</em>" if why else "")
                + "</li>"
            )
        parts.append("</ul>")
    parts.append(
        f"<p>{len(outcome.steps)} bisect steps for {len(result.range_commits)} commits "
        f"(ceil(log2 N) = {result.log2_bound}).</p>"
    )
    notes = [n for n in outcome.notes if n]
    if notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    parts.append("</section>")
    return "\n".join(parts)


def _img_tag(png: bytes, ident: str, alt: str, size: tuple[int, int] | None = PLOT_SIZE_PX) -> str:
    data = base64.b64encode(png).decode("ascii")
    dims = f'width="{size[0]}" height="{size[1]}" ' if size else ""
    return f'<img id="plot-{ident}" alt="{_e(alt)}" {dims}src="data:image/png;base64,{data}">'


def _plot_alt(result: SessionResult, outcome: BenchmarkOutcome) -> str:
    where = f", culprit {outcome.culprit[:10]}" if outcome.culprit else ""
    return f"{outcome.spec.name} along {result.good[:10]}..{result.bad[:10]}{where}"


def to_html(result: SessionResult) -> str:
    """The whole report as one standalone page: no external assets, no scripts."""
    title = f"smbisect report: {result.good[:10]}..{result.bad[:10]}"
    slugs = benchmark_slugs(result)
    body: list[str] = [f"<h1>{_e(title)}</h1>"]
    summary = [
        ("range", f"<code>{_e(result.good)}</code>..<code>{_e(result.bad)}</code>"),
        ("commits in range", _e(len(result.range_commits))),
        ("ceil(log2 N)", _e(result.log2_bound)),
        ("benchmarks bisected", _e(len(result.bisected))),
        ("wall time", _e(f"{result.wall_seconds:.1f} s")),
    ]
    if result.metric is not None:  # which metric the verdicts are by (--metric)
        words = report.METRIC_WORDS.get(result.metric, result.metric)
        summary.insert(0, ("metric", _e(f"{result.metric} ({words})")))
    body.append('<table class="summary">')
    body += [f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in summary]
    body.append("</table>")
    body.append("<h2>Endpoints (good vs bad)</h2>")
    body.append(f"<pre>{_e(report.reference_table(result.outcomes))}</pre>")
    if not result.bisected:
        body.append(
            "<p>No benchmark is worse at bad than at good beyond the threshold and the noise: "
            "nothing to bisect.</p>"
        )
    for o in result.bisected:
        ident = slugs[o.spec.name]
        body.append(f'<section class="benchmark" id="bench-{ident}">')
        body.append(f"<h2>{_e(o.spec.name)}</h2>")
        body.append(_culprit_html(result, o, ident))
        img = _img_tag(plot_png(result, o), ident, _plot_alt(result, o))
        body.append(f'<div class="plot">{img}</div>')
        if o.waterfall is not None:
            body.append("<h3>Waterfall: every change from good to bad</h3>")
            if waterfall_plot.worth_a_chart(o):
                chart = _img_tag(
                    waterfall_plot.png(result, o),
                    f"waterfall-{ident}",
                    f"waterfall of {o.spec.name}: {len(o.waterfall.changes)} change(s)",
                    size=None,
                )
                body.append(f'<div class="plot">{chart}</div>')
            body.append(
                f'<div class="waterfall" id="waterfall-{ident}">'
                f"{waterfall_report.table(result, o, fmt='html')}</div>"
            )
            body += [
                f"<p>Not attributed: <code>{_e(low[:10])}..{_e(high[:10])}</code> ({_e(why)})</p>"
                for low, high, why in o.waterfall.open_segments
            ]
        body.append("<h3>Commits measured</h3>")
        body.append(
            f'<div class="steps" id="steps-{ident}">{report.steps_table(result, o, fmt="html")}'
            "</div>"
        )
        if o.bisect_log:
            body.append("<h3>git bisect log</h3>")
            body.append(f'<pre class="bisect-log">{_e(o.bisect_log)}</pre>')
        body.append("</section>")
    if result.skipped:
        body.append("<h2>Skipped commits</h2><ul>")
        body += [
            f"<li><code>{_e(sha[:10])}</code>: {_e(why)}</li>"
            for sha, why in result.skipped.items()
        ]
        body.append("</ul>")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(title)}</title>",
            f"<style>{_CSS}</style>",
            "</head>",
            "<body>",
            *body,
            "</body>",
            "</html>",
            "",
        ]
    )


def write_html(result: SessionResult, path: Path) -> Path:
    """Write the standalone HTML report; return its path."""
    path = Path(path)
    path.write_text(clean_text(to_html(result)), encoding="utf-8")
    return path


# -- Markdown with plots ------------------------------------------------------------------------


def plot_paths(result: SessionResult, report_path: Path) -> dict[str, Path]:
    """Where the PNG of each bisected benchmark goes: `<report stem>-<slug>.png` beside it."""
    report_path = Path(report_path)
    return {
        name: report_path.with_name(f"{report_path.stem}-{ident}.png")
        for name, ident in benchmark_slugs(result).items()
    }


def to_markdown_with_plots(result: SessionResult, report_path: Path) -> str:
    """report.to_markdown plus an image under each benchmark heading; writes the PNGs.

    The PNGs are written next to `report_path` (the Markdown file itself is not written), and
    the Markdown links them by relative name, so the pair can be moved together.
    """
    text = report.to_markdown(result)
    paths = plot_paths(result, report_path)
    images: list[tuple[str, str]] = []
    for o in result.bisected:
        png_path = paths[o.spec.name]
        png_path.write_bytes(plot_png(result, o))
        alt = _md_alt(_plot_alt(result, o))
        images.append((f"## {o.spec.name}", f"![{alt}]({urllib.parse.quote(png_path.name)})"))
        if waterfall_plot.worth_a_chart(o):
            chart = png_path.with_name(f"{png_path.stem}-waterfall.png")
            chart.write_bytes(waterfall_plot.png(result, o))
            images.append(
                (
                    "### Waterfall",
                    f"![waterfall of {_md_alt(o.spec.name)}]({urllib.parse.quote(chart.name)})",
                )
            )
    return _insert_after_headings(text, images)


def write_markdown_with_plots(result: SessionResult, path: Path) -> Path:
    """Write the Markdown report and its PNGs; return the report's path."""
    path = Path(path)
    path.write_text(clean_text(to_markdown_with_plots(result, path)), encoding="utf-8")
    return path


def _md_alt(text: str) -> str:
    return re.sub(r"([\[\]\\])", r"\\\1", text)


def _insert_after_headings(text: str, images: Iterable[tuple[str, str]]) -> str:
    """Put each image after its heading, searching forward; unmatched ones go at the end."""
    lines = text.split("\n")
    at = 0
    leftover: list[str] = []
    for heading, image in images:
        try:
            i = lines.index(heading, at)
        except ValueError:
            leftover.append(image)
            continue
        lines[i + 1 : i + 1] = ["", image]
        at = i + 3
    if leftover:
        lines += ["## Plots", "", *(x for img in leftover for x in (img, ""))]
    return "\n".join(lines)
