"""DeltaNet and Gated DeltaNet: linear attention whose state is edited by the delta rule.

DeltaNet (Schlag et al. 2021; Yang et al. 2024, "Parallelizing Linear Transformers with the
Delta Rule over Sequence Length") treats the state as an associative memory and, instead of
adding k_t v_tᵀ, replaces the value currently stored under k_t by v_t, at a learning rate β_t.
Gated DeltaNet (Yang et al. 2025) adds a data-dependent scalar decay α_t per head. Per head,
with unit-norm keys and queries (L2-normalised) and β_t = sigmoid(x_t W_β):

    S_t = α_t S_{t-1} (I − β_t k_t k_tᵀ) + β_t v_t k_tᵀ      o_t = S_t q_t       (S: Dv × Dk)

  gate=False  α_t = 1 (DeltaNet);
  gate=True   α_t = exp(−exp(A_log) · softplus(x_t W_a + dt_bias)) ∈ (0, 1], one per head, as
              Mamba-2's exp(−A·Δ) (A_log and dt_bias initialised as in Mamba-2 / fla).

q, k, v come from one projection, pass a short causal depthwise convolution (kernel 4;
`short_conv`, as both papers do) and a SiLU; q and k are then L2-normalised per head. With
`output_gate` the output is RMS-normalised per head (no weight: the output projection absorbs
any per-channel scale) and multiplied by silu(x W_g) before the output projection, as in the
papers. Decoding carries S (and the last 3 conv inputs), whose size does not grow with context.

Training uses the chunked WY / UT form (chunks of C=64 tokens). The code keeps the transposed
state M = Sᵀ (Dk × Dv, as linear_attention does), M_t = α_t (I − β_t k_t k_tᵀ) M_{t-1} +
β_t k_t v_tᵀ, o_t = M_tᵀ q_t. Within a chunk starting from M_0, with b_i the cumulative log-decay
from the chunk's start through position i (0 without the gate), the state is
M_i = exp(b_i) M_0 + Σ_{j≤i} exp(b_i − b_j) k_j u_jᵀ with pseudo-values u, which solve the unit
lower-triangular system

    (I + A) u = β v − diag(β exp(b)) K M_0,     A_ij = β_i (k_i·k_j) exp(b_i − b_j) for j < i

so u = U − W M_0 with [U, W] = (I + A)⁻¹ [β v, β exp(b) k], one batched triangular solve
(`torch.linalg.solve_triangular`) for all chunks at once. Then a loop over chunks (not time
steps) carries M_0 from chunk to chunk, M_next = exp(b_C) M_0 + Σ_j exp(b_C − b_j) k_j u_jᵀ,
and the outputs are o_i = exp(b_i) M_0ᵀ q_i + Σ_{j≤i} exp(b_i − b_j) (q_i·k_j) u_j. Only
differences b_i − b_j with j ≤ i (≤ 0) are ever exponentiated, so no decay can overflow. The
chunk kernel computes in fp32 at least (the triangular solve is not stable in half precision,
and solve_triangular has no bf16 CPU kernel); the result is cast back. It lives in
`nas.kernels.delta_rule` (`chunk_delta_rule`): Triton kernels, forward and backward, on CUDA, the
PyTorch reference of this form elsewhere (nas/kernels/delta_rule/README.md).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from nas.blocks.base import TokenMixer, mark_residual_out
from nas.blocks.registry import Knob, register_block
from nas.kernels.delta_rule import chunk_delta_rule
from nas.kernels.short_conv import causal_conv1d, causal_conv1d_update

CHUNK = 64
CONV_SIZE = 4  # taps of the short causal depthwise convolution on q, k, v
NORM_EPS = 1e-5  # per-head RMSNorm of the output (output_gate)
L2_EPS = 1e-6  # of the L2 normalisation of q and k
A_INIT = (1.0, 16.0)  # gate: A = exp(A_log) ~ U(1, 16) at init, as Mamba-2
DT_INIT = (1e-3, 1e-1)  # gate: softplus(dt_bias) log-uniform in this range at init, as Mamba-2


@register_block(
    "deltanet",
    "token_mixer",
    knobs=[
        Knob("heads", int, 4, minimum=1, doc="heads; must divide d_model"),
        Knob(
            "gate",
            bool,
            False,
            doc="Gated DeltaNet: data-dependent decay per head, "
            "α = exp(-exp(A_log)·softplus(x W_a + dt_bias))",
        ),
        Knob(
            "short_conv",
            bool,
            True,
            doc="causal depthwise conv (kernel 4) on q, k, v before their SiLU",
        ),
        Knob(
            "output_gate",
            bool,
            True,
            doc="per-head RMSNorm of the output, then multiply by silu(x W_g)",
        ),
    ],
)
class DeltaNet(TokenMixer):
    """DeltaNet / Gated DeltaNet: delta-rule linear attention, chunked WY form for training.

    step() state: tuple ``(M, conv)`` with M (B, H, Dk, Dv) = Sᵀ, the transposed delta-rule
    memory, and conv (B, 3, 3·D) the last three pre-convolution q, k, v inputs, oldest first
    (zeros before the sequence starts); ``(M,)`` when short_conv is off.
    """

    chunk_size = CHUNK

    def __init__(
        self,
        d_model: int,
        layer_idx: int,
        heads: int = 4,
        gate: bool = False,
        short_conv: bool = True,
        output_gate: bool = True,
    ) -> None:
        super().__init__(d_model, layer_idx)
        self._raise_if_invalid(
            heads=heads, gate=gate, short_conv=short_conv, output_gate=output_gate
        )
        self.heads = heads
        self.head_dim = d_model // heads
        self.gate = gate
        self.short_conv = short_conv
        self.output_gate = output_gate
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        if short_conv:
            self.conv = nn.Conv1d(
                3 * d_model, 3 * d_model, CONV_SIZE, groups=3 * d_model, bias=False
            )
        self.beta_proj = nn.Linear(d_model, heads, bias=False)
        if gate:
            self.decay_proj = nn.Linear(d_model, heads, bias=False)
            A = torch.empty(heads).uniform_(*A_INIT)
            self.A_log = nn.Parameter(torch.log(A))
            lo, hi = math.log(DT_INIT[0]), math.log(DT_INIT[1])
            dt = torch.exp(torch.rand(heads) * (hi - lo) + lo)
            self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus⁻¹(dt)
        if output_gate:
            self.g_proj = nn.Linear(d_model, d_model, bias=False)
        self.out = mark_residual_out(nn.Linear(d_model, d_model, bias=False))

    @classmethod
    def _validate(cls, d_model, heads, gate, short_conv, output_gate) -> list[str]:
        if d_model % heads:
            return [f"heads={heads} does not divide d_model={d_model}"]
        return []

    # -- forward -------------------------------------------------------------------------------
    def _log_decay(self, x: torch.Tensor) -> torch.Tensor:
        """log α (..., H) ≤ 0, in fp32 at least, from x (..., D)."""
        fp32 = torch.promote_types(x.dtype, torch.float32)
        dt = F.softplus(self.decay_proj(x).to(fp32) + self.dt_bias.to(fp32))
        return -torch.exp(self.A_log.to(fp32)) * dt

    def _qk_norm(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return F.normalize(q, dim=-1, eps=L2_EPS), F.normalize(k, dim=-1, eps=L2_EPS)

    def _output(self, o: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Normalise o (..., H, Dv) per head, merge heads, gate with x (..., D), project."""
        if self.output_gate:
            o = F.rms_norm(o, (self.head_dim,), eps=NORM_EPS)
        y = o.reshape(*x.shape[:-1], self.d_model)
        if self.output_gate:
            y = y * F.silu(self.g_proj(x))
        return self.out(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        H, Dh = self.heads, self.head_dim
        u = self.qkv(x)  # (B, T, 3D)
        if self.short_conv:
            u = causal_conv1d(u, self.conv.weight[:, 0])  # taps (3D, 1, K) -> (3D, K); (B, T, 3D)
        qkv = F.silu(u).view(B, T, 3, H, Dh).permute(2, 0, 3, 1, 4)  # (3, B, H, T, Dh)
        q, k, v = qkv.unbind(0)
        q, k = self._qk_norm(q, k)
        beta = torch.sigmoid(self.beta_proj(x)).transpose(1, 2)  # (B, H, T)
        log_decay = self._log_decay(x).transpose(1, 2) if self.gate else None  # (B, H, T)
        o, _ = chunk_delta_rule(q, k, v, beta, log_decay, chunk_size=self.chunk_size)
        # o: (B, H, T, Dh)
        return self._output(o.transpose(1, 2), x)

    def step(
        self, x: torch.Tensor, state: tuple[torch.Tensor, ...] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        B, D = x.shape
        H, Dh = self.heads, self.head_dim
        u = self.qkv(x)  # (B, 3D)
        if state is None:
            M = x.new_zeros(B, H, Dh, Dh)
            buf = x.new_zeros(B, CONV_SIZE - 1, 3 * D) if self.short_conv else None
        else:
            M, buf = state if self.short_conv else (state[0], None)
        if self.short_conv:
            u, buf = causal_conv1d_update(u, buf, self.conv.weight[:, 0])  # (B, 3D), (B, K-1, 3D)
        q, k, v = F.silu(u).view(B, 3, H, Dh).unbind(1)  # (B, H, Dh) each
        q, k = self._qk_norm(q, k)
        beta = torch.sigmoid(self.beta_proj(x))[..., None]  # (B, H, 1)
        if self.gate:
            M = torch.exp(self._log_decay(x)).to(x.dtype)[..., None, None] * M
        # M ← α M + k (β (v − (αM)ᵀ k))ᵀ  ==  α (I − β k kᵀ) M + β k vᵀ
        recalled = (k[..., None, :] @ M).squeeze(-2)  # (B, H, Dv)
        M = M + k[..., :, None] * (beta * (v - recalled))[..., None, :]
        o = (q[..., None, :] @ M).squeeze(-2)  # (B, H, Dv)
        return self._output(o, x), ((M, buf) if self.short_conv else (M,))

    # -- costs ---------------------------------------------------------------------------------
    def num_params(self) -> int:
        D, H = self.d_model, self.heads
        conv = 3 * D * CONV_SIZE if self.short_conv else 0
        gate = D * H + 2 * H if self.gate else 0
        output_gate = D * D if self.output_gate else 0
        return 3 * D * D + conv + D * H + gate + output_gate + D * D

    def flops_per_token(self, seq_len: int) -> float:
        """Projections, the short convolution and, per chunk and head, the matmuls of forward();
        a short final chunk is padded, so it costs a full one.

        Plus the triangular solve, C·(C−1)·(Dk+Dv) FLOPs per chunk and head, which
        FlopCounterMode does not see (`uncounted_flops_per_token`).
        """
        D, H, Dh = self.d_model, self.heads, self.head_dim
        C = min(self.chunk_size, seq_len)
        N = math.ceil(seq_len / C)
        Dk = Dv = Dh
        # β k kᵀ (A), q kᵀ (scores), W M_0, q M_0, scores u
        per_chunk = 2 * C * C * Dk + 2 * C * C * Dk + 2 * C * Dk * Dv * 2 + 2 * C * C * Dv
        state_updates = (N - 1) * 2 * C * Dk * Dv  # kᵀ u, all chunks but the last
        projections = 2 * D * 3 * D + 2 * D * H + 2 * D * D  # qkv, β, out
        if self.short_conv:
            projections += 2 * CONV_SIZE * 3 * D
        if self.gate:
            projections += 2 * D * H
        if self.output_gate:
            projections += 2 * D * D
        counted = projections + H * (N * per_chunk + state_updates) / seq_len
        return float(counted + self.uncounted_flops_per_token(seq_len))

    def uncounted_flops_per_token(self, seq_len: int) -> float:
        """FLOPs per token of the triangular solve: a unit lower triangular C × C system with
        Dk + Dv right-hand sides per chunk and head."""
        C = min(self.chunk_size, seq_len)
        N = math.ceil(seq_len / C)
        return float(self.heads * N * C * (C - 1) * 2 * self.head_dim / seq_len)

    def state_bytes(self, seq_len: int, dtype: torch.dtype = torch.float32) -> int:
        conv = (CONV_SIZE - 1) * 3 * self.d_model if self.short_conv else 0
        return (self.heads * self.head_dim * self.head_dim + conv) * dtype.itemsize
