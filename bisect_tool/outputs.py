"""Writing the result files, in one direction: report (JSON) and html_report (Markdown with
plots, HTML) below, this module above them both; neither of them imports it. html_report
(matplotlib, about a second to import) is imported only when a Markdown or HTML report is
written: the JSON alone does not need it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .errors import EnvironmentProblem
from .git import clean_text
from .report import write_json
from .session import SessionResult


def _markdown(result: SessionResult, path: Path) -> object:
    from .html_report import write_markdown_with_plots

    return write_markdown_with_plots(result, path)


def _html(result: SessionResult, path: Path) -> object:
    from .html_report import write_html

    return write_html(result, path)


def write_outputs(
    result: SessionResult,
    json_path: str | None,
    report_path: str | None,
    html_path: str | None,
) -> list[tuple[str, str]]:
    """Write the requested files; return (kind, path) for each, to be shown to the user.

    The JSON comes first: it is the whole result, and the cheapest to write. A format that
    cannot be written does not stop the others; afterwards one error names what failed and
    what was written.
    """
    writers: list[tuple[str, str | None, Callable[[SessionResult, Path], object]]] = [
        ("JSON", json_path, write_json),
        ("Markdown report", report_path, _markdown),
        ("HTML report", html_path, _html),
    ]
    written: list[tuple[str, str]] = []
    failed: list[str] = []
    for kind, path, write in writers:
        if not path:
            continue
        try:
            write(result, Path(path))
        except Exception as exc:  # one format's failure must not cost the others
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            failed.append(f"the {kind} to {path} ({type(exc).__name__}: {clean_text(reason)})")
        else:
            written.append((kind, path))
    if failed:
        done = ", ".join(f"the {kind} to {path}" for kind, path in written)
        raise EnvironmentProblem(
            "cannot write the report: could not write "
            + "; ".join(failed)
            + (f"; wrote {done}" if done else "")
        )
    return written
