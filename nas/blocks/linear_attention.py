"""Causal linear attention, with one decay switch (Katharopoulos et al. 2020; RetNet; GLA).

Replacing softmax(q·k) by a kernel φ(q)·φ(k) lets attention factorise through a running state,
per head. With a decay switch the state forgets at a rate set per head or per channel:

    S_t = diag(α_t) S_{t-1} + φ(k_t) v_tᵀ      o_t = φ(q_t)ᵀ S_t

  decay=none   α_t = 1 (vanilla linear attention, "Transformers are RNNs");
  decay=fixed  α_t = γ_h, a constant per head, γ_h = 1 - 2^(-5-h) (RetNet / Lightning style);
  decay=gla    α_t = sigmoid(x_t W_α)^(1/τ), τ = 16, per key channel, data dependent, through a
               low-rank projection D -> 16 -> D (Gated Linear Attention, Yang et al. 2023).

Then the output is normalised (`normalize`): `denominator` divides by φ(q_t)·z_t with z_t the
same recurrence over φ(k_t) (the original normalised linear attention), `rmsnorm` applies a
per-head RMSNorm without weights to o_t (as RetNet and GLA do; the output projection absorbs any
scale), `none` leaves o_t as it is. An optional output gate multiplies by silu(x W_g) before the
output projection. Decoding carries S (and z), whose size does not grow with the context.

Training uses the chunked form, `nas.kernels.gla.chunk_gla` (Triton kernels on CUDA, its
PyTorch reference elsewhere): the sequence is cut into chunks of C=64 tokens; inside a chunk
the masked quadratic form (like attention without softmax), across chunks the state as of the
chunk's start. The denominator rides along the numerator: values get an extra channel of ones,
so the same matmuls produce φ(q)ᵀS (first Dh channels) and φ(q)ᵀz (last channel).

  - Without decay the states of all chunks come from one cumulative sum: no Python loop at all.
  - With a decay, everything works with b_i, the cumulative log-decay from the chunk's start
    through position i (fp32, ≤ 0, non-increasing), and only ever exponentiates differences
    b_i - b_j with j ≤ i, which are ≤ 0: nothing can overflow, however strong the decay (a
    factorisation exp(b_i)·exp(-b_j) would overflow for strong gates). The chunk states follow
    from a loop over chunks (not time steps), S_{n+1} = diag(exp(b_last)) S_n + Σ_j ….
  - For a fixed (per-head scalar) decay the intra-chunk decay is one (C, C) matrix exp(b_i - b_j)
    per head that multiplies the scores. For GLA's per-channel decay the intra-chunk scores
    Σ_c q_ic k_jc exp(b_ic - b_jc) are split as in the GLA paper's secondary chunking: between
    sub-chunks of 16, relative to the end of the sub-chunk before the query's one (both factors
    ≤ 1, one matmul); inside a sub-chunk, per channel exactly (a (16, 16, Dk) tensor per
    sub-chunk, contracted by a batched matmul).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from nas.blocks.base import TokenMixer, mark_residual_out
from nas.blocks.registry import Knob, register_block
from nas.kernels.gla import chunk_gla
from nas.kernels.gla.reference import CHUNK, SUB_CHUNK, chunk_length

EPS = 1e-6  # added to the denominator φ(q)·z
NORM_EPS = 1e-5  # of the per-head RMSNorm (normalize=rmsnorm), as in fla's GLA
GATE_RANK = 16  # gla: rank of the decay projection D -> GATE_RANK -> D
GATE_TAU = 16.0  # gla: α = sigmoid(·)^(1/τ), so log α = logsigmoid(·) / τ


def _elu_plus_one(x: torch.Tensor) -> torch.Tensor:
    return F.elu(x) + 1.0


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


FEATURE_MAPS = {"elu": _elu_plus_one, "relu": F.relu, "identity": _identity}
DECAYS = ("none", "fixed", "gla")
NORMALIZATIONS = ("denominator", "rmsnorm", "none")


def retnet_log_gammas(heads: int) -> tuple[float, ...]:
    """log γ_h for γ_h = 1 - 2^(-5-h), in double precision (γ_h itself rounds to 1 in fp32 for
    h ≥ 24; its log does not)."""
    return tuple(math.log1p(-(2.0 ** (-5 - h))) for h in range(heads))


@register_block(
    "linear_attention",
    "token_mixer",
    knobs=[
        Knob("heads", int, 4, minimum=1, doc="heads; must divide d_model"),
        Knob(
            "feature_map",
            str,
            "elu",
            choices=tuple(FEATURE_MAPS),
            doc="φ on q and k: elu means elu(x)+1, relu max(x, 0), identity x",
        ),
        Knob(
            "decay",
            str,
            "none",
            choices=DECAYS,
            doc="state decay: none; fixed γ_h = 1-2^(-5-h) per head (RetNet); "
            "gla = data-dependent per-channel gate sigmoid(x W_α)^(1/16)",
        ),
        Knob(
            "normalize",
            str,
            "denominator",
            choices=NORMALIZATIONS,
            doc="denominator: divide by φ(q)·z; rmsnorm: per-head RMSNorm of the output; none",
        ),
        Knob("output_gate", bool, False, doc="multiply the output by silu(x W_g)"),
    ],
)
class LinearAttention(TokenMixer):
    """Causal linear attention with optional decay (none, fixed, gla), norm and output gate.

    step() state: tuple ``(S, z)`` with S (B, H, Dh, Dh) = Σ decayed φ(k) vᵀ and z (B, H, Dh) =
    Σ decayed φ(k) when normalize=denominator; a 1-tuple ``(S,)`` otherwise.
    """

    chunk_size = CHUNK

    def __init__(
        self,
        d_model: int,
        layer_idx: int,
        heads: int = 4,
        feature_map: str = "elu",
        decay: str = "none",
        normalize: str = "denominator",
        output_gate: bool = False,
    ) -> None:
        super().__init__(d_model, layer_idx)
        self._raise_if_invalid(
            heads=heads,
            feature_map=feature_map,
            decay=decay,
            normalize=normalize,
            output_gate=output_gate,
        )
        self.heads = heads
        self.head_dim = d_model // heads
        self.feature_map = feature_map
        self.decay = decay
        self.normalize = normalize
        self.output_gate = output_gate
        self.phi = FEATURE_MAPS[feature_map]
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        if decay == "fixed":  # constants, not learned; made a tensor in the dtype of each call
            self.log_gammas = retnet_log_gammas(heads)
        elif decay == "gla":
            self.decay_proj = nn.Sequential(
                nn.Linear(d_model, GATE_RANK, bias=False), nn.Linear(GATE_RANK, d_model)
            )
        if output_gate:
            self.gate = nn.Linear(d_model, d_model, bias=False)
        self.out = mark_residual_out(nn.Linear(d_model, d_model, bias=False))

    @classmethod
    def _validate(cls, d_model, heads, feature_map, decay, normalize, output_gate) -> list[str]:
        problems = []
        if d_model % heads:
            problems.append(f"heads={heads} does not divide d_model={d_model}")
        if feature_map == "identity" and normalize == "denominator":
            problems.append(
                "feature_map=identity cannot use normalize=denominator (φ(q)·z can vanish or "
                "change sign); use normalize=rmsnorm or none, or feature_map elu or relu"
            )
        return problems

    # -- forward -------------------------------------------------------------------------------
    def _log_decay(self, x: torch.Tensor) -> torch.Tensor:
        """Per-step log-decays log α_t ≤ 0 (fp32 or wider) from x (B, T, D): (B, H, T, 1) for
        fixed, (B, H, T, Dh) for gla."""
        B, T, _ = x.shape
        fp32 = torch.promote_types(x.dtype, torch.float32)  # fp32 at least (fp64 stays)
        if self.decay == "fixed":
            log_gamma = torch.tensor(self.log_gammas, dtype=fp32, device=x.device)
            return log_gamma.view(1, -1, 1, 1).expand(B, self.heads, T, 1)
        logits = self.decay_proj(x).to(fp32)  # (B, T, D)
        g = F.logsigmoid(logits) / GATE_TAU
        return g.view(B, T, self.heads, self.head_dim).transpose(1, 2)  # (B, H, T, Dh)

    def _output(self, o: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Normalise o (..., H, Dv) per head, merge heads, gate with x (..., D), project."""
        Dh = self.head_dim
        if self.normalize == "denominator":
            o = o[..., :Dh] / (o[..., Dh:] + EPS)
        elif self.normalize == "rmsnorm":
            o = F.rms_norm(o, (Dh,), eps=NORM_EPS)
        y = o.reshape(*x.shape[:-1], self.d_model)  # (..., D)
        if self.output_gate:
            y = y * F.silu(self.gate(x))
        return self.out(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        H, Dh = self.heads, self.head_dim
        qkv = self.qkv(x).view(B, T, 3, H, Dh).permute(2, 0, 3, 1, 4)  # (3, B, H, T, Dh)
        q, k, v = qkv.unbind(0)  # (B, H, T, Dh) each
        q, k = self.phi(q), self.phi(k)
        if self.normalize == "denominator":
            v = F.pad(v, (0, 1), value=1.0)  # (B, H, T, Dh+1): last channel accumulates z
        log_decay = None if self.decay == "none" else self._log_decay(x)
        o, _ = chunk_gla(q, k, v, log_decay, chunk_size=self.chunk_size)  # (B, H, T, Dv)
        return self._output(o.transpose(1, 2), x)  # o: (B, H, T, Dv) -> (B, T, H, Dv)

    def step(
        self, x: torch.Tensor, state: tuple[torch.Tensor, ...] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        B, D = x.shape
        H, Dh = self.heads, self.head_dim
        q, k, v = self.qkv(x).view(B, 3, H, Dh).unbind(1)  # (B, H, Dh) each
        q, k = self.phi(q), self.phi(k)
        denominator = self.normalize == "denominator"
        if state is None:
            S = x.new_zeros(B, H, Dh, Dh)
            z = x.new_zeros(B, H, Dh) if denominator else None
        else:
            S, z = state if denominator else (state[0], None)
        if self.decay != "none":
            alpha = torch.exp(self._log_decay(x[:, None]))[:, :, 0].to(x.dtype)  # (B, H, 1|Dh)
            S = alpha[..., None] * S  # decays the key dimension
            z = alpha * z if denominator else None
        S = S + k[..., :, None] * v[..., None, :]  # (B, H, Dh, Dh)
        o = (q[..., None, :] @ S).squeeze(-2)  # (B, H, Dh)
        if denominator:
            z = z + k  # (B, H, Dh)
            o = torch.cat((o, (q * z).sum(dim=-1, keepdim=True)), dim=-1)  # (B, H, Dh+1)
        return self._output(o, x), ((S, z) if denominator else (S,))

    # -- costs ---------------------------------------------------------------------------------
    def num_params(self) -> int:
        D = self.d_model
        gate = D * D if self.output_gate else 0
        decay = D * GATE_RANK + GATE_RANK * D + D if self.decay == "gla" else 0
        return 4 * D * D + gate + decay

    def flops_per_token(self, seq_len: int) -> float:
        """Projections plus, per chunk and head, the chunk matmuls of forward(); a short final
        chunk is padded, so it costs a full one. gla adds its low-rank projection and the
        per-channel products inside each sub-chunk."""
        D, H, Dh = self.d_model, self.heads, self.head_dim
        C = chunk_length(seq_len, self.chunk_size, per_channel=self.decay == "gla")
        N = math.ceil(seq_len / C)
        Dv = Dh + 1 if self.normalize == "denominator" else Dh
        # chunk kv, state readout, intra-chunk scores, scores @ v
        per_chunk = 2 * C * Dh * Dv + 2 * C * Dh * Dv + 2 * C * C * Dh + 2 * C * C * Dv
        projections = 8 * D * D
        if self.decay == "gla":
            per_chunk += 2 * C * SUB_CHUNK * Dh  # exact per-channel scores inside sub-chunks
            projections += 2 * D * GATE_RANK + 2 * GATE_RANK * D
        if self.output_gate:
            projections += 2 * D * D
        return float(projections + H * N * per_chunk / seq_len)

    def state_bytes(self, seq_len: int, dtype: torch.dtype = torch.float32) -> int:
        z = self.head_dim if self.normalize == "denominator" else 0
        return self.heads * (self.head_dim * self.head_dim + z) * dtype.itemsize
