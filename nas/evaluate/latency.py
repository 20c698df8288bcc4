"""Latency of a model by phase, measured until the estimate is stable.

Phases (inputs are random tokens from ``[1, vocab_size)``, never all padding, fresh for every
repeat and drawn before its timer starts):

- ``prefill``: one forward pass over a ``(batch, seq_len)`` batch, inference_mode, eval mode.
- ``decode``: one token per sequence through the model's recurrent ``step()`` with a context of
  ``seq_len`` tokens already in its caches (KV cache / recurrent state) — the per-token cost of
  generation at that context length. The context is fed once, untimed; each repeat then decodes
  token ``seq_len + 1`` from that same state (the state a step returns is dropped, so however
  many passes run, every one costs the same).
- ``train_step``: forward, backward and an AdamW update on a ``(batch, seq_len)`` batch, in
  train mode, on a private copy of the model so the caller's weights are never touched.

Warmup passes are not timed; there are at least `warmup` of them, for at least
`warmup_seconds`. On CPU each pass is timed with ``time.perf_counter``; on CUDA with
a pair of CUDA events after a synchronize.

On CUDA, prefill and decode passes are captured once in a CUDA graph and replayed (fresh tokens
are copied into the graph's input before each timed replay), as a serving stack would run them:
small models are otherwise timed by how many kernels the CPU can launch, not by the GPU's work.
A model whose pass cannot be captured (a host synchronization, data-dependent shapes) is timed
eagerly, with a warning; ``LatencyResult.graphed`` says which. train_step is always eager.

Repeats continue until `min_repeats` are done and `min_seconds` have passed, then stop as soon
as one of: the relative spread (IQR / median) falls to `target_rel_spread`, the median's own
relative standard error falls to `target_median_error` (many passes that disagree still pin
their median down), `max_seconds` of timed repeats have elapsed, or `max_repeats` are done.

The time floors (off by default) spread a fast pass's samples over more time. On this project's
2-core virtual machines they did not measurably lower the spread between fresh-process
measurements, which is dominated by phases of seconds at half speed (BENCHMARKS.md, "Noise as a
search sees it"); re-measuring the front in separate sessions (nas.orchestrator.remeasure) is
what handles those. Latency does not depend on the weights, so an untrained model will do.
"""

from __future__ import annotations

import copy
import functools
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nas.evaluate.device import model_device, synchronize
from nas.stats import quantile

SUPPORTED_PHASES = ("prefill", "decode", "train_step")


@dataclass(frozen=True)
class LatencyResult:
    """Median time of one pass, its relative IQR ``(q75 - q25) / median``, and the sample size."""

    median_ms: float
    spread: float
    repeats: int
    graphed: bool = False  # replayed from a CUDA graph


def measure_latency(
    model: nn.Module,
    *,
    batch: int,
    seq_len: int,
    vocab_size: int,
    phase: str = "prefill",
    warmup: int = 3,
    warmup_seconds: float = 0.0,
    min_repeats: int = 5,
    min_seconds: float = 0.0,
    max_repeats: int = 50,
    max_seconds: float = 2.0,
    target_rel_spread: float = 0.05,
    target_median_error: float = 0.01,
    seed: int = 0,
    cuda_graph: bool = True,
) -> LatencyResult:
    """Time `phase` for `model`; raises ValueError on an unsupported phase or bad bounds.
    `cuda_graph=False` times CUDA passes eagerly (launch by launch)."""
    if phase not in SUPPORTED_PHASES:
        raise ValueError(
            f"unsupported latency phase {phase!r}; supported: {', '.join(SUPPORTED_PHASES)}"
        )
    for name, value in {"batch": batch, "seq_len": seq_len, "vocab_size": vocab_size,
                        "min_repeats": min_repeats}.items():
        if value < 1:
            raise ValueError(f"latency: {name} must be >= 1, got {value}")
    if warmup < 0 or warmup_seconds < 0:
        raise ValueError(f"latency: warmup must be >= 0, got {warmup} passes and "
                         f"{warmup_seconds} s")
    if max_repeats < min_repeats:
        raise ValueError(f"latency: max_repeats={max_repeats} is below min_repeats={min_repeats}")

    device = model_device(model)
    timer = _time_cuda if device.type == "cuda" else _time_cpu
    times_ms: list[float] = []
    was_training = model.training
    graphed = None
    try:
        with open_phase(model, phase, batch=batch, seq_len=seq_len, vocab_size=vocab_size,
                        seed=seed) as running:
            if cuda_graph and device.type == "cuda" and phase in GRAPHED_PHASES:
                graphed = cuda_graphed(running, device)
            one_pass = graphed or running.draw
            _warm_up(one_pass, device, warmup, warmup_seconds)
            min_seconds = min(min_seconds, max_seconds)
            start = time.perf_counter()
            while len(times_ms) < max_repeats:
                times_ms.append(timer(one_pass, device))
                n, elapsed = len(times_ms), time.perf_counter() - start
                if n < min_repeats or (elapsed < min_seconds and n < max_repeats):
                    continue
                if elapsed >= max_seconds or (
                        (n < 64 or n % 16 == 0)  # the spread is re-read less often late on
                        and _settled(times_ms, target_rel_spread, target_median_error)):
                    break
    finally:
        model.train(was_training)

    return LatencyResult(
        median_ms=quantile(times_ms, 0.5),
        spread=relative_spread(times_ms),
        repeats=len(times_ms),
        graphed=graphed is not None,
    )


def _settled(times_ms: list[float], target_spread: float, target_error: float) -> bool:
    """Whether the passes agree to `target_spread`, or there are enough of them that their
    median is known to `target_error` anyway: its relative standard error, for a normal sample,
    is about 0.93 x (IQR / median) / sqrt(n)."""
    spread = relative_spread(times_ms)
    return spread <= target_spread or 0.93 * spread / len(times_ms) ** 0.5 <= target_error


def _warm_up(one_pass: Pass, device: torch.device, passes: int, seconds: float) -> None:
    """Run untimed passes until `passes` are done and `seconds` have passed."""
    start, done = time.perf_counter(), 0
    while done < passes or time.perf_counter() - start < seconds:
        one_pass()()  # draw inputs, run, untimed
        done += 1
        if done % 8 == 0 or done >= passes:
            synchronize(device)  # on CUDA, count the time the device spent, not queued launches
    synchronize(device)


def relative_spread(values: list[float]) -> float:
    """Interquartile range over the median; 0 for a single value."""
    median = quantile(values, 0.5)
    iqr = quantile(values, 0.75) - quantile(values, 0.25)
    return iqr / median if median > 0 else 0.0


# -- phases ----------------------------------------------------------------------------------

Pass = Callable[[], Callable[[], object]]


@dataclass(frozen=True)
class RunningPhase:
    """A phase set up for repeated passes. `inputs()` draws fresh tokens and `run(tokens)` is
    one pass on them; `resident()` lists the tensors the phase holds between passes (weights and
    buffers; for train_step the gradients and optimizer state, for decode the caches)."""

    run: Callable[[torch.Tensor], object]
    inputs: Callable[[], torch.Tensor]
    resident: Callable[[], list[torch.Tensor]]

    def draw(self) -> Callable[[], object]:
        """Fresh inputs, and the zero-argument callable that runs one pass on them."""
        return functools.partial(self.run, self.inputs())


@contextmanager
def open_phase(model: nn.Module, phase: str, *, batch: int, seq_len: int, vocab_size: int,
               seed: int = 0) -> Iterator[RunningPhase]:
    """`phase` set up on `model` with inputs of `batch` x `seq_len` random tokens from
    ``[1, vocab_size)`` drawn from a generator seeded with `seed`. Leaves the model in eval
    mode (measure_latency restores the caller's)."""
    device = model_device(model)
    generator = torch.Generator(device=device).manual_seed(seed)
    low = 1 if vocab_size > 1 else 0  # skip the padding token where there is another

    def fresh_tokens(length: int = seq_len) -> torch.Tensor:
        return torch.randint(
            low, vocab_size, (batch, length), generator=generator, device=device
        )  # (B, length)

    with _PHASES[phase](model, fresh_tokens) as running:
        yield running


def tokens_per_pass(phase: str, *, batch: int, seq_len: int) -> int:
    """Tokens one pass of `phase` processes: the whole batch x seq_len, or for decode one token
    per sequence."""
    return batch if phase == "decode" else batch * seq_len


def _weights(module: nn.Module) -> list[torch.Tensor]:
    return [*module.parameters(), *module.buffers()]


@contextmanager
def _prefill(model: nn.Module, fresh_tokens) -> Iterator[RunningPhase]:
    model.eval()
    with torch.inference_mode():
        yield RunningPhase(model, fresh_tokens, lambda: _weights(model))


@contextmanager
def _decode(model: nn.Module, fresh_tokens) -> Iterator[RunningPhase]:
    """Feed a seq_len context through step() once, then time one more token from that state,
    again and again (blocks return a new state and leave the one they are given alone)."""
    if not hasattr(model, "step"):
        raise ValueError("decode latency needs a model with a recurrent step()")
    model.eval()
    with torch.inference_mode():
        context = fresh_tokens()  # (B, T)
        state = None
        for t in range(context.shape[1]):
            _, state = model.step(context[:, t], state)

        def one_token(token: torch.Tensor) -> None:
            model.step(token, state)  # the new state is dropped: every pass decodes at seq_len

        yield RunningPhase(one_token, lambda: fresh_tokens(1)[:, 0],
                           lambda: [*_weights(model), *tensors_in(state)])


@contextmanager
def _train_step(model: nn.Module, fresh_tokens) -> Iterator[RunningPhase]:
    """Forward + backward + AdamW update of next-token loss, on a private copy of `model`."""
    trainee = copy.deepcopy(model).train()
    optimizer = torch.optim.AdamW(trainee.parameters(), lr=1e-4)

    def step(tokens: torch.Tensor) -> None:
        logits = trainee(tokens)  # (B, T, V)
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def resident() -> list[torch.Tensor]:
        grads = [p.grad for p in trainee.parameters() if p.grad is not None]
        return [*_weights(trainee), *grads, *tensors_in(list(optimizer.state.values()))]

    yield RunningPhase(step, fresh_tokens, resident)


def tensors_in(tree: object) -> list[torch.Tensor]:
    """Every tensor in nested lists, tuples, dicts and objects' attributes (decode states are
    per-block dataclasses or tuples)."""
    found: list[torch.Tensor] = []
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, torch.Tensor):
            found.append(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif hasattr(item, "__dict__") and not isinstance(item, (nn.Module, type)):
            stack.extend(vars(item).values())
    return found


_PHASES = {"prefill": _prefill, "decode": _decode, "train_step": _train_step}
GRAPHED_PHASES = ("prefill", "decode")  # train_step's optimizer update stays eager


def cuda_graphed(running: RunningPhase, device: torch.device) -> Pass | None:
    """`running`'s pass captured in a CUDA graph: a Pass that copies fresh tokens into the
    graph's static input and returns the replay. None (with a warning) when the pass cannot be
    captured. Passes run a few times on a side stream first, so lazy initialisation (cuBLAS
    handles, Triton compilation, the caching allocator's pools) happens outside the capture."""
    static = running.inputs()  # the graph reads its tokens from this tensor, always
    graph = torch.cuda.CUDAGraph()
    try:
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(3):
                running.run(static)
        torch.cuda.current_stream(device).wait_stream(side)
        with torch.cuda.graph(graph):
            running.run(static)
    except Exception as error:  # noqa: BLE001 - any capture failure means: time it eagerly
        torch.cuda.synchronize(device)
        warnings.warn(f"latency: pass not capturable in a CUDA graph, timed eagerly ({error})",
                      RuntimeWarning, stacklevel=3)
        return None

    def draw() -> Callable[[], object]:
        static.copy_(running.inputs())
        return graph.replay

    return draw


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
