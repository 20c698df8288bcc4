"""Fused SwiGLU activation: y = silu(gate) · up = gate · sigmoid(gate) · up, elementwise.

`swiglu` runs the Triton kernels (forward and backward) when `use_triton(gate)`, else the
plain-PyTorch reference; both compute in fp32 and return gate's dtype. fp64 inputs always take
the reference.
"""

from __future__ import annotations

import torch

from nas.kernels import use_triton
from nas.kernels.swiglu import reference


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """gate, up of one shape and dtype -> silu(gate) · up; differentiable in both."""
    if use_triton(gate) and gate.dtype != torch.float64:
        from nas.kernels.swiglu import triton_swiglu

        return triton_swiglu.swiglu(gate, up)
    return reference.swiglu(gate, up)


__all__ = ["swiglu"]
