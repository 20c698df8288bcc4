"""Hardware objectives of an architecture: what each measured metric means and how it is taken.

A measurement entry (one per measured objective of a space) names a `metric`, a `phase` and a
shape (`batch`, `seq_len`):

| metric        | unit     | goal     | how                                                   |
|---------------|----------|----------|-------------------------------------------------------|
| `latency`     | ms       | minimize | median time of one pass (nas.evaluate.latency)        |
| `throughput`  | tokens/s | maximize | tokens of one pass / that median time                 |
| `peak_memory` | MiB      | minimize | resident + transient bytes of one pass (.memory)      |
| `state_bytes` | bytes    | minimize | decode state (KV cache, recurrent state) of `batch`   |
|               |          |          | sequences at `seq_len`, fp32, analytic (no pass)      |

Latency and throughput are timings, noisy: they share the latency cache (a throughput objective
at a shape the cache holds costs nothing) and are re-measured at the end of a search. The other
two are deterministic: their spread is 0.

Every timing is watched for other work on the machine (nas.evaluate.contention): the machine's
load is probed just before it and read again over the timing itself. A timing during which other
processes needed the cores it uses is taken again, after a short wait, up to `TIMING_ATTEMPTS`
times in all; if every attempt was contended the fastest is kept (contention only slows a pass)
and marked `contended`. A contended timing is stored, but never answers a later trial from the
cache (`cacheable`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nas.evaluate import contention
from nas.evaluate.device import model_device
from nas.evaluate.latency import LatencyResult, measure_latency, tokens_per_pass
from nas.evaluate.memory import MIB, measure_peak_memory

METRICS = {  # metric: (unit, goal)
    "latency": ("ms", "minimize"),
    "throughput": ("tokens/s", "maximize"),
    "peak_memory": ("MiB", "minimize"),
    "state_bytes": ("bytes", "minimize"),
}
TIMED = ("latency", "throughput")  # noisy, cached, re-measured
# A cached timing whose relative IQR is above this is not reused by later trials: it was taken in
# a disturbed moment (a busy machine), and every later trial of the architecture would inherit it.
CACHEABLE_SPREAD = 0.25
TIMING_ATTEMPTS = 3  # a contended timing is taken again until this many attempts are spent
RETRY_WAIT_SECONDS = 0.5  # pause before taking a contended timing again
TIMING_OPTIONS = ("warmup", "warmup_seconds", "min_repeats", "min_seconds", "max_repeats",
                  "max_seconds", "target_rel_spread", "target_median_error")


@dataclass(frozen=True)
class Measurement:
    """An entry's value in its metric's unit and its relative spread; `timing` is the fresh
    latency-cache row (fingerprint_hash, phase, batch, seq_len, median_ms, spread, repeats,
    contended) when the entry was timed just now, None when it came from the cache or was not
    timed. `contended`: whether other work competed with the timing (None: not a timing, or
    not known)."""

    value: float
    spread: float
    timing: dict[str, Any] | None = None
    contended: bool | None = None


def cacheable(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The cached latency rows fit to answer later trials: steady (CACHEABLE_SPREAD) and not
    taken on a contended machine."""
    return [row for row in rows
            if row["spread"] <= CACHEABLE_SPREAD and not row.get("contended")]


Watch = Callable[[Callable[[], LatencyResult]], tuple[LatencyResult, bool | None]]


def watched(measure: Callable[[], LatencyResult], device: torch.device) -> tuple[
        LatencyResult, bool | None]:
    """`measure()` and whether it was contended: other work on the CPUs the timing's threads
    need, in a short probe before it or over the timing itself; on CUDA also another process
    on the device. None where the machine's load cannot be read."""
    threads = 1 if device.type == "cuda" else torch.get_num_threads()
    before = contention.probe(threads)
    start = contention.snapshot()
    result = measure()
    end = contention.snapshot()
    if before is None or start is None or end is None:
        return result, None
    during = contention.load_between(start, end, threads)
    contended = before.contended or during.contended
    if device.type == "cuda":
        contended = contended or bool(contention.gpu_others(device))
    return result, contended


def time_uncontended(measure: Callable[[], LatencyResult], watch: Watch, *,
                     attempts: int = TIMING_ATTEMPTS,
                     wait_seconds: float = RETRY_WAIT_SECONDS) -> tuple[LatencyResult, bool | None]:
    """The first of up to `attempts` timings (`watch(measure)`) that was not contended, with
    its verdict; when all were, the fastest of them, marked contended (True)."""
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    kept = None
    for attempt in range(1, attempts + 1):
        result, contended = watch(measure)
        if not contended:
            return result, contended
        if kept is None or result.median_ms < kept.median_ms:
            kept = result
        if attempt < attempts:
            time.sleep(wait_seconds)
    return kept, True


def metric_of(entry: Mapping[str, Any]) -> str:
    """The entry's metric (default latency)."""
    return entry.get("metric") or "latency"


def take(model: nn.Module, entry: Mapping[str, Any], *, vocab_size: int, seed: int,
         fingerprint_key: str, cache: Mapping[tuple, Mapping[str, Any]]) -> Measurement:
    """Measure one entry on `model` (an untrained copy the caller may spend). `cache` maps
    (fingerprint_hash, phase, batch, seq_len) to latency rows; a timed metric found there is
    not timed again."""
    metric = metric_of(entry)
    phase = entry.get("phase") or "prefill"
    batch, seq_len = int(entry["batch"]), int(entry["seq_len"])
    if metric == "state_bytes":
        return Measurement(float(model.state_bytes(seq_len) * batch), 0.0)
    if metric == "peak_memory":
        peak = measure_peak_memory(model, batch=batch, seq_len=seq_len, vocab_size=vocab_size,
                                   phase=phase, seed=seed)
        return Measurement(peak / MIB, 0.0)
    if metric not in TIMED:
        raise ValueError(f"unknown measured metric {metric!r}; use {', '.join(METRICS)}")
    row, fresh = cache.get((fingerprint_key, phase, batch, seq_len)), None
    if row is None:
        options = {k: entry[k] for k in TIMING_OPTIONS if k in entry}
        device = model_device(model)
        timing, contended = time_uncontended(
            lambda: measure_latency(model, batch=batch, seq_len=seq_len, vocab_size=vocab_size,
                                    phase=phase, seed=seed, **options),
            lambda measure: watched(measure, device))
        row = fresh = {"fingerprint_hash": fingerprint_key, "phase": phase, "batch": batch,
                       "seq_len": seq_len, "median_ms": timing.median_ms,
                       "spread": timing.spread, "repeats": timing.repeats,
                       "contended": contended}
    return Measurement(value_of(metric, row["median_ms"], phase, batch, seq_len),
                       float(row["spread"]), fresh, row.get("contended"))


def value_of(metric: str, median_ms: float, phase: str, batch: int, seq_len: int) -> float:
    """A timed metric's value from the median time of one pass."""
    if metric == "throughput":
        tokens = tokens_per_pass(phase, batch=batch, seq_len=seq_len)
        return tokens / (median_ms / 1e3) if median_ms > 0 else float("inf")
    return float(median_ms)
