"""Pareto dominance over objective vectors with mixed directions. Pure Python, no numpy.

O(n²·m): fronts here have hundreds of points at most, and the store recomputes the front only
when a trial completes.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from nas.stats import t_quantile

Directions = Sequence[str]  # "maximize" | "minimize", one per objective


def _as_minimized(point: Sequence[float], directions: Directions) -> tuple[float, ...]:
    return tuple(-v if d == "maximize" else v for v, d in zip(point, directions, strict=True))


def dominates(a: Sequence[float], b: Sequence[float], directions: Directions) -> bool:
    """True when `a` is at least as good as `b` everywhere and strictly better somewhere."""
    a_min, b_min = _as_minimized(a, directions), _as_minimized(b, directions)
    return all(x <= y for x, y in zip(a_min, b_min, strict=True)) and a_min != b_min


def pareto_mask(points: Sequence[Sequence[float]], directions: Directions) -> list[bool]:
    """For each point, whether no other point dominates it (equal points are all kept)."""
    return [
        not any(dominates(other, point, directions) for other in points if other is not point)
        for point in points
    ]


def nondominated_ranks(points: Sequence[Sequence[float]], directions: Directions) -> list[int]:
    """Each point's front index: 0 for the Pareto front, 1 for the front once 0 is removed, …"""
    ranks = [-1] * len(points)
    remaining = list(range(len(points)))
    rank = 0
    while remaining:
        front = [
            i for i in remaining
            if not any(dominates(points[j], points[i], directions) for j in remaining if j != i)
        ]
        for i in front:
            ranks[i] = rank
        remaining = [i for i in remaining if ranks[i] < 0]
        rank += 1
    return ranks


def crowding_distances(points: Sequence[Sequence[float]]) -> list[float]:
    """NSGA-II crowding distance of each point within its set: per objective, the normalised gap
    between its two neighbours, summed; the extremes of any objective get infinity."""
    n = len(points)
    distance = [0.0] * n
    if n <= 2:
        return [math.inf] * n
    for m in range(len(points[0])):
        order = sorted(range(n), key=lambda i: points[i][m])
        low, high = points[order[0]][m], points[order[-1]][m]
        distance[order[0]] = distance[order[-1]] = math.inf
        if high == low:
            continue
        for left, mid, right in zip(order, order[1:], order[2:], strict=False):
            distance[mid] += (points[right][m] - points[left][m]) / (high - low)
    return distance


def preference_order(points: Sequence[Sequence[float]], directions: Directions) -> list[int]:
    """Indices of `points` best first: by non-dominated rank, then by crowding distance within
    the rank (more isolated first, as NSGA-II selects), then by index (earlier first)."""
    ranks = nondominated_ranks(points, directions)
    crowding = [0.0] * len(points)
    for rank in set(ranks):
        members = [i for i, r in enumerate(ranks) if r == rank]
        for i, d in zip(members, crowding_distances([points[i] for i in members]), strict=True):
            crowding[i] = d
    return sorted(range(len(points)), key=lambda i: (ranks[i], -crowding[i], i))


def rung_order(points: Sequence[Sequence[float]], directions: Directions,
               trained: Sequence[bool]) -> list[int]:
    """Indices of `points` best first for a multi-fidelity rung: by `preference_order` over
    the objectives training changes (`trained[i]`; accuracy, loss), the objectives known
    before training (params, latency) only breaking ties there. Ranking all objectives alike
    would put the smallest models on every rung's front whatever they learned, so models at
    chance accuracy would be promoted; with no trained objective it is `preference_order`."""
    learned = [i for i, t in enumerate(trained) if t]
    overall = preference_order(points, directions)
    if not learned or len(learned) == len(directions):
        return overall
    place = {index: position for position, index in enumerate(overall)}
    vectors = [tuple(p[i] for i in learned) for p in points]
    unique = list(dict.fromkeys(vectors))  # equal trained values form one group
    groups = preference_order([list(v) for v in unique], [directions[i] for i in learned])
    group_place = {unique[g]: position for position, g in enumerate(groups)}
    return sorted(range(len(points)), key=lambda i: (group_place[vectors[i]], place[i]))


def robustly_dominates(a: Sequence[float], a_spread: Sequence[float], b: Sequence[float],
                       b_spread: Sequence[float], directions: Directions) -> bool:
    """Whether `a` dominates `b` even at the ends of their measurement intervals: each value v
    with relative spread s stands for [v·(1−s), v·(1+s)], and `a` must win with its worst end
    against `b`'s best end (objectives measured exactly have spread 0)."""
    worst_a, best_b = [], []
    for va, sa, vb, sb, d in zip(a, a_spread, b, b_spread, directions, strict=True):
        lo_a, hi_a = sorted((va * (1 - sa), va * (1 + sa)))
        lo_b, hi_b = sorted((vb * (1 - sb), vb * (1 + sb)))
        worst_a.append(lo_a if d == "maximize" else hi_a)
        best_b.append(hi_b if d == "maximize" else lo_b)
    return dominates(worst_a, best_b, directions)


def within_noise_of_front(points: Sequence[Sequence[float]],
                          spreads: Sequence[Sequence[float]], directions: Directions,
                          groups: Sequence[object] | None = None) -> list[bool]:
    """For each point off the Pareto front, whether no point dominates it robustly (beyond the
    measurement spreads): its place off the front may be noise. False for front points.

    Points of one group (`groups`, e.g. the architecture's hash) have the same true value of
    every measured objective (spread > 0): between them those objectives tie and only the
    exact ones decide, so a trial beaten by another trial of its own architecture on accuracy
    is beaten for certain."""
    intervals = [[_spread_interval(v, s) for v, s in zip(p, sp, strict=True)]
                 for p, sp in zip(points, spreads, strict=True)]
    shared = [[True] * len(p) for p in points]
    return within_intervals_of_front(points, intervals, directions, groups, shared)


def _spread_interval(value: float, spread: float) -> tuple[float, float]:
    low, high = sorted((value * (1 - spread), value * (1 + spread)))
    return low, high


def within_intervals_of_front(points: Sequence[Sequence[float]],
                              intervals: Sequence[Sequence[tuple[float, float]]],
                              directions: Directions, groups: Sequence[object] | None = None,
                              shared: Sequence[Sequence[bool]] | None = None) -> list[bool]:
    """`within_noise_of_front` with explicit intervals: `intervals[i][m]` = (low, high) around
    `points[i][m]`. A point is beaten for certain when another's worst ends dominate its best
    ends. Objective m of two points of one group ties (only the others decide) where it is
    `shared` by both (a measured quantity, which the architecture alone decides) and either
    interval has width; an unshared one (a trained objective with replicate intervals, which
    the recipe changes too) is compared by its intervals even within a group."""
    front = pareto_mask(points, directions)
    groups = groups if groups is not None else list(range(len(points)))
    shared = shared if shared is not None else [[True] * len(p) for p in points]
    flags = []
    for i, (p, gp, on_front) in enumerate(zip(points, groups, front, strict=True)):
        beaten = False
        best_p = [hi if d == "maximize" else lo
                  for (lo, hi), d in zip(intervals[i], directions, strict=True)]
        for j, (q, gq) in enumerate(zip(points, groups, strict=True)):
            if j == i:
                continue
            worst_q, best = [], []
            for m, d in enumerate(directions):
                (lo_q, hi_q), (lo_p, hi_p) = intervals[j][m], intervals[i][m]
                if gq == gp and shared[i][m] and shared[j][m]:
                    # one design: its measured objectives are equal in truth
                    tie = hi_q > lo_q or hi_p > lo_p
                    worst_q.append(p[m] if tie else q[m])
                    best.append(p[m])
                    continue
                worst_q.append(lo_q if d == "maximize" else hi_q)
                best.append(best_p[m])
            beaten = dominates(worst_q, best, directions)
            if beaten:
                break
        flags.append(not on_front and not beaten)
    return flags


# The spread a contended timing counts with at least: other work only slows a pass, so such a
# figure bounds the latency from above and says little about how low it may be.
CONTENDED_SPREAD = 1.0


def front_and_near(trials: Sequence[Any], names: Sequence[str],
                   directions: Directions) -> tuple[list[bool], list[bool]]:
    """For completed trial records (`values`, `metrics` with `{name}_spread` and optionally
    `{name}_contended`, `arch_hash`): which are on the Pareto front over objectives `names`,
    and which are off it only within noise (within_intervals_of_front, grouped by
    architecture; a contended objective's spread counts as at least CONTENDED_SPREAD).

    A trained objective with replicates (`search.replicates`: `{name}_replicates`,
    `{name}_ci_low`, `{name}_ci_high` in the metrics) is compared by its 95 % interval of the
    mean instead of a spread, and not tied within an architecture (the recipe changes it);
    trials never replicated count with `replicate_intervals`' one-seed interval."""
    points = [[float(t.values[n]) for n in names] for t in trials]
    intervals = [[_spread_interval(v, _noise(t.metrics or {}, n)) for v, n in zip(p, names,
                                                                                 strict=True)]
                 for t, p in zip(trials, points, strict=True)]
    shared = [[True] * len(names) for _ in trials]
    for m, name in enumerate(names):
        replicated = replicate_intervals(trials, name)
        if replicated is None:
            continue
        for i, interval in enumerate(replicated):
            intervals[i][m], shared[i][m] = interval, False
    return (pareto_mask(points, directions),
            within_intervals_of_front(points, intervals, directions,
                                      [t.arch_hash for t in trials], shared))


def replicate_intervals(trials: Sequence[Any],
                        name: str) -> list[tuple[float, float]] | None:
    """Objective `name`'s interval per trial where some trial has replicates of it (None when
    none has): a replicated trial's 95 % interval of the mean (`{name}_ci_low`,
    `{name}_ci_high`); any other (one seed, or replicates that all failed) its value ± the
    spread one seed has, t_0.975 · the median standard deviation of the replicated trials (a
    single seed's value is as uncertain as one draw, not as a mean). So a trial just off the
    front whose one seed may have been unlucky is ≈ near it, and a replicated front member
    beats it for certain only beyond that noise."""

    stats = [(t.metrics or {}) for t in trials]
    known = {i for i, m in enumerate(stats) if float(m.get(f"{name}_replicates", 0)) >= 2
             and f"{name}_ci_low" in m and f"{name}_ci_high" in m and f"{name}_std" in m}
    if not known:
        return None
    std = statistics.median(float(stats[i][f"{name}_std"]) for i in known)
    count = statistics.median_low(int(float(stats[i][f"{name}_replicates"])) for i in known)
    one_seed = t_quantile(max(1, count - 1)) * std
    out = []
    for i, (t, m) in enumerate(zip(trials, stats, strict=True)):
        if i in known:
            out.append((float(m[f"{name}_ci_low"]), float(m[f"{name}_ci_high"])))
        else:
            value = float(t.values[name])
            out.append((value - one_seed, value + one_seed))
    return out


def _noise(metrics: dict[str, Any], name: str) -> float:
    spread = float(metrics.get(f"{name}_spread", 0.0))
    return max(spread, CONTENDED_SPREAD) if metrics.get(f"{name}_contended") else spread


def hypervolume(points: Sequence[Sequence[float]], directions: Directions,
                reference: Sequence[float]) -> float:
    """The exact volume dominated by `points` and bounded by `reference`, for any number of
    objectives (one per direction, "minimize" or "maximize"; `reference` in the objectives' own
    units, usually the worst value of each).

    A point that is not strictly better than the reference in every objective adds nothing, and
    neither do dominated or repeated points. Computed by slicing (HSO, While et al. 2006): the
    points, all minimized, are swept along the last objective; each slab between two
    consecutive values adds its thickness times the (d−1)-dimensional hypervolume of the points
    below it, down to an exact sweep in two dimensions. Exponential in the number of objectives
    in the worst case; fronts of a few hundred points in 3–4 objectives take well under a
    second."""
    if len(reference) != len(directions):
        raise ValueError(f"reference has {len(reference)} values for {len(directions)} "
                         "objectives")
    if not directions:
        return 0.0
    ref = _as_minimized(reference, directions)
    inside = {q for q in (_as_minimized(p, directions) for p in points)
              if all(v < r for v, r in zip(q, ref, strict=True))}
    return _hypervolume_min(list(inside), ref)


def hypervolume_2d(points: Sequence[Sequence[float]], directions: Directions,
                   reference: Sequence[float]) -> float:
    """The exact area dominated by `points` and bounded by `reference`, for two objectives
    (`hypervolume`, which takes any number, restricted to two).

    Each direction is "minimize" or "maximize"; `reference` is in the objectives' own units
    (usually the worst value of each). A point that is not strictly better than the reference in
    both objectives adds nothing; dominated and repeated points add nothing either.
    """
    if len(directions) != 2 or len(reference) != 2:
        raise ValueError("hypervolume_2d takes exactly two objectives")
    return hypervolume(points, directions, reference)


def _weakly_dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True))


def _hypervolume_min(points: list[tuple[float, ...]], ref: tuple[float, ...]) -> float:
    """`hypervolume` of minimized points that are all strictly inside `ref`."""
    if not points:
        return 0.0
    if len(ref) == 1:
        return ref[0] - min(p[0] for p in points)
    if len(ref) == 2:
        area, best_y = 0.0, ref[1]
        for x, y in sorted(points):
            if y < best_y:
                area += (ref[0] - x) * (best_y - y)
                best_y = y
        return area
    ordered = sorted(points, key=lambda p: p[-1])
    volume, below, below_volume = 0.0, [], 0.0
    for i, point in enumerate(ordered):
        head = point[:-1]
        if not any(_weakly_dominates(q, head) for q in below):  # the slab's base grows
            below = [q for q in below if not _weakly_dominates(head, q)] + [head]
            below_volume = _hypervolume_min(below, ref[:-1])
        top = ordered[i + 1][-1] if i + 1 < len(ordered) else ref[-1]
        volume += below_volume * (top - point[-1])
    return volume
