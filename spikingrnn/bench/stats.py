"""Robust summaries of repeated timings: median and interquartile range."""
from __future__ import annotations

import math
from typing import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between order statistics (numpy's default)."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize_ms(seconds: Sequence[float]) -> dict:
    """Timings in seconds -> ``{"median", "q1", "q3", "iqr", "min", "n", "samples"}`` in milliseconds."""
    ms = [s * 1e3 for s in seconds]
    q1, q3 = percentile(ms, 25), percentile(ms, 75)
    return {"median": percentile(ms, 50), "q1": q1, "q3": q3, "iqr": q3 - q1, "min": min(ms), "n": len(ms),
            "samples": ms}


def ratio(value: float | None, reference: float | None) -> float | None:
    """``value / reference``, or ``None`` when either is missing or the reference is not positive."""
    if value is None or reference is None or reference <= 0:
        return None
    return value / reference
