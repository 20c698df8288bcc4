"""Triton SwiGLU: elementwise forward y = g·σ(g)·u and backward

    dg = dy · u · σ(g) · (1 + g · (1 - σ(g)))        du = dy · g · σ(g)

over (rows, columns) tiles. Inputs are viewed as (M, N) matrices with unit column stride and
any row stride, so the two halves of a fused projection (`fc(x).chunk(2, -1)`) are read in
place without a copy. Imported only when a kernel is launched.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from nas.kernels import new_empty

BLOCK_M = 16
BLOCK_N = 64


@triton.jit
def _swiglu_fwd(
    G, U, Y, M, N, stride_g, stride_u, stride_y,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask = (rows < M)[:, None] & (cols < N)[None, :]
    g = tl.load(G + rows[:, None] * stride_g + cols[None, :], mask=mask, other=0.0)
    u = tl.load(U + rows[:, None] * stride_u + cols[None, :], mask=mask, other=0.0)
    g = g.to(tl.float32)
    y = g * tl.sigmoid(g) * u.to(tl.float32)
    tl.store(Y + rows[:, None] * stride_y + cols[None, :], y.to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _swiglu_bwd(
    G, U, DY, DG, DU, M, N, stride_g, stride_u, stride_dy, stride_dg, stride_du,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask = (rows < M)[:, None] & (cols < N)[None, :]
    g = tl.load(G + rows[:, None] * stride_g + cols[None, :], mask=mask, other=0.0)
    u = tl.load(U + rows[:, None] * stride_u + cols[None, :], mask=mask, other=0.0)
    dy = tl.load(DY + rows[:, None] * stride_dy + cols[None, :], mask=mask, other=0.0)
    g = g.to(tl.float32)
    u = u.to(tl.float32)
    dy = dy.to(tl.float32)
    s = tl.sigmoid(g)
    dg = dy * u * s * (1.0 + g * (1.0 - s))
    du = dy * g * s
    tl.store(DG + rows[:, None] * stride_dg + cols[None, :], dg.to(DG.dtype.element_ty), mask=mask)
    tl.store(DU + rows[:, None] * stride_du + cols[None, :], du.to(DU.dtype.element_ty), mask=mask)


def _rows(t: torch.Tensor, N: int) -> torch.Tensor:
    """t (..., N) as a (M, N) matrix with unit column stride (a view when possible)."""
    t = t.reshape(-1, N)  # (M, N)
    return t if t.stride(-1) == 1 else t.contiguous()


def _grid(M: int, N: int) -> tuple[int, int]:
    return max(1, triton.cdiv(M, BLOCK_M)), max(1, triton.cdiv(N, BLOCK_N))


class _SwiGLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        if gate.shape != up.shape or gate.dtype != up.dtype:
            raise ValueError(
                f"swiglu: gate {tuple(gate.shape)} {gate.dtype} and up {tuple(up.shape)} "
                f"{up.dtype} must match in shape and dtype"
            )
        N = gate.shape[-1]
        g2, u2 = _rows(gate, N), _rows(up, N)  # (M, N) each
        M = g2.shape[0]
        y = new_empty((M, N), gate)
        _swiglu_fwd[_grid(M, N)](
            g2, u2, y, M, N, g2.stride(0), u2.stride(0), y.stride(0),
            BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N,
        )  # fmt: skip
        ctx.save_for_backward(g2, u2)
        ctx.shape = gate.shape
        return y.view(gate.shape)  # (..., N)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        g2, u2 = ctx.saved_tensors
        M, N = g2.shape
        dy2 = _rows(dy, N)  # (M, N)
        dg = new_empty((M, N), g2)
        du = new_empty((M, N), u2)
        _swiglu_bwd[_grid(M, N)](
            g2, u2, dy2, dg, du, M, N,
            g2.stride(0), u2.stride(0), dy2.stride(0), dg.stride(0), du.stride(0),
            BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N,
        )  # fmt: skip
        return dg.view(ctx.shape), du.view(ctx.shape)


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Triton SwiGLU; same contract as `reference.swiglu`."""
    return _SwiGLU.apply(gate, up)
