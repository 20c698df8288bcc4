"""Mamba-2: a selective state-space mixer in its SSD (state space duality) form (Dao & Gu 2024).

One input projection gives a gate z, the conv input xBC and one step size per head:

    z, xBC, dt_raw = in_proj(x)                    (d_inner, d_inner + 2N, H)
    x, B, C = silu(causal_depthwise_conv(xBC))     x in H heads of P = head_dim; B, C of N = d_state
    dt = softplus(dt_raw + dt_bias)  (per head)    A = -exp(A_log)  (a scalar per head)

then, per head h, a recurrence with a (P × N) state that forgets at the data-dependent rate
exp(dt_t·A_h) (B and C are one group, shared by all heads):

    h_t = exp(dt_t·A) h_{t-1} + dt_t · x_t B_tᵀ      y_t = h_t C_t + D_h · x_t

and finally out_proj(rmsnorm(y ⊙ silu(z)) · weight), the gated RMSNorm of Mamba-2
(norm_before_gate=False, one group). d_inner = expand · d_model, H = d_inner / head_dim.

Training uses the chunked SSD form (chunks of 64 tokens), like linear attention with a per-head
scalar decay: inside a chunk the masked quadratic form y = (C Bᵀ ⊙ L) (dt·x) with
L[i, j] = exp(b_i - b_j) for j ≤ i (0 above the diagonal), where b is the cumulative log-decay
Σ dt·A from the chunk's start (fp32, ≤ 0, non-increasing) — only differences ≤ 0 are ever
exponentiated, so nothing overflows however strong the decay. C Bᵀ is computed once per chunk
and shared by every head. Across chunks the states follow from a loop over chunks (not time
steps). Decoding carries the SSM state and the conv's last conv_kernel-1 inputs, whose size
does not grow with the context.

Initialisation follows Mamba-2: A = -uniform(1, 16), dt log-uniform in [1e-3, 1e-1] stored
as dt_bias = softplus⁻¹(dt), D = 1, norm weight = 1. These are plain Parameters (not Linear or
Embedding weights), so build_model's N(0, 0.02) init leaves them alone.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from nas.blocks.base import TokenMixer, mark_residual_out
from nas.blocks.registry import Knob, register_block
from nas.kernels.short_conv import causal_conv1d, causal_conv1d_update

CHUNK = 64
NORM_EPS = 1e-5  # of the gated RMSNorm, as in mamba_ssm's RMSNormGated
A_INIT_RANGE = (1.0, 16.0)  # A = -uniform(1, 16)
DT_MIN, DT_MAX = 1e-3, 1e-1  # softplus(dt_bias) log-uniform in [DT_MIN, DT_MAX]
DT_INIT_FLOOR = 1e-4


@register_block(
    "mamba2",
    "token_mixer",
    knobs=[
        Knob("d_state", int, 16, minimum=1, doc="N: size of B and C (state is head_dim × N)"),
        Knob("expand", int, 2, minimum=1, doc="d_inner = expand · d_model"),
        Knob("head_dim", int, 16, minimum=1, doc="P: channels per head; divides d_inner"),
        Knob("conv_kernel", int, 4, minimum=2, doc="taps of the causal depthwise conv on xBC"),
    ],
)
class Mamba2(TokenMixer):
    """Mamba-2 selective SSM (SSD, scalar decay per head, one B/C group), chunked.

    step() state: tuple ``(ssm, conv)`` with ssm (B, H, head_dim, d_state) the recurrent state
    and conv (B, conv_kernel-1, d_inner + 2·d_state) the previous conv inputs xBC, oldest first
    (zeros before the sequence starts).
    """

    chunk_size = CHUNK

    def __init__(
        self,
        d_model: int,
        layer_idx: int,
        d_state: int = 16,
        expand: int = 2,
        head_dim: int = 16,
        conv_kernel: int = 4,
    ) -> None:
        super().__init__(d_model, layer_idx)
        self._raise_if_invalid(
            d_state=d_state, expand=expand, head_dim=head_dim, conv_kernel=conv_kernel
        )
        self.d_state = d_state
        self.expand = expand
        self.head_dim = head_dim
        self.conv_kernel = conv_kernel
        self.d_inner = expand * d_model
        self.heads = self.d_inner // head_dim
        self.conv_dim = self.d_inner + 2 * d_state
        H = self.heads
        self.in_proj = nn.Linear(d_model, self.d_inner + self.conv_dim + H, bias=False)
        self.conv = nn.Conv1d(self.conv_dim, self.conv_dim, conv_kernel, groups=self.conv_dim)
        dt = torch.exp(torch.rand(H) * (math.log(DT_MAX) - math.log(DT_MIN)) + math.log(DT_MIN))
        dt = dt.clamp(min=DT_INIT_FLOOR)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus⁻¹(dt)
        self.A_log = nn.Parameter(torch.log(torch.empty(H).uniform_(*A_INIT_RANGE)))
        self.D = nn.Parameter(torch.ones(H))
        self.norm_weight = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = mark_residual_out(nn.Linear(self.d_inner, d_model, bias=False))

    @classmethod
    def _validate(cls, d_model, d_state, expand, head_dim, conv_kernel) -> list[str]:
        if (expand * d_model) % head_dim:
            return [
                f"head_dim={head_dim} does not divide d_inner = expand·d_model = "
                f"{expand}·{d_model} = {expand * d_model}"
            ]
        return []

    # -- shared pieces -------------------------------------------------------------------------
    def _split(self, zxbcdt: torch.Tensor):
        """(..., d_inner + conv_dim + H) -> z (..., d_inner), xBC (..., conv_dim), dt (..., H)."""
        return zxbcdt.split((self.d_inner, self.conv_dim, self.heads), dim=-1)

    def _dt(self, dt_raw: torch.Tensor) -> torch.Tensor:
        """Step sizes dt = softplus(dt_raw + dt_bias) (..., H), in fp32 at least."""
        fp32 = torch.promote_types(dt_raw.dtype, torch.float32)
        return F.softplus(dt_raw.to(fp32) + self.dt_bias.to(fp32))

    def _A(self, dtype: torch.dtype) -> torch.Tensor:
        return -torch.exp(self.A_log.to(dtype))  # (H,), < 0

    def _output(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Gated RMSNorm (gate before the norm) and the output projection; y, z (..., d_inner)."""
        y = F.rms_norm(y * F.silu(z), (self.d_inner,), self.norm_weight, NORM_EPS)
        return self.out_proj(y)

    # -- forward -------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        H, P, N = self.heads, self.head_dim, self.d_state
        z, xBC, dt_raw = self._split(self.in_proj(x))
        taps = self.conv.weight[:, 0]  # (conv_dim, 1, K) -> (conv_dim, K)
        xBC = F.silu(causal_conv1d(xBC, taps) + self.conv.bias)  # (B, T, conv_dim)
        xs, Bm, Cm = xBC.split((self.d_inner, N, N), dim=-1)
        xs = xs.reshape(B, T, H, P)
        dt = self._dt(dt_raw)  # (B, T, H) fp32
        log_decay = dt * self._A(dt.dtype)  # (B, T, H), ≤ 0
        y = chunked_ssd(xs * dt[..., None].to(xs.dtype), log_decay, Bm, Cm, self.chunk_size)
        y = y + self.D.to(xs.dtype)[:, None] * xs  # (B, T, H, P)
        return self._output(y.reshape(B, T, self.d_inner), z)

    def step(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        B, _ = x.shape
        H, P, N, K = self.heads, self.head_dim, self.d_state, self.conv_kernel
        z, xBC, dt_raw = self._split(self.in_proj(x))  # (B, ·) each
        if state is None:
            ssm = x.new_zeros(B, H, P, N)
            conv = x.new_zeros(B, K - 1, self.conv_dim)
        else:
            ssm, conv = state
        taps = self.conv.weight[:, 0]  # (conv_dim, 1, K) -> (conv_dim, K)
        mixed, conv = causal_conv1d_update(xBC, conv, taps)  # (B, conv_dim), (B, K-1, conv_dim)
        mixed = mixed + self.conv.bias
        xs, Bt, Ct = F.silu(mixed).split((self.d_inner, N, N), dim=-1)
        xs = xs.view(B, H, P)
        dt = self._dt(dt_raw)  # (B, H) fp32
        decay = torch.exp(dt * self._A(dt.dtype)).to(x.dtype)  # (B, H)
        dx = xs * dt[..., None].to(x.dtype)  # (B, H, P)
        ssm = decay[..., None, None] * ssm + dx[..., None] * Bt[:, None, None, :]  # (B, H, P, N)
        y = (ssm @ Ct[:, None, :, None]).squeeze(-1) + self.D.to(x.dtype)[:, None] * xs
        return self._output(y.reshape(B, self.d_inner), z), (ssm, conv)

    # -- costs ---------------------------------------------------------------------------------
    def num_params(self) -> int:
        D, H = self.d_model, self.heads
        in_proj = D * (self.d_inner + self.conv_dim + H)
        conv = self.conv_dim * self.conv_kernel + self.conv_dim  # depthwise taps + bias
        return in_proj + conv + 3 * H + self.d_inner + self.d_inner * D

    def flops_per_token(self, seq_len: int) -> float:
        """Projections, the depthwise conv, and per chunk the SSD matmuls of forward(): C Bᵀ
        once (shared by the heads), then per head the masked scores @ (dt·x), the chunk's
        state contribution Bᵀ (dt·x) and the readout C · state. A short final chunk is padded,
        so it costs a full one."""
        D, H, P, N = self.d_model, self.heads, self.head_dim, self.d_state
        C = min(self.chunk_size, seq_len)
        chunks = math.ceil(seq_len / C)
        per_chunk = 2 * C * C * N + H * (2 * C * C * P + 2 * C * N * P + 2 * C * N * P)
        projections = 2 * D * (self.d_inner + self.conv_dim + H) + 2 * self.d_inner * D
        conv = 2 * self.conv_kernel * self.conv_dim
        return float(projections + conv + chunks * per_chunk / seq_len)

    def state_bytes(self, seq_len: int, dtype: torch.dtype = torch.float32) -> int:
        ssm = self.heads * self.head_dim * self.d_state
        conv = (self.conv_kernel - 1) * self.conv_dim
        return (ssm + conv) * dtype.itemsize


# -- chunked kernel (pure torch) ---------------------------------------------------------------
def chunked_ssd(
    x: torch.Tensor,
    log_decay: torch.Tensor,
    Bm: torch.Tensor,
    Cm: torch.Tensor,
    chunk: int = CHUNK,
) -> torch.Tensor:
    """The recurrence h_t = exp(a_t) h_{t-1} + x_t B_tᵀ, y_t = h_t C_t, in chunked SSD form.

    x (B, T, H, P) (already scaled by dt), log_decay a (B, T, H) ≤ 0, B and C (B, T, N) shared
    by all heads. Returns y (B, T, H, P). The matmuls with B and C run on all heads at once
    (heads folded into the last dimension, so B and C are never copied per head); only the
    masked intra-chunk product is batched per head.
    """
    Bsz, T, H, P = x.shape
    N = Bm.shape[-1]
    C = min(chunk, T)
    pad = -T % C  # zero inputs and zero log-decays after the end change no earlier output
    if pad:
        x = F.pad(x, (0, 0, 0, 0, 0, pad))
        log_decay = F.pad(log_decay, (0, 0, 0, pad))
        Bm, Cm = F.pad(Bm, (0, 0, 0, pad)), F.pad(Cm, (0, 0, 0, pad))
    n_chunks = (T + pad) // C
    x = x.reshape(Bsz, n_chunks, C, H, P)
    Bm = Bm.reshape(Bsz, n_chunks, C, N)
    Cm = Cm.reshape(Bsz, n_chunks, C, N)
    g = log_decay.to(torch.promote_types(log_decay.dtype, torch.float32))
    b = g.reshape(Bsz, n_chunks, C, H).cumsum(dim=2)  # log decay from the chunk's start to i
    b_last = b[:, :, -1:]  # (B, n, 1, H): log decay over the whole chunk

    def exp(t: torch.Tensor) -> torch.Tensor:  # every argument here is ≤ 0 (or -inf)
        return torch.exp(t).to(x.dtype)

    # state at each chunk's start (P × N per head, stored transposed as N × (H·P)):
    # S_{n+1} = exp(b_last) S_n + Σ_j exp(b_last - b_j) B_j x_jᵀ
    weighted = (x * exp(b_last - b)[..., None]).reshape(Bsz, n_chunks, C, H * P)
    contrib = (Bm.transpose(-1, -2) @ weighted).view(Bsz, n_chunks, N, H, P)
    carry = exp(b_last)[..., None]  # (B, n, 1, H, 1)
    starts = [contrib.new_zeros(Bsz, N, H, P)]
    for n in range(n_chunks - 1):  # a loop over chunks, not time steps
        starts.append(carry[:, n] * starts[-1] + contrib[:, n])
    state = torch.stack(starts, dim=1).view(Bsz, n_chunks, N, H * P)
    out = (Cm @ state).view(Bsz, n_chunks, C, H, P) * exp(b)[..., None]  # carried-in state
    bh = b.transpose(-1, -2)  # (B, n, H, C)
    causal = torch.ones(C, C, dtype=torch.bool, device=x.device).tril()
    L = exp((bh[..., :, None] - bh[..., None, :]).masked_fill(~causal, -math.inf))  # (B,n,H,C,C)
    scores = (Cm @ Bm.transpose(-1, -2))[:, :, None]  # (B, n, 1, C, C): C Bᵀ, for all heads
    intra = (scores * L) @ x.transpose(2, 3)  # (B, n, H, C, P)
    out = out + intra.transpose(2, 3)  # (B, n, C, H, P)
    return out.reshape(Bsz, n_chunks * C, H, P)[:, :T]
