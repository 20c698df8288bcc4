"""Short causal depthwise convolution as K shifted multiply-adds, for small inputs on the CPU.

At batch 1 and the widths a search explores (prefill latency, the quantity the latency
objective measures), oneDNN's depthwise `conv1d` spends most of its time in setup: K
elementwise multiply-adds over shifted views of the input were 2.5–3.5× faster below about
128k elements on a 2-core Xeon, and slower above it (benchmarks/throughput.py --mode forward
measures the model-level effect). Only the dispatcher in `nas.kernels.short_conv` decides when
this runs: without autograd (its backward through K slices is slower than the conv's), on CPU
tensors no larger than MAX_NUMEL.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MAX_NUMEL = 1 << 17


def fits(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether `causal_conv1d_small` is the faster choice for x (B, T, D) and weight (D, K)."""
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    return x.device.type == "cpu" and not needs_grad and x.numel() <= MAX_NUMEL


def causal_conv1d_small(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x (B, T, D), weight (D, K) -> y (B, T, D), y[t] = Σ_j weight[:, j] · x[t - K + 1 + j]."""
    K, T = weight.shape[1], x.shape[1]
    xp = F.pad(x, (0, 0, K - 1, 0))  # (B, K-1+T, D): K-1 zeros before the start
    y = xp[:, K - 1 :] * weight[:, K - 1]  # the current position's tap
    for j in range(K - 1):
        y = y + xp[:, j : j + T] * weight[:, j]
    return y
