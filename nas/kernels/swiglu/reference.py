"""Plain-PyTorch SwiGLU, the kernels' reference: fp32 arithmetic (fp64 for fp64 inputs),
output in gate's dtype."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """silu(gate) · up, computed in fp32 at least and rounded once to gate's dtype."""
    acc = torch.promote_types(gate.dtype, torch.float32)
    return (F.silu(gate.to(acc)) * up.to(acc)).to(gate.dtype)
