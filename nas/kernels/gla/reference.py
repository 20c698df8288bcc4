"""Pure-PyTorch gated linear attention: the chunked form (the CPU path of `chunk_gla`, and what
the Triton kernels are tested against) and a plain per-step loop (tests only, not exported).

Both compute, per batch and head, S_t = diag(α_t) S_{t-1} + k_t v_tᵀ and o_t = S_tᵀ q_t with
S_0 = initial_state (or zeros), returning the outputs and S_T. See README.md for the math.

The chunked form cuts the sequence into chunks of C tokens. Inside a chunk it works with b_i,
the cumulative log decay from the chunk's start through position i (fp32 at least, ≤ 0,
non-increasing), and only exponentiates differences b_i - b_j with j ≤ i, which are ≤ 0: no
exp(-b) factorisation that strong gates would overflow.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

CHUNK = 64
SUB_CHUNK = 16  # per-channel decays inside a chunk are resolved 16 positions at a time


def chunk_length(seq_len: int, chunk: int, per_channel: bool = False) -> int:
    """Tokens per chunk at this length: `chunk`, or the whole (short) sequence; with
    per-channel decays a multiple of SUB_CHUNK (short sequences are padded up to one)."""
    if per_channel:
        return min(chunk, math.ceil(seq_len / SUB_CHUNK) * SUB_CHUNK)
    return min(chunk, seq_len)


def chunk_gla_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor | None = None,
    *,
    chunk_size: int = CHUNK,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Chunked gated linear attention, same contract as `nas.kernels.gla.chunk_gla`.

    q, k (B, H, T, Dk); v (B, H, T, Dv); log_decay None (α = 1), (B, H, T, 1) or
    (B, H, T, Dk), ≤ 0; initial_state (B, H, Dk, Dv) or None. Returns o (B, H, T, Dv) and,
    when `output_final_state`, S_T (B, H, Dk, Dv) in fp32 (fp64 for fp64 inputs), else None.
    """
    if log_decay is None:
        o, final = _no_decay(q, k, v, chunk_size, initial_state, output_final_state)
    else:
        o, final = _decayed(q, k, v, log_decay, chunk_size, initial_state, output_final_state)
    if final is not None:
        final = final.to(torch.promote_types(q.dtype, torch.float32))
    return o, final


def _chunks(tensors, T: int, C: int):
    """Pad (B, H, T, ·) tensors with zeros to a multiple of C and view them as
    (B, H, N, C, ·). Zero keys (and zero log-decays) after the end change no earlier output."""
    pad = -T % C
    out = []
    for t in tensors:
        if pad:
            t = F.pad(t, (0, 0, 0, pad))
        out.append(t.reshape(t.shape[0], t.shape[1], -1, C, t.shape[-1]))  # (B, H, N, C, ·)
    return out


def _no_decay(q, k, v, chunk, initial_state, output_final_state):
    """α = 1: the states of all chunks come from one cumulative sum, no Python loop."""
    B, H, T, _ = q.shape
    Dv = v.shape[-1]
    C = chunk_length(T, chunk)
    q, k, v = _chunks((q, k, v), T, C)  # (B, H, N, C, ·)
    N = q.shape[2]
    kv = k.transpose(-1, -2) @ v  # (B, H, N, Dk, Dv): each chunk's own Σ k vᵀ
    total = kv.cumsum(dim=2)  # (B, H, N, Dk, Dv): Σ through the end of chunk n
    state = F.pad(total[:, :, :-1], (0, 0, 0, 0, 1, 0))  # state at each chunk's start
    if initial_state is not None:
        state = state + initial_state.to(kv.dtype)[:, :, None]
    scores = (q @ k.transpose(-1, -2)).tril_()  # (B, H, N, C, C), s ≤ t within the chunk
    out = q @ state + scores @ v  # (B, H, N, C, Dv)
    final = None
    if output_final_state:
        final = total[:, :, -1]  # (B, H, Dk, Dv)
        if initial_state is not None:
            final = final + initial_state.to(kv.dtype)
    return out.view(B, H, N * C, Dv)[:, :, :T], final


def _decayed(q, k, v, log_decay, chunk, initial_state, output_final_state):
    """log_decay (B, H, T, G) with G = 1 (one decay per head) or G = Dk (one per key channel)."""
    B, H, T, Dk = q.shape
    Dv = v.shape[-1]
    per_channel = log_decay.shape[-1] > 1
    C = chunk_length(T, chunk, per_channel)
    g = log_decay.to(torch.promote_types(log_decay.dtype, torch.float32))  # at least fp32
    q, k, v, g = _chunks((q, k, v, g), T, C)  # (B, H, N, C, ·)
    N = q.shape[2]
    b = g.cumsum(dim=3)  # (B, H, N, C, G): log of the decay from the chunk's start through i
    b_last = b[:, :, :, -1:]  # (B, H, N, 1, G): log decay over the whole chunk

    def exp(t: torch.Tensor) -> torch.Tensor:  # every argument here is ≤ 0 (or -inf)
        return torch.exp(t).to(q.dtype)

    # state at each chunk's start: S_{n+1} = diag(exp(b_last)) S_n + Σ_j exp(b_last - b_j) k_j v_jᵀ
    kv = (k * exp(b_last - b)).transpose(-1, -2) @ v  # (B, H, N, Dk, Dv)
    carry = exp(b_last).transpose(-1, -2)  # (B, H, N, G, 1)
    if initial_state is None:
        starts = [kv.new_zeros(B, H, Dk, Dv)]
    else:
        starts = [initial_state.to(kv.dtype)]
    for n in range(N - 1):  # a loop over chunks, not time steps
        starts.append(carry[:, :, n] * starts[-1] + kv[:, :, n])
    final = carry[:, :, -1] * starts[-1] + kv[:, :, -1] if output_final_state else None
    state = torch.stack(starts, dim=2)  # (B, H, N, Dk, Dv)
    out = (q * exp(b)) @ state  # (B, H, N, C, Dv): the decayed state as of the chunk's start
    if per_channel:
        scores = _intra_chunk_per_channel(q, k, b, exp)
    else:
        b0 = b[..., 0]  # (B, H, N, C)
        causal = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
        decay = exp((b0[..., :, None] - b0[..., None, :]).masked_fill(~causal, -math.inf))
        scores = (q @ k.transpose(-1, -2)) * decay  # (B, H, N, C, C)
    out = out + scores @ v  # (B, H, N, C, Dv)
    return out.view(B, H, N * C, Dv)[:, :, :T], final


def _intra_chunk_per_channel(q, k, b, exp) -> torch.Tensor:
    """scores[i, j] = Σ_c q_ic k_jc exp(b_ic - b_jc) for j ≤ i within each chunk, (B, H, N, C, C).

    Sub-chunks of c = SUB_CHUNK positions. Query sub-chunk p and the keys of earlier sub-chunks
    meet through r_p, the cumulative log decay at the end of sub-chunk p-1 (0 for p = 0):
    exp(b_i - b_j) = exp(b_i - r_p) · exp(r_p - b_j), both exponents ≤ 0. Within a sub-chunk the
    decays are applied per channel directly.
    """
    B, H, N, C, Dk = q.shape
    c = SUB_CHUNK
    P = C // c
    qs, ks, bs = (t.reshape(B, H, N, P, c, Dk) for t in (q, k, b))  # (B, H, N, P, c, Dk)
    ref = F.pad(bs[..., -1, :], (0, 0, 1, 0))[..., :-1, :]  # (B, H, N, P, Dk): r_p
    q_rel = qs * exp(bs - ref[..., None, :])  # (B, H, N, P, c, Dk)
    arange = torch.arange(C, device=q.device)
    earlier = arange < c * torch.arange(P, device=q.device)[:, None]  # (P, C): j before sub-chunk p
    k_exponent = ref[..., None, :] - b[:, :, :, None]  # (B, H, N, P, C, Dk): r_p - b_j
    k_rel = k[:, :, :, None] * exp(k_exponent.masked_fill(~earlier[..., None], -math.inf))
    between = q_rel @ k_rel.transpose(-1, -2)  # (B, H, N, P, c, C), zero where j ≥ p·c
    causal = torch.ones(c, c, dtype=torch.bool, device=q.device).tril()  # (i, j): j ≤ i
    diff = bs[..., :, None, :] - bs[..., None, :, :]  # (B, H, N, P, c, c, Dk): b_i - b_j
    k_dec = ks[..., None, :, :] * exp(diff.masked_fill(~causal[..., None], -math.inf))
    within = (qs[..., None, :] @ k_dec.transpose(-1, -2)).squeeze(-2)  # (B, H, N, P, c, c)
    eye = torch.eye(P, dtype=within.dtype, device=q.device)
    within = within[..., None, :] * eye[:, None, :, None]  # (B, H, N, P, c, P, c) block-diagonal
    return between.reshape(B, H, N, C, C) + within.reshape(B, H, N, C, C)  # (B, H, N, C, C)


def naive_recurrent_gla(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The recurrence one time step at a time, in the inputs' dtype: (o (B, H, T, Dv), S_T)."""
    B, H, T, Dk = q.shape
    Dv = v.shape[-1]
    S = q.new_zeros(B, H, Dk, Dv) if initial_state is None else initial_state.to(q.dtype)
    outputs = []
    for t in range(T):
        if log_decay is not None:
            S = torch.exp(log_decay[:, :, t]).to(q.dtype)[..., None] * S  # (B, H, Dk|1, 1)
        S = S + k[:, :, t, :, None] * v[:, :, t, None, :]  # (B, H, Dk, Dv)
        outputs.append((q[:, :, t, None, :] @ S).squeeze(-2))  # (B, H, Dv)
    return torch.stack(outputs, dim=2), S  # (B, H, T, Dv)
