#!/usr/bin/env python3
# ruff: noqa: UP031, E501  (a replay script kept as it was run for docs/real-projects.md)
"""Replay a real performance regression with smbisect and with a plain `git bisect run`.

    python tools/replay_real.py --repo /tmp/real/pygments --good c11709cff --bad 57dc606c3 \
        --cmd "/root/.pyenv/versions/2.7.18/bin/python /tmp/real/pygments-bench.py" \
        --expected 70545de94 --smbisect-runs 2 --name pygments

The bench command must print the elapsed seconds as its last number (it is measured with
`--metric stdout`) and exit 125 when the commit cannot be imported.

smbisect is run --smbisect-runs times, each with a fresh --cache-dir, on --repo (which it
never modifies). The plain `git bisect run` works in a throw-away clone of --repo: it measures
good and bad once each (2 runs), takes --threshold seconds or, without it, the log-midpoint
sqrt(good * bad) of those two runs, and lets `git bisect run` call a wrapper that runs the
bench once and exits 1 above the threshold, 0 below it, 125 when the bench could not run.

It prints one Markdown table row per run and the wall-time ratio smbisect / git bisect run.
Everything runs one after the other, never in parallel, so the tools do not load each other.
"""

import argparse
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

WRAPPER = r"""#!/usr/bin/env python3
import re, subprocess, sys
CMD = %(cmd)r
THRESHOLD = %(threshold)r
LOG = %(log)r
TIMEOUT = %(timeout)r
head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
try:
    p = subprocess.run(CMD, capture_output=True, text=True, timeout=TIMEOUT)
except subprocess.TimeoutExpired:
    p = None
nums = re.findall(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", p.stdout) if p else []
if p is None or p.returncode != 0 or not nums:
    code, value = 125, None
else:
    value = float(nums[-1])
    code = 1 if value > THRESHOLD else 0
with open(LOG, "a") as f:
    f.write("%%s %%s %%d\n" %% (head, value, code))
sys.exit(code)
"""


def sh(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, **kw)


def rev(repo, name):
    p = sh(["git", "-C", repo, "rev-parse", "--verify", name + "^{commit}"])
    if p.returncode != 0:
        sys.exit(f"unknown revision {name} in {repo}")
    return p.stdout.strip()


def loadavg():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def last_number(text):
    nums = re.findall(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", text)
    return float(nums[-1]) if nums else None


def run_smbisect(args, good, bad, i, workdir):
    cache = tempfile.mkdtemp(prefix="cache-%s-%d-" % (args.name, i), dir=workdir)
    js = os.path.join(workdir, "%s-sm%d.json" % (args.name, i))
    out = os.path.join(workdir, "%s-sm%d.out" % (args.name, i))
    cmd = [
        args.smbisect,
        "--repo",
        args.repo,
        "--good",
        good,
        "--bad",
        bad,
        "--cmd",
        args.cmd,
        "--metric",
        "stdout",
        "--json",
        js,
        "--cache-dir",
        cache,
    ]
    cmd += shlex.split(args.smbisect_args)
    la0 = loadavg()
    t0 = time.monotonic()
    with open(out, "w") as f:
        p = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    wall = time.monotonic() - t0
    res = {
        "tool": "smbisect #%d" % i,
        "exit": p.returncode,
        "wall": wall,
        "load": (la0, loadavg()),
        "culprit": None,
        "confirmed": None,
        "runs": None,
        "log": out,
        "json": js,
        "command": " ".join(shlex.quote(c) for c in cmd),
    }
    try:
        with open(js) as f:
            d = json.load(f)
        res["runs"] = d["runs"]["total"]
        res["n"] = d.get("commits_in_range")
        if d.get("culprits"):
            c = d["culprits"][0]
            res["culprit"] = c.get("sha")
            res["confirmed"] = c.get("confirmed")
    except (OSError, ValueError, KeyError):
        pass
    return res


def run_git_bisect(args, good, bad, workdir):
    clone = tempfile.mkdtemp(prefix=f"{args.name}-gitbisect-", dir=workdir)
    shutil.rmtree(clone)
    la0 = loadavg()
    t0 = time.monotonic()
    p = sh(["git", "clone", "-q", "--no-checkout", args.repo, clone])
    if p.returncode != 0:
        sys.exit("clone failed: " + p.stderr)
    argv = shlex.split(args.cmd)
    ends = {}
    for name, sha in (("good", good), ("bad", bad)):
        sh(["git", "-C", clone, "checkout", "-q", "--detach", sha], check=True)
        q = subprocess.run(argv, cwd=clone, capture_output=True, text=True, timeout=args.timeout)
        ends[name] = last_number(q.stdout) if q.returncode == 0 else None
        if ends[name] is None:
            sys.exit(f"the bench did not run at {name} ({sha}): {q.stderr[-500:]}")
    threshold = args.threshold
    if threshold is None:
        threshold = math.sqrt(max(ends["good"], 1e-12) * max(ends["bad"], 1e-12))
    log = os.path.join(workdir, f"{args.name}-gitbisect.steps")
    open(log, "w").close()
    wrapper = os.path.join(workdir, f"{args.name}-gitbisect-wrapper.py")
    with open(wrapper, "w") as f:
        f.write(
            WRAPPER % {"cmd": argv, "threshold": threshold, "log": log, "timeout": args.timeout}
        )
    os.chmod(wrapper, 0o755)
    sh(["git", "-C", clone, "bisect", "start", bad, good], check=True)
    p = sh(["git", "-C", clone, "bisect", "run", sys.executable, wrapper])
    wall = time.monotonic() - t0
    out = os.path.join(workdir, f"{args.name}-gitbisect.out")
    with open(out, "w") as f:
        f.write(p.stdout + p.stderr)
    m = re.search(r"([0-9a-f]{40}) is the first bad commit", p.stdout)
    with open(log) as f:
        steps = [line.split() for line in f if line.strip()]
    sh(["git", "-C", clone, "bisect", "reset"])
    if not args.keep:
        shutil.rmtree(clone, ignore_errors=True)
    return {
        "tool": "git bisect run",
        "exit": p.returncode,
        "wall": wall,
        "load": (la0, loadavg()),
        "culprit": m.group(1) if m else None,
        "confirmed": None,
        "runs": len(steps) + 2,
        "steps": len(steps),
        "skips": sum(1 for s in steps if s[2] == "125"),
        "threshold": threshold,
        "ends": ends,
        "log": out,
    }


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repo", required=True)
    ap.add_argument("--good", required=True)
    ap.add_argument("--bad", required=True)
    ap.add_argument("--cmd", help="bench command (run in the checkout); default: python BENCH")
    ap.add_argument("--bench", help="bench script, run as `python BENCH` (or give --cmd)")
    ap.add_argument(
        "--threshold", type=float, help="seconds; default: sqrt(good * bad) of one run each"
    )
    ap.add_argument(
        "--expected",
        default="",
        help="the culprit named in the issue (sha prefix); for a PR of several commits, "
        "a comma-separated list of the commits that count as right (first one shown)",
    )
    ap.add_argument("--name", default="case")
    ap.add_argument("--smbisect-runs", type=int, default=1)
    ap.add_argument("--git-bisect-runs", type=int, default=1)
    ap.add_argument("--smbisect", default=shutil.which("smbisect") or "smbisect")
    ap.add_argument("--smbisect-args", default="", help="extra smbisect options, one string")
    ap.add_argument(
        "--workdir", default=None, help="where logs, JSON and clones go (default: a temp dir)"
    )
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--keep", action="store_true", help="keep the git bisect clone")
    args = ap.parse_args()
    if not args.cmd:
        if not args.bench:
            ap.error("give --cmd or --bench")
        args.cmd = "python " + shlex.quote(os.path.abspath(args.bench))
    args.repo = os.path.abspath(args.repo)
    workdir = args.workdir or tempfile.mkdtemp(prefix=f"replay-{args.name}-")
    os.makedirs(workdir, exist_ok=True)
    good, bad = rev(args.repo, args.good), rev(args.repo, args.bad)
    n = int(sh(["git", "-C", args.repo, "rev-list", "--count", good + ".." + bad]).stdout.strip())
    accepted = []
    for e in args.expected.split(","):
        if e.strip() and rev(args.repo, e.strip()) not in accepted:
            accepted.append(rev(args.repo, e.strip()))
    expected = accepted[0] if accepted else None

    results = []
    for i in range(1, args.smbisect_runs + 1):
        results.append(run_smbisect(args, good, bad, i, workdir))
        print("# " + results[-1]["command"], file=sys.stderr)
    for _ in range(args.git_bisect_runs):
        results.append(run_git_bisect(args, good, bad, workdir))

    def short(s):
        return s[:10] if s else "none"

    print(
        "| project | range | N | culprit per issue | tool | culprit found | right? | confirmed | exit | runs | wall s | load avg |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        right = "-" if not accepted else ("yes" if r["culprit"] in accepted else "NO")
        conf = {True: "yes", False: "no", None: "-"}[r["confirmed"]]
        runs = r["runs"] if r["runs"] is not None else "?"
        if r["tool"] == "git bisect run":
            runs = "%s (%d steps + 2)" % (runs, r["steps"])
            if r["skips"]:
                runs += ", %d skipped" % r["skips"]
        print(
            "| %s | %s..%s | %d | %s | %s | %s | %s | %s | %s | %s | %.1f | %.1f-%.1f |"
            % (
                args.name,
                good[:9],
                bad[:9],
                n,
                short(expected) + (" (+%d)" % (len(accepted) - 1) if len(accepted) > 1 else ""),
                r["tool"],
                short(r["culprit"]),
                right,
                conf,
                r["exit"],
                runs,
                r["wall"],
                r["load"][0],
                r["load"][1],
            )
        )
    gb = [r for r in results if r["tool"] == "git bisect run"]
    sm = [r for r in results if r["tool"] != "git bisect run"]
    if gb:
        g = gb[0]
        print(
            "\ngit bisect run: good {:.4g}, bad {:.4g} (one run each), threshold {:.4g}".format(
                g["ends"]["good"], g["ends"]["bad"], g["threshold"]
            )
        )
    if gb and sm:
        gw = sum(r["wall"] for r in gb) / len(gb)
        ratios = ", ".join("%.2f" % (r["wall"] / gw) for r in sm)
        mean_sm = sum(r["wall"] for r in sm) / len(sm)
        print(f"wall-time ratio smbisect / git bisect run: {ratios} (mean {mean_sm / gw:.2f})")
    print("logs and JSON in " + workdir)


if __name__ == "__main__":
    main()
