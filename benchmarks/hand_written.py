"""Plain PyTorch blocks shared by the benchmarks' hand-written models (throughput.py,
learning.py): deliberately free of nas, so they check nas against an independent version."""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F


class GatedShortConv(nn.Module):
    """Gated causal depthwise conv: in-proj to (u, g), conv taps over the last k positions of u,
    u * silu(g), out-proj. (B, T, D) -> (B, T, D)."""

    def __init__(self, d: int, k: int = 4) -> None:
        super().__init__()
        self.k = k
        self.inp = nn.Linear(d, 2 * d, bias=False)
        self.conv = nn.Conv1d(d, d, k, groups=d, bias=False)
        self.out = nn.Linear(d, d, bias=False)

    def forward(self, x):
        u, g = self.inp(x).chunk(2, dim=-1)  # (B, T, D) each
        u = self.conv(F.pad(u.transpose(1, 2), (self.k - 1, 0))).transpose(1, 2)  # causal
        return self.out(u * F.silu(g))
