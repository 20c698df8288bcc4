"""Triton short causal depthwise convolution: forward, backward (dx and dweight) and the
one-token decode update. Imported only when a kernel is launched.

Programs own (BLOCK_T tokens × BLOCK_D channels) tiles of one sequence; the K taps are a
compile-time unrolled loop of shifted, masked loads (positions before 0 or past T read 0).
The backward is the same convolution run the other way in time,

    dx[s] = Σ_j weight[:, j] · dy[s + K - 1 - j]         (dy = 0 past the end)
    dweight[:, j] = Σ_{b, t} dy[b, t] · x[b, t - K + 1 + j]

and each program sums dweight over its tokens into its own row of a partial buffer, summed
afterwards in a fixed order (deterministic). x and dy may have any strides.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from nas.kernels import interpreting, new_empty

BLOCK_T = 64
BLOCK_D = 64


@triton.jit
def _conv_fwd(
    X, W, Y, T, D, sx_b, sx_t, sx_d, sy_b, sy_t,
    K: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    b = tl.program_id(2).to(tl.int64)
    d_ok = d < D
    acc = tl.zeros((BLOCK_T, BLOCK_D), dtype=tl.float32)
    for j in tl.static_range(K):
        src = t - (K - 1) + j  # the input position tap j reads
        mask = ((src >= 0) & (src < T))[:, None] & d_ok[None, :]
        xv = tl.load(X + b * sx_b + src[:, None] * sx_t + d[None, :] * sx_d, mask=mask, other=0.0)
        w = tl.load(W + d * K + j, mask=d_ok, other=0.0).to(tl.float32)
        acc += xv.to(tl.float32) * w[None, :]
    mask = (t < T)[:, None] & d_ok[None, :]
    tl.store(Y + b * sy_b + t[:, None] * sy_t + d[None, :], acc.to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _conv_bwd(
    X, W, DY, DX, DW_PARTIAL, T, D, tiles_per_prog,
    sx_b, sx_t, sx_d, sdy_b, sdy_t, sdy_d, sdx_b, sdx_t,
    K: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    chunk = tl.program_id(0)
    d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    b = tl.program_id(2).to(tl.int64)
    d_ok = d < D
    taps = tl.arange(0, BLOCK_K)
    dw = tl.zeros((BLOCK_D, BLOCK_K), dtype=tl.float32)  # column j: this program's Σ for tap j
    for i in range(tiles_per_prog):
        t = (chunk * tiles_per_prog + i) * BLOCK_T + tl.arange(0, BLOCK_T)
        t_ok = (t < T)[:, None] & d_ok[None, :]
        dy = tl.load(DY + b * sdy_b + t[:, None] * sdy_t + d[None, :] * sdy_d, mask=t_ok, other=0.0)
        dy = dy.to(tl.float32)
        dx = tl.zeros((BLOCK_T, BLOCK_D), dtype=tl.float32)
        for j in tl.static_range(K):
            w = tl.load(W + d * K + j, mask=d_ok, other=0.0).to(tl.float32)
            out = t + (K - 1 - j)  # the output position that read x[t] through tap j
            mask = (out < T)[:, None] & d_ok[None, :]
            dy_out = tl.load(DY + b * sdy_b + out[:, None] * sdy_t + d[None, :] * sdy_d,
                             mask=mask, other=0.0)  # fmt: skip
            dx += dy_out.to(tl.float32) * w[None, :]
            src = t - (K - 1) + j  # the input position output t read through tap j
            mask = ((src >= 0) & (src < T))[:, None] & d_ok[None, :]
            xv = tl.load(X + b * sx_b + src[:, None] * sx_t + d[None, :] * sx_d,
                         mask=mask, other=0.0)  # fmt: skip
            part = tl.sum(dy * xv.to(tl.float32), axis=0)  # (BLOCK_D,)
            dw += tl.where(taps[None, :] == j, part[:, None], 0.0)
        tl.store(DX + b * sdx_b + t[:, None] * sdx_t + d[None, :], dx.to(DX.dtype.element_ty),
                 mask=t_ok)  # fmt: skip
    row = b * tl.num_programs(0) + chunk
    mask = d_ok[:, None] & (taps < K)[None, :]
    tl.store(DW_PARTIAL + row * D * K + d[:, None] * K + taps[None, :], dw, mask=mask)


@triton.jit
def _conv_update(
    X, S, W, Y, S_NEW, D, sx_b, sx_d, ss_b, ss_k, ss_d,
    K: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    b = tl.program_id(0).to(tl.int64)
    d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    d_ok = d < D
    x = tl.load(X + b * sx_b + d * sx_d, mask=d_ok, other=0.0)
    w = tl.load(W + d * K + (K - 1), mask=d_ok, other=0.0).to(tl.float32)
    acc = x.to(tl.float32) * w
    new = S_NEW + b * (K - 1) * D + d  # the new state is contiguous (B, K-1, D)
    for j in tl.static_range(K - 1):
        s = tl.load(S + b * ss_b + j * ss_k + d * ss_d, mask=d_ok, other=0.0)
        w = tl.load(W + d * K + j, mask=d_ok, other=0.0).to(tl.float32)
        acc += s.to(tl.float32) * w
        if j > 0:
            tl.store(new + (j - 1) * D, s.to(S_NEW.dtype.element_ty), mask=d_ok)
    tl.store(new + (K - 2) * D, x.to(S_NEW.dtype.element_ty), mask=d_ok)
    tl.store(Y + b * D + d, acc.to(Y.dtype.element_ty), mask=d_ok)


def _max_programs(device: torch.device) -> int:
    """Programs of the backward launch: enough to fill the GPU, few in the interpreter (so each
    runs several time tiles and the loop is exercised)."""
    if device.type == "cuda" and not interpreting():
        return 4 * torch.cuda.get_device_properties(device).multi_processor_count
    return 4


def _check(x: torch.Tensor, weight: torch.Tensor) -> None:
    if weight.dim() != 2 or x.shape[-1] != weight.shape[0]:
        raise ValueError(
            f"causal_conv1d: weight {tuple(weight.shape)} must be (D, K) with D = x's last "
            f"dimension {x.shape[-1]}"
        )


class _CausalConv1d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, block_t: int, block_d: int):
        _check(x, weight)
        B, T, D = x.shape
        K = weight.shape[1]
        w = weight.contiguous()
        y = new_empty((B, T, D), x)
        grid = (triton.cdiv(T, block_t), triton.cdiv(D, block_d), B)
        if y.numel():
            _conv_fwd[grid](
                x, w, y, T, D, *x.stride(), y.stride(0), y.stride(1),
                K=K, BLOCK_T=block_t, BLOCK_D=block_d,
            )  # fmt: skip
        ctx.save_for_backward(x, w)
        ctx.blocks = (block_t, block_d)
        ctx.w_dtype = weight.dtype
        return y

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x, w = ctx.saved_tensors
        block_t, block_d = ctx.blocks
        B, T, D = x.shape
        K = w.shape[1]
        dx = new_empty((B, T, D), x)
        d_blocks = triton.cdiv(D, block_d)
        tiles = triton.cdiv(T, block_t)
        chunks = min(tiles, max(1, _max_programs(x.device) // max(1, B * d_blocks)))
        tiles_per_prog = triton.cdiv(tiles, max(1, chunks))
        chunks = triton.cdiv(tiles, tiles_per_prog) if tiles else 0
        dw_partial = new_empty((B * chunks, D, K), x, dtype=torch.float32)
        if dx.numel():
            _conv_bwd[(chunks, d_blocks, B)](
                x, w, dy, dx, dw_partial, T, D, tiles_per_prog,
                *x.stride(), *dy.stride(), dx.stride(0), dx.stride(1),
                K=K, BLOCK_K=triton.next_power_of_2(K), BLOCK_T=block_t, BLOCK_D=block_d,
            )  # fmt: skip
        dw = dw_partial.sum(dim=0).to(ctx.w_dtype)  # (D, K)
        return dx, dw, None, None


def causal_conv1d(
    x: torch.Tensor, weight: torch.Tensor, block_t: int = BLOCK_T, block_d: int = BLOCK_D
) -> torch.Tensor:
    """Triton causal depthwise conv; same contract as `reference.causal_conv1d`. The block
    sizes (powers of two) are tile shapes, exposed for the tests."""
    return _CausalConv1d.apply(x, weight, block_t, block_d)


def causal_conv1d_update(
    x_t: torch.Tensor, conv_state: torch.Tensor, weight: torch.Tensor, block_d: int = BLOCK_D
) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton decode step (no autograd); same contract as `reference.causal_conv1d_update`."""
    _check(x_t, weight)
    B, D = x_t.shape
    K = weight.shape[1]
    if conv_state.shape != (B, K - 1, D):
        raise ValueError(
            f"causal_conv1d_update: conv_state {tuple(conv_state.shape)} must be "
            f"(B, K-1, D) = {(B, K - 1, D)}"
        )
    w = weight.detach().contiguous()
    y = new_empty((B, D), x_t)
    state = new_empty((B, K - 1, D), conv_state)
    if y.numel():
        _conv_update[(B, triton.cdiv(D, block_d))](
            x_t.detach(), conv_state.detach(), w, y, state, D, *x_t.stride(), *conv_state.stride(),
            K=K, BLOCK_D=block_d,
        )  # fmt: skip
    return y, state
