"""tools/noise_probe.py: the machine's noise per process, as the docs quote it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PROBE = Path(__file__).resolve().parents[1] / "tools" / "noise_probe.py"


def probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PROBE), *args], capture_output=True, text=True, timeout=120
    )


def test_one_line_per_size_with_the_spread_between_processes() -> None:
    res = probe("--sizes", "2000,20000", "--runs", "4")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["size 2000", "size 20000"]
    for ln in lines:
        found = re.search(r"sigma\(log\) ([0-9.]+) \(robust ([0-9.]+)\), max/min ([0-9.]+)", ln)
        assert found, ln
        assert float(found.group(3)) >= 1.0  # the largest of 4 runs over the smallest


def test_bad_sizes_and_too_few_runs_are_one_line_errors() -> None:
    for args, words in [
        (("--sizes", "x"), "not a list of integers"),
        (("--runs", "2"), "at least 3"),
    ]:
        res = probe(*args)
        assert res.returncode == 2
        assert words in res.stderr and "Traceback" not in res.stderr
