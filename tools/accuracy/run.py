"""Running the tools on one generated repository (smbisect, asv find), under an optional load."""

from __future__ import annotations

import contextlib
import json
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bisect_tool.runners import stop_group

from .history import BENCH, BENCH_SCRIPT_NAME, GeneratedRepo, asv_conf
from .load import BurstyLoad
from .scoring import EXPECTED_EXITS, ToolResult, score_asv_find, score_smbisect


@dataclass(frozen=True)
class SmbisectSettings:
    """How smbisect is run: asv mode (--bench time_work) or command mode (--cmd bench.py)."""

    mode: str = "asv"
    cmd_metric: str = "stdout"  # command mode: the time bench.py prints, or the process's wall
    extra_args: tuple[str, ...] = field(default_factory=tuple)  # --smbisect-args, split

    @property
    def command(self) -> str:
        """The --cmd of command mode: this interpreter (it has numpy) running bench.py."""
        return f"{shlex.quote(sys.executable)} {BENCH_SCRIPT_NAME}"

    @property
    def bench_name(self) -> str:
        return self.command if self.mode == "cmd" else BENCH


def smbisect_argv(
    repo: GeneratedRepo, out: Path, cache: Path, settings: SmbisectSettings
) -> list[str]:
    argv = [
        sys.executable, "-m", "bisect_tool", "--repo", str(repo.path),
        "--good", repo.good, "--bad", repo.bad,
    ]  # fmt: skip
    if settings.mode == "cmd":
        argv += ["--cmd", settings.command, "--metric", settings.cmd_metric]
    else:
        argv += ["--bench", BENCH]
    argv += ["--json", str(out), "--cache-dir", str(cache), "-q", *settings.extra_args]
    return argv


def load_context(load: str, seed: int, workers: int) -> contextlib.AbstractContextManager[Any]:
    """The competing load for one tool run: started before it, stopped after it (always)."""
    if load == "bursty":
        return BurstyLoad(seed, workers)
    if load == "none":
        return contextlib.nullcontext()
    raise ValueError(f"unknown load {load!r}")


def ensure_asv_machine(python: str = sys.executable) -> None:
    """asv refuses to run without ~/.asv-machine.json knowing this host: create asv's default."""
    path = Path.home() / ".asv-machine.json"
    host = platform.node()
    try:
        known = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        known = {}
    if host not in known:
        # asv 0.6 wants a config even for `asv machine`: any valid one will do
        with tempfile.TemporaryDirectory(prefix="bisect-accuracy-machine-") as tmp:
            conf = Path(tmp) / "asv.conf.json"
            conf.write_text(json.dumps(asv_conf()))
            subprocess.run(
                [python, "-m", "asv", "machine", "--yes", "--machine", host, "--config", str(conf)],
                check=True,
                capture_output=True,
                cwd=tmp,
            )


def _run(argv: Sequence[str], cwd: Path, timeout: float) -> tuple[int, str, str]:
    """Run a tool in its own process group, so that on a timeout or Ctrl-C its whole tree is
    stopped (`subprocess.run` kills only the direct child)."""
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err
    except subprocess.TimeoutExpired:
        stop_group(proc, grace=10.0)  # smbisect removes its worktree on SIGINT
        out, err = proc.communicate()
        return -1, out, f"{err}\ntimed out after {timeout:g} s"
    except BaseException:
        stop_group(proc, grace=10.0)  # smbisect removes its worktree on SIGINT
        raise


def run_smbisect(
    repo: GeneratedRepo,
    work: Path,
    timeout: float,
    settings: SmbisectSettings | None = None,
) -> ToolResult:
    settings = settings or SmbisectSettings()
    out = work / "smbisect.json"
    argv = smbisect_argv(repo, out, work / "smbisect-cache", settings)
    start = time.perf_counter()
    code, _, stderr = _run(argv, repo.path, timeout)
    wall = time.perf_counter() - start
    (work / "smbisect.stderr").write_text(stderr)
    try:
        data = json.loads(out.read_text()) if out.is_file() else None
    except ValueError:
        data = None
    result = score_smbisect(data, code, repo.culprit, wall, settings.bench_name)
    if code not in EXPECTED_EXITS:
        result.error = (stderr.strip().splitlines() or [f"exit {code}"])[-1][:300]
    return result


def asv_find_config(repo: GeneratedRepo, work: Path, env_dir: Path) -> Path:
    conf = dict(json.loads((repo.path / "asv.conf.json").read_text()))
    conf.update(
        repo=str(repo.path),
        benchmark_dir=str(repo.path / "benchmarks"),
        results_dir=str(work / "asv-results"),
        html_dir=str(work / "asv-html"),
        env_dir=str(env_dir),
    )
    path = work / "asv.conf.json"
    path.write_text(json.dumps(conf, indent=2))
    return path


def asv_setup(conf: Path, cwd: Path) -> float:
    """Create the virtualenv once per invocation (not charged to any case); returns seconds."""
    start = time.perf_counter()
    # `asv setup` exits 1 even on success (it returns its list of environments to sys.exit),
    # so its exit code says nothing; a failed setup shows up in the first asv find instead.
    subprocess.run(
        [sys.executable, "-m", "asv", "setup", "--config", str(conf)],
        cwd=cwd,
        capture_output=True,
        check=False,
    )
    return time.perf_counter() - start


def run_asv_find(repo: GeneratedRepo, work: Path, env_dir: Path, timeout: float) -> ToolResult:
    conf = asv_find_config(repo, work, env_dir)
    argv = [
        sys.executable, "-m", "asv", "find", f"{repo.good}..{repo.bad}", BENCH,
        "--config", str(conf), "--machine", platform.node(),
    ]  # fmt: skip
    start = time.perf_counter()
    code, out, err = _run(argv, repo.path, timeout)
    wall = time.perf_counter() - start
    output = out + err
    (work / "asv-find.log").write_text(output)
    return score_asv_find(output, code, repo.culprit, repo.first_parent_culprit, wall)
