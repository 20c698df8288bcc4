"""Triton kernels of the chunked delta rule's backward pass (math in README.md).

Same layout contract as `triton_forward.py`. Extra fp32 intermediates: dstates (B, H, N, Dk, Dv)
= dM_{n+1}, the gradient reaching the state at the end of chunk n, and du (B, H, T, Dv), the
gradient of the pseudo-values u_n.
"""

from __future__ import annotations

import triton
import triton.language as tl

from nas.kernels.delta_rule.triton_forward import (
    chunk_log_decay,
    decay_matrix,
    last_of,
    load_rows,
    load_vector,
    state_ptrs,
    store_rows,
)


@triton.jit
def backward_state_kernel(
    q_ptr, k_ptr, g_ptr, w_ptr, do_ptr, dstates_ptr, du_ptr, dht_ptr, dh0_ptr,
    T, Dk, Dv, N,
    C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    GATED: tl.constexpr, USE_DFINAL: tl.constexpr, PREC: tl.constexpr,
):
    """The reverse recurrence over chunks (grid (⌈Dv/BV⌉, B·H)), from dM_N = dht (or 0):
    store dM_{n+1}; du_n = (k exp(b_C − b)) dM_{n+1} + (q kᵀ ⊙ Γ)ᵀ do_n;
    dM_n = exp(b_C) dM_{n+1} + (q exp(b))ᵀ do_n − W_nᵀ du_n. dM_0 goes to dh0."""
    v0 = tl.program_id(0) * BV
    bh = tl.program_id(1).to(tl.int64)
    if USE_DFINAL:
        ptrs, mask = state_ptrs(dht_ptr, bh, Dk, Dv, v0, BK, BV)
        dM = tl.load(ptrs, mask=mask, other=0.0).to(tl.float32)  # (BK, BV)
    else:
        dM = tl.zeros([BK, BV], dtype=tl.float32)
    for step in range(N):
        n = N - 1 - step
        t0 = n * C
        ptrs, mask = state_ptrs(dstates_ptr, bh * N + n, Dk, Dv, v0, BK, BV)
        tl.store(ptrs, dM, mask=mask)
        b = chunk_log_decay(g_ptr, bh, t0, T, C, GATED)
        b_last = last_of(b, C)
        q = load_rows(q_ptr, bh, t0, T, Dk, 0, C, BK)  # (C, BK)
        k = load_rows(k_ptr, bh, t0, T, Dk, 0, C, BK)  # (C, BK)
        w = load_rows(w_ptr, bh, t0, T, Dk, 0, C, BK)  # (C, BK)
        do = load_rows(do_ptr, bh, t0, T, Dv, v0, C, BV)  # (C, BV)
        scores = tl.dot(q, tl.trans(k), input_precision=PREC) * decay_matrix(b, C)  # (C, C)
        k_state = k * tl.exp(b_last - b)[:, None]
        du = tl.dot(k_state, dM, input_precision=PREC)
        du += tl.dot(tl.trans(scores), do, input_precision=PREC)  # (C, BV)
        store_rows(du_ptr, du, bh, t0, T, Dv, v0, C, BV)
        q_in = q * tl.exp(b)[:, None]
        dM = tl.exp(b_last) * dM + tl.dot(tl.trans(q_in), do, input_precision=PREC)
        dM -= tl.dot(tl.trans(w), du, input_precision=PREC)
    ptrs, mask = state_ptrs(dh0_ptr, bh, Dk, Dv, v0, BK, BV)
    tl.store(ptrs, dM, mask=mask)


@triton.jit
def backward_chunk_kernel(
    q_ptr, k_ptr, v_ptr, beta_ptr, g_ptr, tinv_ptr, states_ptr, dstates_ptr, u_ptr, du_ptr,
    do_ptr, dq_ptr, dk_ptr, dv_ptr, dbeta_ptr, dg_ptr,
    T, Dk, Dv, N,
    C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    GATED: tl.constexpr, PREC: tl.constexpr,
):
    """The chunk-local gradients (grid (N, B·H)) given M_n, dM_{n+1}, u_n and du_n: dq, dk, dv,
    dβ and, GATED, d log_decay (through the in-chunk cumulative sum b)."""
    n = tl.program_id(0)
    bh = tl.program_id(1).to(tl.int64)
    t0 = n * C
    rows = tl.arange(0, C)[:, None]
    cols = tl.arange(0, C)[None, :]
    q = load_rows(q_ptr, bh, t0, T, Dk, 0, C, BK)  # (C, BK)
    k = load_rows(k_ptr, bh, t0, T, Dk, 0, C, BK)  # (C, BK)
    beta = load_vector(beta_ptr, bh, t0, T, C)  # (C,)
    b = chunk_log_decay(g_ptr, bh, t0, T, C, GATED)  # (C,)
    b_last = last_of(b, C)
    eb = tl.exp(b)
    inv = tl.load(tinv_ptr + (bh * N + n) * C * C + rows * C + cols)  # (C, C) = (I + A)⁻¹

    # Terms summed over Dv, one tile at a time.
    d_qin = tl.zeros([C, BK], dtype=tl.float32)  # ∂/∂(q exp(b)) = do Mᵀ
    d_kstate = tl.zeros([C, BK], dtype=tl.float32)  # ∂/∂(k exp(b_C − b)) = u dM_{n+1}ᵀ
    d_w = tl.zeros([C, BK], dtype=tl.float32)  # ∂/∂W = −du Mᵀ
    d_scores = tl.zeros([C, C], dtype=tl.float32)  # ∂/∂(q kᵀ ⊙ Γ) = do uᵀ
    d_inv = tl.zeros([C, C], dtype=tl.float32)  # ∂/∂Tinv, from U = Tinv (β v) and W
    d_carry = tl.sum(tl.zeros([C], dtype=tl.float32), axis=0)  # ∂/∂exp(b_C) = Σ M ⊙ dM_{n+1}
    dbeta = tl.zeros([C], dtype=tl.float32)
    for v0 in range(0, Dv, BV):
        ptrs, mask = state_ptrs(states_ptr, bh * N + n, Dk, Dv, v0, BK, BV)
        M = tl.load(ptrs, mask=mask, other=0.0)  # (BK, BV)
        ptrs, mask = state_ptrs(dstates_ptr, bh * N + n, Dk, Dv, v0, BK, BV)
        dM = tl.load(ptrs, mask=mask, other=0.0)  # (BK, BV)
        u = load_rows(u_ptr, bh, t0, T, Dv, v0, C, BV)  # (C, BV)
        du = load_rows(du_ptr, bh, t0, T, Dv, v0, C, BV)
        do = load_rows(do_ptr, bh, t0, T, Dv, v0, C, BV)
        v = load_rows(v_ptr, bh, t0, T, Dv, v0, C, BV)
        d_qin += tl.dot(do, tl.trans(M), input_precision=PREC)
        d_scores += tl.dot(do, tl.trans(u), input_precision=PREC)
        d_kstate += tl.dot(u, tl.trans(dM), input_precision=PREC)
        d_w -= tl.dot(du, tl.trans(M), input_precision=PREC)
        d_carry += tl.sum(tl.sum(M * dM, axis=1), axis=0)
        d_inv += tl.dot(du, tl.trans(v * beta[:, None]), input_precision=PREC)
        dvb = tl.dot(tl.trans(inv), du, input_precision=PREC)  # (C, BV): ∂/∂(β v)
        store_rows(dv_ptr, dvb * beta[:, None], bh, t0, T, Dv, v0, C, BV)
        dbeta += tl.sum(v * dvb, axis=1)

    # W = Tinv (β exp(b) k)
    k_w = k * (beta * eb)[:, None]
    d_inv += tl.dot(d_w, tl.trans(k_w), input_precision=PREC)
    dkw = tl.dot(tl.trans(inv), d_w, input_precision=PREC)  # (C, BK): ∂/∂(β exp(b) k)
    dk = dkw * (beta * eb)[:, None]
    s = tl.sum(k * dkw, axis=1) * eb
    dbeta += s
    db = beta * s  # ∂/∂b, accumulated below

    # Tinv = (I + A)⁻¹  =>  dA = −Tinvᵀ dTinv Tinvᵀ, on the strictly lower part A lives on
    dA = -tl.dot(tl.dot(tl.trans(inv), d_inv, input_precision=PREC), tl.trans(inv),
                 input_precision=PREC)
    gamma = decay_matrix(b, C)  # (C, C)
    dA_gamma = tl.where(cols < rows, dA, 0.0) * gamma  # ∂/∂(β_i k_i·k_j), j < i
    # A = β_i (k_i·k_j) Γ_ij
    dkb = tl.dot(dA_gamma, k, input_precision=PREC)  # (C, BK): ∂/∂(β k) as the left factor
    dk += dkb * beta[:, None]
    dk += tl.dot(tl.trans(dA_gamma), k * beta[:, None], input_precision=PREC)
    dbeta += tl.sum(k * dkb, axis=1)
    kk = tl.dot(k, tl.trans(k), input_precision=PREC)  # (C, C)
    e = dA_gamma * kk * beta[:, None]  # dA ⊙ A: the Γ_ij = exp(b_i − b_j) chain rule
    db += tl.sum(e, axis=1) - tl.sum(e, axis=0)

    # scores = (q kᵀ) ⊙ Γ, causal
    ds_gamma = tl.where(cols <= rows, d_scores, 0.0) * gamma
    dq = tl.dot(ds_gamma, k, input_precision=PREC)
    dk += tl.dot(tl.trans(ds_gamma), q, input_precision=PREC)
    e = ds_gamma * tl.dot(q, tl.trans(k), input_precision=PREC)
    db += tl.sum(e, axis=1) - tl.sum(e, axis=0)

    # q exp(b) and k exp(b_C − b), exp(b_C)
    dq += d_qin * eb[:, None]
    db += tl.sum(q * d_qin, axis=1) * eb
    k_scale = tl.exp(b_last - b)
    dk += d_kstate * k_scale[:, None]
    s = tl.sum(k * d_kstate, axis=1) * k_scale
    db -= s
    db_last = tl.sum(s, axis=0) + tl.exp(b_last) * d_carry

    store_rows(dq_ptr, dq, bh, t0, T, Dk, 0, C, BK)
    store_rows(dk_ptr, dk, bh, t0, T, Dk, 0, C, BK)
    offs = t0 + tl.arange(0, C)
    tl.store(dbeta_ptr + bh * T + offs, dbeta.to(dbeta_ptr.dtype.element_ty), mask=offs < T)
    if GATED:
        # b = cumsum(log_decay) in the chunk, and b_C sums all of it: reverse cumulative sum
        dg = tl.sum(db, axis=0) - tl.cumsum(db, axis=0) + db + db_last
        tl.store(dg_ptr + bh * T + offs, dg.to(dg_ptr.dtype.element_ty), mask=offs < T)
