"""Peak memory by phase: exact on a model whose allocations are known, and the way it must move
with the phase, the context length and the kind of decode state on real models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nas.blocks import build_model
from nas.evaluate.memory import _StorageTracker, measure_peak_memory, storage_bytes
from nas.spec import ArchSpec, LayerSpec, ModuleSpec

FLOAT = 4  # bytes


class EmbedProject(nn.Module):
    """tokens -> embedding (B, T, D) -> logits (B, T, V): two allocations per forward."""

    def __init__(self, vocab: int, width: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.head = nn.Linear(width, vocab, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(tokens))


def test_prefill_peak_is_weights_plus_both_activations_exactly():
    vocab, width, batch, seq_len = 50, 24, 3, 40
    model = EmbedProject(vocab, width)
    weights = 2 * vocab * width * FLOAT
    activations = batch * seq_len * (width + vocab) * FLOAT  # the embedding lives until the head
    peak = measure_peak_memory(model, batch=batch, seq_len=seq_len, vocab_size=vocab)
    assert peak == weights + activations


def test_tracker_counts_what_is_alive_at_once_and_skips_views_and_in_place():
    x = torch.randn(256, 256)
    with _StorageTracker() as tracker:
        for _ in range(3):
            y = x @ x  # 256 KiB
            y.relu_()  # in place: nothing new
            z = y.view(-1)  # a view: nothing new
            w = y * 2  # 256 KiB more while y is alive
            del y, z, w
    assert tracker.peak == 2 * 256 * 256 * FLOAT
    assert tracker.current == 0 and not tracker.live  # everything freed was seen freed


def test_storage_bytes_counts_a_shared_storage_once():
    base = torch.zeros(10, 10)
    assert storage_bytes([base, base[0], base.t()]) == 100 * FLOAT


def spec(mixer: str, **knobs) -> ArchSpec:
    channel = ModuleSpec.make("mlp", expansion=2)
    return ArchSpec(d_model=32, vocab_size=32,
                    layers=(LayerSpec(ModuleSpec.make(mixer, **knobs), channel),) * 2)


def peak(model, phase, seq_len, batch=2):
    return measure_peak_memory(model, batch=batch, seq_len=seq_len, vocab_size=32, phase=phase)


def test_train_step_holds_more_than_prefill_and_both_grow_with_length():
    model = build_model(spec("attention", heads=2), seed=0)
    weights = storage_bytes([*model.parameters(), *model.buffers()])
    for phase in ("prefill", "train_step"):
        assert weights < peak(model, phase, 16) < peak(model, phase, 128)
    # gradients and two AdamW moments are three more copies of the weights, before activations
    assert peak(model, "train_step", 16) > 4 * weights
    assert peak(model, "train_step", 64) > peak(model, "prefill", 64)


def test_decode_memory_grows_with_a_kv_cache_and_not_with_a_fixed_state():
    attention = build_model(spec("attention", heads=2), seed=0)
    short, long = peak(attention, "decode", 16), peak(attention, "decode", 256)
    # keys and values of 2 layers x 2 sequences x 240 more tokens x 32 wide, fp32
    assert long - short >= 2 * 2 * 2 * 240 * 32 * FLOAT
    recurrent = build_model(spec("linear_attention", heads=2), seed=0)
    assert peak(recurrent, "decode", 256) == peak(recurrent, "decode", 16)


def test_mode_is_restored_and_unknown_phase_refused():
    model = build_model(spec("short_conv", kernel_size=3), seed=0)
    model.train()
    peak(model, "prefill", 8)
    assert model.training
    with pytest.raises(ValueError, match="unsupported memory phase"):
        measure_peak_memory(model, batch=1, seq_len=8, vocab_size=32, phase="generate")
