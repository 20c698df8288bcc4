"""Causal softmax self-attention (Vaswani et al. 2017) and its common variants.

RoPE (Su et al. 2021, RoFormer) rotates each query/key channel pair by an angle proportional to
the token's absolute position, so q·k depends only on the offset between the two tokens and the
model needs no position embedding. Grouped-query attention (Ainslie et al. 2023) lets a group of
query heads share one key/value head, shrinking the KV cache by that factor; kv_heads=1 is
multi-query attention (Shazeer 2019).

Variants, each one knob (defaults give the plain block above):
  - ``gate``: a sigmoid output gate computed from the layer input, multiplied into the attention
    output before the output projection, one scalar per head (``headwise``) or per channel
    (``elementwise``) — gated attention (Qiu et al. 2025, "Gated Attention for Large Language
    Models").
  - ``window`` / ``sinks``: sliding-window attention over the last ``window`` tokens, optionally
    plus the first ``sinks`` tokens of the sequence (attention sinks, Xiao et al. 2023,
    StreamingLLM). Decoding keeps a bounded KV cache of sinks + window entries.
  - ``query_heads``: sparse query attention (Filipek et al. 2025): fewer query heads than
    ``heads``, each still of width d_model / heads, which cuts the score and value FLOPs.

Training runs through `F.scaled_dot_product_attention` (``is_causal=True``; with a sliding
window at long T, blocks of queries against only the keys their window reaches, so a window
costs O(T·W), not O(T²)); decoding keeps a KV cache and attends the new query to every cached key.
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


GATES = ("none", "headwise", "elementwise")


def sliding_window_mask(
    seq_len: int, window: int, sinks: int = 0, device: torch.device | str | None = None
) -> torch.Tensor:
    """Boolean (seq_len, seq_len) mask, True where query i may attend to key j: j <= i and
    either i - j < window (the last `window` keys, the query's own included) or j < sinks."""
    i = torch.arange(seq_len, device=device)
    offset = i[:, None] - i[None, :]  # (T, T): query position - key position
    return (offset >= 0) & ((offset < window) | (i[None, :] < sinks))


WINDOW_QUERY_BLOCK = 64  # queries per block of the blocked sliding-window path (at least W)


def blocked_window_mask(
    n_blocks: int, block: int, window: int, sinks: int, device: torch.device | str | None = None
) -> torch.Tensor:
    """Boolean (N, Q, S + W-1 + Q) mask for `blocked_window_attention`: query a of block n (at
    position n·Q + a) against its key slots — the S sinks, then positions n·Q-W+1 .. n·Q+Q-1.
    A sink is visible only when it lies outside the window (inside, its window slot counts)."""
    P = window - 1
    a = torch.arange(block, device=device)[:, None]  # (Q, 1)
    n = torch.arange(n_blocks, device=device)[:, None, None]  # (N, 1, 1)
    c = torch.arange(P + block, device=device)[None, :]  # (1, P+Q): window slots
    in_window = (c >= a) & (c <= a + P) & (c >= P - n * block)  # (N, Q, P+Q): p >= 0 too
    j = torch.arange(sinks, device=device)[None, :]  # (1, S)
    sink_visible = (n * block + a - j >= window).expand(n_blocks, block, sinks)  # (N, Q, S)
    return torch.cat((sink_visible, in_window), dim=-1)


def blocked_window_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int, sinks: int, mask: torch.Tensor
) -> torch.Tensor:
    """Causal sliding-window attention (plus sinks) for q, k, v (B, H, T, Dh) -> (B, H, T, Dh),
    equal to SDPA under `sliding_window_mask`. Queries go in blocks of Q = mask.shape[1]; each
    block meets only its S sinks and the W-1+Q keys its window reaches, so the cost is
    O(T·(S + W + Q)) instead of O(T²). `mask` is `blocked_window_mask(N, Q, window, sinks)`."""
    B, H, T, Dh = q.shape
    N, Q = mask.shape[:2]
    P, pad = window - 1, N * Q - T

    def key_slots(x: torch.Tensor) -> torch.Tensor:  # (B, H, T, Dh) -> (B·H, N, S+P+Q, Dh)
        slots = F.pad(x, (0, 0, P, pad)).unfold(2, P + Q, Q)  # (B, H, N, Dh, P+Q)
        slots = slots.transpose(-1, -2)  # (B, H, N, P+Q, Dh)
        if sinks:
            sink = x[:, :, None, :sinks].expand(B, H, N, sinks, Dh)  # (B, H, N, S, Dh)
            slots = torch.cat((sink, slots), dim=3)
        return slots.reshape(B * H, N, sinks + P + Q, Dh)

    q = F.pad(q, (0, 0, 0, pad)).reshape(B * H, N, Q, Dh)  # (B·H, N, Q, Dh)
    y = F.scaled_dot_product_attention(q, key_slots(k), key_slots(v), attn_mask=mask)
    return y.reshape(B, H, N * Q, Dh)[:, :, :T]  # (B, H, T, Dh)


@register_block(
    "attention",
    "token_mixer",
    knobs=[
        Knob("heads", int, 4, minimum=1, doc="heads; must divide d_model (head dim = D/heads)"),
        Knob(
            "kv_heads",
            int,
            None,
            minimum=1,
            doc="key/value heads, must divide the query heads; None means one per query head "
            "(GQA/MQA if fewer)",
        ),
        Knob("rope", bool, True, doc="rotary position embedding on queries and keys"),
        Knob("rope_base", float, 10000.0, doc="RoPE wavelength base"),
        Knob(
            "gate",
            str,
            "none",
            choices=GATES,
            doc="sigmoid output gate from the layer input: none, one per head, one per channel",
        ),
        Knob(
            "window",
            int,
            None,
            minimum=1,
            doc="sliding window: attend to the last `window` tokens only; None means all",
        ),
        Knob("sinks", int, 0, minimum=0, doc="with a window, keys 0..sinks-1 stay visible"),
        Knob(
            "query_heads",
            int,
            None,
            minimum=1,
            doc="sparse query attention: query heads of width d_model/heads, at most heads; "
            "None means = heads",
        ),
    ],
)
class Attention(TokenMixer):
    """Causal multi-head softmax attention: RoPE, GQA/MQA, output gate, sliding window, SQA.

    Shapes: ``heads`` H fixes the head width Dh = D / H. There are Hq = ``query_heads`` query
    heads (default H) and Hkv = ``kv_heads`` key/value heads (default Hq), Hkv dividing Hq; query
    head h reads kv head h // (Hq / Hkv). ``query_heads`` < H is sparse query attention: the
    query projection is D -> Hq·Dh and the output projection Hq·Dh -> D, so the score/value
    FLOPs shrink by Hq / H. Combined with GQA the kv heads are grouped under the *query* heads
    that remain, so ``kv_heads: full`` (or None) means Hkv = Hq (symmetric SQA), and e.g.
    heads=8, query_heads=4, kv_heads=2 has two query heads per kv head.

    ``gate``: g = sigmoid(x W_g) from the block input x, W_g: D -> Hq (``headwise``, one scalar
    per head and token) or D -> Hq·Dh (``elementwise``; = D -> D without SQA), multiplied into
    the attention output before the output projection. W_g is fused into the qkv projection
    (its last rows), which stays D -> Hq·Dh + 2·Hkv·Dh when there is no gate.

    ``window`` W (and ``sinks`` S): query t attends to keys in (t - W, t] plus keys 0..S-1.
    Positions stay absolute: RoPE rotates by the token's position in the whole sequence, also
    when decoding (unlike StreamingLLM, which renumbers the cache). Training uses SDPA with a
    dense boolean mask (cached per length and device) when the window actually cuts something
    (T > W + S), else the plain causal kernel.

    Costs: ``flops_per_token`` counts min(W + S, seq_len) keys per query, what a windowed kernel
    executes; the dense masked SDPA path used for training computes all seq_len keys and masks
    most of them, so FlopCounterMode measures more than this for seq_len > W + S.
    ``state_bytes(seq_len)`` counts min(seq_len, S + W) cached keys and values.

    step() state: dict ``{"k": (B, Hkv, n, Dh), "v": (B, Hkv, n, Dh), "pos": t}``, keys already
    rotated; ``pos`` (a Python int) is the absolute position of the next token. With a window
    the cache keeps the sinks and the last W keys only (n <= S + W), exactly the keys the next
    query may see, so the step attends to all of them.
    """

    def __init__(
        self,
        d_model: int,
        layer_idx: int,
        heads: int = 4,
        kv_heads: int | None = None,
        rope: bool = True,
        rope_base: float = 10000.0,
        gate: str = "none",
        window: int | None = None,
        sinks: int = 0,
        query_heads: int | None = None,
    ) -> None:
        super().__init__(d_model, layer_idx)
        self._raise_if_invalid(
            heads=heads,
            kv_heads=kv_heads,
            rope=rope,
            rope_base=rope_base,
            gate=gate,
            window=window,
            sinks=sinks,
            query_heads=query_heads,
        )
        self.heads = heads
        self.head_dim = d_model // heads
        self.query_heads = heads if query_heads is None else query_heads
        self.kv_heads = self.query_heads if kv_heads is None else kv_heads
        self.q_dim = self.query_heads * self.head_dim
        self.kv_dim = self.kv_heads * self.head_dim
        self.gate = gate
        self.gate_dim = {"none": 0, "headwise": self.query_heads, "elementwise": self.q_dim}[gate]
        self.window = window
        self.sinks = sinks
        self.splits = (self.q_dim, self.kv_dim, self.kv_dim, self.gate_dim)
        self.qkv = nn.Linear(d_model, sum(self.splits), bias=False)
        self.out = mark_residual_out(nn.Linear(self.q_dim, d_model, bias=False))
        self.rotary = Rotary(self.head_dim, float(rope_base)) if rope else None
        if window is not None:  # cache of sliding_window_mask for the last length seen
            self.register_buffer("window_mask", torch.empty(0, 0, dtype=torch.bool),
                                 persistent=False)

    @classmethod
    def canonicalize(cls, knobs: dict) -> dict:
        """Spell defaults that depend on other knobs as numbers: `query_heads: None` is the heads
        count, `kv_heads: full` (or None) one kv head per query head. Sinks only exist inside a
        sliding window, so without one they are 0 (a space may then search `window: {choice:
        [null, 64]}` beside `sinks: 4`)."""
        knobs = dict(knobs)
        if "window" in knobs and knobs["window"] is None and "sinks" in knobs:
            knobs["sinks"] = 0
        if "query_heads" in knobs and knobs["query_heads"] is None:
            if isinstance(knobs.get("heads"), int):
                knobs["query_heads"] = knobs["heads"]
        query_heads = knobs.get("query_heads")
        if query_heads is None:
            query_heads = knobs.get("heads")
        if knobs.get("kv_heads") in ("full", None) and isinstance(query_heads, int):
            knobs["kv_heads"] = query_heads
        return knobs

    @classmethod
    def _validate(
        cls, d_model, heads, kv_heads, rope, rope_base, gate, window, sinks, query_heads
    ) -> list[str]:
        problems = []
        if d_model % heads:
            problems.append(f"heads={heads} does not divide d_model={d_model}")
        elif rope and (d_model // heads) % 2:
            problems.append(f"rope needs an even head dim, got d_model/heads={d_model // heads}")
        if query_heads is not None and query_heads > heads:
            problems.append(
                f"query_heads={query_heads} exceeds heads={heads} (sparse query attention "
                "keeps at most heads query heads)"
            )
        if kv_heads is not None:
            if query_heads is None and heads % kv_heads:
                problems.append(f"kv_heads={kv_heads} does not divide heads={heads}")
            elif query_heads is not None and query_heads % kv_heads:
                problems.append(
                    f"kv_heads={kv_heads} does not divide query_heads={query_heads} "
                    "(each kv head serves a whole group of query heads)"
                )
        if rope and rope_base <= 1:
            problems.append(f"rope_base must be > 1, got {rope_base}")
        if window is not None and window < 1:  # also a knob minimum; kept for direct calls
            problems.append(f"window must be >= 1, got {window}")
        if sinks < 0:
            problems.append(f"sinks must be >= 0, got {sinks}")
        elif sinks and window is None:
            problems.append(
                f"sinks={sinks} needs a window: without one every token is visible anyway "
                "(set window, or sinks: 0)"
            )
        return problems

    def _repeat_kv(self, x: torch.Tensor) -> torch.Tensor:
        """(B, Hkv, T, Dh) -> (B, Hq, T, Dh): query head h reads kv head h // (Hq / Hkv)."""
        if self.kv_heads == self.query_heads:
            return x
        B, Hkv, T, Dh = x.shape
        x = x[:, :, None].expand(B, Hkv, self.query_heads // Hkv, T, Dh)  # (B, Hkv, G, T, Dh)
        return x.reshape(B, self.query_heads, T, Dh)  # (B, Hq, T, Dh)

    def _window_mask(self, T: int, device: torch.device) -> torch.Tensor:
        """The mask of the cheaper windowed path at length T, cached until the length or device
        changes: `blocked_window_mask` (N, Q, S+W-1+Q) when the blocks execute fewer scores than
        the dense (T, T) `sliding_window_mask`, else the dense one."""
        block = max(self.window, WINDOW_QUERY_BLOCK)
        n_blocks = -(-T // block)
        blocked = (self.sinks + self.window - 1 + block) * n_blocks * block < T * T
        shape = (n_blocks, block, self.sinks + self.window - 1 + block) if blocked else (T, T)
        mask = self.window_mask
        if mask.shape != shape or mask.device != device:
            # A normal tensor even under inference_mode (see Rotary._grow).
            with torch.inference_mode(False):
                if blocked:
                    mask = blocked_window_mask(n_blocks, block, self.window, self.sinks, device)
                else:
                    mask = sliding_window_mask(T, self.window, self.sinks, device)
            self.window_mask = mask
        return mask

    def _gated(self, y: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """y (..., Hq, Dh) times sigmoid of the gate logits g (..., gate_dim)."""
        if self.gate == "headwise":
            return y * torch.sigmoid(g)[..., None]
        return y * torch.sigmoid(g).view_as(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v, g = self.qkv(x).split(self.splits, dim=-1)
        q = q.view(B, T, self.query_heads, self.head_dim).transpose(1, 2)  # (B, Hq, T, Dh)
        k = k.view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, T, Dh)
        v = v.view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, T, Dh)
        if self.rotary is not None:
            cos, sin = self.rotary(0, T, q.dtype)  # (T, Dh)
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        k, v = self._repeat_kv(k), self._repeat_kv(v)  # (B, Hq, T, Dh)
        if self.window is not None and T > self.window + self.sinks:
            mask = self._window_mask(T, x.device)  # (N, Q, S+W-1+Q) or (T, T)
            if mask.dim() == 3:
                y = blocked_window_attention(q, k, v, self.window, self.sinks, mask)
            else:
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, Hq, T, Dh)
        else:  # nothing to cut: the window covers every causal key
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, Hq, T, Dh)
        y = y.transpose(1, 2)  # (B, T, Hq, Dh)
        if self.gate != "none":
            y = self._gated(y, g)
        return self.out(y.reshape(B, T, self.q_dim))

    def step(self, x: torch.Tensor, state: dict | None = None) -> tuple[torch.Tensor, dict]:
        B, D = x.shape
        G = self.query_heads // self.kv_heads
        pos = 0 if state is None else state["pos"]
        q, k, v, g = self.qkv(x).split(self.splits, dim=-1)
        q = q.view(B, self.kv_heads, G, self.head_dim)  # (B, Hkv, G, Dh)
        k = k.view(B, self.kv_heads, 1, self.head_dim)  # (B, Hkv, 1, Dh)
        v = v.view(B, self.kv_heads, 1, self.head_dim)  # (B, Hkv, 1, Dh)
        if self.rotary is not None:
            cos, sin = self.rotary(pos, pos + 1, q.dtype)  # (1, Dh)
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if state is None:  # own copies, not views into the qkv projection
            k, v = k.clone(), v.clone()
        elif self.window is not None and state["k"].shape[2] == self.sinks + self.window:
            # Full: drop the oldest non-sink key. cat allocates exactly the kept entries.
            s = self.sinks
            k = torch.cat((state["k"][:, :, :s], state["k"][:, :, s + 1 :], k), dim=2)
            v = torch.cat((state["v"][:, :, :s], state["v"][:, :, s + 1 :], v), dim=2)
        else:
            k = torch.cat((state["k"], k), dim=2)  # (B, Hkv, n, Dh)
            v = torch.cat((state["v"], v), dim=2)  # (B, Hkv, n, Dh)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)  # (B, Hkv, G, n)
        att = scores.float().softmax(dim=-1).to(v.dtype)
        y = (att @ v).reshape(B, self.query_heads, self.head_dim)  # (B, Hq, Dh)
        if self.gate != "none":
            y = self._gated(y, g)
        return self.out(y.reshape(B, self.q_dim)), {"k": k, "v": v, "pos": pos + 1}

    # -- costs ---------------------------------------------------------------------------------
    def _keys(self, seq_len: int) -> int:
        """Keys one query attends to, as a windowed kernel would execute (dense otherwise)."""
        if self.window is None:
            return seq_len
        return min(self.window + self.sinks, seq_len)

    def num_params(self) -> int:
        D = self.d_model
        return D * sum(self.splits) + self.q_dim * D

    def flops_per_token(self, seq_len: int) -> float:
        D = self.d_model
        projections = 2 * D * sum(self.splits) + 2 * self.q_dim * D
        # q·k and att·v over the attended keys, all query heads
        scores_and_values = 2 * 2 * self._keys(seq_len) * self.q_dim
        return float(projections + scores_and_values)

    def state_bytes(self, seq_len: int, dtype: torch.dtype = torch.float32) -> int:
        cached = seq_len if self.window is None else min(seq_len, self.sinks + self.window)
        return 2 * cached * self.kv_dim * dtype.itemsize
