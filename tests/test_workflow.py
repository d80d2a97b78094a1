"""The CI workflow file is valid YAML and every asv/smbisect command in it exists as written."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "benchmarks.yml"


def _commands() -> list[list[str]]:
    data = yaml.safe_load(WORKFLOW.read_text())
    found = []
    for job in data["jobs"].values():
        for step in job["steps"]:
            script = step.get("run", "")
            script = script.replace("\\\n", " ")
            for line in script.splitlines():
                line = re.sub(r"\$\([^)]*\)", "X", line)  # command substitutions
                line = line.split("|")[0].split(">>")[0]
                words = shlex.split(line) if line.strip() else []
                if words and words[0] in ("asv", "smbisect"):
                    found.append(words)
    return found


def _help(argv: list[str]) -> str:
    res = subprocess.run(argv + ["--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, (argv, res.stderr)
    return res.stdout


def test_workflow_is_valid_yaml_with_both_jobs() -> None:
    data = yaml.safe_load(WORKFLOW.read_text())
    assert set(data["jobs"]) == {"pull-request", "main"}
    triggers = data[True] if True in data else data["on"]  # YAML 1.1 reads `on` as True
    assert "pull_request" in triggers and "push" in triggers
    for job in data["jobs"].values():
        assert all("run" in s or "uses" in s for s in job["steps"])


def test_every_command_and_option_in_the_workflow_exists() -> None:
    commands = _commands()
    tools = {c[0] for c in commands}
    assert tools == {"asv", "smbisect"}
    for words in commands:
        if words[0] == "asv":
            sub = words[1]
            text = _help([sys.executable, "-m", "asv", sub])
        else:
            sub = words[1] if len(words) > 1 and not words[1].startswith("-") else None
            text = _help([sys.executable, "-m", "bisect_tool", *([sub] if sub else [])])
        for word in words[1:]:
            if word.startswith("--"):
                option = word.split("=", 1)[0]
                assert option in text, f"{option} is not an option of {words[0]} {sub or ''}"
