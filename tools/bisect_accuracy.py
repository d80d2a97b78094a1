"""Accuracy and cost of smbisect against `asv find`, on generated histories with a planted slowdown.

Every case is a fresh git repository holding a tiny pip-installable package `acc` whose `work()`
is CPU-bound (a pure-Python loop, or numpy matmuls with --workload numpy), an asv suite
(`benchmarks/bench_acc.py::time_work`), an asv.conf.json and `bench.py` (one timed call, for
smbisect's command mode). Exactly one commit, the culprit, multiplies the workload constant by
the slowdown factor; every other commit changes an unrelated file (or is a --no-ff merge).
Optional noise multiplies the workload of every call by a random factor with the given relative
spread, inside the measured code; --load adds a bursty competing CPU load during each tool run.
Both tools are run on the same repository and scored. The code is in tools/accuracy/.

    python tools/bisect_accuracy.py --quick
    python tools/bisect_accuracy.py --lengths 32,256,1024 --shapes linear,merges \\
        --slowdowns 1.3,3 --noise 0.05,0.15 --trials 3 --markdown docs/accuracy.md
    python tools/bisect_accuracy.py --quick --tools smbisect --load --cmd-mode --workload numpy
"""

from __future__ import annotations

import sys
from pathlib import Path

_TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(_TOOLS))
sys.path.insert(1, str(_TOOLS.parent))  # bisect_tool, when smbisect is not installed

from accuracy.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
