"""Triton kernels of chunked gated linear attention, forward and backward (math in README.md).

Three kernels:
  _recurrence_kernel  the loop over chunks, per (Dk tile, Dv tile, b·h). Forward: the state at
                      each chunk's start, S_n (n = 0..N, S_N the final state). Reverse: dS_n,
                      the gradient reaching S_n, from dS_N = d(final state) down to dS_0.
  _output_kernel      o for SUB rows of a chunk: (q ⊙ e^b) S_n plus the intra-chunk decayed
                      causal scores @ v.
  _backward_kernel    dq, dk, dv for SUB rows of a chunk, from S_n and dS_{n+1}.
d(log_decay) follows from dq, dk and the final state in PyTorch glue (one reverse cumsum).

Layout: q, k, do, ... contiguous (B, H, T, D) and read as (B·H, T, D); b, the chunk-local
cumulative log decay, fp32 (B, H, T, G) with G = 1 (per head) or Dk (per channel); states fp32
(B, H, N+1, Dk, Dv). Rows past T and channels past Dk / Dv are masked on load (zeros) and
store. Every exponent is masked to -inf where its row is invalid or non-causal, so no exp()
of a positive number is taken anywhere: strong gates cannot overflow.

Per-channel decays (DECAY=2) resolve the scores inside a chunk in sub-chunks of SUB = 16 rows:
exactly per channel within a sub-chunk (a (SUB, SUB, BK) product), and between sub-chunks
through a reference point r, the cumulative log decay at the end of the earlier sub-chunk, so
e^(b_i - b_j) = e^(b_i - r) e^(r - b_j) with both exponents ≤ 0. For per-head or no decay the
whole chunk is one sub-chunk (SUB = C) and scores come from one tl.dot.

Precision: tl.dot takes operands in the inputs' dtype and accumulates in fp32. For fp32
inputs it runs with input_precision="ieee" (exact fp32, so GPU results match the reference to
~1e-6); for fp16 / bf16 inputs precision is the dtype's own ("tf32" only names the default).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from nas.kernels import new_empty

SUB_CHUNK = 16  # rows per sub-chunk for per-channel decays (also tl.dot's minimum size)


# -- helpers ------------------------------------------------------------------------------------
@triton.jit
def _load_rows(ptr, bh, t0, T, D, d0, R: tl.constexpr, BD: tl.constexpr):
    """Rows t0..t0+R-1, channels d0..d0+BD-1 of the (T, D) matrix of head bh; zeros outside."""
    rows = t0 + tl.arange(0, R)
    cols = d0 + tl.arange(0, BD)
    mask = (rows < T)[:, None] & (cols < D)[None, :]
    return tl.load(ptr + bh * T * D + rows[:, None] * D + cols[None, :], mask=mask, other=0.0)


@triton.jit
def _load_row(ptr, bh, t, T, D, d0, BD: tl.constexpr):
    """Row t (< T), channels d0..d0+BD-1 of head bh's (T, D) matrix, as (1, BD); 0 past D."""
    cols = d0 + tl.arange(0, BD)
    return tl.load(ptr + bh * T * D + t * D + cols, mask=cols < D, other=0.0)[None, :]


@triton.jit
def _store_rows(ptr, x, bh, t0, T, D, d0, R: tl.constexpr, BD: tl.constexpr):
    rows = t0 + tl.arange(0, R)
    cols = d0 + tl.arange(0, BD)
    mask = (rows < T)[:, None] & (cols < D)[None, :]
    ptrs = ptr + bh * T * D + rows[:, None] * D + cols[None, :]
    tl.store(ptrs, x.to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def _state_ptrs(ptr, slot, Dk, Dv, k0, v0, BK: tl.constexpr, BV: tl.constexpr):
    """Pointers and mask of a (BK, BV) tile of the slot-th (Dk, Dv) matrix."""
    rows = k0 + tl.arange(0, BK)
    cols = v0 + tl.arange(0, BV)
    mask = (rows < Dk)[:, None] & (cols < Dv)[None, :]
    return ptr + slot * Dk * Dv + rows[:, None] * Dv + cols[None, :], mask


@triton.jit
def _masked_exp(x, mask):
    """exp(x) where mask, else 0 (the exponent is replaced by -inf, never exponentiated)."""
    return tl.exp(tl.where(mask, x, float("-inf")))


# -- kernels ------------------------------------------------------------------------------------
@triton.jit
def _recurrence_kernel(
    x_ptr, y_ptr, b_ptr, s0_ptr, states_ptr,
    T, Dk, Dv, G, N,
    C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, BG: tl.constexpr,
    DECAY: tl.constexpr, HAS_S0: tl.constexpr, REVERSE: tl.constexpr, PREC: tl.constexpr,
):
    """Grid (⌈Dk/BK⌉, ⌈Dv/BV⌉, B·H). Forward (x=k, y=v, s0=S_0): stores S_n in slot n, n=0..N,
    S_{n+1} = e^{b_last} S_n + (k ⊙ e^{b_last - b})ᵀ v. Reverse (x=q, y=do, s0=dS_N): stores
    dS_n in slot n, n=N..0, dS_n = e^{b_last} dS_{n+1} + (q ⊙ e^b)ᵀ do (chunk n's rows)."""
    k0 = tl.program_id(0) * BK
    v0 = tl.program_id(1) * BV
    bh = tl.program_id(2).to(tl.int64)
    if DECAY == 2:
        g0 = k0  # per-channel decays: this program's key channels
    else:
        g0 = 0
    if HAS_S0:
        ptrs, mask = _state_ptrs(s0_ptr, bh, Dk, Dv, k0, v0, BK, BV)
        S = tl.load(ptrs, mask=mask, other=0.0).to(tl.float32)  # (BK, BV)
    else:
        S = tl.zeros([BK, BV], dtype=tl.float32)
    dt = x_ptr.dtype.element_ty
    for step in range(N):
        if REVERSE:
            n = N - 1 - step
            slot = n + 1
        else:
            n = step
            slot = n
        ptrs, mask = _state_ptrs(states_ptr, bh * (N + 1) + slot, Dk, Dv, k0, v0, BK, BV)
        tl.store(ptrs, S, mask=mask)
        t0 = n * C
        x = _load_rows(x_ptr, bh, t0, T, Dk, k0, C, BK)  # (C, BK)
        y = _load_rows(y_ptr, bh, t0, T, Dv, v0, C, BV).to(dt)  # (C, BV)
        if DECAY > 0:
            ok = (t0 + tl.arange(0, C) < T)[:, None]  # (C, 1)
            b = _load_rows(b_ptr, bh, t0, T, G, g0, C, BG)  # (C, BG)
            b_last = _load_row(b_ptr, bh, tl.minimum(t0 + C, T) - 1, T, G, g0, BG)  # (1, BG)
            if REVERSE:
                x = (x * _masked_exp(b, ok)).to(dt)
            else:
                x = (x * _masked_exp(b_last - b, ok)).to(dt)
            S = S * tl.trans(tl.exp(b_last))  # (BG, 1): decays the key rows
        S += tl.dot(tl.trans(x), y, input_precision=PREC)  # (BK, BV)
    if REVERSE:
        slot = 0
    else:
        slot = N
    ptrs, mask = _state_ptrs(states_ptr, bh * (N + 1) + slot, Dk, Dv, k0, v0, BK, BV)
    tl.store(ptrs, S, mask=mask)


@triton.jit
def _output_kernel(
    q_ptr, k_ptr, v_ptr, b_ptr, states_ptr, o_ptr,
    T, Dk, Dv, G, N,
    C: tl.constexpr, SUB: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, BG: tl.constexpr,
    DECAY: tl.constexpr, PREC: tl.constexpr,
):
    """Grid (N·C/SUB, ⌈Dv/BV⌉, B·H): o for rows ts..ts+SUB-1 (sub-chunk p of chunk n), value
    channels v0..v0+BV-1: o_i = (q_i ⊙ e^{b_i}) S_n + Σ_{j ≤ i in the chunk} A_ij v_j with
    A_ij = Σ_c q_ic k_jc e^{b_ic - b_jc}."""
    P: tl.constexpr = C // SUB
    n = tl.program_id(0) // P
    p = tl.program_id(0) % P
    v0 = tl.program_id(1) * BV
    bh = tl.program_id(2).to(tl.int64)
    t0 = n * C
    ts = t0 + p * SUB
    dt = q_ptr.dtype.element_ty
    q = _load_rows(q_ptr, bh, ts, T, Dk, 0, SUB, BK)  # (SUB, BK)
    k = _load_rows(k_ptr, bh, ts, T, Dk, 0, SUB, BK)  # (SUB, BK)
    v = _load_rows(v_ptr, bh, ts, T, Dv, v0, SUB, BV).to(dt)  # (SUB, BV)
    ptrs, mask = _state_ptrs(states_ptr, bh * (N + 1) + n, Dk, Dv, 0, v0, BK, BV)
    S = tl.load(ptrs, mask=mask, other=0.0).to(dt)  # (BK, BV)
    i = tl.arange(0, SUB)
    ok = ts + i < T  # (SUB,)
    causal = (i[:, None] >= i[None, :]) & ok[:, None] & ok[None, :]  # (SUB, SUB): j ≤ i
    if DECAY == 0:
        o = tl.dot(q, S, input_precision=PREC)  # (SUB, BV)
        A = tl.where(causal, tl.dot(q, tl.trans(k), input_precision=PREC), 0.0)
    else:
        b = _load_rows(b_ptr, bh, ts, T, G, 0, SUB, BG)  # (SUB, BG)
        o = tl.dot((q * _masked_exp(b, ok[:, None])).to(dt), S, input_precision=PREC)
        if DECAY == 1:
            b1 = tl.sum(b, axis=1)  # (SUB,)
            A = tl.dot(q, tl.trans(k), input_precision=PREC)
            A = A * _masked_exp(b1[:, None] - b1[None, :], causal)  # (SUB, SUB)
        else:
            E = _masked_exp(b[:, None, :] - b[None, :, :], causal[:, :, None])  # (SUB, SUB, BK)
            A = tl.sum(q[:, None, :] * k[None, :, :] * E, axis=2)  # (SUB, SUB)
            if p > 0:  # earlier sub-chunks meet this one at r, b at the row before ts
                r = _load_row(b_ptr, bh, tl.minimum(ts - 1, T - 1), T, G, 0, BG)  # (1, BK)
                q_rel = (q * _masked_exp(b - r, ok[:, None])).to(dt)  # (SUB, BK)
                for pp in range(0, p):
                    tj = t0 + pp * SUB
                    okj = (tj + i < T)[:, None]
                    kj = _load_rows(k_ptr, bh, tj, T, Dk, 0, SUB, BK)
                    bj = _load_rows(b_ptr, bh, tj, T, G, 0, SUB, BG)
                    vj = _load_rows(v_ptr, bh, tj, T, Dv, v0, SUB, BV).to(dt)
                    k_rel = (kj * _masked_exp(r - bj, okj)).to(dt)  # (SUB, BK)
                    Aj = tl.dot(q_rel, tl.trans(k_rel), input_precision=PREC)  # (SUB, SUB)
                    o += tl.dot(Aj.to(dt), vj, input_precision=PREC)
    o += tl.dot(A.to(dt), v, input_precision=PREC)
    _store_rows(o_ptr, o, bh, ts, T, Dv, v0, SUB, BV)


@triton.jit
def _backward_kernel(
    q_ptr, k_ptr, v_ptr, b_ptr, do_ptr, states_ptr, dstates_ptr, dq_ptr, dk_ptr, dv_ptr,
    T, Dk, Dv, G, N,
    C: tl.constexpr, SUB: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, BG: tl.constexpr,
    DECAY: tl.constexpr, PREC: tl.constexpr,
):
    """Grid (N·C/SUB, B·H): dq, dk, dv of rows ts..ts+SUB-1 (sub-chunk s of chunk n).

    dq_i = e^{b_i} ⊙ (do_i S_nᵀ) + Σ_{j ≤ i} dP_ij k_j ⊙ e^{b_i - b_j}
    dk_j = e^{b_last - b_j} ⊙ (v_j dS_{n+1}ᵀ) + Σ_{i ≥ j} dP_ij q_i ⊙ e^{b_i - b_j}
    dv_j = (k_j ⊙ e^{b_last - b_j}) dS_{n+1} + Σ_{i ≥ j} A_ij do_i,   dP_ij = do_i · v_j,
    sums over rows of chunk n; dq looks at sub-chunks up to s, dk and dv from s on.
    """
    P: tl.constexpr = C // SUB
    n = tl.program_id(0) // P
    s = tl.program_id(0) % P
    bh = tl.program_id(1).to(tl.int64)
    t0 = n * C
    ts = t0 + s * SUB
    dt = q_ptr.dtype.element_ty
    q = _load_rows(q_ptr, bh, ts, T, Dk, 0, SUB, BK)  # (SUB, BK)
    k = _load_rows(k_ptr, bh, ts, T, Dk, 0, SUB, BK)  # (SUB, BK)
    v = _load_rows(v_ptr, bh, ts, T, Dv, 0, SUB, BV).to(dt)  # (SUB, BV)
    do = _load_rows(do_ptr, bh, ts, T, Dv, 0, SUB, BV).to(dt)  # (SUB, BV)
    ptrs, mask = _state_ptrs(states_ptr, bh * (N + 1) + n, Dk, Dv, 0, 0, BK, BV)
    S = tl.load(ptrs, mask=mask, other=0.0).to(dt)  # (BK, BV): S_n
    ptrs, mask = _state_ptrs(dstates_ptr, bh * (N + 1) + n + 1, Dk, Dv, 0, 0, BK, BV)
    dS = tl.load(ptrs, mask=mask, other=0.0).to(dt)  # (BK, BV): dS_{n+1}
    i = tl.arange(0, SUB)
    ok = ts + i < T  # (SUB,)
    causal = (i[:, None] >= i[None, :]) & ok[:, None] & ok[None, :]  # (SUB, SUB): j ≤ i
    dP = tl.dot(do, tl.trans(v), input_precision=PREC)  # (SUB, SUB): do_i · v_j
    dq = tl.dot(do, tl.trans(S), input_precision=PREC)  # (SUB, BK)
    dk = tl.dot(v, tl.trans(dS), input_precision=PREC)  # (SUB, BK)
    if DECAY == 0:
        dv = tl.dot(k, dS, input_precision=PREC)  # (SUB, BV)
        A = tl.where(causal, tl.dot(q, tl.trans(k), input_precision=PREC), 0.0)
        dPm = tl.where(causal, dP, 0.0)
        dq += tl.dot(dPm.to(dt), k, input_precision=PREC)
        dk += tl.dot(tl.trans(dPm).to(dt), q, input_precision=PREC)
    else:
        b = _load_rows(b_ptr, bh, ts, T, G, 0, SUB, BG)  # (SUB, BG)
        b_last = _load_row(b_ptr, bh, tl.minimum(t0 + C, T) - 1, T, G, 0, BG)  # (1, BG)
        dq = dq * _masked_exp(b, ok[:, None])
        w = _masked_exp(b_last - b, ok[:, None])  # (SUB, BG): decay from j to the chunk's end
        dk = dk * w
        dv = tl.dot((k * w).to(dt), dS, input_precision=PREC)  # (SUB, BV)
        if DECAY == 1:
            b1 = tl.sum(b, axis=1)  # (SUB,)
            E = _masked_exp(b1[:, None] - b1[None, :], causal)  # (SUB, SUB)
            A = tl.dot(q, tl.trans(k), input_precision=PREC) * E
            dPm = dP * E
            dq += tl.dot(dPm.to(dt), k, input_precision=PREC)
            dk += tl.dot(tl.trans(dPm).to(dt), q, input_precision=PREC)
        else:
            E = _masked_exp(b[:, None, :] - b[None, :, :], causal[:, :, None])  # (SUB, SUB, BK)
            A = tl.sum(q[:, None, :] * k[None, :, :] * E, axis=2)  # (SUB, SUB)
            dq += tl.sum(dP[:, :, None] * k[None, :, :] * E, axis=1)  # (SUB, BK)
            dk += tl.sum(dP[:, :, None] * q[:, None, :] * E, axis=0)  # (SUB, BK)
            if s > 0:  # dq from earlier sub-chunks, through r = b at the row before ts
                r = _load_row(b_ptr, bh, tl.minimum(ts - 1, T - 1), T, G, 0, BG)  # (1, BK)
                acc = tl.zeros([SUB, BK], dtype=tl.float32)
                for pp in range(0, s):
                    tj = t0 + pp * SUB
                    okj = (tj + i < T)[:, None]
                    kj = _load_rows(k_ptr, bh, tj, T, Dk, 0, SUB, BK)
                    bj = _load_rows(b_ptr, bh, tj, T, G, 0, SUB, BG)
                    vj = _load_rows(v_ptr, bh, tj, T, Dv, 0, SUB, BV).to(dt)
                    k_rel = (kj * _masked_exp(r - bj, okj)).to(dt)  # (SUB, BK)
                    dPj = tl.dot(do, tl.trans(vj), input_precision=PREC)  # (SUB, SUB)
                    acc += tl.dot(dPj.to(dt), k_rel, input_precision=PREC)
                dq += acc * _masked_exp(b - r, ok[:, None])
            # dk, dv from later sub-chunks, through r = b at the end of this sub-chunk
            n_sub = tl.cdiv(tl.minimum(t0 + C, T) - t0, SUB)
            r_k = _load_row(b_ptr, bh, tl.minimum(ts + SUB, T) - 1, T, G, 0, BG)  # (1, BK)
            w_k = _masked_exp(r_k - b, ok[:, None])  # (SUB, BK)
            k_rel = (k * w_k).to(dt)
            acc_k = tl.zeros([SUB, BK], dtype=tl.float32)
            for pp in range(s + 1, n_sub):
                ti = t0 + pp * SUB
                oki = (ti + i < T)[:, None]
                qi = _load_rows(q_ptr, bh, ti, T, Dk, 0, SUB, BK)
                bi = _load_rows(b_ptr, bh, ti, T, G, 0, SUB, BG)
                doi = _load_rows(do_ptr, bh, ti, T, Dv, 0, SUB, BV).to(dt)
                q_rel = (qi * _masked_exp(bi - r_k, oki)).to(dt)  # (SUB, BK)
                Ai = tl.dot(q_rel, tl.trans(k_rel), input_precision=PREC)  # (SUB_i, SUB_j)
                dv += tl.dot(tl.trans(Ai).to(dt), doi, input_precision=PREC)
                dPi = tl.dot(doi, tl.trans(v), input_precision=PREC)  # (SUB_i, SUB_j)
                acc_k += tl.dot(tl.trans(dPi).to(dt), q_rel, input_precision=PREC)
            dk += acc_k * w_k
    dv += tl.dot(tl.trans(A).to(dt), do, input_precision=PREC)
    _store_rows(dq_ptr, dq, bh, ts, T, Dk, 0, SUB, BK)
    _store_rows(dk_ptr, dk, bh, ts, T, Dk, 0, SUB, BK)
    _store_rows(dv_ptr, dv, bh, ts, T, Dv, 0, SUB, BV)


# -- launchers ----------------------------------------------------------------------------------
class _Config:
    """Shapes and compile-time choices shared by the launches of one call."""

    def __init__(self, q: torch.Tensor, v: torch.Tensor, decay_kind: int, chunk_size: int):
        B, H, T, Dk = q.shape
        self.B, self.H, self.T, self.Dk, self.Dv = B, H, T, Dk, v.shape[-1]
        # a short sequence needs no chunk longer than itself (rounded up to tl.dot's 16)
        self.C = min(chunk_size, max(SUB_CHUNK, triton.next_power_of_2(T)))
        self.N = triton.cdiv(T, self.C)
        self.SUB = SUB_CHUNK if decay_kind == 2 else self.C
        self.DECAY = decay_kind
        self.G = Dk if decay_kind == 2 else 1
        self.BK = max(16, triton.next_power_of_2(Dk))
        self.BV = max(16, triton.next_power_of_2(self.Dv))
        self.BG = self.BK if decay_kind == 2 else 1
        # fp32 inputs: exact fp32 dots (no tf32 rounding); fp16/bf16: the dtype's own precision
        self.PREC = "ieee" if q.dtype == torch.float32 else "tf32"

    def recurrence(self, x, y, b, s0, states, reverse: bool) -> None:
        BK, BV = min(self.BK, 64), min(self.BV, 64)
        grid = (triton.cdiv(self.Dk, BK), triton.cdiv(self.Dv, BV), self.B * self.H)
        _recurrence_kernel[grid](
            x, y, b, s0 if s0 is not None else states, states,
            self.T, self.Dk, self.Dv, self.G, self.N,
            C=self.C, BK=BK, BV=BV, BG=min(self.BG, BK), DECAY=self.DECAY,
            HAS_S0=s0 is not None, REVERSE=reverse, PREC=self.PREC,
        )

    def output(self, q, k, v, b, states, o) -> None:
        BV = min(self.BV, 64)
        grid = (self.N * (self.C // self.SUB), triton.cdiv(self.Dv, BV), self.B * self.H)
        _output_kernel[grid](
            q, k, v, b, states, o, self.T, self.Dk, self.Dv, self.G, self.N,
            C=self.C, SUB=self.SUB, BK=self.BK, BV=BV, BG=self.BG, DECAY=self.DECAY,
            PREC=self.PREC,
        )

    def backward(self, q, k, v, b, do, states, dstates, dq, dk, dv) -> None:
        grid = (self.N * (self.C // self.SUB), self.B * self.H)
        _backward_kernel[grid](
            q, k, v, b, do, states, dstates, dq, dk, dv, self.T, self.Dk, self.Dv, self.G,
            self.N, C=self.C, SUB=self.SUB, BK=self.BK, BV=self.BV, BG=self.BG,
            DECAY=self.DECAY, PREC=self.PREC,
        )


def _chunk_cumsum(log_decay: torch.Tensor, C: int) -> torch.Tensor:
    """b: the cumulative sum of log_decay (B, H, T, G) restarting at each chunk, fp32,
    contiguous (B, H, T, G)."""
    B, H, T, G = log_decay.shape
    g = torch.nn.functional.pad(log_decay.float(), (0, 0, 0, -T % C))  # (B, H, N·C, G)
    b = g.view(B, H, -1, C, G).cumsum(dim=3)  # (B, H, N, C, G)
    return b.view(B, H, -1, G)[:, :, :T].contiguous()  # (B, H, T, G)


class _ChunkGLA(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, log_decay, initial_state, chunk_size):
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        decay_kind = 0 if log_decay is None else (1 if log_decay.shape[-1] == 1 else 2)
        cfg = _Config(q, v, decay_kind, chunk_size)
        b = q if log_decay is None else _chunk_cumsum(log_decay, cfg.C)  # q: unused pointer
        h0 = None if initial_state is None else initial_state.contiguous()
        states = new_empty((cfg.B, cfg.H, cfg.N + 1, cfg.Dk, cfg.Dv), q, torch.float32)
        cfg.recurrence(k, v, b, h0, states, reverse=False)
        o = new_empty((cfg.B, cfg.H, cfg.T, cfg.Dv), v)
        cfg.output(q, k, v, b, states, o)
        final = states[:, :, cfg.N].clone()  # (B, H, Dk, Dv)
        ctx.save_for_backward(q, k, v, b, states)
        ctx.cfg = cfg
        ctx.log_decay_dtype = None if log_decay is None else log_decay.dtype
        ctx.h0_dtype = None if initial_state is None else initial_state.dtype
        ctx.set_materialize_grads(False)
        return o, final

    @staticmethod
    def backward(ctx, do, dfinal):
        q, k, v, b, states = ctx.saved_tensors
        cfg = ctx.cfg
        do = torch.zeros_like(v) if do is None else do.contiguous()
        dfinal = None if dfinal is None else dfinal.contiguous()
        dstates = new_empty(states.shape, q, torch.float32)
        cfg.recurrence(q, do, b, dfinal, dstates, reverse=True)
        # dq, dk in fp32: d(log_decay) is computed from them before they are cast to the inputs'
        dq = new_empty(q.shape, q, torch.float32)
        dk = new_empty(k.shape, k, torch.float32)
        dv = new_empty(v.shape, v)
        cfg.backward(q, k, v, b, do, states, dstates, dq, dk, dv)
        dlog = None
        if ctx.needs_input_grad[3]:
            dlog = _log_decay_grad(q, k, dq, dk, states[:, :, -1], dfinal, cfg.G)
            dlog = dlog.to(ctx.log_decay_dtype)
        dh0 = None
        if ctx.needs_input_grad[4]:
            dh0 = dstates[:, :, 0].to(ctx.h0_dtype, copy=True)  # (B, H, Dk, Dv)
        return dq.to(q.dtype), dk.to(k.dtype), dv, dlog, dh0, None


def _log_decay_grad(q, k, dq, dk, final, dfinal, G: int) -> torch.Tensor:
    """d log α_t = Σ_{s ≥ t} (q_s ⊙ dq_s - k_s ⊙ dk_s) + Σ_v (S_T ⊙ dS_T)  (README.md),
    summed over key channels for a per-head decay (G = 1). Returns (B, H, T, G) fp32."""
    dB = q.float() * dq - k.float() * dk  # (B, H, T, Dk)
    if G == 1:
        dB = dB.sum(dim=-1, keepdim=True)  # (B, H, T, 1)
    dlog = dB.flip(2).cumsum(dim=2).flip(2)  # reverse cumulative sum over time
    if dfinal is not None:
        d_end = (final * dfinal.float()).sum(dim=-1)  # (B, H, Dk)
        if G == 1:
            d_end = d_end.sum(dim=-1, keepdim=True)  # (B, H, 1)
        dlog = dlog + d_end[:, :, None, :]  # every step's decay reaches S_T
    return dlog


def chunk_gla_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor | None = None,
    *,
    chunk_size: int = 64,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The Triton path of `nas.kernels.gla.chunk_gla` (same contract; inputs validated there)."""
    o, final = _ChunkGLA.apply(q, k, v, log_decay, initial_state, chunk_size)
    return o, (final if output_final_state else None)
