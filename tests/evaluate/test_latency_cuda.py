"""CUDA-graph latency (needs a GPU): a replayed pass computes what the eager pass computes, every
token mixer's prefill and decode can be captured, and an uncapturable model is timed eagerly."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from nas.blocks import build_model, list_blocks
from nas.evaluate import measure_latency
from nas.evaluate.latency import RunningPhase, cuda_graphed, open_phase
from nas.spec import ArchSpec, LayerSpec, ModuleSpec

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
CUDA = torch.device("cuda")
VOCAB = 32


def one_mixer_model(mixer: str) -> nn.Module:
    """Two layers of `mixer` with SwiGLU, width 64, on the GPU."""
    layer = LayerSpec(ModuleSpec.make(mixer), ModuleSpec.make("swiglu", expansion=2))
    spec = ArchSpec(d_model=64, vocab_size=VOCAB, layers=(layer, layer))
    return build_model(spec, seed=0).to(CUDA)


def test_a_replayed_pass_computes_what_the_eager_pass_computes():
    model = one_mixer_model("attention").eval()
    batches = [torch.randint(1, VOCAB, (2, 48), device=CUDA) for _ in range(3)]
    remaining, outputs = iter(batches), {}

    def run(tokens: torch.Tensor) -> None:
        outputs["logits"] = model(tokens)  # (B, T, V); the graph's output lives in its pool

    with torch.inference_mode():
        phase = RunningPhase(run, lambda: next(remaining), lambda: [])
        draw = cuda_graphed(phase, CUDA)  # captures on batches[0]
        assert draw is not None
        for tokens in batches[1:]:
            draw()()  # copies `tokens` into the graph's input, replays
            torch.cuda.synchronize()
            torch.testing.assert_close(outputs["logits"], model(tokens), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mixer", list_blocks(role="token_mixer"))
@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_every_token_mixer_is_timed_from_a_graph(mixer, phase):
    model = one_mixer_model(mixer)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*timed eagerly.*")  # a fallback fails the test
        result = measure_latency(model, batch=2, seq_len=64, vocab_size=VOCAB, phase=phase,
                                 max_seconds=0.5)
    assert result.graphed and result.median_ms > 0


def test_eager_timing_when_asked_and_for_train_step():
    model = one_mixer_model("short_conv")
    assert not measure_latency(model, batch=2, seq_len=64, vocab_size=VOCAB,
                               cuda_graph=False, max_seconds=0.2).graphed
    assert not measure_latency(model, batch=2, seq_len=64, vocab_size=VOCAB,
                               phase="train_step", max_seconds=0.2).graphed


class HostSync(nn.Module):
    """A forward that reads a value back to the host: not capturable."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, device=CUDA))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        scale = float(self.weight.sum().item())  # a device-to-host copy
        return tokens.float() * scale


def test_an_uncapturable_model_is_timed_eagerly_with_a_warning():
    with pytest.warns(RuntimeWarning, match="timed eagerly"):
        result = measure_latency(HostSync(), batch=2, seq_len=16, vocab_size=VOCAB,
                                 max_seconds=0.2)
    assert not result.graphed and result.median_ms > 0
    with torch.inference_mode(), open_phase(HostSync(), "prefill", batch=1, seq_len=4,
                                            vocab_size=VOCAB) as running:
        running.draw()()  # the device still works after the failed capture
    torch.cuda.synchronize()

