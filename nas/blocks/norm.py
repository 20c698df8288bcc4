"""Normalisation layers for the pre-norm residual stream.

RMSNorm (Zhang & Sennrich 2019) rescales by the root mean square, with no centring and no bias;
LayerNorm is torch's own. `make_norm` picks one by the name an ArchSpec carries. RMSNorm runs the
fused Triton kernel of `nas.kernels.rmsnorm` on GPU.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from nas.kernels.rmsnorm import rms_norm


class RMSNorm(nn.Module):
    """x / rms(x) * scale over the last dimension; the scale starts at one."""

    def __init__(self, d_model: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


NORMS = {
    "rmsnorm": RMSNorm,
    "layernorm": nn.LayerNorm,
}


def make_norm(name: str, d_model: int) -> nn.Module:
    """A fresh norm layer of kind `name` over `d_model` channels."""
    cls = NORMS.get(name)
    if cls is None:
        raise ValueError(f"unknown norm {name!r}; known: {', '.join(sorted(NORMS))}")
    return cls(d_model)
