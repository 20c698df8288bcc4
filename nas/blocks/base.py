"""Base classes for the two kinds of block a layer is made of.

A layer mixes information across time (a *token mixer*: attention, linear attention, a short
convolution, ...) and then across channels (a *channel mixer*: an MLP). Every block states its
own cost analytically, so a search can price a candidate without building or timing it, and
checks its knobs up front, so a bad combination fails at compile time, not mid-training.

FLOPs convention (both roles): 2 per multiply-add of the matmuls and convolutions the forward
pass executes, per token, nothing for elementwise work (norms, activations, softmax, RoPE,
gating, divisions). Dense kernels are counted as dense: softmax attention over a context of T
counts all T keys for every query (the causal mask does not halve it), which is what
`torch.utils.flop_counter.FlopCounterMode` reports and what the usual 6N + 12·L·T·D estimates
assume.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from nas.blocks.registry import get_block


class _Block(nn.Module):
    """Knob checking and parameter counting shared by both roles."""

    block_name: str  # set by @register_block

    def __init__(self, d_model: int, layer_idx: int) -> None:
        super().__init__()
        self.d_model = d_model
        self.layer_idx = layer_idx

    @classmethod
    def canonicalize(cls, knobs: dict[str, Any]) -> dict[str, Any]:
        """One spelling per meaning (e.g. attention's `kv_heads: full` -> the heads count), so
        equal architectures get equal specs and hashes. Identity unless a block overrides it."""
        return knobs

    @classmethod
    def validate(cls, d_model: int, **knobs: Any) -> list[str]:
        """Human-readable problems with `knobs` at this `d_model`; empty if the block can be built.

        Unknown names and values of the wrong type or outside their choices / minimum are
        reported from the registry's declaration; then, with missing knobs filled from their
        defaults, the block's own structural rules (`_validate`) run.
        """
        name = getattr(cls, "block_name", cls.__name__)
        problems = []
        if isinstance(d_model, bool) or not isinstance(d_model, int) or d_model < 1:
            problems.append(f"{name}: d_model must be a positive int, got {d_model!r}")
        declared = get_block(name).knobs if hasattr(cls, "block_name") else ()
        if declared:
            by_name = {k.name: k for k in declared}
            for key, value in knobs.items():
                knob = by_name.get(key)
                if knob is None:
                    problems.append(f"{name}: unknown knob {key!r}; known: {', '.join(by_name)}")
                elif (reason := knob.check(value)) is not None:
                    problems.append(f"{name}: {key} {reason}")
            knobs = {k.name: k.default for k in declared} | knobs
        if problems:  # structural rules assume well-typed knobs
            return problems
        return [f"{name}: {p}" for p in cls._validate(d_model, **knobs)]

    @classmethod
    def _validate(cls, d_model: int, **knobs: Any) -> list[str]:
        """Structural rules (divisibility and the like) on complete, well-typed knobs."""
        return []

    def _raise_if_invalid(self, **knobs: Any) -> None:
        problems = type(self).validate(self.d_model, **knobs)
        if problems:
            raise ValueError("; ".join(problems))

    def num_params(self) -> int:
        """Number of parameters. Blocks override this with a closed form, which the tests check
        against the real count."""
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self, seq_len: int) -> float:
        """Forward FLOPs per token at context length `seq_len` (see the module docstring),
        `uncounted_flops_per_token` included."""
        raise NotImplementedError  # abstract: every registered block implements it

    def uncounted_flops_per_token(self, seq_len: int) -> float:
        """The part of flops_per_token that torch's FlopCounterMode cannot see (a triangular
        solve, FFTs), estimated by formula; 0 for most blocks. The contract tests compare
        flops_per_token minus this with the counter, and this part with its own formula."""
        return 0.0


class TokenMixer(_Block):
    """Mixes information across time, causally.

    Contract:
      - ``__init__(d_model, layer_idx, **knobs)``; raises ValueError if ``validate`` objects.
      - ``forward(x)``: (B, T, D) -> (B, T, D); output t depends on inputs 0..t only.
      - ``step(x, state)``: (B, D), state -> (B, D), new_state. The decode form: feeding a
        sequence one token at a time, starting from ``state=None`` (empty context), reproduces
        ``forward`` token by token (fp32, tight tolerance). The state is a tensor or a tuple /
        dict of tensors (and Python ints) that the block alone interprets. A step returns a
        new state and never writes into the one it is given (decode latency steps from one
        context state again and again).
      - ``num_params()``: equals the real parameter count.
      - ``flops_per_token(seq_len)``: analytic forward FLOPs per token at that context length.
      - ``state_bytes(seq_len, dtype)``: bytes of KV cache or recurrent state held per sequence
        after ``seq_len`` steps, analytic.
      - ``validate(d_model, **knobs)`` (classmethod): list of problems, empty if fine.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError  # abstract: every registered block implements it

    def step(self, x: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        raise NotImplementedError  # abstract: every registered block implements it

    def state_bytes(self, seq_len: int, dtype: torch.dtype = torch.float32) -> int:
        raise NotImplementedError  # abstract: every registered block implements it


class ChannelMixer(_Block):
    """Mixes information across channels, position by position.

    Contract:
      - ``__init__(d_model, layer_idx, **knobs)``; raises ValueError if ``validate`` objects.
      - ``forward(x)``: (..., D) -> (..., D), so it serves both (B, T, D) and a decode step's
        (B, D).
      - ``num_params()``, ``flops_per_token(seq_len)``, ``validate(d_model, **knobs)`` as for
        TokenMixer (the FLOPs do not depend on ``seq_len``).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError  # abstract: every registered block implements it


def mark_residual_out(linear: nn.Linear) -> nn.Linear:
    """Tag a projection that writes into the residual stream; build_model scales its init by
    1/sqrt(2·n_layers) (GPT-2)."""
    linear.residual_out = True
    return linear
