"""Causal linear attention (Katharopoulos et al. 2020, "Transformers are RNNs").

Replacing softmax(q·k) by a kernel φ(q)·φ(k) with a non-negative feature map φ lets attention
factorise through a running state, per head:

    S_t = Σ_{s≤t} φ(k_s) v_sᵀ      z_t = Σ_{s≤t} φ(k_s)      y_t = φ(q_t)ᵀ S_t / (φ(q_t)ᵀ z_t + eps)

so decoding carries (S, z), whose size does not grow with the context. Training uses the
chunked form: the sequence is cut into chunks of C=64 tokens; inside a chunk the masked
quadratic form (like attention without softmax), across chunks the state as of the chunk's
start. The states of all chunks come from one cumulative sum, so there is no Python loop over
time or chunks. The denominator rides along the numerator: values get an extra channel of ones,
so the same matmuls produce φ(q)ᵀS (first Dh channels) and φ(q)ᵀz (last channel).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from nas.blocks.base import TokenMixer, mark_residual_out
from nas.blocks.registry import Knob, register_block

CHUNK = 64
EPS = 1e-6


def _elu_plus_one(x: torch.Tensor) -> torch.Tensor:
    return F.elu(x) + 1.0


FEATURE_MAPS = {"elu": _elu_plus_one, "relu": F.relu}


@register_block(
    "linear_attention",
    "token_mixer",
    knobs=[
        Knob("heads", int, 4, minimum=1, doc="heads; must divide d_model"),
        Knob(
            "feature_map",
            str,
            "elu",
            choices=("elu", "relu"),
            doc="φ: elu means elu(x)+1, relu means max(x, 0)",
        ),
    ],
)
class LinearAttention(TokenMixer):
    """Causal kernelised linear attention: chunked parallel form, (S, z) recurrent form.

    step() state: tuple ``(S, z)`` with S (B, H, Dh, Dh) = Σ φ(k) vᵀ and z (B, H, Dh) = Σ φ(k).
    """

    chunk_size = CHUNK

    def __init__(
        self, d_model: int, layer_idx: int, heads: int = 4, feature_map: str = "elu"
    ) -> None:
        super().__init__(d_model, layer_idx)
        self._raise_if_invalid(heads=heads, feature_map=feature_map)
        self.heads = heads
        self.head_dim = d_model // heads
        self.feature_map = feature_map
        self.phi = FEATURE_MAPS[feature_map]
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = mark_residual_out(nn.Linear(d_model, d_model, bias=False))

    @classmethod
    def _validate(cls, d_model, heads, feature_map) -> list[str]:
        if d_model % heads:
            return [f"heads={heads} does not divide d_model={d_model}"]
        return []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        H, Dh = self.heads, self.head_dim
        C = min(self.chunk_size, T)
        pad = -T % C
        N = (T + pad) // C
        qkv = self.qkv(x).view(B, T, 3, H, Dh).permute(2, 0, 3, 1, 4)  # (3, B, H, T, Dh)
        q, k, v = qkv.unbind(0)  # (B, H, T, Dh) each
        q, k = self.phi(q), self.phi(k)
        v = F.pad(v, (0, 1), value=1.0)  # (B, H, T, Dh+1): last channel accumulates z
        if pad:  # zero keys after the end add nothing to any state; their outputs are dropped
            q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
        q = q.reshape(B, H, N, C, Dh)  # (B, H, N, C, Dh)
        k = k.reshape(B, H, N, C, Dh)  # (B, H, N, C, Dh)
        v = v.reshape(B, H, N, C, Dh + 1)  # (B, H, N, C, Dh+1)
        kv = k.transpose(-1, -2) @ v  # (B, H, N, Dh, Dh+1): each chunk's own Σ φ(k)[v, 1]ᵀ
        state = F.pad(kv.cumsum(dim=2)[:, :, :-1], (0, 0, 0, 0, 1, 0))  # state at chunk start
        scores = (q @ k.transpose(-1, -2)).tril_()  # (B, H, N, C, C), s ≤ t within the chunk
        out = q @ state + scores @ v  # (B, H, N, C, Dh+1)
        out = out.view(B, H, N * C, Dh + 1)[:, :, :T]  # (B, H, T, Dh+1)
        y = out[..., :Dh] / (out[..., Dh:] + EPS)  # (B, H, T, Dh)
        y = y.transpose(1, 2).reshape(B, T, D)  # (B, T, D)
        return self.out(y)

    def step(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        B, D = x.shape
        H, Dh = self.heads, self.head_dim
        q, k, v = self.qkv(x).view(B, 3, H, Dh).unbind(1)  # (B, H, Dh) each
        q, k = self.phi(q), self.phi(k)
        if state is None:
            S = x.new_zeros(B, H, Dh, Dh)
            z = x.new_zeros(B, H, Dh)
        else:
            S, z = state
        S = S + k[..., :, None] * v[..., None, :]  # (B, H, Dh, Dh)
        z = z + k  # (B, H, Dh)
        num = (q[..., None, :] @ S).squeeze(-2)  # (B, H, Dh)
        den = (q * z).sum(dim=-1, keepdim=True)  # (B, H, 1)
        y = (num / (den + EPS)).reshape(B, D)  # (B, D)
        return self.out(y), (S, z)

    # -- costs ---------------------------------------------------------------------------------
    def num_params(self) -> int:
        return 4 * self.d_model * self.d_model

    def flops_per_token(self, seq_len: int) -> float:
        """Projections plus, per chunk and head, the four chunk matmuls of forward(); a short
        final chunk is padded, so it costs a full one."""
        D, H, Dh = self.d_model, self.heads, self.head_dim
        C = min(self.chunk_size, seq_len)
        N = math.ceil(seq_len / C)
        Dv = Dh + 1  # values carry the ones channel for z
        per_chunk = 2 * C * Dh * Dv + 2 * C * Dh * Dv + 2 * C * C * Dh + 2 * C * C * Dv
        return float(8 * D * D + H * N * per_chunk / seq_len)

    def state_bytes(self, seq_len: int, dtype: torch.dtype = torch.float32) -> int:
        return self.heads * (self.head_dim * self.head_dim + self.head_dim) * dtype.itemsize
