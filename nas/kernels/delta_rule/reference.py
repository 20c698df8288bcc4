"""Pure-PyTorch references for the (gated) delta rule: the chunked WY / UT form the blocks run on
CPU, and a per-time-step loop the tests check it against.

Both compute, per head, with the state M (Dk × Dv) and M_0 = initial_state or zeros,

    M_t = α_t (I − β_t k_t k_tᵀ) M_{t−1} + β_t k_t v_tᵀ,     o_t = M_tᵀ q_t,

α_t = exp(log_decay_t) (1 without log_decay). See README.md beside this file for the chunked form.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def chunk_delta_rule_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    log_decay: torch.Tensor | None = None,
    *,
    chunk_size: int = 64,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The delta rule in chunked WY form: a triangular solve per chunk, a loop over chunks.

    q, k (B, H, T, Dk), v (B, H, T, Dv), beta (B, H, T); log_decay = log α (B, H, T), ≤ 0, or
    None for α = 1; initial_state M_0 (B, H, Dk, Dv) or None for zeros. Returns o (B, H, T, Dv)
    in q's dtype and, with output_final_state, M_T (B, H, Dk, Dv), both computed in fp32 at least
    (M_T is returned in that working dtype), else None. Differentiable by autograd.
    """
    B, H, T, Dk = q.shape
    Dv = v.shape[-1]
    dtype = q.dtype
    work = torch.promote_types(dtype, torch.float32)
    C = min(chunk_size, T)
    pad = -T % C
    N = (T + pad) // C

    def chunks(t: torch.Tensor) -> torch.Tensor:  # (B, H, T, ·) -> (B, H, N, C, ·), zero-padded
        t = t.to(work)
        if pad:
            t = F.pad(t, (0, 0, 0, pad))
        return t.reshape(B, H, N, C, t.shape[-1])

    q, k, v = chunks(q), chunks(k), chunks(v)
    beta = chunks(beta[..., None])  # (B, H, N, C, 1); zero after the end
    causal = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()  # (i, j): j ≤ i
    kb = k * beta
    if log_decay is None:
        decay = causal.to(work)  # (C, C)
        q_in, k_w, k_state, carry = q, kb, k, None
    else:
        b = chunks(log_decay[..., None])[..., 0].cumsum(dim=-1)  # (B, H, N, C)
        decay = torch.exp((b[..., :, None] - b[..., None, :]).masked_fill(~causal, -math.inf))
        q_in = q * torch.exp(b)[..., None]  # q_i exp(b_i)
        k_w = kb * torch.exp(b)[..., None]  # β_i k_i exp(b_i)
        b_last = b[..., -1:]  # (B, H, N, 1)
        k_state = k * torch.exp(b_last - b)[..., None]  # k_j exp(b_C - b_j)
        carry = torch.exp(b_last)[..., None]  # (B, H, N, 1, 1)
    # (I + A) [U, W] = [β v, β exp(b) k]; the solve reads the strictly lower part of A only
    A = ((kb @ k.transpose(-1, -2)) * decay).tril(-1)  # (B, H, N, C, C)
    UW = torch.linalg.solve_triangular(
        A, torch.cat((v * beta, k_w), dim=-1), upper=False, unitriangular=True
    )
    U, W = UW.split((Dv, Dk), dim=-1)  # (B, H, N, C, Dv), (B, H, N, C, Dk)
    scores = (q @ k.transpose(-1, -2)) * decay  # (B, H, N, C, C), j ≤ i, decayed
    if initial_state is None:
        M = q.new_zeros(B, H, Dk, Dv)
    else:
        M = initial_state.to(work)
    starts, news = [], []
    for n in range(N):  # a loop over chunks, not time steps
        u = U[:, :, n] - W[:, :, n] @ M  # (B, H, C, Dv): this chunk's pseudo-values
        starts.append(M)
        news.append(u)
        if n < N - 1 or output_final_state:
            carried = M if carry is None else carry[:, :, n] * M
            M = carried + k_state[:, :, n].transpose(-1, -2) @ u
    state = torch.stack(starts, dim=2)  # (B, H, N, Dk, Dv): M as of each chunk's start
    u = torch.stack(news, dim=2)  # (B, H, N, C, Dv)
    out = q_in @ state + scores @ u  # (B, H, N, C, Dv)
    o = out.reshape(B, H, N * C, Dv)[:, :, :T].to(dtype)  # (B, H, T, Dv)
    return o, (M if output_final_state else None)


def naive_recurrent_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    log_decay: torch.Tensor | None = None,
    *,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The same recurrence one time step at a time (for tests; slow). Same arguments and
    results as `chunk_delta_rule_reference`, computed in fp32 at least."""
    B, H, T, Dk = q.shape
    Dv = v.shape[-1]
    dtype = q.dtype
    work = torch.promote_types(dtype, torch.float32)
    q, k, v, beta = (t.to(work) for t in (q, k, v, beta))
    M = q.new_zeros(B, H, Dk, Dv) if initial_state is None else initial_state.to(work)
    outs = []
    for t in range(T):
        kt, vt, bt = k[:, :, t], v[:, :, t], beta[:, :, t, None]  # (B, H, D·), (B, H, 1)
        if log_decay is not None:
            M = torch.exp(log_decay[:, :, t].to(work))[..., None, None] * M
        recalled = (kt[..., None, :] @ M)[..., 0, :]  # kᵀ M: (B, H, Dv)
        M = M + kt[..., :, None] * (bt * (vt - recalled))[..., None, :]  # (B, H, Dk, Dv)
        outs.append((q[:, :, t, None, :] @ M)[..., 0, :])  # Mᵀ q: (B, H, Dv)
    o = torch.stack(outs, dim=2).to(dtype)  # (B, H, T, Dv)
    return o, (M if output_final_state else None)
