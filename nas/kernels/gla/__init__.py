"""Chunked gated linear attention (GLA, Yang et al. 2023; RetNet and vanilla linear attention as
special cases): one public function that runs the Triton kernels on CUDA and the chunked
PyTorch reference elsewhere. The math and numerics are in README.md.
"""

from __future__ import annotations

import torch

from nas.kernels import use_triton
from nas.kernels.gla.reference import CHUNK, chunk_gla_reference

__all__ = ["chunk_gla"]

MAX_HEAD_DIM = 256  # the Triton kernels hold a whole head (Dk, Dv ≤ this) in one tile


def chunk_gla(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor | None = None,
    *,
    chunk_size: int = CHUNK,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Causal linear attention with an optional decay of the state, in chunks.

    S_t = diag(α_t) S_{t-1} + k_t v_tᵀ,  o_t = S_tᵀ q_t,  S_0 = initial_state or zeros.

    q, k: (B, H, T, Dk); v: (B, H, T, Dv); log_decay = log α_t ≤ 0: None (α = 1), (B, H, T, 1)
    (one decay per head and step, e.g. RetNet's γ_h broadcast) or (B, H, T, Dk) (per key
    channel, GLA); fp32 recommended (it is the cumulative sums' precision either way).
    initial_state: (B, H, Dk, Dv) or None. Returns (o (B, H, T, Dv), S_T (B, H, Dk, Dv) in fp32
    — fp64 for fp64 inputs — when `output_final_state`, else None). Differentiable in q, k, v,
    log_decay and initial_state, on both paths.

    Dispatch: the Triton kernels when `use_triton(q)` (CUDA tensors, or forced in tests), unless
    the inputs are fp64 or a head dimension exceeds MAX_HEAD_DIM, where the reference runs.
    """
    B, H, T, Dk = q.shape
    if k.shape != q.shape or v.shape[:3] != (B, H, T):
        raise ValueError(f"chunk_gla: q {tuple(q.shape)}, k {tuple(k.shape)} and v "
                         f"{tuple(v.shape)} must be (B, H, T, Dk), (B, H, T, Dk), (B, H, T, Dv)")
    if log_decay is not None and log_decay.shape[-1] not in (1, Dk):
        raise ValueError(f"chunk_gla: log_decay's last dimension is {log_decay.shape[-1]}; it "
                         f"must be 1 (per head) or Dk={Dk} (per key channel)")
    if chunk_size < 16 or chunk_size & (chunk_size - 1):
        raise ValueError(f"chunk_gla: chunk_size={chunk_size} must be a power of two ≥ 16")
    Dv = v.shape[-1]
    kernel_fits = max(Dk, Dv) <= MAX_HEAD_DIM and q.dtype != torch.float64
    if use_triton(q) and kernel_fits:
        from nas.kernels.gla.triton_gla import chunk_gla_triton  # imports triton lazily

        if log_decay is not None:
            log_decay = log_decay.expand(B, H, T, log_decay.shape[-1])
        return chunk_gla_triton(
            q, k, v, log_decay, chunk_size=chunk_size, initial_state=initial_state,
            output_final_state=output_final_state,
        )
    return chunk_gla_reference(
        q, k, v, log_decay, chunk_size=chunk_size, initial_state=initial_state,
        output_final_state=output_final_state,
    )
