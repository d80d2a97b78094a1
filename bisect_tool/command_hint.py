"""When the time of a whole command shows no regression, say what was timed.

`--cmd` with `--metric time` or `cputime` times the whole process: interpreter start-up and
imports included. A slowdown in one part of it shows only in proportion to that part: 1.3x in 6
ms of numpy work inside a 100 ms Python process is 1.02x of the process, which is "no
regression" at the 5% threshold, rightly for the process. The user who suspected that part
needs to hear how to time it alone.
"""

from __future__ import annotations

from statistics import median

from .errors import EXIT_INCONCLUSIVE, EXIT_NOT_REPRODUCED
from .formatting import fmt_value
from .session import SessionResult

TIMED = {"time": "wall time", "cputime": "CPU time"}


def whole_command_note(result: SessionResult, metric: str) -> str | None:
    """Advice for a `--cmd` bisect by time that found no regression (exit 3) or could not
    tell (exit 5); None otherwise."""
    if metric not in TIMED or result.exit_code not in (EXIT_NOT_REPRODUCED, EXIT_INCONCLUSIVE):
        return None
    at_good = result.samples.get(result.good, {})
    runs = [v for o in result.outcomes for v in at_good.get(o.spec.name, [])]
    typical = f" ({fmt_value(median(runs), 'seconds')} a run at good)" if runs else ""
    return (
        f"smbisect measured the whole command's {TIMED[metric]}{typical}, interpreter start-up "
        "and imports included: a slowdown in one part of it shows only in proportion to that "
        "part. If the code you suspect takes a small share of the run, have the command print "
        "that part's time and use --metric stdout"
    )
