"""One simulated bisect of tools/simulate_policy.py's grid, run by run: to read why it ended
as it did (a wrong culprit, an exit 4, many runs).

Give the grid's seed, the scenario and the trial (simulate_policy.py derives each bisect's seed
from the three, so this replays exactly that bisect). It prints the outcome, then every run in
order (commit index, its value, the simulated clock at its end, the load factor of a burst, 1.0
when calm) with the session's events between them (steps, confirmations, drift checks, the
careful pass).

    python tools/trace_simulated.py --seed 141 --n 32 --shape linear --changes 3 \\
        --noise 'bursts 5% (10% of time)' --trial 1
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulate_policy import NOISES, Scenario, one_bisect  # noqa: E402

from bisect_tool.policy import Policy  # noqa: E402
from bisect_tool.session import Event  # noqa: E402


def index(sha: str | None) -> int | None:
    """The simulator's commit index of one of its shas (sha_of(i) is i + 1 in hex)."""
    return None if sha is None else int(sha, 16) - 1


def trace(sc: Scenario, seed: int, trial: int) -> list[str]:
    lines: list[tuple[int, str]] = []  # (runs before it, line)
    runs: list[tuple[int, float, float, float]] = []

    def on_event(e: Event) -> None:
        message = e.message
        if e.kind == "step":  # a step's event carries data, not a sentence
            rec, verdict = e.data["record"], e.data["verdict"]
            sha = rec.info.sha  # type: ignore[attr-defined]
            message = f"commit {index(sha)}: {verdict.value}"  # type: ignore[attr-defined]
            reason = rec.reasons.get(e.data["benchmark"])  # type: ignore[attr-defined]
            message += f" ({reason})" if reason else ""
        lines.append((len(runs), f"    [{e.kind}] {message}"))

    s, h, out, result = one_bisect(sc, seed, trial, Policy(), trace=runs, on_event=on_event)
    planted = {c: f for c, f in h.culprits.items() if f != 1.0}
    head = [
        f"{sc.label}, trial {trial} (seed {s}): planted {planted}; named {index(out.named)}, "
        f"exit {out.exit_code}, confirmed {out.confirmed}, right {out.right}, "
        f"wrong and confirmed {out.wrong_confirmed}, {out.runs} runs",
    ]
    for o in result.bisected:
        head += [f"  note: {n}" for n in o.notes]
    body: list[str] = []
    events = iter(lines)
    pending = next(events, None)
    for k, (commit, value, now, load) in enumerate(runs):
        while pending is not None and pending[0] <= k:
            body.append(pending[1])
            pending = next(events, None)
        burst = f"  burst {load:.2f}x" if load != 1.0 else ""
        body.append(f"{k:5d}  commit {commit:5d}  {value:9.4f}  t={now:8.1f} s{burst}")
    while pending is not None:
        body.append(pending[1])
        pending = next(events, None)
    return head + body


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--seed",
        type=int,
        required=True,
        help="The grid's base seed (--seed of simulate_policy.py).",
    )
    p.add_argument("--n", type=int, required=True, help="Commits in the history (32, 256, 1024).")
    p.add_argument("--shape", choices=("linear", "merges"), required=True)
    p.add_argument(
        "--changes", required=True, help="The planted factors, comma-separated: 3 or 1.5,2."
    )
    p.add_argument("--noise", choices=sorted(NOISES), required=True, help="A noise of the grid.")
    p.add_argument("--broken", type=float, default=0.0, help="Fraction of broken commits (0.05).")
    p.add_argument("--trial", type=int, required=True, help="The trial, from 0.")
    a = p.parse_args(argv)
    try:
        factors = tuple(float(x) for x in a.changes.split(","))
    except ValueError:
        p.error(f"--changes: expected numbers separated by commas, got {a.changes!r}")
    sc = Scenario(a.n, a.shape, factors, a.noise, a.broken)
    print("\n".join(trace(sc, a.seed, a.trial)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
