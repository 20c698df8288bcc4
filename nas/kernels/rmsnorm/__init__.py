"""Fused RMSNorm over the last dimension: y = x / sqrt(mean(x²) + eps) · weight.

`rms_norm` runs the Triton kernels (forward and backward) when `use_triton(x)`, else the
plain-PyTorch reference; both accumulate in fp32 and return x's dtype. fp64 inputs, and rows
longer than MAX_D (one program holds a whole row), always take the reference. Off the Triton
path, fp32/fp64 inputs go through `torch.nn.functional.rms_norm`, the same arithmetic as the
reference (in the input's own precision) in one ATen call: at the small widths a search
trains, the reference's five Python-level ops cost more than the arithmetic (tests compare the
two).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nas.kernels import forced_backend, use_triton
from nas.kernels.rmsnorm import reference

MAX_D = 16384


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """x (..., D), weight (D,) -> (..., D) in x's dtype; differentiable in x and weight."""
    if use_triton(x) and x.dtype != torch.float64 and x.shape[-1] <= MAX_D:
        from nas.kernels.rmsnorm import triton_rmsnorm

        return triton_rmsnorm.rms_norm(x, weight, eps)
    if x.dtype in _NATIVE and weight.dtype == x.dtype and forced_backend() is None:
        return F.rms_norm(x, (x.shape[-1],), weight, eps)
    return reference.rms_norm(x, weight, eps)


_NATIVE = (torch.float32, torch.float64)  # dtypes the reference computes in as they are


__all__ = ["rms_norm"]
