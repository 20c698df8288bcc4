"""Inference latency of a model, measured until the estimate is stable.

Prefill = one forward pass over a ``(batch, seq_len)`` batch of random tokens (from
``[1, vocab_size)``, so never all padding), under inference_mode in eval mode. Each repeat gets
a fresh batch, drawn before its timer starts. Warmup passes are not timed. On CPU each pass is
timed with ``time.perf_counter``; on CUDA with a pair of CUDA events after a synchronize.

Repeats continue until `min_repeats` are done and then stop as soon as one of: the relative
spread falls to `target_rel_spread`, `max_seconds` of timed repeats have elapsed, or
`max_repeats` are done. Latency does not depend on the weights, so an untrained model will do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from nas.evaluate.device import model_device, synchronize

SUPPORTED_PHASES = ("prefill",)


@dataclass(frozen=True)
class LatencyResult:
    """Median time of one pass, its relative IQR ``(q75 - q25) / median``, and the sample size."""

    median_ms: float
    spread: float
    repeats: int


def measure_latency(
    model: nn.Module,
    *,
    batch: int,
    seq_len: int,
    vocab_size: int,
    phase: str = "prefill",
    warmup: int = 3,
    min_repeats: int = 5,
    max_repeats: int = 50,
    max_seconds: float = 2.0,
    target_rel_spread: float = 0.05,
    seed: int = 0,
) -> LatencyResult:
    """Time `phase` for `model`; raises ValueError on an unsupported phase or bad bounds."""
    if phase not in SUPPORTED_PHASES:
        raise ValueError(
            f"unsupported latency phase {phase!r}; supported: {', '.join(SUPPORTED_PHASES)}"
        )
    for name, value in {"batch": batch, "seq_len": seq_len, "vocab_size": vocab_size,
                        "min_repeats": min_repeats}.items():
        if value < 1:
            raise ValueError(f"latency: {name} must be >= 1, got {value}")
    if warmup < 0:
        raise ValueError(f"latency: warmup must be >= 0, got {warmup}")
    if max_repeats < min_repeats:
        raise ValueError(f"latency: max_repeats={max_repeats} is below min_repeats={min_repeats}")

    device = model_device(model)
    generator = torch.Generator(device=device).manual_seed(seed)
    low = 1 if vocab_size > 1 else 0  # skip the padding token where there is another

    def fresh_tokens() -> torch.Tensor:
        return torch.randint(
            low, vocab_size, (batch, seq_len), generator=generator, device=device
        )  # (B, T)

    time_pass = _time_cuda if device.type == "cuda" else _time_cpu
    times_ms: list[float] = []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                model(fresh_tokens())
            synchronize(device)
            start = time.perf_counter()
            while len(times_ms) < max_repeats:
                times_ms.append(time_pass(model, fresh_tokens(), device))
                if len(times_ms) >= min_repeats and (
                    relative_spread(times_ms) <= target_rel_spread
                    or time.perf_counter() - start >= max_seconds
                ):
                    break
    finally:
        model.train(was_training)

    return LatencyResult(
        median_ms=quantile(times_ms, 0.5),
        spread=relative_spread(times_ms),
        repeats=len(times_ms),
    )


def quantile(values: list[float], q: float) -> float:
    """The `q`-quantile of `values`, interpolating linearly between order statistics."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def relative_spread(values: list[float]) -> float:
    """Interquartile range over the median; 0 for a single value."""
    median = quantile(values, 0.5)
    iqr = quantile(values, 0.75) - quantile(values, 0.25)
    return iqr / median if median > 0 else 0.0


def _time_cpu(model: nn.Module, tokens: torch.Tensor, device: torch.device) -> float:
    start = time.perf_counter()
    model(tokens)
    return (time.perf_counter() - start) * 1e3


def _time_cuda(model: nn.Module, tokens: torch.Tensor, device: torch.device) -> float:
    synchronize(device)  # the token draw and anything else queued finish untimed
    with torch.cuda.device(device):  # events record on the model's device's current stream
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        model(tokens)
        end.record()
        end.synchronize()
    return start.elapsed_time(end)  # milliseconds
