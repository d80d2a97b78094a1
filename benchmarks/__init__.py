"""asv benchmark suite for smallmind (see docs/asv.md).

BLAS is pinned to one thread for every benchmark.  The suite
runs on small shared machines, where a multi-threaded OpenBLAS that has to compete with
another process for the cores slows down by 5-100x and makes the timings useless for
bisection.  Single-threaded timings are slower but stable.  To override, set
``SMALLMIND_BENCH_THREADS`` (or the BLAS variables themselves) before running asv.
"""

import os

_threads = os.environ.get("SMALLMIND_BENCH_THREADS", "1")
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, _threads)

# asv's runner has usually imported numpy (and so loaded OpenBLAS with its default thread
# count) before this package runs, so the variables above come too late for this process:
# threadpoolctl changes the live BLAS thread pool instead.
try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - the variables still help child processes
    pass
else:
    threadpool_limits(limits=int(_threads))
