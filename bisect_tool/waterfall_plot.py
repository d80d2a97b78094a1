"""The waterfall chart: good's value, one bar per change (its ratio over its parent, in history
order), the residual, and bad's value, on a log scale. Used by the HTML and Markdown reports."""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from .formatting import fmt_value
from .waterfall import REGRESSION

if TYPE_CHECKING:
    from .session import BenchmarkOutcome, SessionResult

WORSE, BETTER, TOTAL, REST = "#c0392b", "#27ae60", "#34495e", "#95a5a6"


def worth_a_chart(outcome: BenchmarkOutcome) -> bool:
    """A chart only says more than the culprit's lines when there is more than one change."""
    w = outcome.waterfall
    return w is not None and (len(w.changes) > 1 or bool(w.open_segments))


def figure(result: SessionResult, outcome: BenchmarkOutcome) -> Figure:
    w = outcome.waterfall
    assert w is not None
    unit = outcome.spec.unit
    labels = ["good"]
    bottoms, heights, colors = [0.0], [w.good], [TOTAL]
    level = w.good
    for c in w.changes:
        new = level * c.ratio
        rec = result.commits.get(c.sha) if c.sha else None
        label = rec.info.short if rec else "range"
        labels.append(f"{label}\n{c.ratio:.3g}x")
        bottoms.append(min(level, new))
        heights.append(abs(new - level))
        colors.append(WORSE if c.kind == REGRESSION else BETTER)
        level = new
    if math.isfinite(w.residual) and abs(math.log(w.residual)) > 1e-3:
        new = level * w.residual
        labels.append(f"residual\n{w.residual:.3g}x")
        bottoms.append(min(level, new))
        heights.append(abs(new - level))
        colors.append(REST)
    labels.append("bad")
    bottoms.append(0.0)
    heights.append(w.bad)
    colors.append(TOTAL)
    fig = Figure(figsize=(max(5.0, 1.1 * len(labels)), 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    xs = range(len(labels))
    # floating bars: from the level before a change to the level after it
    ax.bar(xs, heights, bottom=bottoms, color=colors, width=0.6)
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_ylabel(unit or "value")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt_value(v, unit)))
    ax.set_title(f"{outcome.spec.name}: {w.total:.3g}x from good to bad", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def png(result: SessionResult, outcome: BenchmarkOutcome) -> bytes:
    buf = io.BytesIO()
    figure(result, outcome).savefig(buf, format="png")
    return buf.getvalue()
