"""Gated long convolution: an H3 / Hyena-style mixer whose filter is as long as the sequence.

Each channel c of u is convolved causally with a filter h_c over every lag τ = 0 … T-1, then
gated by a second projection (plain multiplicative gate, as in H3 and Hyena):

    u, g = in_proj(x).chunk(2)      y = out_proj(long_causal_conv(u) ⊙ g)

The filter is parametrised implicitly and cheaply, per channel, as a short explicit part plus an
exponentially decaying tail:

    h_c[τ] = k_c[τ]·[τ < kernel_size]  +  w_c · exp(-λ_c τ)         λ_c = softplus(ρ_c) > 0

k (D, kernel_size) holds learned taps indexed by lag (k[:, 0] weighs the current input); w the
per-channel scale of the tail and λ its decay rate. With decay=False the tail is absent and the
block is a gated short convolution (without short_conv's SiLU on the gate).

Forward computes the short part as a depthwise conv1d (left padded) and the tail with FFTs
(torch.fft.rfft over 2T, so the circular convolution equals the linear one on the first T
outputs), in fp32 at least. Because the tail is an exponential, the long convolution has an
exact recurrent form used by step():

    s_t = exp(-λ) ⊙ s_{t-1} + u_t       y_t = w ⊙ s_t + Σ_{τ<K} k[:, τ] ⊙ u_{t-τ}

so decoding keeps s (D) and the last kernel_size-1 inputs u: constant memory, however long the
context. This is a control that is recall-weak by construction: the tail is a fixed
(input-independent) exponential moving average per channel.

Initialisation: λ log-spaced over the channels in [1e-3, 1] (timescales from one token to about
a thousand, as Hyena's exponential modulation spreads them), w_c = 1 - exp(-λ_c) so each tail
starts as a normalised moving average (its taps sum to about 1), k like a Conv1d's default
(uniform ±1/sqrt(kernel_size)). These are plain Parameters, which build_model's N(0, 0.02) init
of Linear weights leaves alone.

Costs: FlopCounterMode counts the projections and the conv1d of the short part, but not FFTs.
``flops_per_token`` is that plus the FFT convolution of the tail, estimated by formula
(``uncounted_flops_per_token``); the tests compare each part with its own reference.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from nas.blocks.base import TokenMixer, mark_residual_out
from nas.blocks.registry import Knob, register_block

DECAY_INIT_RANGE = (1e-3, 1.0)  # λ_c log-spaced over the channels in this range


@register_block(
    "long_conv",
    "token_mixer",
    knobs=[
        Knob("kernel_size", int, 4, minimum=2, doc="taps of the explicit short part of the filter"),
        Knob(
            "decay",
            bool,
            True,
            doc="add the long tail w·exp(-λτ) per channel; false leaves the short filter only",
        ),
    ],
)
class LongConv(TokenMixer):
    """Gated causal long convolution, filter = short explicit taps + exponential tail (FFT).

    step() state: tuple ``(s, buf)`` with s (B, D) the tail's running sum Σ exp(-λτ) u_{t-τ}
    (only with decay=True; the tuple is ``(buf,)`` otherwise) and buf (B, kernel_size-1, D) the
    previous inputs u, oldest first (zeros before the sequence starts).
    """

    def __init__(
        self, d_model: int, layer_idx: int, kernel_size: int = 4, decay: bool = True
    ) -> None:
        super().__init__(d_model, layer_idx)
        self._raise_if_invalid(kernel_size=kernel_size, decay=decay)
        self.kernel_size = kernel_size
        self.decay = decay
        self.in_proj = nn.Linear(d_model, 2 * d_model, bias=False)
        bound = 1.0 / math.sqrt(kernel_size)
        self.taps = nn.Parameter(torch.empty(d_model, kernel_size).uniform_(-bound, bound))
        if decay:
            lo, hi = DECAY_INIT_RANGE
            lam = torch.logspace(math.log10(lo), math.log10(hi), d_model)
            self.decay_raw = nn.Parameter(lam + torch.log(-torch.expm1(-lam)))  # softplus⁻¹(λ)
            self.scale = nn.Parameter(-torch.expm1(-lam))  # w = 1 - exp(-λ)
        self.out_proj = mark_residual_out(nn.Linear(d_model, d_model, bias=False))

    # -- pieces --------------------------------------------------------------------------------
    def _rate(self, dtype: torch.dtype) -> torch.Tensor:
        """λ (D,) > 0 in `dtype`."""
        return F.softplus(self.decay_raw.to(dtype))

    def _tail(self, u: torch.Tensor) -> torch.Tensor:
        """Σ_τ exp(-λτ) u_{t-τ} for u (B, T, D), by FFT over 2T in fp32 at least -> (B, T, D)."""
        B, T, D = u.shape
        fp32 = torch.promote_types(u.dtype, torch.float32)
        lags = torch.arange(T, device=u.device, dtype=fp32)
        kernel = torch.exp(-self._rate(fp32)[:, None] * lags)  # (D, T)
        n = 2 * T
        spectrum = torch.fft.rfft(u.transpose(1, 2).to(fp32), n=n) * torch.fft.rfft(kernel, n=n)
        return torch.fft.irfft(spectrum, n=n)[..., :T].transpose(1, 2).to(u.dtype)

    # -- forward -------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, g = self.in_proj(x).chunk(2, dim=-1)  # (B, T, D) each
        weight = self.taps.flip(-1)[:, None]  # (D, 1, K): conv1d's last tap sees lag 0
        padded = F.pad(u.transpose(1, 2), (self.kernel_size - 1, 0))  # (B, D, K-1+T)
        y = F.conv1d(padded, weight, groups=self.d_model).transpose(1, 2)  # (B, T, D)
        if self.decay:
            y = y + self.scale * self._tail(u)
        return self.out_proj(y * g)

    def step(
        self, x: torch.Tensor, state: tuple[torch.Tensor, ...] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        B, D = x.shape
        u, g = self.in_proj(x).chunk(2, dim=-1)  # (B, D) each
        K = self.kernel_size
        if state is None:
            s = x.new_zeros(B, D) if self.decay else None
            buf = x.new_zeros(B, K - 1, D)
        else:
            s, buf = state if self.decay else (None, state[0])
        lagged = self.taps.flip(-1).t()  # (K, D): row K-1-τ weighs lag τ, oldest first
        y = (buf * lagged[:-1]).sum(dim=1) + u * lagged[-1]  # (B, D)
        buf = torch.cat((buf[:, 1:], u[:, None]), dim=1)  # (B, K-1, D)
        if self.decay:
            s = torch.exp(-self._rate(x.dtype)) * s + u
            y = y + self.scale * s
        out = self.out_proj(y * g)
        return out, ((s, buf) if self.decay else (buf,))

    # -- costs ---------------------------------------------------------------------------------
    def num_params(self) -> int:
        D = self.d_model
        tail = 2 * D if self.decay else 0
        return 2 * D * D + self.kernel_size * D + tail + D * D

    def flops_per_token(self, seq_len: int) -> float:
        """Projections and the short depthwise conv (what FlopCounterMode sees) plus the FFT
        tail (uncounted_flops_per_token)."""
        D = self.d_model
        counted = 2 * D * 2 * D + 2 * self.kernel_size * D + 2 * D * D
        return float(counted + self.uncounted_flops_per_token(seq_len))

    def uncounted_flops_per_token(self, seq_len: int) -> float:
        """Estimated FLOPs per token of the FFT convolution of the tail (FlopCounterMode does
        not count FFTs): per channel, three real FFTs of
        length n = 2T at the radix-2 estimate 2.5·n·log2(n) each (u forward, filter forward —
        once per sequence —, product inverse) plus 6 per frequency bin for the complex product.
        0 with decay=False."""
        if not self.decay:
            return 0.0
        n = 2 * seq_len
        per_channel = 3 * 2.5 * n * math.log2(n) + 6 * (n // 2 + 1)
        return float(self.d_model * per_channel / seq_len)

    def state_bytes(self, seq_len: int, dtype: torch.dtype = torch.float32) -> int:
        tail = 1 if self.decay else 0
        return (self.kernel_size - 1 + tail) * self.d_model * dtype.itemsize
