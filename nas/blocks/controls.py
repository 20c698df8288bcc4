"""Control token mixers: baselines that tell a search how much token mixing buys at all.

MetaFormer (Yu et al. 2022, "MetaFormer is actually what you need") asks how much of a model's
quality comes from its token mixer rather than the surrounding block; these are its controls.

  identity   y = x: no parameters, no mixing across time (MetaFormer's identity mapping). Inside
             the pre-norm residual layer the stream becomes x + norm1(x): the layer is in effect
             its channel mixer alone, each position processed on its own.
  mean_pool  y_t = W_o · mean_{s≤t} x_s: the causal running mean (a parameter-free, uniform-weight
             "attention" over the whole prefix), then an output projection into the residual
             stream. Decoding carries the running sum and count.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from nas.blocks.base import TokenMixer, mark_residual_out
from nas.blocks.registry import register_block


@register_block("identity", "token_mixer")
class Identity(TokenMixer):
    """No token mixing: y = x (MetaFormer's identity control), no parameters, no state.

    step() state: the empty tuple ``()``.
    """

    def __init__(self, d_model: int, layer_idx: int) -> None:
        super().__init__(d_model, layer_idx)
        self._raise_if_invalid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def step(self, x: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, tuple]:
        return x, ()

    def num_params(self) -> int:
        return 0

    def flops_per_token(self, seq_len: int) -> float:
        return 0.0

    def state_bytes(self, seq_len: int, dtype: torch.dtype = torch.float32) -> int:
        return 0


@register_block("mean_pool", "token_mixer")
class MeanPool(TokenMixer):
    """Causal running mean over time, then a linear output projection.

    step() state: tuple ``(total, count)``: total (B, D) = Σ_{s≤t} x_s, count a Python int.
    """

    def __init__(self, d_model: int, layer_idx: int) -> None:
        super().__init__(d_model, layer_idx)
        self._raise_if_invalid()
        self.out = mark_residual_out(nn.Linear(d_model, d_model, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[1]
        count = torch.arange(1, T + 1, device=x.device, dtype=x.dtype)[:, None]  # (T, 1)
        return self.out(x.cumsum(dim=1) / count)  # (B, T, D)

    def step(
        self, x: torch.Tensor, state: tuple[torch.Tensor, int] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, int]]:
        total, count = (torch.zeros_like(x), 0) if state is None else state
        total, count = total + x, count + 1
        return self.out(total / count), (total, count)

    def num_params(self) -> int:
        return self.d_model * self.d_model

    def flops_per_token(self, seq_len: int) -> float:
        """The output projection; the running mean is elementwise work (not counted)."""
        return float(2 * self.d_model * self.d_model)

    def state_bytes(self, seq_len: int, dtype: torch.dtype = torch.float32) -> int:
        return self.d_model * dtype.itemsize
