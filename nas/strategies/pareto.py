"""Pareto dominance over objective vectors with mixed directions. Pure Python, no numpy.

O(n²·m): fronts here have hundreds of points at most, and the store recomputes the front only
when a trial completes.
"""

from __future__ import annotations

from collections.abc import Sequence

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
