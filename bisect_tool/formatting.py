"""Formatting shared by every output: values in their unit. The bottom of the presentation
layer: it imports nothing of the others."""

from __future__ import annotations

import math

__all__ = ["fmt_value"]


def fmt_value(value: float, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if unit == "seconds":
        for scale, suffix in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns")):
            if abs(value) >= scale or scale == 1e-9:
                return f"{value / scale:.3g} {suffix}"
    if unit == "bytes":
        for scale, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"), (1, "B")):
            if abs(value) >= scale or scale == 1:
                return f"{value / scale:.3g} {suffix}"
    if unit in ("", "value", "unit"):
        return f"{value:.4g}"
    return f"{value:.4g} {unit}"
