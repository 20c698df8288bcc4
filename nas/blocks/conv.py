"""Short causal convolutions, the local token mixers of H3 / Hyena / Based-style hybrids.

`short_conv` (gated): each channel is convolved over the last `kernel_size` positions (a
depthwise convolution made causal by left padding), then gated by a SiLU of a second projection:

    u, g = in_proj(x).chunk(2)      y = out_proj(causal_depthwise_conv(u) * silu(g))

Decoding keeps the last kernel_size-1 values of u.

`plain_conv`: the depthwise causal convolution alone, with a bias, on the block's (normalized)
input — no projections, no gate: y = causal_depthwise_conv(x) + b. It has K·D + D parameters
against short_conv's 3·D² + K·D, and below attention it learns MQAR recall faster at small
widths: nas's conv → attention at width 32 reached 0.99 accuracy in 400–450 steps in each of 5
seeds, against 550 to more than 800 with short_conv (BENCHMARKS.md, "Learning speed").
Decoding keeps the last kernel_size-1 inputs.

Both run the Triton kernels of `nas.kernels.short_conv` on GPU; their taps stay an nn.Conv1d's
(D, 1, K) weight.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from nas.blocks.base import TokenMixer, mark_residual_out
from nas.blocks.registry import Knob, register_block
from nas.kernels.short_conv import causal_conv1d, causal_conv1d_update


@register_block(
    "short_conv",
    "token_mixer",
    knobs=[Knob("kernel_size", int, 4, minimum=2, doc="taps of the causal depthwise conv")],
)
class ShortConv(TokenMixer):
    """Gated causal depthwise convolution over a short window.

    step() state: tensor (B, kernel_size-1, D), the previous conv inputs u, oldest first
    (zeros before the sequence starts).
    """

    def __init__(self, d_model: int, layer_idx: int, kernel_size: int = 4) -> None:
        super().__init__(d_model, layer_idx)
        self._raise_if_invalid(kernel_size=kernel_size)
        self.kernel_size = kernel_size
        self.in_proj = nn.Linear(d_model, 2 * d_model, bias=False)
        self.conv = nn.Conv1d(d_model, d_model, kernel_size, groups=d_model, bias=False)
        self.out_proj = mark_residual_out(nn.Linear(d_model, d_model, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, g = self.in_proj(x).chunk(2, dim=-1)  # (B, T, D) each
        u = causal_conv1d(u, self.conv.weight[:, 0])  # taps (D, 1, K) -> (D, K); (B, T, D)
        return self.out_proj(u * F.silu(g))

    def step(
        self, x: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        B, D = x.shape
        u, g = self.in_proj(x).chunk(2, dim=-1)  # (B, D) each
        if state is None:
            state = x.new_zeros(B, self.kernel_size - 1, D)
        y, state = causal_conv1d_update(u, state, self.conv.weight[:, 0])  # (B, D), (B, K-1, D)
        return self.out_proj(y * F.silu(g)), state

    # -- costs ---------------------------------------------------------------------------------
    def num_params(self) -> int:
        D = self.d_model
        return 2 * D * D + self.kernel_size * D + D * D

    def flops_per_token(self, seq_len: int) -> float:
        D = self.d_model
        return float(2 * D * 2 * D + 2 * self.kernel_size * D + 2 * D * D)

    def state_bytes(self, seq_len: int, dtype: torch.dtype = torch.float32) -> int:
        return (self.kernel_size - 1) * self.d_model * dtype.itemsize


@register_block(
    "plain_conv",
    "token_mixer",
    knobs=[Knob("kernel_size", int, 4, minimum=2, doc="taps of the causal depthwise conv")],
)
class PlainConv(TokenMixer):
    """Causal depthwise convolution with a bias, no projections or gate: each channel of the
    output is a learned mix of that channel over the last `kernel_size` positions.

    step() state: tensor (B, kernel_size-1, D), the previous inputs, oldest first (zeros before
    the sequence starts).
    """

    def __init__(self, d_model: int, layer_idx: int, kernel_size: int = 4) -> None:
        super().__init__(d_model, layer_idx)
        self._raise_if_invalid(kernel_size=kernel_size)
        self.kernel_size = kernel_size
        self.conv = nn.Conv1d(d_model, d_model, kernel_size, groups=d_model, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return causal_conv1d(x, self.conv.weight[:, 0]) + self.conv.bias  # (B, T, D)

    def step(
        self, x: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        B, D = x.shape
        if state is None:
            state = x.new_zeros(B, self.kernel_size - 1, D)
        y, state = causal_conv1d_update(x, state, self.conv.weight[:, 0])  # (B, D), (B, K-1, D)
        return y + self.conv.bias, state

    # -- costs ---------------------------------------------------------------------------------
    def num_params(self) -> int:
        return (self.kernel_size + 1) * self.d_model

    def flops_per_token(self, seq_len: int) -> float:
        return float(2 * self.kernel_size * self.d_model + self.d_model)  # taps, then the bias

    def uncounted_flops_per_token(self, seq_len: int) -> float:
        return float(self.d_model)  # the bias add: elementwise, which FlopCounterMode skips

    def state_bytes(self, seq_len: int, dtype: torch.dtype = torch.float32) -> int:
        return (self.kernel_size - 1) * self.d_model * dtype.itemsize
