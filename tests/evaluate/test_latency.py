"""measure_latency: stopping rules, fresh inputs, scaling with length, phases."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from nas.blocks import build_model
from nas.evaluate import SUPPORTED_PHASES, measure_latency
from nas.evaluate.latency import relative_spread
from nas.stats import quantile


class Recorder(nn.Module):
    """Records every batch it sees; optionally sleeps to look slow."""

    def __init__(self, sleep: float = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.sleep, self.seen, self.grad_enabled = sleep, [], []

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        self.seen.append(tokens.clone())
        self.grad_enabled.append(torch.is_grad_enabled())
        time.sleep(self.sleep)
        return tokens.float()


def test_real_model_latency_is_positive_and_bounded(make_spec):
    model = build_model(make_spec(), seed=0)
    model.train()
    result = measure_latency(
        model, batch=2, seq_len=32, vocab_size=16, min_repeats=5, max_repeats=20
    )
    assert result.median_ms > 0 and result.spread >= 0
    assert 5 <= result.repeats <= 20
    assert model.training, "the model's mode is restored"


def test_longer_sequences_take_longer(make_spec):
    model = build_model(make_spec(), seed=0)
    kwargs = {"batch": 1, "vocab_size": 16, "min_repeats": 5, "max_seconds": 1.0}
    short = measure_latency(model, seq_len=8, **kwargs)
    long = measure_latency(model, seq_len=2048, **kwargs)  # 256x the tokens
    assert long.median_ms > 3 * short.median_ms, (short, long)


def test_fresh_nonzero_tokens_warmups_untimed_and_inference_mode():
    model = Recorder()
    result = measure_latency(
        model, batch=3, seq_len=50, vocab_size=2, warmup=2, warmup_seconds=0, min_repeats=4,
        max_repeats=4)
    assert result.repeats == 4
    assert len(model.seen) == 2 + 4  # warmups ran, but only the repeats were counted
    assert all(t.shape == (3, 50) and t.dtype == torch.long for t in model.seen)
    assert all((t == 1).all() for t in model.seen), "tokens come from [1, V): never padding"
    assert not any(model.grad_enabled)


def test_each_pass_gets_a_fresh_batch():
    model = Recorder()
    measure_latency(model, batch=2, seq_len=64, vocab_size=1000, min_repeats=3, max_repeats=3)
    batches = {tuple(t.flatten().tolist()) for t in model.seen}
    assert len(batches) == len(model.seen)


def test_warms_up_and_times_for_at_least_the_time_floors():
    model = Recorder(sleep=0.005)
    start = time.perf_counter()
    result = measure_latency(model, batch=1, seq_len=4, vocab_size=8, warmup=1,
                             warmup_seconds=0.1, min_repeats=2, min_seconds=0.1)
    assert time.perf_counter() - start >= 0.2
    pass_seconds = result.median_ms / 1e3  # >= 5 ms; more on a loaded machine
    assert result.repeats > 2  # a steady pass would have stopped at 2 repeats
    assert result.repeats * pass_seconds >= 0.05  # timed for about 0.1 s
    assert (len(model.seen) - result.repeats) * pass_seconds >= 0.05  # untimed warmups too


def test_stops_at_max_repeats_when_spread_never_small_enough():
    result = measure_latency(
        Recorder(), batch=1, seq_len=4, vocab_size=8, warmup=0, min_repeats=3, max_repeats=7,
        target_rel_spread=-1.0, target_median_error=-1.0, max_seconds=60.0,
    )
    assert result.repeats == 7


class Alternating(Recorder):
    """Passes that take 1 ms and 3 ms in turn: they never agree to 5 %."""

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        time.sleep(0.001 if len(self.seen) % 2 else 0.003)
        return super().forward(tokens)


def test_stops_once_the_median_is_pinned_down_though_passes_disagree():
    bounds = {"batch": 1, "seq_len": 4, "vocab_size": 8, "warmup": 0, "warmup_seconds": 0,
              "min_repeats": 5, "min_seconds": 0, "max_repeats": 200, "max_seconds": 60.0}
    settled = measure_latency(Alternating(), target_median_error=0.2, **bounds)
    assert settled.spread > 0.05  # the spread rule alone would never stop
    # 0.93 x spread / sqrt(n) <= 0.2 needs n >= (4.65 x spread)^2: a few dozen, not 200
    assert settled.repeats <= (4.65 * settled.spread) ** 2 + 16
    assert measure_latency(Alternating(), target_median_error=-1, **bounds).repeats == 200


def test_stops_after_max_seconds_once_min_repeats_are_done():
    result = measure_latency(
        Recorder(sleep=0.02), batch=1, seq_len=4, vocab_size=8, warmup=0, min_repeats=3,
        max_repeats=1000, target_rel_spread=-1.0, target_median_error=-1.0, max_seconds=0.1,
    )
    assert 3 <= result.repeats <= 10
    assert result.median_ms >= 20


def test_unsupported_phase_names_the_supported_ones():
    assert SUPPORTED_PHASES == ("prefill", "decode", "train_step")
    with pytest.raises(ValueError, match="generate.*supported: prefill, decode, train_step"):
        measure_latency(Recorder(), batch=1, seq_len=4, vocab_size=8, phase="generate")


class StepCounter(nn.Module):
    """A 'model' whose state counts the tokens it has been stepped through."""

    def __init__(self) -> None:
        super().__init__()
        self.contexts: list[int] = []

    def step(self, tokens: torch.Tensor, state: int | None):
        context = state or 0
        self.contexts.append(context)
        assert tokens.shape == (3,) and bool((tokens > 0).all())
        return tokens.float(), context + 1


def test_decode_times_one_token_after_a_full_context():
    model = StepCounter()
    result = measure_latency(model, batch=3, seq_len=50, vocab_size=8, phase="decode", warmup=2,
                             warmup_seconds=0, min_repeats=4, max_repeats=4)
    assert result.repeats == 4
    # 50 untimed context steps, then warmups and timed tokens all decode from context 50
    assert model.contexts[:50] == list(range(50))
    assert model.contexts[50:] == [50] * 6


def test_decode_of_a_real_model_attends_over_the_full_context(make_spec):
    """Timed decode steps run against a KV cache holding the whole context (checked on the
    cache itself, not by timing: timings are for benchmarks, not unit tests)."""
    model = build_model(make_spec(), seed=0)
    cache_lengths = []
    plain_step = model.step

    def spying_step(tokens, state=None):
        logits, state = plain_step(tokens, state)
        attention = [s for s in state if isinstance(s, dict) and "k" in s]
        cache_lengths.append(attention[0]["k"].shape[2] if attention else None)
        return logits, state

    model.step = spying_step
    result = measure_latency(model, batch=1, seq_len=64, vocab_size=16, phase="decode",
                             warmup=1, warmup_seconds=0, min_repeats=3, max_repeats=3)
    assert result.median_ms > 0 and result.repeats == 3
    assert None not in cache_lengths, "the spec has attention layers"
    assert cache_lengths[63] == 64  # context fed untimed...
    assert cache_lengths[64:] == [65] * 4  # ...then warmup and timed tokens, each one beyond it


def test_train_step_trains_a_copy_and_leaves_the_model_alone(make_spec):
    model = build_model(make_spec(), seed=0).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = measure_latency(model, batch=2, seq_len=16, vocab_size=16, phase="train_step",
                             min_repeats=3, max_repeats=3)
    assert result.median_ms > 0
    assert not model.training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())


def test_invalid_bounds():
    with pytest.raises(ValueError, match="max_repeats"):
        measure_latency(Recorder(), batch=1, seq_len=4, vocab_size=8, min_repeats=5, max_repeats=2)
    with pytest.raises(ValueError, match="seq_len"):
        measure_latency(Recorder(), batch=1, seq_len=0, vocab_size=8)


def test_quantiles_and_spread():
    assert quantile([4.0, 1.0, 3.0, 2.0, 5.0], 0.5) == 3.0
    assert quantile([1.0, 2.0], 0.25) == pytest.approx(1.25)
    assert relative_spread([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(2.0 / 3.0)
    assert relative_spread([7.0]) == 0.0
