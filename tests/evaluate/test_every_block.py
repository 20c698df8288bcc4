"""Every registered block goes through a whole trial: build, all latency phases, train, score."""

from __future__ import annotations

import pytest
import torch

from nas.blocks import list_blocks
from nas.evaluate.trial import TrialRequest, run_trial
from nas.spec import ArchSpec, LayerSpec, ModuleSpec

TASK = {"kind": "mqar", "vocab_size": 16, "seq_len": 24, "num_kv_pairs": 3}
LATENCY = tuple({"name": f"latency_{phase}", "batch": 1, "seq_len": 16, "phase": phase,
                 "warmup": 1, "min_repeats": 2, "max_repeats": 2}
                for phase in ("prefill", "decode", "train_step"))


def trial_with(mixer: str, channel: str) -> dict[str, float]:
    layer = LayerSpec(ModuleSpec.make(mixer), ModuleSpec.make(channel))
    spec = ArchSpec(d_model=32, vocab_size=16, layers=(layer, layer),
                    training={"steps": 3, "batch_size": 4, "lr": 1e-3})
    threads = torch.get_num_threads()
    try:
        result = run_trial(TrialRequest(spec_json=spec.to_json(), task=TASK, latency=LATENCY,
                                        num_threads=1, eval_examples=16))
    finally:
        torch.set_num_threads(threads)
    return result.metrics


@pytest.mark.parametrize("mixer", list_blocks(role="token_mixer"))
def test_every_token_mixer_runs_a_trial(mixer):
    metrics = trial_with(mixer, "swiglu")
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["loss"] > 0
    assert all(metrics[entry["name"]] > 0 for entry in LATENCY)


@pytest.mark.parametrize("channel", list_blocks(role="channel_mixer"))
def test_every_channel_mixer_runs_a_trial(channel):
    metrics = trial_with("short_conv", channel)
    assert metrics["params"] > 0 and metrics["loss"] > 0
