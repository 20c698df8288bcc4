"""Mixture-of-experts channel mixer: a router sends each token to `top_k` of `experts` SwiGLUs.

Sparsely-gated MoE (Shazeer et al. 2017) in its modern form (Switch Transformer, Fedus et al.
2021; Mixtral, Jiang et al. 2024): a linear router D -> experts, a softmax over the experts, the
`top_k` most probable experts per token, their probabilities renormalised to sum to 1 as the
gates, and the output is the gate-weighted sum of those experts' outputs. With ``top_k = 1`` the
gate is the raw router probability instead (Switch): renormalised it would be exactly 1 and the
task loss would give the router no gradient at all. ``shared_expert`` adds one always-on SwiGLU
to every token's output (DeepSeek-MoE, Dai et al. 2024).

Load balancing (Switch): ``aux = aux_loss_weight * experts * sum_e f_e * P_e``, with f_e the
share of the (token, slot) assignments routed to expert e (no gradient) and P_e the mean router
probability of e over the tokens. It is 1 for a uniform router or a perfectly balanced routing,
and grows as the routing collapses. After each forward in training mode the block stores it as
``self.aux_loss`` (a 0-d tensor, still attached to the graph); in eval mode, or with weight 0,
``self.aux_loss`` is None. ``LanguageModel.aux_loss()`` sums these and ``train`` adds the sum to
the loss it backpropagates.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from nas.blocks.base import ChannelMixer
from nas.blocks.channel import SwiGLU
from nas.blocks.registry import Knob, register_block


@register_block(
    "moe",
    "channel_mixer",
    knobs=[
        Knob("experts", int, 4, minimum=2, doc="number of routed experts"),
        Knob("top_k", int, 2, minimum=1, doc="experts per token (<= experts)"),
        Knob(
            "expansion",
            int,
            2,
            minimum=1,
            doc="each expert is a swiglu of this expansion (hidden = 2/3 * expansion * d_model)",
        ),
        Knob("shared_expert", bool, False, doc="add one always-on swiglu expert"),
        Knob(
            "aux_loss_weight", float, 0.01, minimum=0.0, doc="Switch load-balancing loss weight"
        ),
    ],
)
class MoE(ChannelMixer):
    """Top-k mixture of SwiGLU experts with a softmax router and a load-balancing loss.

    Dispatch sorts the (token, slot) assignments by expert and runs each expert only on the
    tokens routed to it (index_select in, index_add_ out), so the executed matmul FLOPs are
    exactly what ``flops_per_token`` counts: the router plus `top_k` experts (plus the shared
    one) per token. A dense-dispatch implementation (every expert on every token, masked) would
    execute, and FlopCounterMode would report, `experts / top_k` times the expert FLOPs instead.
    Costs one host sync per forward (the per-expert token counts).
    """

    aux_loss: torch.Tensor | None

    def __init__(
        self,
        d_model: int,
        layer_idx: int,
        experts: int = 4,
        top_k: int = 2,
        expansion: int = 2,
        shared_expert: bool = False,
        aux_loss_weight: float = 0.01,
    ) -> None:
        super().__init__(d_model, layer_idx)
        self._raise_if_invalid(
            experts=experts,
            top_k=top_k,
            expansion=expansion,
            shared_expert=shared_expert,
            aux_loss_weight=aux_loss_weight,
        )
        self.num_experts = experts
        self.top_k = top_k
        self.aux_loss_weight = float(aux_loss_weight)
        self.router = nn.Linear(d_model, experts, bias=False)
        self.experts = nn.ModuleList(
            SwiGLU(d_model, layer_idx, expansion=expansion) for _ in range(experts)
        )
        self.shared = SwiGLU(d_model, layer_idx, expansion=expansion) if shared_expert else None
        self.hidden = self.experts[0].hidden
        self.aux_loss = None

    @classmethod
    def _validate(cls, d_model: int, **knobs: Any) -> list[str]:
        if knobs["top_k"] > knobs["experts"]:
            return [f"top_k={knobs['top_k']} exceeds experts={knobs['experts']}"]
        return []

    def route(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Router on tokens h (N, D): probabilities (N, E) in at least fp32, the chosen experts
        (N, k) and their gates (N, k)."""
        logits = self.router(h)  # (N, E)
        probs = logits.to(torch.promote_types(logits.dtype, torch.float32)).softmax(dim=-1)
        gates, chosen = probs.topk(self.top_k, dim=-1)  # (N, k) each
        if self.top_k > 1:
            gates = gates / gates.sum(dim=-1, keepdim=True)
        return probs, chosen, gates

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.reshape(-1, self.d_model)  # (N, D)
        n_tokens = h.shape[0]
        probs, chosen, gates = self.route(h)
        slot_expert = chosen.reshape(-1)  # (N*k,), slot i belongs to token i // k
        order = slot_expert.argsort(stable=True)  # slots grouped by expert
        counts = torch.bincount(slot_expert, minlength=self.num_experts)  # (E,)
        sizes = counts.tolist()  # the one host sync
        tokens = (order // self.top_k).split(sizes)
        weights = gates.reshape(-1)[order].split(sizes)

        out = torch.zeros_like(h)
        for expert, idx, w in zip(self.experts, tokens, weights, strict=True):
            if idx.numel() == 0:
                continue
            y = expert(h.index_select(0, idx)) * w.unsqueeze(-1).to(h.dtype)  # (n_e, D)
            out.index_add_(0, idx, y.to(out.dtype))
        if self.shared is not None:
            out = out + self.shared(h)

        if self.training and self.aux_loss_weight > 0 and n_tokens > 0:
            routed_share = counts.to(probs.dtype) / (n_tokens * self.top_k)  # f_e, (E,)
            mean_prob = probs.mean(dim=0)  # P_e, (E,)
            balance = self.num_experts * (routed_share * mean_prob).sum()
            self.aux_loss = self.aux_loss_weight * balance
        else:
            self.aux_loss = None
        return out.reshape(x.shape)

    def __getstate__(self) -> dict[str, Any]:
        # The stored aux loss is a non-leaf tensor, which deepcopy and pickle refuse: drop it.
        state = self.__dict__.copy()
        state["aux_loss"] = None
        return state

    def num_params(self) -> int:
        n_experts = self.num_experts + (self.shared is not None)
        return self.d_model * self.num_experts + n_experts * self.experts[0].num_params()

    def flops_per_token(self, seq_len: int) -> float:
        """Router plus the experts a token actually runs: top_k routed (+ the shared one)."""
        per_expert = self.experts[0].flops_per_token(seq_len)
        active = self.top_k + (self.shared is not None)
        return float(2 * self.d_model * self.num_experts) + active * per_expert
