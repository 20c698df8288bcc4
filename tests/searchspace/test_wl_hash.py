"""arch_hash as a Weisfeiler-Lehman hash of the layer graph: invariant where architectures are
equal, different where they are not, and the same partition as networkx's WL hash."""

from __future__ import annotations

import itertools

import networkx as nx

from nas.searchspace import loads
from nas.searchspace.count import _assignments, identity, split_decisions
from nas.spec import ArchSpec, LayerGraph, LayerSpec, ModuleSpec, graph_hash
from tests.conftest import TINY_SPACE
from tests.searchspace.spaces import sample_specs, space_text

ATTN = ModuleSpec.make("attention", heads=2, kv_heads=1)
CONV = ModuleSpec.make("short_conv", kernel_size=3)
LIN = ModuleSpec.make("linear_attention", heads=2)
MLP = ModuleSpec.make("mlp", expansion=2)


def spec(*mixers: ModuleSpec, d_model: int = 32, norm: str = "rmsnorm") -> ArchSpec:
    return ArchSpec(d_model=d_model, vocab_size=16, norm=norm,
                    layers=tuple(LayerSpec(m, MLP) for m in mixers))


def test_order_of_layers_matters():
    assert spec(CONV, ATTN).arch_hash != spec(ATTN, CONV).arch_hash
    stacks = {p: spec(*p).arch_hash for p in set(itertools.permutations((CONV, CONV, ATTN, LIN)))}
    assert len(set(stacks.values())) == len(stacks) == 12  # every ordering of one multiset


def test_equal_architectures_hash_equally():
    reordered = ModuleSpec.from_dict({"kv_heads": 1, "kind": "attention", "heads": 2})
    assert spec(CONV, reordered).arch_hash == spec(CONV, ATTN).arch_hash
    trained = ArchSpec(d_model=32, vocab_size=16, layers=spec(CONV, ATTN).layers,
                       training={"lr": 0.1})
    assert trained.arch_hash == spec(CONV, ATTN).arch_hash
    assert trained.config_hash != spec(CONV, ATTN).config_hash


def test_every_global_field_and_knob_counts():
    base = spec(CONV, ATTN).arch_hash
    assert spec(CONV, ATTN, d_model=64).arch_hash != base
    assert spec(CONV, ATTN, norm="layernorm").arch_hash != base
    assert spec(CONV, ModuleSpec.make("attention", heads=2, kv_heads=2)).arch_hash != base
    other_channel = ArchSpec(d_model=32, vocab_size=16, layers=(
        LayerSpec(CONV, MLP), LayerSpec(ATTN, ModuleSpec.make("swiglu", expansion=2))))
    assert other_channel.arch_hash != base
    assert spec(CONV, ATTN, CONV).arch_hash != base


def test_same_partition_as_networkx_weisfeiler_lehman():
    """Our hash and networkx's WL (run for as many rounds as the graph has nodes, so it reaches
    its fixed point) agree on which sampled architectures are the same."""
    space = loads(space_text("""\
        d_model: {choice: [16, 32]}
        n_layers: {int: [1, 3]}
        token_mixers:
          attention: {heads: 2}
          linear_attention: {heads: 2}
          short_conv: {kernel_size: {choice: [2, 3]}}
        layout: {free: [attention, linear_attention, short_conv]}
    """))
    specs, _ = sample_specs(space, 60, seed=4)
    ours, theirs = {}, {}
    for s in specs:
        graph = s.layer_graph().to_networkx()
        wl = nx.weisfeiler_lehman_graph_hash(graph, node_attr="label",
                                             iterations=graph.number_of_nodes())
        ours.setdefault(s.arch_hash, set()).add(wl)
        theirs.setdefault(wl, set()).add(s.arch_hash)
    assert all(len(v) == 1 for v in ours.values()) and all(len(v) == 1 for v in theirs.values())
    assert len(ours) > 20


def test_graph_hash_is_isomorphism_invariant():
    """Renumbering the nodes of a graph does not change its hash."""
    graph = spec(CONV, ATTN, LIN).layer_graph()
    n = len(graph.labels)
    perm = list(reversed(range(n)))  # edges now point backwards: the topological path is used
    renumbered = LayerGraph(
        tuple(graph.labels[perm.index(i)] for i in range(n)),
        tuple((perm[a], perm[b]) for a, b in graph.edges))
    assert graph_hash(renumbered) == graph_hash(graph)


def test_count_identity_agrees_with_arch_hash():
    space = loads(TINY_SPACE)
    arch, _ = split_decisions(space)
    pairs = {(identity(s), s.arch_hash)
             for s in (space.assemble(v) for v in _assignments(space, arch))}
    assert len({i for i, _ in pairs}) == len({h for _, h in pairs}) == len(pairs) == 296
