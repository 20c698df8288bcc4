"""The (gated) delta rule, chunked: DeltaNet's and Gated DeltaNet's sequence mixing.

`chunk_delta_rule` dispatches to the Triton kernels (`triton_delta_rule.py`, forward and
backward) on CUDA and to the PyTorch reference (`reference.py`) otherwise; see README.md.
"""

from __future__ import annotations

import torch

from nas.kernels import use_triton
from nas.kernels.delta_rule.reference import chunk_delta_rule_reference

__all__ = ["chunk_delta_rule"]


def chunk_delta_rule(
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
    """Per head, M_t = α_t (I − β_t k_t k_tᵀ) M_{t−1} + β_t k_t v_tᵀ and o_t = M_tᵀ q_t, with
    α_t = exp(log_decay_t) (1 when log_decay is None) and M_0 = initial_state (zeros if None).

    q, k (B, H, T, Dk) (L2-normalised by the caller), v (B, H, T, Dv), beta (B, H, T) in (0, 1),
    log_decay (B, H, T) ≤ 0 (fp32 advised), initial_state (B, H, Dk, Dv). Returns o (B, H, T, Dv)
    in q's dtype and, with output_final_state, M_T (B, H, Dk, Dv) in fp32 (float64 for float64
    inputs), else None. Computed in fp32 at least; differentiable in every tensor argument.
    The Triton path runs when `use_triton(q)` holds and q is not float64 (the kernels compute
    in fp32, so float64 always takes the reference); it rounds chunk_size up to a power of two
    ≥ 16, which changes only rounding, not the result.
    """
    B, H, T, Dk = q.shape
    if k.shape != q.shape or v.shape[:3] != (B, H, T) or beta.shape != (B, H, T):
        raise ValueError(
            f"chunk_delta_rule: q, k must be (B, H, T, Dk), v (B, H, T, Dv), beta (B, H, T); "
            f"got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}, "
            f"beta {tuple(beta.shape)}"
        )
    if log_decay is not None and log_decay.shape != (B, H, T):
        raise ValueError(f"chunk_delta_rule: log_decay must be {(B, H, T)}, "
                         f"got {tuple(log_decay.shape)}")
    if initial_state is not None and initial_state.shape != (B, H, Dk, v.shape[-1]):
        raise ValueError(f"chunk_delta_rule: initial_state must be {(B, H, Dk, v.shape[-1])}, "
                         f"got {tuple(initial_state.shape)}")
    if chunk_size < 1:
        raise ValueError(f"chunk_delta_rule: chunk_size must be ≥ 1, got {chunk_size}")
    if use_triton(q) and q.dtype != torch.float64:
        from nas.kernels.delta_rule.triton_delta_rule import chunk_delta_rule_triton

        return chunk_delta_rule_triton(
            q, k, v, beta, log_decay, chunk_size, initial_state, output_final_state
        )
    return chunk_delta_rule_reference(
        q, k, v, beta, log_decay, chunk_size=chunk_size, initial_state=initial_state,
        output_final_state=output_final_state,
    )
