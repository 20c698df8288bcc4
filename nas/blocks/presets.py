"""The literature's names for nas's blocks: presets, and the names nas has no block for.

A preset (nas.blocks.registry.Preset) is a name from the papers bound to a block with the knobs
that name means, so a space may write `gla: {heads: 4}` instead of spelling out
`linear_attention: {decay: gla, feature_map: identity, normalize: rmsnorm, output_gate: true,
heads: 4}`. The knobs a paper fixes are fixed; the sizes (heads, ...) stay searchable. A model
records the block and every knob, so a preset and the block with the same knobs are one
architecture (one arch_hash). Each description says where the block differs from the paper.

`LITERATURE` lists names a user may write that are not blocks or presets: other spellings of
what nas has (`sliding_window`), and families nas does not implement (`hgrn`, `rwkv`, `hyena`,
...), each with the block that comes closest and how to write it; `literature_hint` turns one
into the problem and fix of an "unknown token mixer" error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nas.blocks.registry import register_preset

register_preset(
    "gla",
    "linear_attention",
    letter="G",
    paper="Yang et al. 2023, Gated Linear Attention Transformers with Hardware-Efficient Training",
    doc="Gated Linear Attention: a data-dependent per-channel decay sigmoid(x W)^(1/16) through "
    "a rank-16 projection, q and k without a feature map, a per-head RMSNorm and a swish output "
    "gate; keys are as wide as values (D/heads; the paper's keys are half as wide) and the norm "
    "has no weight",
    fixed={"decay": "gla", "feature_map": "identity", "normalize": "rmsnorm",
           "output_gate": True},
)
register_preset(
    "retnet",
    "linear_attention",
    letter="R",
    paper="Sun et al. 2023, Retentive Network: A Successor to Transformer for Large Language "
    "Models",
    doc="retention: linear attention with a fixed decay γ_h = 1 - 2^(-5-h) per head (multi-scale "
    "retention), q and k without a feature map, a per-head norm and a swish output gate; without "
    "RetNet's xPos rotation of q and k, a weightless RMSNorm for its GroupNorm, values as wide as "
    "keys (RetNet's are twice as wide)",
    fixed={"decay": "fixed", "feature_map": "identity", "normalize": "rmsnorm",
           "output_gate": True},
)
register_preset(
    "gated_deltanet",
    "deltanet",
    letter="E",
    paper="Yang et al. 2025, Gated Delta Networks: Improving Mamba2 with Delta Rule",
    doc="Gated DeltaNet: the delta rule with a data-dependent decay per head (Mamba-2's), short "
    "convolutions on q, k, v, L2-normalised q and k, a per-head RMSNorm and a swish output gate; "
    "values as wide as keys (D/heads; the paper's values are twice as wide)",
    fixed={"gate": True, "short_conv": True, "output_gate": True},
)
register_preset(
    "swa",
    "attention",
    letter="S",
    paper="Beltagy et al. 2020, Longformer; Jiang et al. 2023, Mistral 7B",
    doc="sliding-window attention: each query sees the last `window` tokens, its own included "
    "(a window is required: no default suits every task), with RoPE; the KV cache holds the "
    "window only; `sinks` adds StreamingLLM's always-visible first tokens",
    required={"window": 64},
)
register_preset(
    "gqa",
    "attention",
    letter="Q",
    paper="Ainslie et al. 2023, GQA: Training Generalized Multi-Query Transformer Models from "
    "Multi-Head Checkpoints",
    doc="grouped-query attention: each group of query heads shares one key/value head; kv_heads "
    "(2 unless set) must divide heads; the KV cache shrinks by heads / kv_heads",
    defaults={"kv_heads": 2},
)
register_preset(
    "mqa",
    "attention",
    letter="O",
    paper="Shazeer 2019, Fast Transformer Decoding: One Write-Head is All You Need",
    doc="multi-query attention: every query head shares one key/value head (kv_heads 1)",
    fixed={"kv_heads": 1},
)


@dataclass(frozen=True)
class LiteratureName:
    """A name from the papers that is neither a block nor a preset. `what` says what it is;
    `closest` is the block or preset nas has for it and `write` how to declare that; `differs`
    says how `closest` differs (empty when nas has the same thing under another name)."""

    what: str
    closest: str
    write: str
    differs: str = ""


_GLA_DECAY = "GLA's data-dependent per-channel decay"
_LONG_CONV = "an explicit short filter plus an exponentially decaying tail, one gate"
LITERATURE: dict[str, LiteratureName] = {
    # other spellings of what nas has
    "sliding_window": LiteratureName("sliding-window attention", "swa", "swa: {window: 64}"),
    "local_attention": LiteratureName("local (sliding-window) attention", "swa",
                                      "swa: {window: 64}"),
    "mha": LiteratureName("multi-head softmax attention", "attention", "attention: {heads: 4}"),
    "softmax_attention": LiteratureName("softmax attention", "attention", "attention: {}"),
    "full_attention": LiteratureName("full causal softmax attention", "attention",
                                     "attention: {}"),
    "retention": LiteratureName("RetNet's retention", "retnet", "retnet: {}"),
    "gdn": LiteratureName("Gated DeltaNet", "gated_deltanet", "gated_deltanet: {}"),
    "gated_attention": LiteratureName(
        "gated attention (Qiu et al. 2025), a sigmoid gate on the attention output",
        "attention", "attention: {gate: headwise}"),
    "sqa": LiteratureName("sparse query attention (Filipek et al. 2025)", "attention",
                          "attention: {heads: 4, query_heads: 2}"),
    "linear_transformer": LiteratureName("the linear transformer (Katharopoulos et al. 2020)",
                                         "linear_attention", "linear_attention: {}"),
    # families nas has no block for
    "hgrn": LiteratureName(
        "HGRN (Qin et al. 2023), a gated linear RNN with a vector state whose forget gates are "
        "bounded from below, more so in higher layers", "gla", "gla: {}",
        f"{_GLA_DECAY} on a matrix state, without the depth-wise lower bound"),
    "hgrn2": LiteratureName(
        "HGRN-2 (Qin et al. 2024), GLA-like with the key tied to 1 - forget gate and forget "
        "gates bounded from below by depth", "gla", "gla: {}",
        "an untied key and no depth-wise lower bound"),
    "rwkv": LiteratureName(
        "RWKV (Peng et al. 2023-24), a linear RNN with a data-dependent per-channel decay", "gla",
        "gla: {}", f"{_GLA_DECAY}, without RWKV's token shift and bonus term"),
    "rwkv7": LiteratureName(
        "RWKV-7 (Peng et al. 2025), a generalised delta rule with a per-channel decay",
        "gated_deltanet", "gated_deltanet: {}", "the delta rule with a decay per head"),
    "mamba": LiteratureName(
        "Mamba (Gu & Dao 2023), a selective SSM with a per-channel decay", "mamba2",
        "mamba2: {}", "Mamba-2: one decay per head, computed in the chunked SSD form"),
    "mlstm": LiteratureName(
        "xLSTM's mLSTM (Beck et al. 2024), a matrix memory with exponential input and forget "
        "gates", "mamba2", "mamba2: {}", "a data-dependent scalar decay per head on a matrix "
        "state, without mLSTM's exponential input gate and normaliser"),
    "rglru": LiteratureName(
        "Griffin's RG-LRU (De et al. 2024), a gated linear recurrence with a vector state",
        "gla", "gla: {}", f"{_GLA_DECAY} on a matrix state; Griffin itself is RG-LRU layers "
        "beside swa layers"),
    "lightning_attention": LiteratureName(
        "Lightning Attention / TransNormerLLM (Qin et al. 2024), linear attention with a fixed "
        "decay", "retnet", "retnet: {}", "RetNet's fixed per-head decay and output gate"),
    "based": LiteratureName(
        "Based (Arora et al. 2024), Taylor-feature linear attention beside sliding-window "
        "attention", "linear_attention", "linear_attention: {feature_map: elu}",
        "an elu+1 or relu feature map for the Taylor one; add swa layers for Based's windows"),
    "hyena": LiteratureName("Hyena (Poli et al. 2023), gated implicit long convolutions",
                            "long_conv", "long_conv: {}", _LONG_CONV),
    "h3": LiteratureName("H3 (Fu et al. 2023), shift and diagonal SSMs with multiplicative gates",
                         "long_conv", "long_conv: {}", _LONG_CONV),
    "s4": LiteratureName(
        "S4 (Gu et al. 2022) and its kin, linear time-invariant state space models (long "
        "convolutions)", "long_conv", "long_conv: {}", _LONG_CONV),
}
for _alias, _name in (("s4d", "s4"), ("s5", "s4"), ("lru", "s4"), ("dss", "s4"),
                      ("hgrn1", "hgrn"), ("rwkv4", "rwkv"), ("rwkv5", "rwkv"), ("rwkv6", "rwkv"),
                      ("mamba1", "mamba"), ("xlstm", "mlstm"), ("hawk", "rglru"),
                      ("griffin", "rglru"), ("transnormer", "lightning_attention"),
                      ("lightning", "lightning_attention"), ("hyena_operator", "hyena")):
    LITERATURE[_alias] = LITERATURE[_name]


def normalized(name: str) -> str:
    """A name as the table keys it: lower case, separators dropped (`Gated-DeltaNet` and
    `gated_deltanet` are one name, `HGRN-2` is `hgrn2`)."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


_BY_NORMALIZED = {normalized(k): v for k, v in LITERATURE.items()}


def literature_name(name: str) -> LiteratureName | None:
    """The entry of LITERATURE for `name` in any spelling, or None."""
    return _BY_NORMALIZED.get(normalized(name))


def literature_hint(name: str) -> tuple[str, str] | None:
    """(problem, fix) for a token mixer name nas has under another name or not at all, or None
    when the table does not know it. The fix names the declaration to write instead."""
    entry = literature_name(name)
    if entry is None:
        return None
    if entry.differs:
        problem = (f"nas has no block for {entry.what}; the closest is {entry.closest} "
                   f"({entry.differs})")
    else:
        problem = f"{entry.what} is called {entry.closest} in nas"
    return problem, (f"declare `{entry.write}` under model.token_mixers instead "
                     f"(`nas blocks list {entry.closest}` shows its knobs)")
