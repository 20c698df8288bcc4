"""Causal softmax self-attention (Vaswani et al. 2017) with rotary positions and grouped KV heads.

RoPE (Su et al. 2021, RoFormer) rotates each query/key channel pair by an angle proportional to
the token's absolute position, so q·k depends only on the offset between the two tokens and the
model needs no position embedding. Grouped-query attention (Ainslie et al. 2023) lets a group of
heads/kv_heads query heads share one key/value head, shrinking the KV cache by that factor;
kv_heads=1 is multi-query attention (Shazeer 2019).

Training runs through `F.scaled_dot_product_attention(..., is_causal=True)`; decoding keeps a
KV cache and attends the new query to every cached key.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from nas.blocks.base import TokenMixer, mark_residual_out
from nas.blocks.registry import Knob, register_block


class Rotary(nn.Module):
    """cos/sin tables for RoPE in the rotate-half layout (channel i pairs with i + Dh/2).

    The tables are a cache that grows to the next power of two past the longest position seen;
    they are rebuilt in fp32 and are not part of the state_dict.
    """

    def __init__(self, head_dim: int, base: float) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.base = base
        self.register_buffer("cos", torch.empty(0, head_dim), persistent=False)
        self.register_buffer("sin", torch.empty(0, head_dim), persistent=False)

    def _grow(self, end: int) -> None:
        # Normal tensors even when first called under inference_mode (latency is timed that
        # way before training): inference tensors cached here would break backward later.
        with torch.inference_mode(False):
            self._build(max(256, 1 << (end - 1).bit_length()))

    def _build(self, n: int) -> None:
        device = self.cos.device
        half = torch.arange(0, self.head_dim, 2, device=device, dtype=torch.float32)
        inv_freq = self.base ** (-half / self.head_dim)  # (Dh/2,)
        t = torch.arange(n, device=device, dtype=torch.float32)
        angles = torch.outer(t, inv_freq)  # (n, Dh/2)
        angles = torch.cat((angles, angles), dim=-1)  # (n, Dh)
        self.cos, self.sin = angles.cos(), angles.sin()

    def forward(
        self, start: int, end: int, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin for positions start..end-1, each (end - start, Dh)."""
        if end > self.cos.shape[0]:
            self._grow(end)
        return self.cos[start:end].to(dtype), self.sin[start:end].to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (i, i + Dh/2) of x (..., T, Dh) by the angles behind cos/sin (T, Dh)."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


@register_block(
    "attention",
    "token_mixer",
    knobs=[
        Knob("heads", int, 4, minimum=1, doc="query heads; must divide d_model"),
        Knob(
            "kv_heads",
            int,
            None,
            minimum=1,
            doc="key/value heads, must divide heads; None means = heads (GQA/MQA if fewer)",
        ),
        Knob("rope", bool, True, doc="rotary position embedding on queries and keys"),
        Knob("rope_base", float, 10000.0, doc="RoPE wavelength base"),
    ],
)
class Attention(TokenMixer):
    """Causal multi-head softmax attention, optional RoPE and grouped key/value heads.

    step() state: dict ``{"k": (B, Hkv, t, Dh), "v": (B, Hkv, t, Dh), "pos": t}``, keys
    already rotated; ``pos`` (a Python int) is the absolute position of the next token.
    """

    def __init__(
        self,
        d_model: int,
        layer_idx: int,
        heads: int = 4,
        kv_heads: int | None = None,
        rope: bool = True,
        rope_base: float = 10000.0,
    ) -> None:
        super().__init__(d_model, layer_idx)
        self._raise_if_invalid(heads=heads, kv_heads=kv_heads, rope=rope, rope_base=rope_base)
        self.heads = heads
        self.kv_heads = heads if kv_heads is None else kv_heads
        self.head_dim = d_model // heads
        self.kv_dim = self.kv_heads * self.head_dim
        self.splits = (d_model, self.kv_dim, self.kv_dim)
        self.qkv = nn.Linear(d_model, d_model + 2 * self.kv_dim, bias=False)
        self.out = mark_residual_out(nn.Linear(d_model, d_model, bias=False))
        self.rotary = Rotary(self.head_dim, float(rope_base)) if rope else None

    @classmethod
    def canonicalize(cls, knobs: dict) -> dict:
        """`kv_heads: full` (or None) means one kv head per query head: spell it as that number."""
        if knobs.get("kv_heads") in ("full", None) and isinstance(knobs.get("heads"), int):
            knobs = {**knobs, "kv_heads": knobs["heads"]}
        return knobs

    @classmethod
    def _validate(cls, d_model, heads, kv_heads, rope, rope_base) -> list[str]:
        problems = []
        if d_model % heads:
            problems.append(f"heads={heads} does not divide d_model={d_model}")
        elif rope and (d_model // heads) % 2:
            problems.append(f"rope needs an even head dim, got d_model/heads={d_model // heads}")
        if kv_heads is not None and heads % kv_heads:
            problems.append(f"kv_heads={kv_heads} does not divide heads={heads}")
        if rope and rope_base <= 1:
            problems.append(f"rope_base must be > 1, got {rope_base}")
        return problems

    def _repeat_kv(self, x: torch.Tensor) -> torch.Tensor:
        """(B, Hkv, T, Dh) -> (B, H, T, Dh): query head h reads kv head h // (H / Hkv)."""
        if self.kv_heads == self.heads:
            return x
        B, Hkv, T, Dh = x.shape
        x = x[:, :, None].expand(B, Hkv, self.heads // Hkv, T, Dh)  # (B, Hkv, G, T, Dh)
        return x.reshape(B, self.heads, T, Dh)  # (B, H, T, Dh)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).split(self.splits, dim=-1)
        q = q.view(B, T, self.heads, self.head_dim).transpose(1, 2)  # (B, H, T, Dh)
        k = k.view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, T, Dh)
        v = v.view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, T, Dh)
        if self.rotary is not None:
            cos, sin = self.rotary(0, T, q.dtype)  # (T, Dh)
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        k, v = self._repeat_kv(k), self._repeat_kv(v)  # (B, H, T, Dh)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, Dh)
        y = y.transpose(1, 2).reshape(B, T, D)  # (B, T, D)
        return self.out(y)

    def step(self, x: torch.Tensor, state: dict | None = None) -> tuple[torch.Tensor, dict]:
        B, D = x.shape
        G = self.heads // self.kv_heads
        pos = 0 if state is None else state["pos"]
        q, k, v = self.qkv(x).split(self.splits, dim=-1)
        q = q.view(B, self.kv_heads, G, self.head_dim)  # (B, Hkv, G, Dh)
        k = k.view(B, self.kv_heads, 1, self.head_dim)  # (B, Hkv, 1, Dh)
        v = v.view(B, self.kv_heads, 1, self.head_dim)  # (B, Hkv, 1, Dh)
        if self.rotary is not None:
            cos, sin = self.rotary(pos, pos + 1, q.dtype)  # (1, Dh)
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if state is None:  # own copies, not views into the qkv projection
            k, v = k.clone(), v.clone()
        else:
            k = torch.cat((state["k"], k), dim=2)  # (B, Hkv, t, Dh)
            v = torch.cat((state["v"], v), dim=2)  # (B, Hkv, t, Dh)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)  # (B, Hkv, G, t)
        att = scores.float().softmax(dim=-1).to(v.dtype)
        y = (att @ v).reshape(B, D)  # (B, Hkv, G, Dh) -> (B, D)
        return self.out(y), {"k": k, "v": v, "pos": pos + 1}

    # -- costs ---------------------------------------------------------------------------------
    def num_params(self) -> int:
        D = self.d_model
        return D * (D + 2 * self.kv_dim) + D * D

    def flops_per_token(self, seq_len: int) -> float:
        D = self.d_model
        projections = 2 * D * (D + 2 * self.kv_dim) + 2 * D * D
        scores_and_values = 2 * 2 * seq_len * D  # q·k and att·v over all seq_len keys, all heads
        return float(projections + scores_and_values)

    def state_bytes(self, seq_len: int, dtype: torch.dtype = torch.float32) -> int:
        return 2 * seq_len * self.kv_dim * dtype.itemsize
