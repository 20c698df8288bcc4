"""The benchmarks' one timing rule: warm up, then the median of `repeats` timed calls."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def sample_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of each of `repeats` calls of fn() (perf_counter), after `warmup`
    untimed calls (which also absorb one-off costs such as torch.compile's compilation)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """The median of `sample_seconds(fn, repeats, warmup)`."""
    return statistics.median(sample_seconds(fn, repeats, warmup))
