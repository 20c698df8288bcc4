"""Short causal depthwise convolution over time, and its one-token decode update.

    y[b, t, d] = Σ_j weight[d, j] · x[b, t - K + 1 + j, d]      (x = 0 before the start)

`causal_conv1d` (forward and backward: dx, dweight) and `causal_conv1d_update` run the Triton
kernels when `use_triton(x)`, else the plain-PyTorch reference. The reference also runs for
fp64 inputs and for more than MAX_K taps (the kernels unroll the taps), and for the update
whenever autograd needs its backward (the update's kernel has none). Small CPU inputs outside
autograd (batch-1 prefill) take `small.causal_conv1d_small`, shifted multiply-adds that beat
oneDNN's depthwise conv there.
"""

from __future__ import annotations

import torch

from nas.kernels import forced_backend, use_triton
from nas.kernels.short_conv import reference, small

MAX_K = 16


def _kernel_fits(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return use_triton(x) and x.dtype != torch.float64 and weight.shape[-1] <= MAX_K


def causal_conv1d(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x (B, T, D), weight (D, K) -> y (B, T, D); differentiable in x and weight."""
    if _kernel_fits(x, weight):
        from nas.kernels.short_conv import triton_short_conv

        return triton_short_conv.causal_conv1d(x, weight)
    if forced_backend() is None and small.fits(x, weight):
        return small.causal_conv1d_small(x, weight)
    return reference.causal_conv1d(x, weight)


def causal_conv1d_update(
    x_t: torch.Tensor, conv_state: torch.Tensor, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One decode step. x_t (B, D), conv_state (B, K-1, D) the previous inputs, oldest first;
    returns y_t (B, D) and the new state (B, K-1, D) (conv_state itself is not modified)."""
    needs_grad = torch.is_grad_enabled() and any(
        t.requires_grad for t in (x_t, conv_state, weight)
    )
    if _kernel_fits(x_t, weight) and not needs_grad:
        from nas.kernels.short_conv import triton_short_conv

        return triton_short_conv.causal_conv1d_update(x_t, conv_state, weight)
    return reference.causal_conv1d_update(x_t, conv_state, weight)


__all__ = ["causal_conv1d", "causal_conv1d_update"]
