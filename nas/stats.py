"""Small statistics nas reports with its numbers: Student-t intervals of a mean.

Pure Python (no scipy, which is no dependency), light enough for the store, the strategies and
the CLI to import.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

# Two-sided 95 % quantiles of Student's t, t_{0.975}(df), df = 1..30 (scipy is no dependency).
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
         2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
         2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def quantile(values: Sequence[float], q: float) -> float:
    """The `q`-quantile of `values`, interpolating linearly between order statistics."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def t_quantile(df: int) -> float:
    """t_{0.975}(df): the table up to 30, then the Cornish-Fisher expansion around the normal
    quantile (within 1e-3 of the exact value from df 30 on)."""
    if df < 1:
        raise ValueError(f"t_quantile: df must be >= 1, got {df}")
    if df <= len(T_975):
        return T_975[df - 1]
    z = statistics.NormalDist().inv_cdf(0.975)
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def mean_interval(values: Sequence[float]) -> tuple[float, float, float, float]:
    """(mean, sample std, ci_low, ci_high) of `values`: the 95 % Student-t interval of the
    mean (one value: a zero-width interval at it)."""
    if not values:
        raise ValueError("mean_interval: no values")
    mean = statistics.fmean(values)
    if len(values) == 1:
        return mean, 0.0, mean, mean
    std = statistics.stdev(values)
    half = t_quantile(len(values) - 1) * std / math.sqrt(len(values))
    return mean, std, mean - half, mean + half
