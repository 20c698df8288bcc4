"""Presets: the literature's names (gla, retnet, gated_deltanet, swa, gqa, mqa) as token mixers
of a space. Each loads, samples and builds; the ArchSpec records the block with every knob, so a
preset and the block with the same knobs are one architecture; a knob the preset fixes cannot
change under its name; names nas has no block for say what comes closest."""

from __future__ import annotations

import optuna
import pytest
import torch

from nas.blocks import (
    build_model,
    get_block,
    get_preset,
    list_blocks,
    list_presets,
    register_preset,
)
from nas.blocks.presets import LITERATURE, literature_hint
from nas.errors import SpaceError
from nas.searchspace import count_architectures, loads
from nas.strategies.surrogate import Encoder
from tests.searchspace.spaces import sample_specs, space_text

PRESETS = list_presets()


def load(model: str, **kwargs):
    return loads(space_text(model, **kwargs), "space.yaml")


def one_mixer(kind: str, knobs: str = "{}") -> str:
    return f"""\
        d_model: 16
        n_layers: 2
        token_mixers:
          {kind}: {knobs}
    """


def fails(model: str, *words: str) -> str:
    with pytest.raises(SpaceError) as info:
        load(model)
    text = str(info.value)
    for word in words:
        assert word in text, text
    return text


def test_the_literature_names_are_presets():
    assert set(PRESETS) >= {"gla", "retnet", "gated_deltanet", "swa", "gqa", "mqa"}
    for name in PRESETS:
        preset = get_preset(name)
        assert preset.paper and preset.doc and len(preset.letter) == 1
        assert get_block(preset.block).role == preset.role == "token_mixer"


@pytest.mark.parametrize("name", PRESETS)
def test_each_preset_loads_samples_and_builds_a_model_that_runs(name):
    preset = get_preset(name)
    knobs = "{" + ", ".join(f"{k}: 4" for k in preset.required) + "}"  # a window of 4 tokens
    space = load(one_mixer(name, knobs))
    assert space.mixer_blocks == {name: preset.block}
    (spec,), _ = sample_specs(space, 1)
    for layer in spec.layers:
        assert layer.mixer.kind == preset.block  # the spec records the block, not the name
        recorded = layer.mixer.knobs
        assert set(recorded) == {k.name for k in get_block(preset.block).knobs}  # all explicit
        assert {k: recorded[k] for k in preset.fixed} == preset.fixed
        assert {k: recorded[k] for k in preset.defaults} == preset.defaults
        assert all(recorded[k] == 4 for k in preset.required)
    model = build_model(spec)
    tokens = torch.randint(0, spec.vocab_size, (2, 9))
    with torch.no_grad():
        logits = model(tokens)
    assert logits.shape == (2, 9, spec.vocab_size) and torch.isfinite(logits).all()


def test_presets_set_what_the_papers_describe():
    assert get_preset("gla").fixed == {"decay": "gla", "feature_map": "identity",
                                       "normalize": "rmsnorm", "output_gate": True}
    assert get_preset("retnet").fixed["decay"] == "fixed"
    assert get_preset("gated_deltanet").fixed["gate"] is True
    assert get_preset("mqa").fixed == {"kv_heads": 1}
    assert get_preset("gqa").defaults == {"kv_heads": 2}
    assert set(get_preset("swa").required) == {"window"}


@pytest.mark.parametrize("preset,block", [
    ("gqa: {kv_heads: 2}", "attention: {kv_heads: 2}"),
    ("gqa: {}", "attention: {kv_heads: 2}"),  # the preset's default
    ("mqa: {heads: 2}", "attention: {heads: 2, kv_heads: 1}"),
    ("swa: {window: 8}", "attention: {window: 8}"),
    ("gla: {heads: 2}", "linear_attention: {heads: 2, decay: gla, feature_map: identity, "
                        "normalize: rmsnorm, output_gate: true}"),
    ("retnet: {}", "linear_attention: {decay: fixed, feature_map: identity, normalize: rmsnorm, "
                   "output_gate: true}"),
    ("gated_deltanet: {}", "deltanet: {gate: true}"),
])
def test_a_preset_and_its_block_with_the_same_knobs_are_one_architecture(preset, block):
    def spec_of(mixer: str):
        text = f"d_model: 16\nn_layers: 2\ntoken_mixers: {{{mixer}}}\n"
        return loads(space_text(text), "space.yaml").sample(optuna.trial.FixedTrial({}))

    a, b = spec_of(preset), spec_of(block)
    assert a == b and a.arch_hash == b.arch_hash


def test_gqa_and_attention_in_one_space_count_once_where_they_agree():
    space = load("""\
        d_model: 16
        n_layers: 1
        token_mixers:
          attention: {kv_heads: {choice: [1, 2]}}
          gqa: {}
        layout: {free: [attention, gqa]}
    """)
    result = count_architectures(space)
    assert result.assignments == 3 and result.distinct == 2  # gqa = attention at kv_heads 2


def test_two_keys_of_one_block_in_a_free_layout_are_separate_decisions():
    space = load("""\
        d_model: 16
        n_layers: 2
        token_mixers:
          attention: {heads: {choice: [2, 4]}}
          swa: {window: {choice: [4, 8]}, heads: 2}
        layout: {free: [attention, swa]}
    """)
    assert {"model.token_mixers.attention.heads", "model.token_mixers.swa.window"} <= \
        set(space.order)
    assert "model.layers.0.mixer = swa" in space.describe_when("model.token_mixers.swa.window")
    spec = space.sample(optuna.trial.FixedTrial({
        "model.layers.0.mixer": "swa", "model.layers.1.mixer": "attention",
        "model.token_mixers.attention.heads": 4, "model.token_mixers.swa.window": 8}))
    swa, attention = (layer.mixer for layer in spec.layers)
    assert swa.kind == attention.kind == "attention"
    assert (swa.knobs["window"], swa.knobs["heads"]) == (8, 2)
    assert (attention.knobs["window"], attention.knobs["heads"]) == (None, 4)
    assert spec.short_form() == "A-A"
    assert Encoder(space).kinds == ["attention"]  # the block the spec records


def test_pattern_letters_and_hybrid_other_name_presets():
    space = load("""\
        d_model: 16
        token_mixers:
          attention: {}
          gla: {heads: 2}
          swa: {window: 4}
        layout: {pattern: GGSA}
    """)
    (spec,), _ = sample_specs(space, 1)
    assert [m.kind for m in (layer.mixer for layer in spec.layers)] == \
        ["linear_attention", "linear_attention", "attention", "attention"]
    assert [layer.mixer.knobs.get("window") for layer in spec.layers] == [None, None, 4, None]
    rebound = load("""\
        d_model: 16
        token_mixers: {gla: {}, gqa: {}}
        layout: {pattern: XQ, letters: {X: gla}}
    """)
    (spec,), _ = sample_specs(rebound, 1)
    assert spec.short_form() == "L-A"
    hybrid = load("""\
        d_model: 16
        n_layers: 4
        token_mixers: {attention: {}, swa: {window: 4}}
        hybrid: {full_attention_ratio: 0.25, placement: last}
    """)
    (spec,), _ = sample_specs(hybrid, 1)
    assert [layer.mixer.knobs["window"] for layer in spec.layers] == [4, 4, 4, None]


def test_a_knob_the_preset_fixes_cannot_change_under_its_name():
    text = fails(one_mixer("gla", "{heads: 2, decay: none}"),
                 "model.token_mixers.gla.decay: gla fixes decay to gla", "got none",
                 "fix: remove `decay` here, or declare the block itself",
                 "`linear_attention: {decay: none, feature_map: identity, normalize: rmsnorm, "
                 "output_gate: true, heads: 2}`")
    assert text.startswith("space.yaml:")  # located in the file
    fails(one_mixer("mqa", "{kv_heads: {choice: [1, 2]}}"), "model.token_mixers.mqa.kv_heads",
          "mqa fixes kv_heads to 1")
    fails(one_mixer("gated_deltanet", "{gate: {same_as: heads}}"), "gated_deltanet fixes gate")
    # the same single value again is harmless
    load(one_mixer("gla", "{decay: gla, output_gate: true}"))
    load(one_mixer("mqa", "{kv_heads: 1.0}"))


def test_a_preset_default_may_change_and_a_required_knob_must_be_given():
    (spec,), _ = sample_specs(load(one_mixer("gqa", "{heads: 4, kv_heads: 4}")), 1)
    assert spec.layers[0].mixer.knobs["kv_heads"] == 4
    fails(one_mixer("swa", "{heads: 2}"), "model.token_mixers.swa: swa needs window",
          "fix: write e.g. `swa: {heads: 2, window: 64}`")
    fails(one_mixer("gqa", "{heads: 1}"), "model.token_mixers.gqa", "kv_heads=2 does not divide "
          "query_heads=1")


@pytest.mark.parametrize("name,closest", [
    ("hgrn", "gla"), ("HGRN-2", "gla"), ("rwkv", "gla"), ("rwkv7", "gated_deltanet"),
    ("hyena", "long_conv"), ("s4", "long_conv"), ("mamba", "mamba2"), ("xlstm", "mamba2"),
    ("sliding_window", "swa"), ("retention", "retnet"),
])
def test_a_literature_name_without_a_block_says_what_comes_closest(name, closest):
    text = fails(one_mixer(name), f"model.token_mixers.{name}: unknown token mixer",
                 f"fix: declare `{closest}: ", f"`nas blocks list {closest}`")
    assert text.count("\n") == 0
    assert ("the closest is " + closest in text) or (f"is called {closest} in nas" in text)


def test_every_literature_entry_points_at_something_declarable():
    for name, entry in LITERATURE.items():
        assert entry.closest in list_presets() + list_blocks(role="token_mixer"), name
        assert entry.write.startswith(entry.closest + ":"), name
        load(one_mixer(*entry.write.split(": ", 1)))
        assert get_preset(name) is None and literature_hint(name) is not None


def test_an_unknown_name_outside_the_table_lists_blocks_and_presets():
    fails(one_mixer("glaa"), "unknown token mixer 'glaa' (did you mean 'gla'?)",
          "or a preset: gated_deltanet, gla, gqa, mqa, retnet, swa")


def test_a_hybrid_ratio_without_attention_says_how_to_use_an_attention_preset():
    fails("""\
        d_model: 16
        n_layers: 2
        token_mixers: {gqa: {}, gla: {}}
        hybrid: {full_attention_ratio: 0.5}
    """, "0.5 needs attention", "declare `attention: {kv_heads: 2}` instead", "its letter Q")


def test_a_constraint_cannot_count_a_preset():
    with pytest.raises(SpaceError) as info:
        loads(space_text(one_mixer("gla")) + 'constraints: ["count(gla) >= 1"]\n', "space.yaml")
    assert "count(gla): gla is a preset of linear_attention" in str(info.value)
    assert "write count(linear_attention)" in str(info.value)


def test_register_preset_refuses_what_would_be_ambiguous():
    with pytest.raises(ValueError, match="taken"):
        register_preset("attention", "attention", doc="", paper="", letter="Z")
    with pytest.raises(ValueError, match="taken"):
        register_preset("gla", "linear_attention", doc="", paper="", letter="Z")
    with pytest.raises(ValueError, match="letter 'A'"):
        register_preset("mha2", "attention", doc="", paper="", letter="A")
    with pytest.raises(ValueError, match="no knob 'size'"):
        register_preset("mha2", "attention", doc="", paper="", letter="Z", fixed={"size": 1})
    with pytest.raises(ValueError, match="not a value"):
        register_preset("mha2", "attention", doc="", paper="", letter="Z",
                        fixed={"gate": "sometimes"})
    assert get_preset("mha2") is None
