"""The three layout forms (hybrid ratio + placement, pattern, free) and per-layer channel
mixers: where layers go, what the DAG says, and exact counts against brute force."""

from __future__ import annotations

import optuna
import pytest

from nas.errors import SpaceError
from nas.searchspace import count_architectures, loads
from nas.searchspace.domains import WeightedChoice
from nas.searchspace.layout import (
    PLACEMENTS,
    attention_count,
    attention_positions,
    depth_weights,
    pattern_kinds,
)
from tests.searchspace.spaces import brute_force_identities, sample_specs, space_text

GRID = [(n, k) for n in range(1, 13) for k in range(n + 1)]


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_every_placement_places_count_distinct_layers_in_range(placement):
    for n, k in GRID:
        positions = attention_positions(n, k, placement)
        assert len(positions) == len(set(positions)) == k, (n, k)
        assert list(positions) == sorted(positions)
        assert all(0 <= p < n for p in positions), (n, k, positions)


def test_placement_shapes():
    for n, k in GRID:
        pos = attention_positions(n, k, "interleave")
        if k:
            assert pos[-1] == n - 1  # the top layer is attention
            gaps = [b - a for a, b in zip((-1, *pos), pos, strict=False)]
            assert max(gaps) - min(gaps) <= 1, (n, k, pos)  # evenly spaced
        assert attention_positions(n, k, "first") == tuple(range(k))
        assert attention_positions(n, k, "last") == tuple(range(n - k, n))
        middle = attention_positions(n, k, "middle")
        if k:
            below, above = middle[0], n - 1 - middle[-1]
            assert middle == tuple(range(middle[0], middle[0] + k))  # contiguous
            assert below <= above <= below + 1  # centred, one lower when it cannot be exact
        sandwich = attention_positions(n, k, "sandwich")
        assert sandwich[: k // 2] == tuple(range(k // 2))
        assert sandwich[k // 2:] == tuple(range(n - (k - k // 2), n))
    assert attention_positions(6, 3, "sandwich") == (0, 4, 5)
    assert attention_positions(5, 1, "middle") == (2,)
    assert attention_positions(4, 1, "middle") == (1,)
    with pytest.raises(ValueError, match="known: interleave, first, last, middle, sandwich"):
        attention_positions(4, 1, "centre")


HYBRID = """\
    d_model: 16
    n_layers: {int: [1, 4]}
    token_mixers:
      attention: {heads: 2}
      short_conv: {kernel_size: 3}
    hybrid:
      full_attention_ratio: {choice: [0, 0.25, 0.5, 1]}
      placement: {choice: [interleave, first, last, middle, sandwich]}
"""


def test_coinciding_placements_count_once():
    space = loads(space_text(HYBRID))
    result = count_architectures(space)
    # every distinct attention mask over 1..4 layers that some (ratio, placement) reaches
    masks = set()
    for n in range(1, 5):
        for ratio in (0, 0.25, 0.5, 1):
            k = attention_count(n, ratio)
            for placement in PLACEMENTS:
                masks.add((n, attention_positions(n, k, placement)))
    assert result.exact and result.distinct == len(masks)
    assert result.assignments == 4 * (2 + 2 * 5)  # per depth: ratio 0, 1, and 2 ratios x 5
    assert len(brute_force_identities(space)) == result.distinct


PATTERN = """\
    d_model: 16
    token_mixers:
      attention: {heads: {choice: [2, 4]}}
      linear_attention: {heads: 2}
      short_conv: {kernel_size: {choice: [2, 3]}}
    layout: {pattern: {choice: [LLLA, C-A, LA]}, repeat: {choice: [1, 2]}}
"""


def test_pattern_implies_depth_and_gates_knobs():
    space = loads(space_text(PATTERN))
    graph = space.graph
    assert set(graph.predecessors("model.n_layers")) == {"model.layout.pattern",
                                                         "model.layout.repeat"}
    edge = graph.edges["model.layout.pattern", "model.token_mixers.short_conv.kernel_size"]
    assert edge["condition"].allowed == {"C-A"}
    specs, params = sample_specs(space, 30)
    for spec, p in zip(specs, params, strict=True):
        pattern, repeat = p["model.layout.pattern"], p["model.layout.repeat"]
        letters = {"L": "linear_attention", "A": "attention", "C": "short_conv"}
        assert spec.mixer_kinds == pattern_kinds(pattern, repeat, letters)
        assert ("model.token_mixers.short_conv.kernel_size" in p) == (pattern == "C-A")
    result = count_architectures(space)
    # LLLA, LA: 2 heads each; C-A: 2 heads x 2 kernels; all x 2 repeats
    assert (result.distinct, result.exact) == ((2 + 2 + 4) * 2, True)
    assert len(brute_force_identities(space)) == result.distinct


def test_pattern_fills_a_fixed_depth_and_rebinds_letters():
    model = PATTERN.replace("repeat: {choice: [1, 2]}", "letters: {X: short_conv}") \
        .replace("[LLLA, C-A, LA]", "[LLLA, XA]")
    space = loads(space_text(model).replace("  d_model: 16", "  d_model: 16\n  n_layers: 8"))
    specs, params = sample_specs(space, 12)
    assert {s.short_form() for s in specs} == {"L-L-L-A-L-L-L-A", "C-A-C-A-C-A-C-A"}
    assert "model.layout.repeat" not in space.graph


def test_mixers_no_layer_can_use_are_noted():
    assert loads(space_text(PATTERN)).notes == ()
    rebound = loads(space_text(PATTERN.replace("[LLLA, C-A, LA]", "[LLLA, LA]")))
    assert rebound.notes == ("model.token_mixers.short_conv is declared but no layer can use it "
                             "(no letter of the pattern is bound to it); its knobs are not "
                             "searched",)
    free = loads(space_text(FREE.replace("[attention, linear_attention, short_conv]",
                                         "[attention, short_conv]")))
    assert len(free.notes) == 1 and "linear_attention" in free.notes[0]
    assert "not in model.layout.free" in free.notes[0]


@pytest.mark.parametrize("edit, key, words", [
    ("[LLLA, C-A, LA]|[LLZA]", "model.layout.pattern",
     "unknown letter 'Z' in pattern 'LLZA' — fix: letters of the declared mixers: A (attention), "
     "C (short_conv), L (linear_attention)"),
    ("[LLLA, C-A, LA]|[LDA]", "model.layout.pattern", "means deltanet, which is not declared"),
    ("[LLLA, C-A, LA]|['']", "model.layout.pattern", "string of mixer letters"),
    ("d_model: 16|d_model: 16\n  n_layers: 6", "model.n_layers", "disagrees with pattern"),
    ("d_model: 16|d_model: 16\n  n_layers: {choice: [4, 8]}", "model.n_layers",
     "may only be one number"),
    ("repeat: {choice: [1, 2]}|letters: {XY: short_conv}", "model.layout.letters.XY",
     "one character"),
    ("repeat: {choice: [1, 2]}|letters: {X: mamba2}", "model.layout.letters.X",
     "not declared"),
    ("repeat: {choice: [1, 2]}|repeat: {choice: [0, 2]}", "model.layout.repeat",
     "positive integer"),
    ("repeat: {choice: [1, 2]}|free: [attention]", "model.layout.free", "pattern or free"),
    ("layout:|hybrid: {full_attention_ratio: 0.5}\n  layout:", "model.layout", "not both"),
])
def test_pattern_errors_name_the_key(edit, key, words):
    old, new = edit.split("|")
    assert old in PATTERN or old in space_text(PATTERN)
    text = space_text(PATTERN).replace(old, new, 1)
    with pytest.raises(SpaceError) as info:
        loads(text, "s.yaml")
    assert info.value.key == key, str(info.value)
    assert words in str(info.value)


def test_pattern_length_must_divide_a_fixed_depth():
    model = PATTERN.replace(", repeat: {choice: [1, 2]}", "").replace(
        "[LLLA, C-A, LA]", "[LLLA, CAA]")
    text = space_text(model).replace("  d_model: 16", "  d_model: 16\n  n_layers: 4")
    with pytest.raises(SpaceError, match="pattern 'CAA' .3 layers. does not divide n_layers 4"
                       ) as info:
        loads(text)
    assert info.value.key == "model.n_layers"


FREE = """\
    d_model: 16
    n_layers: {int: [1, 3]}
    token_mixers:
      attention: {heads: {choice: [2, 4]}}
      linear_attention: {heads: 2}
      short_conv: {kernel_size: 3}
    layout: {free: [attention, linear_attention, short_conv]}
"""


def test_free_layers_beyond_the_depth_are_inactive():
    space = loads(space_text(FREE))
    graph = space.graph
    assert list(graph.predecessors("model.layers.0.mixer")) == []
    assert graph.edges["model.n_layers", "model.layers.2.mixer"]["condition"].allowed == {3}
    heads = "model.token_mixers.attention.heads"
    assert set(graph.predecessors(heads)) == {f"model.layers.{i}.mixer" for i in range(3)}
    assert graph.nodes[heads]["any"] is True
    assert "or" in space.describe_when(heads)
    specs, params = sample_specs(space, 40)
    for spec, p in zip(specs, params, strict=True):
        n = p["model.n_layers"]
        assert spec.n_layers == n
        assert [p[f"model.layers.{i}.mixer"] for i in range(n)] == list(spec.mixer_kinds)
        assert not any(f"model.layers.{i}.mixer" in p for i in range(n, 3))
        assert (heads in p) == ("attention" in spec.mixer_kinds)
    result = count_architectures(space)
    # stacks with attention: (3^n - 2^n) mixer sequences x 2 heads; without: 2^n
    expected = sum(2 * (3 ** n - 2 ** n) + 2 ** n for n in (1, 2, 3))
    assert (result.distinct, result.exact) == (expected, True)
    assert len(brute_force_identities(space)) == expected


def test_free_priors_weight_the_layers_by_depth():
    assert depth_weights(["attention", "short_conv"], {"attention": (0.1, 0.5)}, 0, 3) == (
        pytest.approx(0.1), pytest.approx(0.9))
    assert depth_weights(["attention", "short_conv"], {"attention": (0.1, 0.5)}, 1, 3) == (
        pytest.approx(0.3), pytest.approx(0.7))
    three = depth_weights(["a", "b", "c"], {"a": (0.5, 0.5)}, 0, 1)
    assert three == (0.5, 0.25, 0.25)
    both = depth_weights(["a", "b"], {"a": (1.0, 1.0), "b": (3.0 / 10, 3.0 / 10)}, 0, 2)
    assert sum(both) == pytest.approx(1.0) and both[0] == pytest.approx(1 / 1.3)
    choice = WeightedChoice(("a", "b", "c"), (0.2, 0.5, 0.3))
    grid = [choice.pick(i / 1000) for i in range(1000)]
    assert (grid.count("a"), grid.count("b"), grid.count("c")) == (200, 500, 300)
    assert choice.pick(1.0) == "c"


def test_free_priors_are_sampled_through_a_uniform_float():
    model = FREE.replace("short_conv]}", "short_conv], priors: {attention: [0.1, 0.7]}}")
    space = loads(space_text(model))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    fixed = {"model.n_layers": 3, "model.layers.0.mixer": 0.15, "model.layers.1.mixer": 0.15,
             "model.layers.2.mixer": 0.15, "model.token_mixers.attention.heads": 2}
    spec = space.sample(optuna.trial.FixedTrial(fixed))
    # at 3 layers attention has 0.1, 0.4, 0.7; the others share the rest: u = 0.15 is
    # linear_attention at the bottom, attention above
    assert spec.mixer_kinds == ("linear_attention", "attention", "attention")
    trial = study.ask()
    space.sample(trial)
    assert all(isinstance(v, float) and 0 <= v <= 1 for k, v in trial.params.items()
               if k.endswith(".mixer"))
    assert count_architectures(space).distinct == count_architectures(
        loads(space_text(FREE))).distinct  # priors weight, they do not remove


@pytest.mark.parametrize("priors, key, words", [
    ("{attention: 0}", "model.layout.priors.attention", "(0, 1]"),
    ("{atention: 0.5}", "model.layout.priors.atention", "not in the free list"),
    ("{attention: 0.6, short_conv: [0.5, 0.1]}", "model.layout.priors",
     "leaving nothing for linear_attention"),
    ("{attention: [0.1, 0.2, 0.3]}", "model.layout.priors.attention", "[bottom, top]"),
])
def test_bad_priors(priors, key, words):
    model = FREE.replace("short_conv]}", f"short_conv], priors: {priors}}}")
    with pytest.raises(SpaceError) as info:
        loads(space_text(model))
    assert info.value.key == key and words in str(info.value), str(info.value)


def test_free_layout_errors():
    with pytest.raises(SpaceError) as info:
        loads(space_text(FREE.replace("[attention, linear_attention, short_conv]",
                                      "[attention, mamba2]")))
    assert info.value.key == "model.layout.free.1" and "not declared" in str(info.value)
    with pytest.raises(SpaceError) as info:
        loads(space_text(FREE.replace("    n_layers: {int: [1, 3]}\n", "")))
    assert info.value.key == "model.n_layers"
    with pytest.raises(SpaceError) as info:
        loads(space_text(FREE.replace("short_conv]}", "short_conv], repeat: 2}")))
    assert info.value.key == "model.layout.repeat"


def test_per_layer_channel_mixer():
    model = FREE.replace("layout:", "channel_mixer: {kind: {choice: [mlp, swiglu]}, "
                         "per_layer: true, activation: {choice: [gelu, relu]}}\n    layout:")
    space = loads(space_text(model))
    graph = space.graph
    assert "model.channel_mixer.kind" not in graph
    activation = "model.channel_mixer.activation"
    assert set(graph.predecessors(activation)) == {
        f"model.layers.{i}.channel_mixer" for i in range(3)}
    specs, params = sample_specs(space, 30)
    for spec, p in zip(specs, params, strict=True):
        kinds = [layer.channel_mixer.kind for layer in spec.layers]
        assert kinds == [p[f"model.layers.{i}.channel_mixer"] for i in range(spec.n_layers)]
        assert (activation in p) == ("mlp" in kinds)
    assert any(len({layer.channel_mixer.kind for layer in s.layers}) > 1 for s in specs)
    small = loads(space_text(model.replace("{int: [1, 3]}", "{int: [1, 2]}")))
    result = count_architectures(small)
    assert result.exact and result.distinct == len(brute_force_identities(small))
    with pytest.raises(SpaceError) as info:
        loads(space_text(model.replace("per_layer: true", "per_layer: sometimes")))
    assert info.value.key == "model.channel_mixer.per_layer"


def test_an_empty_layout_says_what_it_needs():
    with pytest.raises(SpaceError) as info:
        loads(space_text(FREE.replace("{free: [attention, linear_attention, short_conv]}", "{}")
                         .replace("    n_layers: {int: [1, 3]}\n", "")))
    assert info.value.key == "model.layout" and "pattern:` or `free:`" in str(info.value)
