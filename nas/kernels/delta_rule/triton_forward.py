"""Triton kernels of the chunked delta rule's forward pass (math in README.md).

Layout contract shared by every kernel here and in `triton_backward.py`: q, k (B, H, T, Dk),
v, o (B, H, T, Dv), beta, log_decay (B, H, T) are contiguous; program axis `bh` enumerates the
B·H heads; chunk n covers t ∈ [n C, n C + C), rows past T are masked (loaded as 0, never stored);
head dims are padded to the power-of-two blocks BK ≥ Dk, BV (a tile of Dv). All arithmetic is fp32;
`PREC` is the tl.dot input precision chosen by the wrapper ("ieee" for fp32 inputs).
Per-chunk intermediates are fp32: Tinv (B, H, N, C, C) = (I + A)⁻¹, W (B, H, T, Dk),
U and u (B, H, T, Dv), states (B, H, N, Dk, Dv) = M at each chunk's start.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def chunk_log_decay(g_ptr, bh, t0, T, C: tl.constexpr, GATED: tl.constexpr):
    """b (C,): cumulative log decay from the chunk's start (0 past T, and 0 without a gate)."""
    offs = t0 + tl.arange(0, C)
    if GATED:
        g = tl.load(g_ptr + bh * T + offs, mask=offs < T, other=0.0).to(tl.float32)
        b = tl.cumsum(g, axis=0)
    else:
        b = tl.zeros([C], dtype=tl.float32)
    return b


@triton.jit
def last_of(b, C: tl.constexpr):
    """The chunk's last entry b_C of a (C,) vector, as a scalar."""
    return tl.sum(tl.where(tl.arange(0, C) == C - 1, b, 0.0), axis=0)


@triton.jit
def decay_matrix(b, C: tl.constexpr):
    """Γ (C, C): exp(b_i − b_j) for j ≤ i, else 0 (only non-positive exponents are taken)."""
    rows = tl.arange(0, C)[:, None]
    cols = tl.arange(0, C)[None, :]
    causal = cols <= rows
    diff = tl.where(causal, b[:, None] - b[None, :], 0.0)
    return tl.where(causal, tl.exp(diff), 0.0)


@triton.jit
def load_rows(ptr, bh, t0, T, D, d0, C: tl.constexpr, BD: tl.constexpr):
    """The (C, BD) tile rows t0.., columns d0.. of a (B·H, T, D) tensor, in fp32, 0 outside."""
    offs_t = t0 + tl.arange(0, C)
    offs_d = d0 + tl.arange(0, BD)
    mask = (offs_t[:, None] < T) & (offs_d[None, :] < D)
    ptrs = ptr + bh * T * D + offs_t[:, None] * D + offs_d[None, :]
    return tl.load(ptrs, mask=mask, other=0.0).to(tl.float32)


@triton.jit
def store_rows(ptr, x, bh, t0, T, D, d0, C: tl.constexpr, BD: tl.constexpr):
    """Store a (C, BD) tile into a (B·H, T, D) tensor (cast to its dtype), masked like load_rows."""
    offs_t = t0 + tl.arange(0, C)
    offs_d = d0 + tl.arange(0, BD)
    mask = (offs_t[:, None] < T) & (offs_d[None, :] < D)
    ptrs = ptr + bh * T * D + offs_t[:, None] * D + offs_d[None, :]
    tl.store(ptrs, x.to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def load_vector(ptr, bh, t0, T, C: tl.constexpr):
    """The (C,) slice t0.. of a (B·H, T) tensor, in fp32, 0 past T."""
    offs = t0 + tl.arange(0, C)
    return tl.load(ptr + bh * T + offs, mask=offs < T, other=0.0).to(tl.float32)


@triton.jit
def state_ptrs(ptr, idx, Dk, Dv, v0, BK: tl.constexpr, BV: tl.constexpr):
    """Pointers and mask of the (BK, BV) tile at columns v0.. of matrix `idx` of a (·, Dk, Dv)
    tensor."""
    offs_k = tl.arange(0, BK)
    offs_v = v0 + tl.arange(0, BV)
    ptrs = ptr + idx * Dk * Dv + offs_k[:, None] * Dv + offs_v[None, :]
    mask = (offs_k[:, None] < Dk) & (offs_v[None, :] < Dv)
    return ptrs, mask


@triton.jit
def unit_lower_inverse(A, C: tl.constexpr):
    """(I + A)⁻¹ for strictly lower-triangular A (C, C), by forward substitution over rows:
    row i of the inverse is e_i − Σ_{j<i} A_ij (row j), rows j < i being final already."""
    rows = tl.arange(0, C)[:, None]
    cols = tl.arange(0, C)[None, :]
    inv = tl.where(rows == cols, 1.0, 0.0)
    for i in range(1, C):
        a_i = tl.sum(tl.where(rows == i, A, 0.0), axis=0)  # (C,): row i of A, 0 for j ≥ i
        update = tl.sum(a_i[:, None] * inv, axis=0)  # (C,): Σ_j A_ij inv_j
        inv = tl.where(rows == i, inv - update[None, :], inv)
    return inv


@triton.jit
def prepare_kernel(
    k_ptr, v_ptr, beta_ptr, g_ptr, tinv_ptr, u_ptr, w_ptr,
    T, Dk, Dv, N,
    C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    GATED: tl.constexpr, PREC: tl.constexpr,
):
    """Per chunk (grid (N, B·H)): Tinv = (I + A)⁻¹ with A = strictly-lower(β k kᵀ ⊙ Γ),
    U = Tinv (β v), W = Tinv (β exp(b) k)."""
    n = tl.program_id(0)
    bh = tl.program_id(1).to(tl.int64)
    t0 = n * C
    k = load_rows(k_ptr, bh, t0, T, Dk, 0, C, BK)  # (C, BK)
    beta = load_vector(beta_ptr, bh, t0, T, C)  # (C,)
    b = chunk_log_decay(g_ptr, bh, t0, T, C, GATED)  # (C,)
    rows = tl.arange(0, C)[:, None]
    cols = tl.arange(0, C)[None, :]
    kk = tl.dot(k, tl.trans(k), input_precision=PREC)  # (C, C)
    A = tl.where(cols < rows, beta[:, None] * kk * decay_matrix(b, C), 0.0)
    inv = unit_lower_inverse(A, C)  # (C, C)
    tl.store(tinv_ptr + (bh * N + n) * C * C + rows * C + cols, inv)
    kw = k * (beta * tl.exp(b))[:, None]  # (C, BK): β_i exp(b_i) k_i
    store_rows(w_ptr, tl.dot(inv, kw, input_precision=PREC), bh, t0, T, Dk, 0, C, BK)
    for v0 in range(0, Dv, BV):
        vb = load_rows(v_ptr, bh, t0, T, Dv, v0, C, BV) * beta[:, None]  # (C, BV)
        store_rows(u_ptr, tl.dot(inv, vb, input_precision=PREC), bh, t0, T, Dv, v0, C, BV)


@triton.jit
def forward_state_kernel(
    k_ptr, g_ptr, w_ptr, U_ptr, u_ptr, states_ptr, h0_ptr, ht_ptr,
    T, Dk, Dv, N,
    C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    GATED: tl.constexpr, USE_INIT: tl.constexpr, STORE_FINAL: tl.constexpr,
    PREC: tl.constexpr,
):
    """The recurrence over chunks (grid (⌈Dv/BV⌉, B·H)): store M_n, u_n = U_n − W_n M_n, then
    M_{n+1} = exp(b_C) M_n + (k exp(b_C − b))ᵀ u_n; M_N goes to ht when STORE_FINAL."""
    v0 = tl.program_id(0) * BV
    bh = tl.program_id(1).to(tl.int64)
    if USE_INIT:
        ptrs, mask = state_ptrs(h0_ptr, bh, Dk, Dv, v0, BK, BV)
        M = tl.load(ptrs, mask=mask, other=0.0).to(tl.float32)  # (BK, BV)
    else:
        M = tl.zeros([BK, BV], dtype=tl.float32)
    for n in range(N):
        t0 = n * C
        ptrs, mask = state_ptrs(states_ptr, bh * N + n, Dk, Dv, v0, BK, BV)
        tl.store(ptrs, M, mask=mask)
        b = chunk_log_decay(g_ptr, bh, t0, T, C, GATED)
        b_last = last_of(b, C)
        w = load_rows(w_ptr, bh, t0, T, Dk, 0, C, BK)  # (C, BK)
        u = load_rows(U_ptr, bh, t0, T, Dv, v0, C, BV) - tl.dot(w, M, input_precision=PREC)
        store_rows(u_ptr, u, bh, t0, T, Dv, v0, C, BV)
        k_state = load_rows(k_ptr, bh, t0, T, Dk, 0, C, BK) * tl.exp(b_last - b)[:, None]
        M = tl.exp(b_last) * M + tl.dot(tl.trans(k_state), u, input_precision=PREC)
    if STORE_FINAL:
        ptrs, mask = state_ptrs(ht_ptr, bh, Dk, Dv, v0, BK, BV)
        tl.store(ptrs, M, mask=mask)


@triton.jit
def output_kernel(
    q_ptr, k_ptr, g_ptr, states_ptr, u_ptr, o_ptr,
    T, Dk, Dv, N,
    C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    GATED: tl.constexpr, PREC: tl.constexpr,
):
    """Per chunk and Dv tile (grid (N, ⌈Dv/BV⌉, B·H)): o = (q exp(b)) M_n + (q kᵀ ⊙ Γ) u_n."""
    n = tl.program_id(0)
    v0 = tl.program_id(1) * BV
    bh = tl.program_id(2).to(tl.int64)
    t0 = n * C
    q = load_rows(q_ptr, bh, t0, T, Dk, 0, C, BK)  # (C, BK)
    k = load_rows(k_ptr, bh, t0, T, Dk, 0, C, BK)  # (C, BK)
    b = chunk_log_decay(g_ptr, bh, t0, T, C, GATED)
    scores = tl.dot(q, tl.trans(k), input_precision=PREC) * decay_matrix(b, C)  # (C, C)
    ptrs, mask = state_ptrs(states_ptr, bh * N + n, Dk, Dv, v0, BK, BV)
    M = tl.load(ptrs, mask=mask, other=0.0)  # (BK, BV)
    u = load_rows(u_ptr, bh, t0, T, Dv, v0, C, BV)  # (C, BV)
    o = tl.dot(q * tl.exp(b)[:, None], M, input_precision=PREC)
    o += tl.dot(scores, u, input_precision=PREC)
    store_rows(o_ptr, o, bh, t0, T, Dv, v0, C, BV)
