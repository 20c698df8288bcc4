"""Fused RMSNorm over the last dimension: y = x / sqrt(mean(x²) + eps) · weight.

`rms_norm` runs the Triton kernels (forward and backward) when `use_triton(x)`, else the
plain-PyTorch reference; both accumulate in fp32 and return x's dtype. fp64 inputs, and rows
longer than MAX_D (one program holds a whole row), always take the reference.
"""

from __future__ import annotations

import torch

from nas.kernels import use_triton
from nas.kernels.rmsnorm import reference

MAX_D = 16384


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """x (..., D), weight (D,) -> (..., D) in x's dtype; differentiable in x and weight."""
    if use_triton(x) and x.dtype != torch.float64 and x.shape[-1] <= MAX_D:
        from nas.kernels.rmsnorm import triton_rmsnorm

        return triton_rmsnorm.rms_norm(x, weight, eps)
    return reference.rms_norm(x, weight, eps)


__all__ = ["rms_norm"]
