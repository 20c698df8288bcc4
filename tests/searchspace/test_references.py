"""Values computed from other decisions ({expr: ...}) and tied choices ({same_as: ...})."""

from __future__ import annotations

import pytest

from nas.errors import SpaceError
from nas.searchspace import count_architectures, loads
from nas.searchspace.domains import Derived
from tests.searchspace.spaces import brute_force_identities, sample_specs, space_text

EXPR = """\
    d_model: {choice: [16, 32, 64]}
    n_layers: {choice: [1, 2]}
    token_mixers:
      attention: {heads: {expr: "d_model // 8"}, kv_heads: {expr: "heads // 2"}}
    channel_mixer: {kind: mlp, expansion: {choice: [2, 4]}}
"""


def test_expression_is_computed_from_other_decisions():
    space = loads(space_text(EXPR))
    heads, kv = "model.token_mixers.attention.heads", "model.token_mixers.attention.kv_heads"
    assert isinstance(space.domain(heads), Derived)
    assert space.graph.edges["model.d_model", heads]["input"] is True
    assert space.graph.edges[heads, kv]["input"] is True
    specs, params = sample_specs(space, 20)
    for spec, p in zip(specs, params, strict=True):
        knobs = spec.layers[0].mixer.knobs
        assert knobs["heads"] == spec.d_model // 8 and isinstance(knobs["heads"], int)
        assert knobs["kv_heads"] == knobs["heads"] // 2
        assert heads not in p  # computed, never asked of the trial
    result = count_architectures(space)
    assert (result.distinct, result.assignments) == (3 * 2 * 2, 3 * 2 * 2)
    assert len(brute_force_identities(space)) == result.distinct


TIED = """\
    d_model: 32
    n_layers: 2
    token_mixers:
      attention: {heads: {choice: [2, 4]}}
      linear_attention: {heads: {same_as: attention.heads}}
      short_conv: {kernel_size: {choice: [2, 3]}}
    hybrid:
      full_attention_ratio: {choice: [0, 0.5, 1]}
      placement: first
"""


def test_tied_choice_is_one_decision_active_wherever_either_side_is():
    space = loads(space_text(TIED))
    heads = "model.token_mixers.attention.heads"
    linear = "model.token_mixers.linear_attention.heads"
    assert space.domain(linear).inputs == (heads,)
    assert space.graph.nodes[heads]["any"] is True  # attention used, or linear attention
    specs, params = sample_specs(space, 60)
    seen = set()
    for spec, p in zip(specs, params, strict=True):
        by_kind = {layer.mixer.kind: layer.mixer.knobs for layer in spec.layers}
        if "linear_attention" in by_kind:
            assert by_kind["linear_attention"]["heads"] == p[heads]
            seen.add(p[heads])
        if "attention" in by_kind and "linear_attention" in by_kind:
            assert by_kind["attention"]["heads"] == by_kind["linear_attention"]["heads"]
        if "attention" not in by_kind and "linear_attention" not in by_kind:
            assert heads not in p
    assert seen == {2, 4}  # linear attention alone still searches the shared value
    result = count_architectures(space)
    # ratio 0: L x 2 heads + C x 2 kernels; ratio 1: A x 2; ratio 0.5 (A-x): with L 2, with C 4
    assert result.distinct == 4 + 2 + 6
    assert len(brute_force_identities(space)) == result.distinct


def test_untied_space_counts_more():
    untied = loads(space_text(TIED.replace("{same_as: attention.heads}", "{choice: [2, 4]}")))
    assert count_architectures(untied).distinct == 4 + 2 + 8


def test_reference_to_a_default_knob_and_to_the_channel_mixer():
    model = EXPR.replace('{expr: "heads // 2"}', '{same_as: query_heads}').replace(
        "heads: {expr: \"d_model // 8\"}", "heads: {expr: \"channel_mixer.expansion * 2\"}")
    space = loads(space_text(model))
    specs, _ = sample_specs(space, 10)
    for spec in specs:
        mixer, channel = spec.layers[0].mixer.knobs, spec.layers[0].channel_mixer.knobs
        assert mixer["heads"] == channel["expansion"] * 2
        assert mixer["kv_heads"] is None or mixer["kv_heads"] == mixer["heads"]  # default: none


@pytest.mark.parametrize("knobs, key, words", [
    ('{heads: {expr: "d_modle // 8"}}', "model.token_mixers.attention.heads",
     "unknown name 'd_modle'"),
    ('{heads: {same_as: linear_attention.heads}}', "model.token_mixers.attention.heads",
     "unknown name 'linear_attention.heads'"),
    ('{heads: {expr: "heads * 2"}}', "model.token_mixers.attention.heads",
     "expr 'heads * 2' refers to model.token_mixers.attention.heads itself — fix: name another"),
    ('{heads: {expr: "kv_heads"}, kv_heads: {expr: "heads"}}', "model.token_mixers.attention",
     "references form a cycle"),
    ('{heads: {expr: "d_model / 5"}}', "model.token_mixers.attention.heads",
     "must be an integer, got 3.2 — fix: make the expr give whole numbers: divide with //"),
    ('{heads: {expr: "d_model // (d_model - 16)"}}', "model.token_mixers.attention.heads",
     "division by zero"),
    ('{heads: {expr: "__import__(1)"}}', "model.token_mixers.attention.heads",
     "invalid expression"),
    ('{heads: {expr: "count(attention)"}}', "model.token_mixers.attention.heads",
     "function calls are not allowed"),
    ('{heads: {expr: 3}}', "model.token_mixers.attention.heads", "expr needs text"),
    ('{heads: {same_as: "d_model + 1"}}', "model.token_mixers.attention.heads",
     "same_as needs one name"),
])
def test_bad_references_name_the_key(knobs, key, words):
    model = EXPR.replace('{heads: {expr: "d_model // 8"}, kv_heads: {expr: "heads // 2"}}',
                         knobs)
    with pytest.raises(SpaceError) as info:
        loads(space_text(model), "s.yaml")
    assert info.value.key.startswith(key), str(info.value)
    assert words in str(info.value), str(info.value)


def test_references_only_where_values_do_not_shape_the_dag():
    with pytest.raises(SpaceError) as info:
        loads(space_text(EXPR.replace("n_layers: {choice: [1, 2]}",
                                      'n_layers: {expr: "d_model // 16"}')))
    assert info.value.key == "model.n_layers" and "mixer's knobs only" in str(info.value)


def test_channel_knob_tied_to_a_token_mixer_knob():
    model = EXPR.replace('expansion: {choice: [2, 4]}', "expansion: {same_as: attention.heads}")
    specs, _ = sample_specs(loads(space_text(model)), 6)
    for spec in specs:
        assert spec.layers[0].channel_mixer.knobs["expansion"] == spec.d_model // 8
