"""The HTML report, and an `asv publish` site, as a real browser (headless Chromium) shows them.

The report promises to be a standalone page: these tests open it from file:// and check what
Chromium made of it, namely the culprit block in the DOM and the plot decoded to its real size
and painted on screen. The asv site test publishes real `asv run` results and checks the
site's JavaScript listed the benchmark.
"""

from __future__ import annotations

import base64
import functools
import html
import http.server
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_asv_bisect import tiny_asv_repo
from test_html_report import SLOW2, SLOW5, bisected_session

from bisect_tool import html_report
from bisect_tool.session import SessionResult

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found: install it (apt-get install chromium) to run this test")
    return CHROMIUM


def run_chromium(
    binary: Path, profile: Path, url: str, *extra: str, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """One headless Chromium run with a throw-away profile; fails the test if it fails."""
    profile.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(
        [str(binary), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert res.returncode == 0, f"chromium exited {res.returncode}:\n{res.stderr[-3000:]}"
    return res


def saturated(rgb: np.ndarray) -> np.ndarray:
    """Pixels in clear colour: the plot's markers and lines, not text or grey backgrounds."""
    return (rgb.max(axis=2) - rgb.min(axis=2)) > 80


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SessionResult]:
    root = tmp_path_factory.mktemp("browser")
    b = bisected_session(root / "repo")
    path = html_report.write_html(b.result, root / "report.html")
    return path, b.result


_PROBE = """<script>
window.addEventListener("load", () => {
  // For each plot: decoded?, natural size, and its pixels as drawn: opaque and non-white counts.
  const report = Array.from(document.querySelectorAll("img[id^='plot-']")).map((img) => {
    const c = document.createElement("canvas");
    c.width = img.naturalWidth;
    c.height = img.naturalHeight;
    const ctx = c.getContext("2d");
    ctx.drawImage(img, 0, 0);
    const px = ctx.getImageData(0, 0, c.width || 1, c.height || 1).data;
    let opaque = 0, ink = 0;
    for (let i = 0; i < px.length; i += 4) {
      if (px[i + 3] === 255) opaque++;
      if (px[i + 3] > 0 && px[i] + px[i + 1] + px[i + 2] < 600) ink++;
    }
    return [img.id, img.complete, img.naturalWidth, img.naturalHeight, opaque, ink];
  });
  document.body.dataset.plots = JSON.stringify(report);
});
</script>
"""


def test_report_dom_in_chromium(chromium: Path, report_file, tmp_path: Path) -> None:
    """Chromium parses the page into the culprit blocks and decodes both plots at full size."""
    path, result = report_file
    slugs = html_report.benchmark_slugs(result)
    dom = run_chromium(
        chromium, tmp_path / "p1", path.as_uri(), "--dump-dom", "--virtual-time-budget=3000"
    ).stdout
    for name in (SLOW2, SLOW5):
        o = next(o for o in result.bisected if o.spec.name == name)
        block = re.search(
            rf'<section class="culprit[^"]*" id="culprit-{slugs[name]}">(.*?)</section>', dom, re.S
        )
        assert block, f"no culprit block for {name} in the DOM Chromium built"
        assert o.culprit in block.group(1)
    assert "&lt;script&gt;alert" in dom  # still text, not an element
    # The report has no script of its own; a copy with a probe reports what the <img>s decoded.
    probed = tmp_path / "probed.html"
    probed.write_text(path.read_text().replace("</body>", _PROBE + "</body>"))
    dom = run_chromium(
        chromium, tmp_path / "p2", probed.as_uri(), "--dump-dom", "--virtual-time-budget=3000"
    ).stdout
    m = re.search(r'data-plots="([^"]*)"', dom)
    assert m, "the probe did not run: " + dom[-500:]
    plots = {row[0]: row[1:] for row in json.loads(html.unescape(m.group(1)))}
    assert set(plots) == {f"plot-{slugs[SLOW2]}", f"plot-{slugs[SLOW5]}"}
    w, h = html_report.PLOT_SIZE_PX
    for ident, (done, nw, nh, opaque, ink) in plots.items():
        assert (done, nw, nh) == (True, w, h), ident
        assert opaque == w * h, f"{ident}: only {opaque} of {w * h} pixels decoded"
        assert ink > 0.01 * w * h, f"{ident}: {ink} dark pixels, the plot looks empty"


def test_report_screenshot_shows_the_plot(chromium: Path, report_file, tmp_path: Path) -> None:
    """Chromium paints the plot: against the same page with blank white images of the same
    size, the screenshots differ over a plot-sized area, and in the plot's colours."""
    path, _result = report_file
    buf = io.BytesIO()
    Image.new("RGB", html_report.PLOT_SIZE_PX, "white").save(buf, format="PNG")
    white = base64.b64encode(buf.getvalue()).decode()
    control = tmp_path / "white-images.html"
    control.write_text(
        re.sub(r'(src="data:image/png;base64,)[^"]*"', rf'\g<1>{white}"', path.read_text())
    )
    shots = {}
    for label, page in (("report", path), ("control", control)):
        shot = tmp_path / f"{label}.png"
        run_chromium(
            chromium,
            tmp_path / f"p-{label}",
            page.as_uri(),
            f"--screenshot={shot}",
            "--window-size=1200,2000",
        )
        with Image.open(shot) as im:
            assert im.size == (1200, 2000)
            shots[label] = np.asarray(im.convert("RGB"), dtype=int)
    diff = np.abs(shots["report"] - shots["control"]).sum(axis=2) > 30
    assert diff.sum() > 10_000, "the plot was not painted"
    ys, xs = np.nonzero(diff)
    w, h = html_report.PLOT_SIZE_PX
    assert xs.max() - xs.min() > 0.9 * w and ys.max() - ys.min() > 0.9 * h
    coloured = (saturated(shots["report"]) & ~saturated(shots["control"])).sum()
    assert coloured > 1500  # verdict markers, medians and the culprit line


# -- an asv publish site -----------------------------------------------------------------------

# asv's pages load jQuery and its plugins from CDNs. This machine may be offline, so the test
# serves local copies where the system has them (Debian's libjs-jquery; flot 0.8.3 as vendored
# by pympler, an asv dependency) and no-op stand-ins for the cosmetic plugins (tooltips, table
# sorting, md5 for "ignore regression" keys), so asv's own JavaScript runs unchanged.
JQUERY = Path("/usr/share/javascript/jquery/jquery.min.js")
_STUBS = """// Offline stand-ins for CDN plugins that only decorate asv's pages.
(function ($) {
  $.fn.tooltip = $.fn.tooltip || function () { return this; };
  $.fn.stupidtable = $.fn.stupidtable || function () { return this; };
})(jQuery);
window.md5 = window.md5 || function (s) { return String(s); };
"""


def _flot() -> Path | None:
    try:
        import pympler
    except ImportError:
        return None
    path = Path(pympler.__file__).parent / "templates" / "jquery.flot.min.js"
    return path if path.is_file() else None


def offline_site(site: Path) -> None:
    """Point index.html's CDN scripts at local files in site/_offline/."""
    flot = _flot()
    if not JQUERY.is_file() or flot is None:
        pytest.skip("asv's site needs jQuery and flot; offline copies not found (libjs-jquery)")
    local = site / "_offline"
    local.mkdir()
    shutil.copy(JQUERY, local / "jquery.js")
    shutil.copy(flot, local / "flot.js")
    (local / "stubs.js").write_text(_STUBS)
    index = site / "index.html"
    text = index.read_text()

    def swap(m: re.Match[str]) -> str:
        # The whole tag goes: its integrity hash would reject any local copy.
        url = m.group(1)
        if "/jquery-" in url:
            return '<script src="_offline/jquery.js"></script>'
        if url.endswith("/jquery.flot.min.js"):
            return '<script src="_offline/flot.js"></script>'
        if "md5" in url:  # after jQuery, so the stand-ins can extend it
            return '<script src="_offline/stubs.js"></script>'
        return ""

    text = re.sub(r'<script src="(https?://[^"]+)"[^>]*></script>', swap, text)
    text = re.sub(r'<link[^>]+href="https?://[^"]+"[^>]*>', "", text)
    head = text.split("<body")[0]
    assert "stubs.js" in head and "https://" not in head and "integrity=" not in head
    index.write_text(text)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A localhost HTTP server for tmp_path/site (asv's pages fetch JSON, which file:// blocks)."""
    site = tmp_path / "site"
    site.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.mark.slow
def test_asv_publish_site_lists_the_benchmarks(chromium: Path, served, tmp_path: Path) -> None:
    site, base_url = served
    repo = tmp_path / "tiny"
    shas = tiny_asv_repo(repo, [3000, 30000], broken=set())
    # asv keeps its machine file in $HOME: give it a private one. The commit's code is found
    # through ASV_PYTHONPATH, the variable asv's benchmark runner puts on sys.path.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HOME=str(tmp_path / "home"), ASV_PYTHONPATH=str(repo))
    (tmp_path / "home").mkdir()

    def asv(*args: str) -> None:
        res = subprocess.run(
            [sys.executable, "-m", "asv", *args],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert res.returncode == 0, f"asv {args[0]} failed:\n{res.stdout[-2000:]}{res.stderr}"

    asv("machine", "--yes", "--machine", "browsertest")
    for sha in shas:
        subprocess.run(["git", "checkout", "-q", sha], cwd=repo, check=True)
        asv(
            "run",
            "--python=same",
            "--set-commit-hash",
            sha,
            "--record-samples",
            "--quick",
            "--machine",
            "browsertest",
            "--show-stderr",
        )
    asv("publish")
    published = repo / ".asv" / "html"
    index = json.loads((published / "index.json").read_text())
    assert set(index["revision_to_hash"].values()) == set(shas)
    assert "bench_tiny.time_work" in index["benchmarks"]
    shutil.copytree(published, site, dirs_exist_ok=True)
    assert "bench_tiny" not in (site / "index.html").read_text()  # only the JS can list them
    offline_site(site)

    dom = run_chromium(
        chromium,
        tmp_path / "profile",
        f"{base_url}/index.html",
        "--dump-dom",
        "--virtual-time-budget=10000",
    ).stdout
    listed = set(re.findall(r"bench_tiny\.(time_work|time_other|track_items_per_s)", dom))
    assert listed == {"time_work", "time_other", "track_items_per_s"}, dom[-3000:]
