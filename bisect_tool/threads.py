"""One thread per numerical library in the benchmark processes (--threads).

A BLAS or OpenMP call that splits its work over threads waits for the slowest of them. On a
busy machine one of those threads loses its core, and the call waits for the scheduler: on the
project's 2-core VM a 3 ms numpy benchmark's runs spanned 2 ms to 0.9 s under the accuracy
tool's bursty load with OpenBLAS's default threads, and varied by about 20% per run with one
thread (docs/accuracy.md, "numpy/BLAS workload"). asv's own tuning guide recommends the same
variables for benchmarking ("Library settings").

Pure: what to set and what to say; the runners apply it (runners.py, asv_measure.py) and the
session decides when (session.py: `auto` switches once the endpoints vary by more than
judge.HIGH_NOISE per run, and measures them again from the start).
"""

from __future__ import annotations

from collections.abc import Mapping

# the libraries' own variables; a process started with them runs each library on one thread
THREAD_VARS = (
    "OPENBLAS_NUM_THREADS",
    "GOTO_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "RAYON_NUM_THREADS",
)
SHOWN = "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1"  # the ones users know

AUTO, KEEP, ONE = "auto", "keep", "one"
MODES = (AUTO, KEEP, ONE)


def one_thread() -> dict[str, str]:
    return {name: "1" for name in THREAD_VARS}


def set_by_user(environ: Mapping[str, str]) -> list[str]:
    """The thread variables the environment already sets: the user's choice, left alone."""
    return [name for name in THREAD_VARS if name in environ]


def switched_note(name: str, sigma: float, now: bool = False) -> str:
    """What `auto` says when it switches to one thread per library: `now` while measuring,
    otherwise for the report, after the fact."""
    then = (
        "from now on every benchmark process runs with {} (and the other libraries' thread "
        "variables) and the endpoints are measured again from the start; the runs before are "
        "not used"
        if now
        else "so from then on every benchmark process ran with {} (and the other libraries' "
        "thread variables) and the endpoints were measured again from the start; the runs "
        "before are not used"
    )
    return (
        f"{name}: runs varied by about {sigma:.0%} per run at the endpoints with the libraries' "
        f"default threads{':' if now else ','} {then.format(SHOWN)}. A threaded BLAS or OpenMP "
        "call on a busy machine waits for its slowest thread. --threads keep measures with the "
        "defaults (for a regression in how the code uses threads), --threads one from the "
        "first run"
    )


def one_note() -> str:
    return (
        f"every benchmark process ran with {SHOWN} (and the other libraries' thread "
        "variables): --threads one"
    )
