"""A decoder-only language model assembled from registered blocks, as an ArchSpec describes it.

Token embedding, then pre-norm residual layers (token mixer, channel mixer), a final norm, and
an LM head with its own matrix (untied; tying it to the embedding, Press & Wolf 2017, is an
option). By default there are no absolute position embeddings: position reaches the model
through RoPE, convolution or recurrence inside the token mixers (learned or sinusoidal absolute
positions are options).

These choices are the spec's (ArchSpec.init, tie_head, positions, max_positions), settable in a
space's `model:` section. Initialisation, by default, is PyTorch's own for every module
(``init: torch``): Linear weights U(±1/sqrt(fan_in)), so their scale follows the width, and
embeddings N(0, 1). GPT-2's N(0, 0.02), with residual-stream outputs scaled by
1/sqrt(2·n_layers), is ``init: gpt2`` (what every spec written before the option means); it
was tuned for width 768 and at the small widths a search trains (32-256) it is 3-5x smaller
than fan-in scaling. Issue #17 (BENCHMARKS.md, "Learning speed") measured both choices, and
the tied head, on MQAR: the GPT-2 init and the tied head each slow learning several-fold at
widths 32-64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn

from nas.blocks.base import ChannelMixer, TokenMixer
from nas.blocks.norm import make_norm
from nas.blocks.registry import get_block
from nas.spec import INITS, POSITIONS, ArchSpec, ModuleSpec

INIT_STD = 0.02
DEFAULT_MAX_POSITIONS = 2048  # first size of a sinusoidal table (it grows as needed)


def sinusoidal_table(
    n: int, d_model: int, device: torch.device | str | None = None
) -> torch.Tensor:
    """(n, d_model) fixed position table of Vaswani et al. 2017: sin on even channels, cos on
    odd ones, wavelengths from 2π to 10000·2π."""
    pos = torch.arange(n, dtype=torch.float32, device=device)[:, None]  # (n, 1)
    freq = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float32, device=device) / d_model)
    table = torch.zeros(n, d_model, device=device)
    table[:, 0::2] = torch.sin(pos * freq)  # (n, ceil(D/2))
    table[:, 1::2] = torch.cos(pos * freq[: d_model // 2])  # (n, floor(D/2))
    return table


class Block(nn.Module):
    """Pre-norm residual layer: x + mixer(norm1(x)), then + channel(norm2(·))."""

    def __init__(self, mixer: TokenMixer, channel: ChannelMixer, norm: str = "rmsnorm") -> None:
        super().__init__()
        d_model = mixer.d_model
        self.norm1 = make_norm(norm, d_model)
        self.mixer = mixer
        self.norm2 = make_norm(norm, d_model)
        self.channel = channel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mixer(self.norm1(x))
        x = x + self.channel(self.norm2(x))
        return x

    def step(self, x: torch.Tensor, state=None):
        """One token (B, D) through the layer; the state is the mixer's."""
        h, state = self.mixer.step(self.norm1(x), state)
        x = x + h
        x = x + self.channel(self.norm2(x))
        return x, state

    def num_params(self) -> int:
        norms = sum(p.numel() for n in (self.norm1, self.norm2) for p in n.parameters())
        return self.mixer.num_params() + self.channel.num_params() + norms


class LanguageModel(nn.Module):
    """Embedding (+ absolute positions) -> blocks -> norm -> LM head.

    ``forward(tokens (B, T) long) -> logits (B, T, V)``;
    ``step(tokens (B,) long, state) -> (logits (B, V), state)`` with state a list holding each
    layer's mixer state (None to start from an empty context); with absolute positions the list
    ends with one more entry, the position (a Python int) of the next token.

    `tie_head`: the head shares the embedding matrix (Press & Wolf 2017) or has its own.
    `positions`: "none" (position only through the mixers: RoPE, convolution, recurrence),
    "learned" (a learned absolute embedding of `max_positions` rows, added to the token
    embedding; longer inputs raise) or "sinusoidal" (the fixed table of Vaswani et al. 2017,
    no parameters, any length).
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        blocks: Sequence[Block],
        norm: str = "rmsnorm",
        *,
        tie_head: bool = False,
        positions: str = "none",
        max_positions: int = DEFAULT_MAX_POSITIONS,
    ) -> None:
        super().__init__()
        if positions not in POSITIONS:
            raise ValueError(f"unknown positions {positions!r}; known: {', '.join(POSITIONS)}")
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.positions = positions
        self.tie_head = tie_head
        self.embed = nn.Embedding(vocab_size, d_model)
        if positions == "learned":
            self.pos_embed = nn.Embedding(max_positions, d_model)
        elif positions == "sinusoidal":
            self.register_buffer("pos_table", sinusoidal_table(max_positions, d_model),
                                 persistent=False)
        self.blocks = nn.ModuleList(blocks)
        self.norm = make_norm(norm, d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        if tie_head:
            self.head.weight = self.embed.weight

    def _position_rows(self, start: int, end: int, device: torch.device) -> torch.Tensor | None:
        """Absolute position vectors for positions start..end-1, (end - start, D); None when
        the model has none."""
        if self.positions == "none":
            return None
        if self.positions == "learned":
            if end > self.pos_embed.num_embeddings:
                raise ValueError(f"position {end - 1} is past the learned position table "
                                 f"({self.pos_embed.num_embeddings} rows)")
            return self.pos_embed.weight[start:end]
        if end > self.pos_table.shape[0]:  # sinusoidal: grow the table as needed
            with torch.inference_mode(False):
                self.pos_table = sinusoidal_table(1 << (end - 1).bit_length(), self.d_model,
                                                  device=device)
        return self.pos_table[start:end]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)  # (B, T, D)
        pos = self._position_rows(0, tokens.shape[1], tokens.device)  # (T, D) or None
        if pos is not None:
            x = x + pos.to(x.dtype)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))  # (B, T, V)

    def step(self, tokens: torch.Tensor, state: list | None = None) -> tuple[torch.Tensor, list]:
        x = self.embed(tokens)  # (B, D)
        n = len(self.blocks)
        if state is None:
            state = [None] * n + ([0] if self.positions != "none" else [])
        new_state = []
        for block, layer_state in zip(self.blocks, state[:n], strict=True):
            if not new_state and self.positions != "none":
                t = state[n]
                x = x + self._position_rows(t, t + 1, tokens.device)[0].to(x.dtype)  # (B, D)
            x, layer_state = block.step(x, layer_state)
            new_state.append(layer_state)
        if self.positions != "none":
            new_state.append(state[n] + 1)
        return self.head(self.norm(x)), new_state  # (B, V)

    # -- auxiliary losses ------------------------------------------------------------------------
    def aux_loss_modules(self) -> tuple[nn.Module, ...]:
        """The submodules that may set an auxiliary loss (an ``aux_loss`` attribute holding a
        tensor or None, e.g. a mixture of experts' load-balancing loss). Found once, then
        cached: the model's structure does not change after it is built."""
        cached = self.__dict__.get("_aux_loss_modules")
        if cached is None:
            cached = tuple(m for m in self.modules() if m is not self and _has_aux_loss(m))
            self.__dict__["_aux_loss_modules"] = cached
        return cached

    def aux_loss(self) -> torch.Tensor:
        """Sum of the auxiliary losses the submodules set during the last forward (each already
        scaled by its own weight); a 0-d zero tensor if none did. Blocks set theirs only in
        training mode, so this is 0 after an eval-mode forward."""
        losses = [m.aux_loss for m in self.aux_loss_modules() if m.aux_loss is not None]
        if not losses:
            return torch.zeros((), device=self.embed.weight.device)
        return torch.stack([loss.float() for loss in losses]).sum()

    # -- costs ---------------------------------------------------------------------------------
    def num_params(self) -> int:
        """Unique parameters: a tied embedding / head matrix once."""
        final_norm = sum(p.numel() for p in self.norm.parameters())
        head = 0 if self.tie_head else self.head.weight.numel()
        pos = self.pos_embed.weight.numel() if self.positions == "learned" else 0
        return (
            self.embed.weight.numel()
            + pos
            + sum(block.num_params() for block in self.blocks)
            + final_norm
            + head
        )

    def flops_per_token(self, seq_len: int) -> float:
        """Blocks plus the LM head matmul (the embedding lookup is a gather, no FLOPs)."""
        blocks = sum(
            b.mixer.flops_per_token(seq_len) + b.channel.flops_per_token(seq_len)
            for b in self.blocks
        )
        return blocks + 2.0 * self.d_model * self.vocab_size

    def state_bytes(self, seq_len: int, dtype: torch.dtype = torch.float32) -> int:
        """Decode state per sequence after seq_len tokens: the sum of the mixers'."""
        return sum(b.mixer.state_bytes(seq_len, dtype) for b in self.blocks)


def _has_aux_loss(module: nn.Module) -> bool:
    """True if `module` has an ``aux_loss`` instance attribute (a tensor or None), not a method."""
    value = module.__dict__.get("aux_loss", False)
    return value is None or isinstance(value, torch.Tensor)


def _make(module: ModuleSpec, role: str, d_model: int, layer_idx: int) -> nn.Module:
    info = get_block(module.kind, role=role)  # KeyError naming the known blocks
    knobs = info.defaults | module.knobs
    problems = info.cls.validate(d_model, **knobs)
    if problems:
        raise ValueError(f"layer {layer_idx}: " + "; ".join(problems))
    return info.cls(d_model, layer_idx, **knobs)


def init_weights(model: nn.Module, n_layers: int) -> None:
    """GPT-2 init: N(0, 0.02) for Linear and Embedding weights, zero biases, and residual-stream
    output projections (marked ``residual_out``) at 0.02 / sqrt(2·n_layers). Other modules
    (norms, convolutions) keep their own initialisation."""
    residual_std = INIT_STD / math.sqrt(2 * n_layers)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            std = residual_std if getattr(module, "residual_out", False) else INIT_STD
            nn.init.normal_(module.weight, 0.0, std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, INIT_STD)


def build_model(spec: ArchSpec, seed: int = 0, device: str | torch.device = "cpu") -> LanguageModel:
    """The model `spec` describes, initialised deterministically from `seed`.

    Knobs missing from the spec take the registry defaults; the model-wide choices are the
    spec's: `spec.init` ("torch": every module keeps PyTorch's own default initialisation;
    "gpt2": init_weights), `spec.tie_head`, `spec.positions` and `spec.max_positions` (see
    LanguageModel). Construction runs on the CPU inside a forked RNG seeded with `seed` (the
    caller's RNG state is untouched), then moves to `device`, so a seed gives the same weights
    on any device.
    """
    if spec.init not in INITS:  # ArchSpec checks too; a spec object may come from elsewhere
        raise ValueError(f"unknown init {spec.init!r}; known: {', '.join(INITS)}")
    blocks = []
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        for i, layer in enumerate(spec.layers):
            mixer = _make(layer.mixer, "token_mixer", spec.d_model, i)
            channel = _make(layer.channel_mixer, "channel_mixer", spec.d_model, i)
            blocks.append(Block(mixer, channel, spec.norm))
        model = LanguageModel(spec.vocab_size, spec.d_model, blocks, spec.norm,
                              tie_head=spec.tie_head, positions=spec.positions,
                              max_positions=spec.max_positions or DEFAULT_MAX_POSITIONS)
        if spec.init == "gpt2":
            init_weights(model, spec.n_layers)
    model.spec = spec
    return model.to(device)
