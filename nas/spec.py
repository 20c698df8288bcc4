"""ArchSpec: the one language every part of nas speaks.

Pure data, no torch. An ArchSpec is what a search samples, what a worker builds and trains, what
the store keeps and what a user exports. It is immutable and has one canonical JSON form:

    {"d_model": 64, "vocab_size": 64, "norm": "rmsnorm", "init": "torch", "tie_head": false,
     "layers": [{"mixer": {"kind": "short_conv", "kernel_size": 4},
                 "channel_mixer": {"kind": "swiglu", "expansion": 2}}, ...],
     "training": {"steps": 400, "batch_size": 64, "lr": 0.003, ...}}

Model-wide choices beside the layers (issue #17): `init` (``torch``: PyTorch's own per-module
initialisation; ``gpt2``: N(0, 0.02) with residual outputs scaled by 1/sqrt(2·n_layers)),
`tie_head` (the LM head shares the embedding matrix) and `positions` (``none``: position only
through the mixers; ``learned`` absolute embeddings of `max_positions` rows; ``sinusoidal``).
Specs written before these options existed were GPT-2-initialised, tied and without absolute
positions, so a serialized spec *without* one of these keys reads back as that old choice
(`LEGACY`), and a spec whose value is the old choice serializes without the key: its JSON,
`arch_hash` and `config_hash` are exactly what they were. New specs default to `DEFAULTS`.

`arch_hash` identifies the *architecture* (everything but `training`). It is a
Weisfeiler-Lehman-style hash of the typed layer graph (`layer_graph()`): nodes are the
embedding, each layer's norms, token mixer, channel mixer and residual additions, the final norm
and the head, labelled with their kind and canonical knobs; edges follow the data through the
residual stream. Labels are refined along the edges' direction until every node's label
summarises everything downstream of it (`graph_hash`), so the hash is the same for isomorphic
graphs and differs when layers are reordered. Knob order, dict order and Python's salted
`hash()` never enter: labels are canonical JSON and digests SHA-256, so a hash is the same in any
process and any Python version. `config_hash` also covers the training recipe (a SHA-256 of the
canonical JSON of `to_dict()`), so two trials with the same architecture but different learning
rates differ.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Scalar = str | int | float | bool | None

# A name that is also a folder name (runs keep weights in a folder of their name): no '/', and
# no leading '.' or '-' ('..', '-rf'). Space names and run names both follow it.
NAME_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}"
RUN_NAME = re.compile(NAME_PATTERN)  # run names are checked whole (fullmatch) against it
_HASH_CHARS = 16  # 64 bits of SHA-256: collisions are negligible for any search we will run

INITS = ("torch", "gpt2")  # PyTorch's per-module defaults (fan-in scaled) | GPT-2's N(0, 0.02)
POSITIONS = ("none", "learned", "sinusoidal")  # absolute positions added to the embedding
# The model-wide choices of specs written before they were options (a missing key means these)
# and of new specs (the dataclass defaults); issue #17 measured the change.
LEGACY = {"init": "gpt2", "tie_head": True, "positions": "none"}
DEFAULTS = {"init": "torch", "tie_head": False, "positions": "none"}


def _freeze(params: Mapping[str, Any]) -> tuple[tuple[str, Scalar], ...]:
    """Sorted (key, value) pairs; values must be JSON scalars."""
    items = []
    for key, value in sorted(params.items()):
        if isinstance(value, bool | int | float | str) or value is None:
            items.append((str(key), value))
        else:
            raise TypeError(f"spec parameter {key!r} must be a scalar, got {type(value).__name__}")
    return tuple(items)


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, floats by repr."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _digest(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:_HASH_CHARS]


@dataclass(frozen=True)
class ModuleSpec:
    """A registered block (token or channel mixer) and its knobs, all explicit."""

    kind: str
    params: tuple[tuple[str, Scalar], ...] = ()

    @classmethod
    def make(cls, kind: str, **params: Scalar) -> ModuleSpec:
        return cls(kind=kind, params=_freeze(params))

    @property
    def knobs(self) -> dict[str, Scalar]:
        return dict(self.params)

    def to_dict(self) -> dict[str, Scalar]:
        return {"kind": self.kind, **self.knobs}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModuleSpec:
        data = dict(data)
        kind = data.pop("kind")
        return cls.make(kind, **data)


@dataclass(frozen=True)
class LayerSpec:
    """One pre-norm residual block: a token mixer, then a channel mixer."""

    mixer: ModuleSpec
    channel_mixer: ModuleSpec

    def to_dict(self) -> dict[str, Any]:
        return {"mixer": self.mixer.to_dict(), "channel_mixer": self.channel_mixer.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LayerSpec:
        return cls(
            mixer=ModuleSpec.from_dict(data["mixer"]),
            channel_mixer=ModuleSpec.from_dict(data["channel_mixer"]),
        )


@dataclass(frozen=True)
class ArchSpec:
    """A complete, trainable candidate: architecture plus training recipe."""

    d_model: int
    vocab_size: int
    layers: tuple[LayerSpec, ...]
    norm: str = "rmsnorm"
    training: tuple[tuple[str, Scalar], ...] = field(default=())
    # Model-wide choices (see the module docstring): defaults for new specs are DEFAULTS; a
    # serialized spec without the key reads back as LEGACY (from_dict), and a spec holding the
    # LEGACY value serializes without it, so its hashes are what they were.
    init: str = "torch"
    tie_head: bool = False
    positions: str = "none"
    max_positions: int | None = None  # rows of the learned position table; learned only

    def __post_init__(self) -> None:
        if not self.layers:
            raise ValueError("an ArchSpec needs at least one layer")
        if self.init not in INITS:
            raise ValueError(f"unknown init {self.init!r}; known: {', '.join(INITS)}")
        if self.positions not in POSITIONS:
            raise ValueError(f"unknown positions {self.positions!r}; known: "
                             f"{', '.join(POSITIONS)}")
        if not isinstance(self.tie_head, bool):
            raise ValueError(f"tie_head must be true or false, got {self.tie_head!r}")
        if self.positions == "learned":
            if (not isinstance(self.max_positions, int) or isinstance(self.max_positions, bool)
                    or self.max_positions < 1):
                raise ValueError("learned positions need max_positions, the rows of their "
                                 f"table (an integer >= 1), got {self.max_positions!r}")
        elif self.max_positions is not None:
            raise ValueError(f"max_positions is for learned positions only (positions is "
                             f"{self.positions!r}); leave it out")
        if isinstance(self.training, Mapping):  # accept a dict, store it frozen
            object.__setattr__(self, "training", _freeze(self.training))

    # -- views -------------------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def training_config(self) -> dict[str, Scalar]:
        return dict(self.training)

    @property
    def mixer_kinds(self) -> tuple[str, ...]:
        return tuple(layer.mixer.kind for layer in self.layers)

    def short_form(self) -> str:
        """Mixers per layer by one letter each, e.g. ``C-A-C-A`` (see MIXER_LETTERS)."""
        return "-".join(mixer_letter(kind) for kind in self.mixer_kinds)

    # -- serialization -----------------------------------------------------------------------
    def architecture_dict(self) -> dict[str, Any]:
        return {
            "d_model": self.d_model,
            "vocab_size": self.vocab_size,
            "norm": self.norm,
            "layers": [layer.to_dict() for layer in self.layers],
            **self.model_options(),
        }

    def model_options(self) -> dict[str, Any]:
        """The model-wide choices that differ from LEGACY (all that a spec's JSON and hashes
        carry of them): {} for a spec as nas built them before they were options."""
        options: dict[str, Any] = {key: getattr(self, key) for key, old in LEGACY.items()
                                   if getattr(self, key) != old}
        if self.max_positions is not None:
            options["max_positions"] = self.max_positions
        return options

    def to_dict(self) -> dict[str, Any]:
        return {**self.architecture_dict(), "training": self.training_config}

    def to_json(self) -> str:
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArchSpec:
        return cls(
            d_model=int(data["d_model"]),
            vocab_size=int(data["vocab_size"]),
            layers=tuple(LayerSpec.from_dict(layer) for layer in data["layers"]),
            norm=str(data.get("norm", "rmsnorm")),
            training=_freeze(data.get("training", {})),
            # absent: written before the option, so the choice nas made then
            init=str(data.get("init", LEGACY["init"])),
            tie_head=data.get("tie_head", LEGACY["tie_head"]),
            positions=str(data.get("positions", LEGACY["positions"])),
            max_positions=data.get("max_positions"),
        )

    @classmethod
    def from_json(cls, text: str) -> ArchSpec:
        return cls.from_dict(json.loads(text))

    # -- identity ----------------------------------------------------------------------------
    def layer_graph(self) -> LayerGraph:
        """The architecture as a typed dataflow graph (see LayerGraph); training excluded.

        Per layer (pre-norm residual): stream -> norm -> token mixer -> add <- stream, then
        add -> norm -> channel mixer -> add <- add. The embedding label carries d_model, the
        vocabulary and the model-wide options that are not LEGACY (init, positions,
        max_positions), each norm its kind, each mixer its kind and knobs, the head whether it
        is tied."""
        # The model-wide options (init, positions) label the embedding only where they differ
        # from LEGACY, so graphs of specs from before them are unchanged; the head says if tied.
        options = {k: v for k, v in self.model_options().items() if k != "tie_head"}
        labels: list[str] = [canonical_json({"node": "embedding", "d_model": self.d_model,
                                             "vocab_size": self.vocab_size, **options})]
        module_labels: dict[tuple[str, ModuleSpec], str] = {}
        edges: list[tuple[int, int]] = []
        norm = canonical_json({"node": "norm", "kind": self.norm})
        add = canonical_json({"node": "add"})

        def node(label: str, *sources: int) -> int:
            labels.append(label)
            edges.extend((source, len(labels) - 1) for source in sources)
            return len(labels) - 1

        stream = 0
        for layer in self.layers:
            for role, module in (("token_mixer", layer.mixer),
                                 ("channel_mixer", layer.channel_mixer)):
                normed = node(norm, stream)
                label = module_labels.get((role, module))
                if label is None:
                    label = canonical_json({"node": role, **module.to_dict()})
                    module_labels[role, module] = label
                mixed = node(label, normed)
                stream = node(add, stream, mixed)
        node(canonical_json({"node": "head", "tied": self.tie_head}), node(norm, stream))
        return LayerGraph(tuple(labels), tuple(edges))

    @property
    def arch_hash(self) -> str:
        """Stable identity of the architecture (training recipe excluded): graph_hash of the
        layer graph. Computed once per (immutable) spec."""
        cached = self.__dict__.get("_arch_hash")
        if cached is None:
            cached = graph_hash(self.layer_graph())
            self.__dict__["_arch_hash"] = cached
        return cached

    @property
    def config_hash(self) -> str:
        """Stable identity of architecture *and* training recipe: equal ones train identically."""
        return _digest(self.to_dict())


@dataclass(frozen=True)
class LayerGraph:
    """A directed acyclic graph with string labels: node i is `labels[i]`, `edges` are
    (source, target) index pairs. Pure data; `to_networkx()` for analysis."""

    labels: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]

    def to_networkx(self):
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_nodes_from((i, {"label": label}) for i, label in enumerate(self.labels))
        graph.add_edges_from(self.edges)
        return graph


def graph_hash(graph: LayerGraph) -> str:
    """Weisfeiler-Lehman refinement along edge direction, run to its fixed point on a DAG.

    One WL round relabels each node with a digest of its label and the sorted labels of its
    successors; after as many rounds as the longest path, a node's label no longer changes and
    describes everything downstream of it. On a DAG that fixed point is reached in one pass in
    reverse topological order (each node after its successors), in time linear in the graph.
    The graph's hash is the digest of the sorted multiset of final labels. Direction matters:
    A -> B and B -> A hash differently, so reordering layers changes the hash."""
    successors: list[list[int]] = [[] for _ in graph.labels]
    indegree = [0] * len(graph.labels)
    forward = True
    for source, target in graph.edges:
        successors[source].append(target)
        indegree[target] += 1
        forward = forward and source < target
    order = range(len(graph.labels)) if forward else _topological(successors, indegree)
    final: list[str] = list(graph.labels)
    for index in reversed(order):
        below = sorted(final[s] for s in successors[index])
        final[index] = _sha("\x1f".join([graph.labels[index], *below]))
    return _sha("\x1e".join(sorted(final)))[:_HASH_CHARS]


def _topological(successors: Sequence[Sequence[int]], indegree: Sequence[int]) -> list[int]:
    """Kahn's order; ValueError if the graph has a cycle."""
    remaining = list(indegree)
    ready = [i for i, d in enumerate(remaining) if d == 0]
    order = []
    while ready:
        index = ready.pop()
        order.append(index)
        for s in successors[index]:
            remaining[s] -= 1
            if remaining[s] == 0:
                ready.append(s)
    if len(order) != len(remaining):
        raise ValueError("a layer graph must be acyclic")
    return order


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


MIXER_LETTERS: dict[str, str] = {
    "attention": "A",
    "linear_attention": "L",
    "short_conv": "C",
    "plain_conv": "K",
    "identity": "I",
    "mean_pool": "P",
    "deltanet": "D",
    "mamba2": "M",
    "long_conv": "H",
}


def mixer_letter(kind: str) -> str:
    """One-letter name for a mixer kind; unknown kinds use their first letter, lower-case."""
    return MIXER_LETTERS.get(kind, kind[:1].lower())
