"""Channel mixers: the position-wise feed-forward half of each layer.

`mlp` is the Transformer's two-layer MLP (Vaswani et al. 2017) with a GELU, a ReLU or a squared
ReLU (relu(x)², So et al. 2021, "Primer"). `swiglu` and `geglu` are the gated variants of
Shazeer 2020 ("GLU Variants Improve Transformer"): act(x W1) * (x W2), then W3, with act = SiLU
(Swish) or GELU. Three matrices instead of two, so by default (`param_matched: true`) their
hidden width is 2/3 of the MLP's (rounded up to a multiple of 8) to keep the parameter count, and
the FLOPs, about equal at the same expansion; `param_matched: false` uses the MLP's hidden width
(1.5x its parameters), the other convention found in the literature.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from nas.blocks.base import ChannelMixer, mark_residual_out
from nas.blocks.registry import Knob, register_block
from nas.kernels.swiglu import swiglu


def relu2(x: torch.Tensor) -> torch.Tensor:
    """Squared ReLU, relu(x)²."""
    return F.relu(x).square()


ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu, "relu2": relu2}


@register_block(
    "mlp",
    "channel_mixer",
    knobs=[
        Knob("expansion", int, 4, minimum=1, doc="hidden width = expansion * d_model"),
        Knob("activation", str, "gelu", choices=tuple(ACTIVATIONS)),
    ],
)
class MLP(ChannelMixer):
    """Two-layer MLP, D -> expansion·D -> D, no biases."""

    def __init__(
        self, d_model: int, layer_idx: int, expansion: int = 4, activation: str = "gelu"
    ) -> None:
        super().__init__(d_model, layer_idx)
        self._raise_if_invalid(expansion=expansion, activation=activation)
        self.hidden = expansion * d_model
        self.act = ACTIVATIONS[activation]
        self.fc = nn.Linear(d_model, self.hidden, bias=False)
        self.proj = mark_residual_out(nn.Linear(self.hidden, d_model, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.act(self.fc(x)))

    def num_params(self) -> int:
        return 2 * self.d_model * self.hidden

    def flops_per_token(self, seq_len: int) -> float:
        return float(2 * 2 * self.d_model * self.hidden)


def swiglu_hidden(d_model: int, expansion: int, param_matched: bool = True) -> int:
    """ceil(2/3 · expansion · d_model) rounded up to a multiple of 8 when parameter-matched to
    an mlp of the same expansion; else expansion · d_model."""
    if not param_matched:
        return expansion * d_model
    hidden = -(-2 * expansion * d_model // 3)
    return -(-hidden // 8) * 8


_GLU_KNOBS = (
    Knob(
        "expansion",
        int,
        4,
        minimum=1,
        doc="sized like an mlp of this expansion: hidden = 2/3 * expansion * d_model",
    ),
    Knob(
        "param_matched",
        bool,
        True,
        doc="true: hidden = 2/3 * expansion * d_model (the mlp's parameters); "
        "false: hidden = expansion * d_model",
    ),
)
GLU_ACTIVATIONS = {"silu": F.silu, "gelu": F.gelu}


class GatedMLP(ChannelMixer):
    """Gated MLP, out(act(x W1) * x W2), no biases; W1 and W2 are one fused matmul.

    Not registered itself: each registered subclass names its activation (``activation``, a key
    of GLU_ACTIVATIONS).
    """

    activation: ClassVar[str]

    def __init__(
        self, d_model: int, layer_idx: int, expansion: int = 4, param_matched: bool = True
    ) -> None:
        super().__init__(d_model, layer_idx)
        self._raise_if_invalid(expansion=expansion, param_matched=param_matched)
        self.act = GLU_ACTIVATIONS[self.activation]
        self.hidden = swiglu_hidden(d_model, expansion, param_matched)
        self.fc = nn.Linear(d_model, 2 * self.hidden, bias=False)
        self.proj = mark_residual_out(nn.Linear(self.hidden, d_model, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.fc(x).chunk(2, dim=-1)  # (..., hidden) each
        if self.activation == "silu":
            return self.proj(swiglu(gate, up))  # fused kernel on GPU
        return self.proj(self.act(gate) * up)

    def num_params(self) -> int:
        return 3 * self.d_model * self.hidden

    def flops_per_token(self, seq_len: int) -> float:
        return float(2 * 3 * self.d_model * self.hidden)


@register_block("swiglu", "channel_mixer", knobs=_GLU_KNOBS)
class SwiGLU(GatedMLP):
    """Gated MLP with SiLU (Swish), out(silu(x W1) * x W2), no biases."""

    activation = "silu"


@register_block("geglu", "channel_mixer", knobs=_GLU_KNOBS)
class GeGLU(GatedMLP):
    """Gated MLP with GELU, out(gelu(x W1) * x W2), no biases; sized like swiglu."""

    activation = "gelu"
