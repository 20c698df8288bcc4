"""Rank agreement between a proxy's scores and the target's: Spearman's ρ and Kendall's τ-b.

Pure Python (n is the number of trials, hundreds at most). Both handle ties (average ranks for
ρ, the τ-b correction for τ) and return NaN where they are undefined (n < 2, or one side
constant).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def average_ranks(values: Sequence[float]) -> list[float]:
    """Ranks 1..n, tied values sharing the mean of the ranks they span."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation of the average ranks of x and y."""
    if len(x) != len(y):
        raise ValueError("x and y need the same length")
    if len(x) < 2:
        return math.nan
    rx, ry = average_ranks(x), average_ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    return cov / math.sqrt(vx * vy) if vx and vy else math.nan


def kendall(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's τ-b: (concordant − discordant) / sqrt((n0 − ties_x)(n0 − ties_y))."""
    if len(x) != len(y):
        raise ValueError("x and y need the same length")
    concordant = discordant = ties_x = ties_y = 0
    n = len(x)
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                ties_x += 1
                ties_y += 1
            elif dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    pairs = n * (n - 1) // 2
    denominator = math.sqrt((pairs - ties_x) * (pairs - ties_y))
    return (concordant - discordant) / denominator if denominator else math.nan


def proxy_names(trials) -> list[str]:
    """The proxy tasks the trials were scored on (their metrics f"{name}_accuracy")."""
    return sorted({key.removesuffix("_accuracy") for t in trials for key in (t.metrics or {})
                   if key.endswith("_accuracy") and key != "accuracy"})


def describe_agreement(row: dict) -> str:
    """One line, e.g. "proxy small: Spearman 0.83, Kendall 0.67 over 12 trials"."""
    if row["n"] < 3:
        return f"proxy {row['proxy']}: too few trials scored on both ({row['n']}) to rank"
    return (f"proxy {row['proxy']}: rank agreement with the target — Spearman "
            f"{row['spearman']:.2f}, Kendall {row['kendall']:.2f} over {row['n']} trials")


def proxy_agreement(trials, proxies: Sequence[str], target: str = "accuracy") -> list[dict]:
    """For each proxy name, over the trials that measured both `target` and the proxy's
    accuracy: {proxy, n, spearman, kendall}. `trials` are records with a `metrics` dict."""
    rows = []
    for name in proxies:
        pairs = [(t.metrics[target], t.metrics[f"{name}_accuracy"]) for t in trials
                 if t.metrics and target in t.metrics and f"{name}_accuracy" in t.metrics]
        xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
        rows.append({"proxy": name, "n": len(pairs), "spearman": spearman(xs, ys),
                     "kendall": kendall(xs, ys)})
    return rows
