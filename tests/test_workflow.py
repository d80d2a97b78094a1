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


def _steps(job: str) -> dict[str, dict[str, object]]:
    data = yaml.safe_load(WORKFLOW.read_text())
    return {s.get("id") or s.get("name") or s.get("uses"): s for s in data["jobs"][job]["steps"]}


def test_pull_requests_can_be_judged_by_instruction_counts_and_time_stays_the_default() -> None:
    """The repository variable SMBISECT_METRIC switches pull requests from asv continuous (wall
    time) to smbisect --metric instructions under valgrind; unset, nothing changes."""
    data = yaml.safe_load(WORKFLOW.read_text())
    assert data["env"]["METRIC"] == "${{ vars.SMBISECT_METRIC || 'time' }}"
    steps = _steps("pull-request")
    assert steps["continuous"]["if"] == "env.METRIC == 'time'"
    counted = steps["counted"]
    assert counted["if"] == "env.METRIC != 'time'" and counted["continue-on-error"] is True
    script = str(counted["run"])
    assert '--metric "$METRIC"' in script and '--threshold "$COUNT_FACTOR"' in script
    assert '[ "$code" -eq 3 ]' in script  # only "no regression" passes the check
    install = steps["Install valgrind (instruction counts)"]
    assert install["if"] == "env.METRIC != 'time'" and "valgrind" in str(install["run"])
    names = list(steps)
    assert names.index("Install valgrind (instruction counts)") < names.index("counted")
    # the time path's bisect runs only after asv continuous; reports and the verdict follow both
    assert steps["Bisect the regression with smbisect"]["if"] == (
        "steps.continuous.outcome == 'failure'"
    )
    for name in (
        "Attach the bisect report",
        "Attach the site",
        "Fail the check when asv continuous or the counts found a regression",
    ):
        assert "steps.counted.outcome == 'failure'" in str(steps[name]["if"])
        assert "steps.continuous.outcome == 'failure'" in str(steps[name]["if"])
