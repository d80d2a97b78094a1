"""Which benchmarks a run is about, and the bisection bound: small pure helpers."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from .errors import UsageError
from .runners import BenchmarkSpec


def select_benchmarks(
    specs: Sequence[BenchmarkSpec], patterns: Sequence[str]
) -> list[BenchmarkSpec]:
    if not patterns:
        return list(specs)
    compiled = []
    for pat in patterns:
        try:
            compiled.append(re.compile(pat))
        except re.error as exc:
            raise UsageError(f"--bench {pat!r} is not a valid regular expression: {exc}") from None
    chosen = [s for s in specs if any(c.search(s.name) for c in compiled)]
    if not chosen:
        known = ", ".join(s.name for s in specs[:6]) + (", ..." if len(specs) > 6 else "")
        raise UsageError(f"--bench {' '.join(patterns)!r} matches no benchmark (known: {known})")
    return chosen


def log2_bound(n: int) -> int:
    """The fewest bisect steps that can single out one of n commits."""
    return math.ceil(math.log2(n)) if n > 1 else 0
