"""asv benchmark suite for smallmind (see docs/asv.md).

BLAS is pinned to one thread before numpy is imported by any benchmark module.  The suite
runs on small shared machines, where a multi-threaded OpenBLAS that has to compete with
another process for the cores slows down by 5-100x and makes the timings useless for
bisection.  Single-threaded timings are slower but stable.  To override, set
``SMALLMIND_BENCH_THREADS`` (or the BLAS variables themselves) before running asv.
"""

import os

_threads = os.environ.get("SMALLMIND_BENCH_THREADS", "1")
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, _threads)
