"""Latency of a model by phase, measured until the estimate is stable.

Phases (inputs are random tokens from ``[1, vocab_size)``, never all padding, fresh for every
repeat and drawn before its timer starts):

- ``prefill``: one forward pass over a ``(batch, seq_len)`` batch, inference_mode, eval mode.
- ``decode``: one token per sequence through the model's recurrent ``step()`` with a context of
  ``seq_len`` tokens already in its caches (KV cache / recurrent state) — the per-token cost of
  generation at that context length. The context is fed once, untimed; each repeat then decodes
  one more token from it (the context grows by one token per repeat, immaterial next to
  ``seq_len``).
- ``train_step``: forward, backward and an AdamW update on a ``(batch, seq_len)`` batch, in
  train mode, on a private copy of the model so the caller's weights are never touched.

Warmup passes are not timed. On CPU each pass is timed with ``time.perf_counter``; on CUDA with
a pair of CUDA events after a synchronize.

Repeats continue until `min_repeats` are done and then stop as soon as one of: the relative
spread falls to `target_rel_spread`, `max_seconds` of timed repeats have elapsed, or
`max_repeats` are done. Latency does not depend on the weights, so an untrained model will do.
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nas.evaluate.device import model_device, synchronize

SUPPORTED_PHASES = ("prefill", "decode", "train_step")


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

    def fresh_tokens(length: int = seq_len) -> torch.Tensor:
        return torch.randint(
            low, vocab_size, (batch, length), generator=generator, device=device
        )  # (B, length)

    timer = _time_cuda if device.type == "cuda" else _time_cpu
    times_ms: list[float] = []
    was_training = model.training
    try:
        with _PHASES[phase](model, fresh_tokens) as one_pass:
            for _ in range(warmup):
                one_pass()()  # draw inputs, run, untimed
            synchronize(device)
            start = time.perf_counter()
            while len(times_ms) < max_repeats:
                times_ms.append(timer(one_pass, device))
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


# -- phases: each yields a zero-argument callable that draws its inputs, then returns a
#    callable that runs the timed work ------------------------------------------------------

Pass = Callable[[], Callable[[], object]]


@contextmanager
def _prefill(model: nn.Module, fresh_tokens) -> Iterator[Pass]:
    model.eval()
    with torch.inference_mode():
        yield lambda: functools.partial(model, fresh_tokens())


@contextmanager
def _decode(model: nn.Module, fresh_tokens) -> Iterator[Pass]:
    """Feed a seq_len context through step() once, then time one more token at a time."""
    if not hasattr(model, "step"):
        raise ValueError("decode latency needs a model with a recurrent step()")
    model.eval()
    with torch.inference_mode():
        context = fresh_tokens()  # (B, T)
        state = None
        for t in range(context.shape[1]):
            _, state = model.step(context[:, t], state)
        holder = {"state": state}

        def one_token(token: torch.Tensor) -> None:
            _, holder["state"] = model.step(token, holder["state"])

        yield lambda: functools.partial(one_token, fresh_tokens(1)[:, 0])


@contextmanager
def _train_step(model: nn.Module, fresh_tokens) -> Iterator[Pass]:
    """Forward + backward + AdamW update of next-token loss, on a private copy of `model`."""
    trainee = copy.deepcopy(model).train()
    optimizer = torch.optim.AdamW(trainee.parameters(), lr=1e-4)

    def step(tokens: torch.Tensor) -> None:
        logits = trainee(tokens)  # (B, T, V)
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    yield lambda: functools.partial(step, fresh_tokens())


_PHASES = {"prefill": _prefill, "decode": _decode, "train_step": _train_step}


def _time_cpu(one_pass: Pass, device: torch.device) -> float:
    work = one_pass()  # inputs drawn before the timer starts
    start = time.perf_counter()
    work()
    return (time.perf_counter() - start) * 1e3


def _time_cuda(one_pass: Pass, device: torch.device) -> float:
    work = one_pass()
    synchronize(device)  # the token draw and anything else queued finish untimed
    with torch.cuda.device(device):  # events record on the model's device's current stream
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        work()
        end.record()
        end.synchronize()
    return start.elapsed_time(end)  # milliseconds
