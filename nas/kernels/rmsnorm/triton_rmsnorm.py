"""Triton RMSNorm: a forward kernel that also saves 1/rms per row, and a backward kernel that
writes dx and per-program partial sums of dweight (summed afterwards, so the result is
deterministic). Imported only when a kernel is launched.

Rows are tiles of BLOCK_M rows × the whole last dimension (BLOCK_D = next power of two ≥ D,
masked), so one program sees every element of its rows and reduces them in registers.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from nas.kernels import interpreting, new_empty

MAX_TILE = 4096  # elements of one (BLOCK_M, BLOCK_D) tile


@triton.jit
def _rmsnorm_fwd(
    X, W, Y, RSTD, M, D, stride_x, stride_y, eps,
    BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_D)
    row_ok = rows < M
    col_ok = cols < D
    mask = row_ok[:, None] & col_ok[None, :]
    x = tl.load(X + rows[:, None] * stride_x + cols[None, :], mask=mask, other=0.0)
    x = x.to(tl.float32)
    rstd = tl.rsqrt(tl.sum(x * x, axis=1) / D + eps)  # (BLOCK_M,)
    w = tl.load(W + cols, mask=col_ok, other=0.0).to(tl.float32)
    y = x * rstd[:, None] * w[None, :]
    tl.store(Y + rows[:, None] * stride_y + cols[None, :], y.to(Y.dtype.element_ty), mask=mask)
    tl.store(RSTD + rows, rstd, mask=row_ok)


@triton.jit
def _rmsnorm_bwd(
    X, W, DY, RSTD, DX, DW_PARTIAL, M, D, stride_x, stride_dy, stride_dx,
    BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    step = tl.num_programs(0) * BLOCK_M
    cols = tl.arange(0, BLOCK_D)
    col_ok = cols < D
    w = tl.load(W + cols, mask=col_ok, other=0.0).to(tl.float32)
    dw = tl.zeros((BLOCK_D,), dtype=tl.float32)
    for start in range(pid * BLOCK_M, M, step):  # row tiles pid, pid + programs, ...
        rows = start + tl.arange(0, BLOCK_M)
        row_ok = rows < M
        mask = row_ok[:, None] & col_ok[None, :]
        x = tl.load(X + rows[:, None] * stride_x + cols[None, :], mask=mask, other=0.0)
        x = x.to(tl.float32)
        dy = tl.load(DY + rows[:, None] * stride_dy + cols[None, :], mask=mask, other=0.0)
        dy = dy.to(tl.float32)
        rstd = tl.load(RSTD + rows, mask=row_ok, other=0.0)
        g = dy * w[None, :]
        c = tl.sum(g * x, axis=1) / D  # (BLOCK_M,): mean(g · x)
        dx = rstd[:, None] * g - x * (rstd * rstd * rstd * c)[:, None]
        tl.store(DX + rows[:, None] * stride_dx + cols[None, :], dx.to(DX.dtype.element_ty),
                 mask=mask)  # fmt: skip
        dw += tl.sum(dy * x * rstd[:, None], axis=0)
    tl.store(DW_PARTIAL + pid * D + cols, dw, mask=col_ok)


def _blocks(D: int) -> tuple[int, int]:
    block_d = triton.next_power_of_2(D)
    block_m = max(1, min(16, MAX_TILE // block_d))
    return block_m, block_d


def _max_programs(device: torch.device) -> int:
    """Programs of the backward launch: enough to fill the GPU, few in the interpreter (so each
    runs several row tiles and the loop is exercised)."""
    if device.type == "cuda" and not interpreting():
        return 4 * torch.cuda.get_device_properties(device).multi_processor_count
    return 4


def _rows(t: torch.Tensor, D: int) -> torch.Tensor:
    """t (..., D) as a (M, D) matrix with unit column stride (a view when possible)."""
    t = t.reshape(-1, D)  # (M, D)
    return t if t.stride(-1) == 1 else t.contiguous()


class _RMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        D = x.shape[-1]
        x2 = _rows(x, D)  # (M, D)
        w = weight.contiguous()
        M = x2.shape[0]
        y = new_empty((M, D), x)
        rstd = new_empty((M,), x, dtype=torch.float32)
        block_m, block_d = _blocks(D)
        grid = (max(1, triton.cdiv(M, block_m)),)
        _rmsnorm_fwd[grid](
            x2, w, y, rstd, M, D, x2.stride(0), y.stride(0), eps,
            BLOCK_M=block_m, BLOCK_D=block_d,
        )  # fmt: skip
        ctx.save_for_backward(x2, w, rstd)
        ctx.x_shape = x.shape
        ctx.w_dtype = weight.dtype
        return y.view(x.shape)  # (..., D)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x2, w, rstd = ctx.saved_tensors
        M, D = x2.shape
        dy2 = _rows(dy, D)  # (M, D)
        dx = new_empty((M, D), x2)
        block_m, block_d = _blocks(D)
        programs = max(1, min(triton.cdiv(M, block_m), _max_programs(x2.device)))
        dw_partial = new_empty((programs, D), x2, dtype=torch.float32)
        _rmsnorm_bwd[(programs,)](
            x2, w, dy2, rstd, dx, dw_partial, M, D, x2.stride(0), dy2.stride(0), dx.stride(0),
            BLOCK_M=block_m, BLOCK_D=block_d,
        )  # fmt: skip
        dw = dw_partial.sum(dim=0).to(ctx.w_dtype)  # (D,)
        return dx.view(ctx.x_shape), dw, None


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Triton RMSNorm; same contract as `reference.rms_norm`."""
    return _RMSNorm.apply(x, weight, eps)
