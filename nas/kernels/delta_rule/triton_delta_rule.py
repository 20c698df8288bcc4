"""The chunked delta rule on Triton: launch wrappers and the autograd.Function tying the forward
kernels (`triton_forward.py`) to the backward ones (`triton_backward.py`).

Forward: prepare_kernel (Tinv, U, W per chunk) -> forward_state_kernel (the chunk recurrence,
u_n and M_n) -> output_kernel (o). Backward: backward_state_kernel (the reverse recurrence, dM
and du) -> backward_chunk_kernel (dq, dk, dv, dβ, d log_decay); d initial_state is dM_0.
Every buffer is allocated with `new_empty`, so `poison_outputs` catches unwritten parts.
"""

from __future__ import annotations

import torch
import triton

from nas.kernels import new_empty
from nas.kernels.delta_rule.triton_backward import backward_chunk_kernel, backward_state_kernel
from nas.kernels.delta_rule.triton_forward import (
    forward_state_kernel,
    output_kernel,
    prepare_kernel,
)

MIN_BLOCK = 16  # tl.dot needs every dimension ≥ 16
MAX_BV = 64  # Dv tile of the recurrent and output kernels
# The chunk-gradient kernel keeps a dozen (C, BK) and (C, C) fp32 tiles live while it loops over
# Dv: at C = 64, Dk = 128 with BV = 64, 8 warps and Triton's default pipelining it asked an H100
# for 400 KB of shared memory (the limit is 227 KB). A sweep on an H100 (BENCHMARKS.md) found
# Dv tiles of 16, 2 stages and 4 warps within 5 % of the best that compiles at Dk = 64 and 128.
BACKWARD_MAX_BV = 16
BACKWARD_STAGES = 2
BACKWARD_WARPS = 4


def dot_precision(dtype: torch.dtype) -> str:
    """tl.dot input precision. Everything is computed in fp32, and on GPUs tl.dot would round
    fp32 operands to tf32 (10-bit mantissa) by default: with fp32 inputs we ask for true fp32
    ("ieee") so results match the fp32 reference tightly; with half-precision inputs, whose own
    rounding dominates, tf32 is accurate enough and faster."""
    return "ieee" if dtype == torch.float32 else "tf32"


def _num_warps(BK: int) -> int:
    """Warps per program: the chunk kernels hold several (C, BK) fp32 tiles in registers, so wide
    heads get more threads (a heuristic, not tuned: see README.md)."""
    return 4 if BK <= 64 else 8


def _blocks(q: torch.Tensor, v: torch.Tensor, chunk_size: int) -> tuple[int, int, int]:
    """(C, BK, BV): the chunk (a power of two ≥ 16, no larger than T needs) and head-dim blocks."""
    T, Dk, Dv = q.shape[2], q.shape[3], v.shape[3]
    C = max(MIN_BLOCK, triton.next_power_of_2(min(chunk_size, T)))
    BK = max(MIN_BLOCK, triton.next_power_of_2(Dk))
    BV = max(MIN_BLOCK, min(MAX_BV, triton.next_power_of_2(Dv)))
    return C, BK, BV


def _launch(q, v, beta, g, chunk_size):
    """What every launch shares: shapes (B, H, T, Dk, Dv), chunk count N, Dv-tile count NV,
    the kernels' constexprs and the gate argument (beta stands in, unread, when ungated)."""
    B, H, T, Dk = q.shape
    Dv = v.shape[-1]
    C, BK, BV = _blocks(q, v, chunk_size)
    N, NV = triton.cdiv(T, C), triton.cdiv(Dv, BV)
    consts = dict(C=C, BK=BK, BV=BV, GATED=g is not None, PREC=dot_precision(q.dtype),
                  num_warps=_num_warps(BK))
    return (B, H, T, Dk, Dv), C, N, NV, consts, (g if g is not None else beta)


def _forward(q, k, v, beta, g, h0, chunk_size, store_final):
    (B, H, T, Dk, Dv), C, N, NV, consts, g_arg = _launch(q, v, beta, g, chunk_size)
    f32 = torch.float32
    tinv = new_empty((B, H, N, C, C), q, f32)
    U = new_empty((B, H, T, Dv), q, f32)
    W = new_empty((B, H, T, Dk), q, f32)
    prepare_kernel[(N, B * H)](k, v, beta, g_arg, tinv, U, W, T, Dk, Dv, N, **consts)
    u = new_empty((B, H, T, Dv), q, f32)
    states = new_empty((B, H, N, Dk, Dv), q, f32)
    final = new_empty((B, H, Dk, Dv), q, f32) if store_final else states
    forward_state_kernel[(NV, B * H)](
        k, g_arg, W, U, u, states, h0 if h0 is not None else states, final, T, Dk, Dv, N,
        USE_INIT=h0 is not None, STORE_FINAL=store_final, **consts,
    )
    o = new_empty((B, H, T, Dv), q)
    output_kernel[(N, NV, B * H)](q, k, g_arg, states, u, o, T, Dk, Dv, N, **consts)
    return o, (final if store_final else None), (tinv, W, u, states)


def _backward(q, k, v, beta, g, saved, do, dht, chunk_size):
    tinv, W, u, states = saved
    (B, H, T, Dk, Dv), C, N, NV, consts, g_arg = _launch(q, v, beta, g, chunk_size)
    f32 = torch.float32
    dstates = new_empty((B, H, N, Dk, Dv), q, f32)
    du = new_empty((B, H, T, Dv), q, f32)
    dh0 = new_empty((B, H, Dk, Dv), q, f32)
    backward_state_kernel[(NV, B * H)](
        q, k, g_arg, W, do, dstates, du, dht if dht is not None else dh0, dh0, T, Dk, Dv, N,
        USE_DFINAL=dht is not None, **consts,
    )
    dq, dk, dv = new_empty(q.shape, q), new_empty(k.shape, k), new_empty(v.shape, v)
    dbeta = new_empty(beta.shape, beta)
    dg = new_empty(g.shape, g) if g is not None else dbeta
    chunk_consts = dict(consts, BV=min(consts["BV"], BACKWARD_MAX_BV),
                        num_stages=BACKWARD_STAGES, num_warps=BACKWARD_WARPS)
    backward_chunk_kernel[(N, B * H)](
        q, k, v, beta, g_arg, tinv, states, dstates, u, du, do, dq, dk, dv, dbeta, dg,
        T, Dk, Dv, N, **chunk_consts,
    )
    return dq, dk, dv, dbeta, (dg if g is not None else None), dh0


class ChunkDeltaRule(torch.autograd.Function):
    """(q, k, v, beta, log_decay | None, initial_state | None, chunk_size, output_final_state)
    -> (o, final_state | None); contiguous inputs, arguments as in `chunk_delta_rule`."""

    @staticmethod
    def forward(ctx, q, k, v, beta, log_decay, initial_state, chunk_size, output_final_state):
        o, final, saved = _forward(
            q, k, v, beta, log_decay, initial_state, chunk_size, output_final_state
        )
        ctx.save_for_backward(q, k, v, beta, log_decay, *saved)
        ctx.chunk_size = chunk_size
        ctx.initial_dtype = None if initial_state is None else initial_state.dtype
        ctx.set_materialize_grads(False)
        return o, final

    @staticmethod
    def backward(ctx, do, dht):
        q, k, v, beta, log_decay, *saved = ctx.saved_tensors
        do = torch.zeros_like(v) if do is None else do.contiguous()
        dht = None if dht is None else dht.contiguous()
        dq, dk, dv, dbeta, dg, dh0 = _backward(
            q, k, v, beta, log_decay, saved, do, dht, ctx.chunk_size
        )
        dh0 = None if ctx.initial_dtype is None else dh0.to(ctx.initial_dtype)
        return dq, dk, dv, dbeta, dg, dh0, None, None


def chunk_delta_rule_triton(
    q, k, v, beta, log_decay, chunk_size, initial_state, output_final_state
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The Triton path of `chunk_delta_rule` (same contract); inputs are made contiguous."""
    q, k, v, beta = (t.contiguous() for t in (q, k, v, beta))
    if log_decay is not None:
        log_decay = log_decay.contiguous()
    if initial_state is not None:
        initial_state = initial_state.contiguous()
    return ChunkDeltaRule.apply(
        q, k, v, beta, log_decay, initial_state, chunk_size, output_final_state
    )
