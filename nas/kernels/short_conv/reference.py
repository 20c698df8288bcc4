"""Plain-PyTorch short causal depthwise convolution, the kernels' reference."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def causal_conv1d(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x (B, T, D), weight (D, K) -> y (B, T, D): a depthwise conv made causal by K-1 zeros
    of left padding."""
    D, K = weight.shape
    xp = F.pad(x.transpose(1, 2), (K - 1, 0))  # (B, D, K-1+T)
    return F.conv1d(xp, weight[:, None], groups=D).transpose(1, 2)  # (B, D, T) -> (B, T, D)


def causal_conv1d_update(
    x_t: torch.Tensor, conv_state: torch.Tensor, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """x_t (B, D), conv_state (B, K-1, D) oldest first -> y_t (B, D), new state (B, K-1, D)."""
    taps = weight.t()  # (D, K) -> (K, D)
    y = (conv_state * taps[:-1]).sum(dim=1) + x_t * taps[-1]  # (B, D)
    state = torch.cat((conv_state[:, 1:], x_t[:, None]), dim=1)  # (B, K-1, D)
    return y, state
