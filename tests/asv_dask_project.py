"""A tiny asv project that asv can build (a pyproject wheel, no network, no compiler), for
the tests: one slowdown at a chosen commit, a build that sleeps
SMBISECT_TEST_BUILD_SLEEP seconds (0 by default) before building its wheel and logs the
commit it builds to SMBISECT_TEST_BUILD_LOG."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PYPROJECT = """[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "tinyv"
version = "0"

[tool.setuptools]
packages = ["tinyv"]
"""

LIB = """N = {n}


def work():
    return sum(i * i for i in range(N))
"""

BENCH = "import tinyv\n\n\ndef time_work():\n    tinyv.work()\n"

# sleeps, then appends the commit asv builds to SMBISECT_TEST_BUILD_LOG (when set)
SLEEP = (
    'python -c "import os, time; '
    "time.sleep(float(os.environ.get('SMBISECT_TEST_BUILD_SLEEP', '0'))); "
    "log = os.environ.get('SMBISECT_TEST_BUILD_LOG'); "
    "log and open(log, 'a').write(os.environ['ASV_COMMIT'] + chr(10))\""
)


def conf(python: str) -> dict[str, object]:
    return {
        "version": 1,
        "project": "tinyv",
        "repo": ".",
        "branches": ["main"],
        "environment_type": "virtualenv",
        "pythons": [python],
        "build_command": [
            SLEEP,
            "python -m pip wheel --no-deps --no-build-isolation -w {build_cache_dir} {build_dir}",
        ],
        "install_command": ["in-dir={env_dir} python -m pip install --no-deps {wheel_file}"],
        "uninstall_command": ["return-code=any python -m pip uninstall -y tinyv"],
        "benchmark_dir": "benchmarks",
        "env_dir": ".asv/env",
        "results_dir": ".asv/results",
    }


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def buildable_asv_repo(root: Path, before: int, after: int) -> list[str]:
    """`before` commits of a fast tinyv.work, then `after` ten times slower; the shas."""
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Test Author")
    git(root, "config", "user.email", "test@example.invalid")
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    (root / "asv.conf.json").write_text(json.dumps(conf(python), indent=1))
    (root / ".gitignore").write_text(".asv/\n")
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "benchmarks").mkdir()
    (root / "benchmarks" / "__init__.py").write_text("")
    (root / "benchmarks" / "bench.py").write_text(BENCH)
    (root / "tinyv").mkdir()
    shas = []
    for i, n in enumerate([3000] * before + [30000] * after):
        (root / "tinyv" / "__init__.py").write_text(LIB.format(n=n))
        (root / "CHANGES").write_text(f"release {i}\n")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", f"step {i}: N={n}")
        shas.append(git(root, "rev-parse", "HEAD"))
    return shas
