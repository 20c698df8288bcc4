"""Small statistics nas reports with its numbers: Student-t intervals of a mean, and a paired
(Wilcoxon signed-rank) test for comparing two things measured on the same seeds.

Pure Python (no scipy, which is no dependency), light enough for the store, the strategies and
the CLI to import.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

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


EXACT_SIGNED_RANK_MAX = 50  # nonzero differences up to which the signed-rank test is exact


@dataclass(frozen=True)
class SignedRankTest:
    """A Wilcoxon signed-rank test: `n` nonzero differences, `statistic` the sum of the ranks
    of the positive ones (W+, midranks for ties), `p_value` two-sided, `method` "exact" or
    "normal"."""

    n: int
    statistic: float
    p_value: float
    method: str


def signed_rank_test(differences: Sequence[float], atol: float = 1e-12,
                     exact_max: int = EXACT_SIGNED_RANK_MAX) -> SignedRankTest:
    """Two-sided Wilcoxon signed-rank test of paired `differences` (H0: symmetric about 0).

    Differences within `atol` of zero are dropped (Wilcoxon's rule); tied magnitudes share
    their mean rank. Up to `exact_max` nonzero differences the p-value is exact: the
    distribution of W+ over the 2^n equally likely sign patterns, given these (mid)ranks — so
    exact with ties too. Beyond, the normal approximation with the tie-corrected variance and
    a continuity correction. No differences left: p = 1."""
    nonzero = [float(d) for d in differences if abs(d) > atol]
    n = len(nonzero)
    if n == 0:
        return SignedRankTest(0, 0.0, 1.0, "exact")
    order = sorted(range(n), key=lambda i: abs(nonzero[i]))
    ranks = [0.0] * n
    ties: list[int] = []  # sizes of the groups of equal magnitudes
    start = 0
    while start < n:
        end = start
        while end + 1 < n and abs(nonzero[order[end + 1]]) == abs(nonzero[order[start]]):
            end += 1
        for k in range(start, end + 1):
            ranks[order[k]] = (start + end) / 2 + 1
        ties.append(end - start + 1)
        start = end + 1
    w_plus = sum(r for r, d in zip(ranks, nonzero, strict=True) if d > 0)
    if n <= exact_max:
        doubled = [round(2 * r) for r in ranks]  # midranks are multiples of 1/2
        counts = [1] + [0] * sum(doubled)  # sign patterns by their doubled W+
        for r in doubled:
            for total in range(len(counts) - 1 - r, -1, -1):
                if counts[total]:
                    counts[total + r] += counts[total]
        observed = round(2 * w_plus)
        below = sum(counts[: observed + 1])
        above = sum(counts[observed:])
        p = min(1.0, 2 * min(below, above) / 2 ** n)
        return SignedRankTest(n, w_plus, p, "exact")
    mean = n * (n + 1) / 4
    variance = n * (n + 1) * (2 * n + 1) / 24 - sum(t ** 3 - t for t in ties) / 48
    if variance <= 0:
        return SignedRankTest(n, w_plus, 1.0, "normal")
    gap = max(0.0, abs(w_plus - mean) - 0.5)
    p = 2 * (1 - statistics.NormalDist().cdf(gap / math.sqrt(variance)))
    return SignedRankTest(n, w_plus, min(1.0, p), "normal")
