"""Fused SwiGLU activation: y = silu(gate) · up = gate · sigmoid(gate) · up, elementwise.

`swiglu` runs the Triton kernels (forward and backward) when `use_triton(gate)`, else the
plain-PyTorch reference; both compute in fp32 and return gate's dtype. fp64 inputs always take
the reference. Off the Triton path, fp32/fp64 inputs skip the reference's dtype promotion
(a no-op for them) and compute silu(gate) · up directly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nas.kernels import forced_backend, use_triton
from nas.kernels.swiglu import reference


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """gate, up of one shape and dtype -> silu(gate) · up; differentiable in both."""
    if use_triton(gate) and gate.dtype != torch.float64:
        from nas.kernels.swiglu import triton_swiglu

        return triton_swiglu.swiglu(gate, up)
    native = gate.dtype in (torch.float32, torch.float64) and up.dtype == gate.dtype
    if native and forced_backend() is None:
        return F.silu(gate) * up
    return reference.swiglu(gate, up)


__all__ = ["swiglu"]
