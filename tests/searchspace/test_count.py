"""Counting the distinct architectures of a space: exact on spaces counted here by hand, and
checked against a brute force that ignores the DAG walk (every combination of every domain,
conditions applied afterwards)."""

from __future__ import annotations

import itertools

import networkx as nx
import optuna
import pytest

from nas.searchspace import count_architectures, loads
from tests.conftest import TINY_SPACE
from tests.searchspace.spaces import space_text

# n_layers 1..3; attention and short_conv with fixed knobs; one channel mixer.
PLACEMENT_MODEL = """\
    d_model: 16
    n_layers: {int: [1, 3]}
    token_mixers:
      attention: {heads: 2}
      short_conv: {kernel_size: 3}
    hybrid:
      full_attention_ratio: {choice: [0, 0.5, 1]}
      placement: {choice: [interleave, first, last]}
    channel_mixer: {kind: swiglu, expansion: 2}
"""

# attention only (ratio 1, no hybrid section); kv_heads 2 and `full` are the same at heads 2;
# the mlp's activation is a decision only where the channel mixer is an mlp.
KNOB_MODEL = """\
    d_model: 16
    n_layers: 2
    token_mixers:
      attention: {heads: 2, kv_heads: {choice: [1, 2, full]}}
    channel_mixer: {kind: {choice: [mlp, swiglu]}, activation: {choice: [gelu, relu]}}
"""


def brute_force(space) -> tuple[set[str], set[frozenset]]:
    """(arch hashes, active assignments) over the product of every non-training domain,
    conditions ignored while combining and applied afterwards in a topological order of the
    graph's own (not `space.order`)."""
    graph = space.graph
    names = [n for n in graph.nodes if not n.startswith("training.")]
    order = [n for n in nx.topological_sort(graph) if n in names]
    hashes, assignments = set(), set()
    for combo in itertools.product(*(list(space.domain(n).values()) for n in names)):
        full = dict(zip(names, combo, strict=True))
        active: dict = {}
        for name in order:
            if all(p in active and graph.edges[p, name]["condition"].holds(active[p])
                   for p in graph.predecessors(name)):
                active[name] = full[name]
        assignments.add(frozenset(active.items()))
        hashes.add(space.assemble(active).arch_hash)
    return hashes, assignments


def test_placement_coincidences_count_once():
    space = loads(space_text(PLACEMENT_MODEL))
    result = count_architectures(space)
    # per n_layers: ratio 0 (all C), ratio 1 (all A), ratio 0.5 x 3 placements = 5 assignments
    # n=1: ratio 0.5 rounds to one attention layer = all A: {C, A}                      -> 2
    # n=2: one A; interleave and last both give C-A, first gives A-C: {C-C, A-A, C-A, A-C} -> 4
    # n=3: two A; interleave A-C-A, first A-A-C, last C-A-A, plus C-C-C and A-A-A       -> 5
    assert result.exact
    assert result.distinct == 2 + 4 + 5
    assert result.assignments == 3 * 5
    hashes, assignments = brute_force(space)
    assert (len(hashes), len(assignments)) == (result.distinct, result.assignments)


def test_placement_irrelevant_without_a_true_hybrid():
    model = PLACEMENT_MODEL.replace("{choice: [0, 0.5, 1]}", "{choice: [0, 1]}")
    space = loads(space_text(model))
    assert "model.hybrid.placement" not in space.graph  # no ratio strictly inside (0, 1)
    result = count_architectures(space)
    assert (result.distinct, result.assignments, result.exact) == (3 * 2, 3 * 2, True)


def test_canonical_knobs_and_conditional_channel_knob():
    space = loads(space_text(KNOB_MODEL))
    result = count_architectures(space)
    # kv_heads {1, 2, full}: full is 2 at heads 2 -> 2 distinct of 3 assignments;
    # channel mixer: mlp x {gelu, relu} + swiglu (no activation decision) -> 3
    assert (result.distinct, result.assignments) == (2 * 3, 3 * 3)
    hashes, assignments = brute_force(space)
    assert (len(hashes), len(assignments)) == (6, 9)


def test_tiny_space_against_brute_force_and_sampling():
    space = loads(TINY_SPACE)
    result = count_architectures(space)
    # per (d_model, channel kind): ratio 0: linear_attention or short_conv k in {2, 3} = 3;
    # ratio 1: heads {2, 4} x kv_heads {1, full} = 4 (kv 1 never equals heads);
    # ratio 0.5: 3 placements x 3 others x 4 = 36 assignments; at n=2 interleave = last, so 24
    # distinct, at n=3 all 36. Assignments 2 x 2 x 2 x 43; distinct 2 x 2 x (31 + 43).
    assert result.exact
    assert result.assignments == 344
    assert result.distinct == 296
    hashes, assignments = brute_force(space)
    assert (len(hashes), len(assignments)) == (296, 344)
    # the product of domain sizes over-counts (1152); every sampled spec is among the counted
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    assert {space.sample(study.ask()).arch_hash for _ in range(60)} <= hashes


def test_training_is_counted_separately():
    training = "{steps: {choice: [10, 20]}, batch_size: {int: [4, 8], step: 2}, lr: 0.01}"
    space = loads(space_text(KNOB_MODEL, training))
    result = count_architectures(space)
    assert (result.distinct, result.assignments) == (6, 9)  # as without training decisions
    assert result.training == 2 * 3 and result.training_continuous == ()
    tiny = count_architectures(loads(TINY_SPACE))
    assert tiny.training is None and tiny.training_continuous == ("training.lr",)


def test_continuous_architecture_decision_is_not_counted():
    model = KNOB_MODEL.replace("{heads: 2,", "{heads: 2, rope_base: {uniform: [1000.0, 10000.0]},")
    result = count_architectures(loads(space_text(model)))
    assert result.distinct is None and not result.exact
    assert result.continuous == ("model.token_mixers.attention.rope_base",)
    assert "rope_base" in result.reason


def test_limit_stops_before_enumerating():
    space = loads(TINY_SPACE)
    calls = []
    assemble = space.assemble
    space.assemble = lambda values: calls.append(1) or assemble(values)  # type: ignore[method-assign]
    result = count_architectures(space, limit=343)
    assert (result.distinct, result.exact, result.assignments) == (None, False, 344)
    assert "exceed" in result.reason and not calls
    result = count_architectures(space, limit=344)
    assert (result.distinct, result.exact) == (296, True) and len(calls) == 344
    with pytest.raises(ValueError):
        count_architectures(space, limit=-1)
