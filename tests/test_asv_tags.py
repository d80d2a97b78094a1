"""`smbisect asv-tags RESULT.json`: a bisect's confirmed culprits as git tags, which `asv publish`
draws on every graph. The plan on fixed data; the tags on a real git repository through the
command line (the real asv site is checked in test_compare_culprits.py, after a real bisect)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bisect_tool import asv_tags
from bisect_tool.compare_culprits import CulpritRef, Culprits


def ref(bench: str, sha: str | None, confirmed: bool = True, share: float = 0.5) -> CulpritRef:
    return CulpritRef(bench, sha, "regression", 2.0, share, confirmed, "", None)


def test_one_tag_per_confirmed_commit_listing_every_benchmark() -> None:
    a, b, c = "a" * 40, "b" * 40, "c" * 40
    refs = (ref("m.time_64", a, share=0.9), ref("m.time_512", a, share=0.7), ref("m.time_x", b),
            ref("m.time_y", c, confirmed=False), ref("m.time_z", None))  # fmt: skip
    tags = asv_tags.plan(Culprits("r.json", "1" * 40, "2" * 40, refs))
    assert [(t.name, t.sha) for t in tags] == [(f"smbisect/{a[:10]}", a), (f"smbisect/{b[:10]}", b)]
    assert "m.time_64: regression 2x, +90% of its change" in tags[0].message
    assert "m.time_512: regression 2x, +70% of its change" in tags[0].message
    assert tags[0].message.startswith("smbisect culprit between 1111111111 and 2222222222")
    assert asv_tags.plan(Culprits("r.json", None, None, ())) == []


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()


def smbisect(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bisect_tool", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_tags_on_a_real_repository_and_errors(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "T")
    git(repo, "config", "user.email", "t@example.invalid")
    shas = []
    for i in range(3):
        (repo / "f.txt").write_text(f"{i}\n")
        git(repo, "add", "f.txt")
        git(repo, "commit", "-q", "-m", f"c{i}")
        shas.append(git(repo, "rev-parse", "HEAD"))
    result = tmp_path / "result.json"
    result.write_text(json.dumps({"good": shas[0], "bad": shas[2], "culprits": [
        {"benchmark": "b.time_a", "sha": shas[1], "ratio": 3.0, "share": 1.0, "confirmed": True,
         "kind": "regression"}]}))  # fmt: skip
    head = git(repo, "rev-parse", "HEAD")
    res = smbisect("asv-tags", str(result), cwd=repo)
    assert res.returncode == 0, res.stderr
    name = f"smbisect/{shas[1][:10]}"
    assert res.stdout.strip() == f"tagged {name}"
    assert git(repo, "rev-list", "-n", "1", name) == shas[1]
    assert "b.time_a: regression 3x, +100% of its change" in git(
        repo, "tag", "-l", "--format=%(contents)", name
    )
    assert git(repo, "rev-parse", "HEAD") == head and git(repo, "status", "--porcelain") == ""
    again = smbisect("asv-tags", str(result), cwd=repo)  # refreshing is not an error
    assert again.returncode == 0 and git(repo, "tag", "-l") == name
    gone = smbisect("asv-tags", str(result), "--delete", cwd=repo)
    assert gone.returncode == 0 and gone.stdout.strip() == f"deleted {name}"
    assert git(repo, "tag", "-l") == ""
    # a commit this repository does not have, and a file that is not a result: one line, exit 2
    result.write_text(json.dumps({"culprits": [
        {"benchmark": "b", "sha": "f" * 40, "confirmed": True}]}))  # fmt: skip
    bad = smbisect("asv-tags", str(result), cwd=repo)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "Traceback" not in bad.stderr and git(repo, "tag", "-l") == ""
    result.write_text("[]")
    bad = smbisect("asv-tags", str(result), cwd=repo)
    assert bad.returncode == 2
    assert (
        bad.stderr.strip() == f"smbisect: error: {result}: not a bisect result (no `culprits` list)"
    )
