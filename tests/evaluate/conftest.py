"""Tiny real models and tasks for the trial-pipeline tests."""

from __future__ import annotations

import pytest
import torch

from nas.spec import ArchSpec, LayerSpec, ModuleSpec
from nas.tasks import MQARTask


def tiny_spec(
    d_model: int = 32, vocab_size: int = 16, heads: int = 2, training: dict | None = None
) -> ArchSpec:
    """Two layers: short_conv (previous-token mixing) then attention (lookup), SwiGLU each."""
    channel = ModuleSpec.make("swiglu", expansion=2)
    return ArchSpec(
        d_model=d_model,
        vocab_size=vocab_size,
        layers=(
            LayerSpec(ModuleSpec.make("short_conv", kernel_size=4), channel),
            LayerSpec(ModuleSpec.make("attention", heads=heads), channel),
        ),
        training=training or {},
    )


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread per test: on a shared 2-core machine, two processes each spinning
    two OpenMP threads can slow training tenfold; one thread also keeps results reproducible."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def make_spec():
    return tiny_spec


@pytest.fixture
def tiny_task() -> MQARTask:
    return MQARTask(vocab_size=16, seq_len=24, num_kv_pairs=3)
