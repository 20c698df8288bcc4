"""Plain-PyTorch RMSNorm, the kernels' reference: fp32 arithmetic (fp64 for fp64 inputs),
output in x's dtype."""

from __future__ import annotations

import torch


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """x (..., D), weight (D,) -> x / sqrt(mean(x², -1) + eps) · weight, in x's dtype."""
    acc = torch.promote_types(x.dtype, torch.float32)
    xa = x.to(acc)
    rstd = torch.rsqrt(xa.square().mean(dim=-1, keepdim=True) + eps)  # (..., 1)
    return (xa * rstd * weight.to(acc)).to(x.dtype)
