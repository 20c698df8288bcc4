"""Loading and validating space files: good ones compile, bad ones fail with one clear line."""

import optuna
import pytest

from nas.errors import SpaceError
from nas.searchspace import load, loads
from nas.searchspace.layout import attention_count, attention_positions
from tests.searchspace.spaces import sample_specs


def test_tiny_space_compiles(tiny_space_text):
    space = loads(tiny_space_text, "tiny.yaml")
    assert space.name == "tiny"
    assert space.vocab_size == 16
    assert space.directions == ["maximize", "minimize"]
    assert space.strategy == "nsga2"
    assert space.latency_requests() == ({"name": "latency_ms", "metric": "latency", "batch": 1,
                                         "seq_len": 32, "phase": "prefill"},)


def test_decision_graph_conditions(tiny_space_text):
    g = loads(tiny_space_text).graph
    ratio = "model.hybrid.full_attention_ratio"
    assert set(g.predecessors("model.token_mixers.attention.heads")) == {ratio}
    assert set(g.predecessors("model.hybrid.placement")) == {ratio}
    assert set(g.predecessors("model.token_mixers.short_conv.kernel_size")) == {
        "model.hybrid.other"}
    cond = g.edges["model.hybrid.other", "model.token_mixers.short_conv.kernel_size"]["condition"]
    assert cond.holds("short_conv") and not cond.holds("linear_attention")
    cond = g.edges[ratio, "model.hybrid.placement"]["condition"]
    assert cond.holds(0.5) and not cond.holds(0) and not cond.holds(1.0)


def test_sampling_respects_conditions(tiny_space_text):
    space = loads(tiny_space_text)
    specs, params = sample_specs(space, 40)
    for spec, p in zip(specs, params, strict=True):
        ratio = p["model.hybrid.full_attention_ratio"]
        kinds = set(spec.mixer_kinds)
        if ratio == 0:
            assert "attention" not in kinds
            assert not any(k.startswith("model.token_mixers.attention") for k in p)
            assert "model.hybrid.placement" not in p
        if ratio == 1:
            assert kinds == {"attention"} and "model.hybrid.other" not in p
        if "short_conv" not in kinds:
            assert "model.token_mixers.short_conv.kernel_size" not in p
        for layer in spec.layers:
            knobs = layer.mixer.knobs
            if layer.mixer.kind == "attention":  # canonical: 'full' resolved, defaults explicit
                assert isinstance(knobs["kv_heads"], int)
                assert knobs["heads"] % knobs["kv_heads"] == 0
                assert knobs["rope"] is True
        assert spec.training_config["steps"] == 20
        assert 1e-3 <= spec.training_config["lr"] <= 1e-2
    seen = {s.short_form() for s in specs}
    assert len(seen) > 3  # the sampler really explores


def test_sampling_is_reproducible(tiny_space_text):
    space = loads(tiny_space_text)
    first = [s.config_hash for s in sample_specs(space, 10, seed=3)[0]]
    again = [s.config_hash for s in sample_specs(space, 10, seed=3)[0]]
    assert first == again


def test_kv_heads_full_hashes_like_explicit(tiny_space_text):
    full = tiny_space_text.replace("kv_heads: {choice: [1, full]}", "kv_heads: full")
    explicit = tiny_space_text.replace("kv_heads: {choice: [1, full]}", "kv_heads: 4").replace(
        "heads: {choice: [2, 4]}", "heads: 4")
    full = full.replace("heads: {choice: [2, 4]}", "heads: 4")
    fixed = {"model.d_model": 32, "model.n_layers": 2, "model.norm": "rmsnorm",
             "model.hybrid.full_attention_ratio": 1, "model.channel_mixer.kind": "mlp",
             "training.lr": 1e-3}
    a = loads(full).sample(optuna.trial.FixedTrial(fixed))
    b = loads(explicit).sample(optuna.trial.FixedTrial(fixed))
    assert a.arch_hash == b.arch_hash


@pytest.mark.parametrize("n,ratio,count", [(4, 0.5, 2), (4, 0.25, 1), (2, 0.25, 1), (3, 0.9, 2),
                                           (1, 0.5, 1), (4, 0, 0), (4, 1, 4)])
def test_attention_count(n, ratio, count):
    assert attention_count(n, ratio) == count


@pytest.mark.parametrize("placement,expected", [("interleave", (1, 3)), ("first", (0, 1)),
                                                ("last", (2, 3))])
def test_attention_positions(placement, expected):
    assert attention_positions(4, 2, placement) == expected
    assert attention_positions(6, 2, "interleave") == (2, 5)


# -- errors: one line, naming the file, the key and the fix ----------------------------------


BAD = [
    ("model:\n  d_model: [", ":2:13: ", "not valid YAML"),
    ("- a list", "", "must be a YAML mapping"),
    ("name: x\n", "task", "required key is missing"),
    ("@REPLACE   hybrid:|  hybridd:", "model.hybridd", "keys allowed here: d_model, n_layers"),
    ("@REPLACE d_model: {choice: [16, 32]}|d_model: [16, 32]", "model.d_model", "choice"),
    ("@REPLACE d_model: {choice: [16, 32]}|d_model: {choice: [16, -2]}", "model.d_model",
     "positive integer"),
    ("@REPLACE short_conv: {kernel_size: {choice: [2, 3]}}|short_conv: {width: 3}",
     "model.token_mixers.short_conv.width", "known knobs: kernel_size"),
    ("@REPLACE short_conv:|shortconv:", "model.token_mixers.shortconv", "unknown token mixer"),
    ("@REPLACE heads: {choice: [2, 4]}|heads: {choice: [3, 4]}", "model.token_mixers.attention",
     "d_model"),
    ("@REPLACE choice: [0, 0.5, 1]|choice: [0, 1.5]", "model.hybrid.full_attention_ratio",
     "[0, 1]"),
    ("@REPLACE placement: {choice: [interleave, first, last]}|placement: centre",
     "model.hybrid.placement", "interleave"),
    ("@REPLACE kind: {choice: [mlp, swiglu]}|kind: ffn", "model.channel_mixer.kind", "swiglu"),
    ("@REPLACE expansion: 2|expand: 2", "model.channel_mixer.expand", "known knobs"),
    ("@REPLACE loguniform: [1.0e-3, 1.0e-2]|loguniform: [0, 1.0e-2]", "training.lr",
     "positive lower bound"),
    ("@REPLACE steps: 20|steps: 0", "training.steps", ">= 1"),
    ("@REPLACE num_kv_pairs: 3|num_kv_pairs: 30", "task", "num_kv_pairs"),
    ("@REPLACE name: accuracy|name: acc", "objectives.0.name", "unknown objective"),
    ("@REPLACE strategy: nsga2|strategy: cmaes", "search.strategy", "nsga2"),
    ("@REPLACE channel_mixer:|init: xavier\n  channel_mixer:", "model.init", "torch, gpt2"),
    ("@REPLACE channel_mixer:|tie_head: 'yes'\n  channel_mixer:", "model.tie_head",
     "true or false"),
    ("@REPLACE channel_mixer:|tie_head: {choice: [true, 1]}\n  channel_mixer:",
     "model.tie_head", "true or false"),
    ("@REPLACE channel_mixer:|positions: rope\n  channel_mixer:", "model.positions",
     "sinusoidal"),
    ("@REPLACE channel_mixer:|max_positions: 64\n  channel_mixer:", "model.max_positions",
     "never learned"),
    ("@REPLACE channel_mixer:|positions: learned\n  max_positions: 24\n  channel_mixer:",
     "model.max_positions", "32 positions of objectives.1"),
    ("@REPLACE lr: {loguniform|schedule: linear, lr: {loguniform", "training.schedule",
     "cosine, constant"),
]


@pytest.mark.parametrize("edit,key,words", BAD)
def test_bad_space_gives_one_clear_line(tmp_path, tiny_space_text, edit, key, words):
    if edit.startswith("@REPLACE "):
        old, new = edit[len("@REPLACE "):].split("|")
        assert old in tiny_space_text
        text = tiny_space_text.replace(old, new, 1)
    else:
        text = edit
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpaceError) as info:
        load(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    assert key in message and words in message, message


def test_missing_file_is_a_space_error(tmp_path):
    with pytest.raises(SpaceError, match="file not found"):
        load(tmp_path / "nope.yaml")


def test_ratio_needed_when_attention_and_others_declared(tiny_space_text):
    text = tiny_space_text.replace("  hybrid:\n", "  hybrid_off:\n")
    text = text.replace("    full_attention_ratio: {choice: [0, 0.5, 1]}\n", "").replace(
        "    placement: {choice: [interleave, first, last]}\n", "").replace("  hybrid_off:\n", "")
    with pytest.raises(SpaceError, match="full_attention_ratio: required"):
        loads(text)


def test_only_attention_needs_no_hybrid_section(tiny_space_text):
    text = tiny_space_text.replace("    linear_attention: {heads: 2}\n", "").replace(
        "    short_conv: {kernel_size: {choice: [2, 3]}}\n", "").replace(
        "    full_attention_ratio: {choice: [0, 0.5, 1]}\n", "    full_attention_ratio: 1\n")
    specs, _ = sample_specs(loads(text), 5)
    assert all(set(s.mixer_kinds) == {"attention"} for s in specs)


def test_sinks_are_inactive_without_a_window(tiny_space_text):
    text = tiny_space_text.replace(
        "kv_heads: {choice: [1, full]}}",
        "kv_heads: {choice: [1, full]}, window: {choice: [null, 8]}, sinks: 2}")
    specs, params = sample_specs(loads(text), 30)
    for spec in specs:
        for layer in spec.layers:
            if layer.mixer.kind == "attention":
                knobs = layer.mixer.knobs
                assert knobs["sinks"] == (2 if knobs["window"] == 8 else 0)
    windows = {layer.mixer.knobs["window"] for s in specs for layer in s.layers
               if layer.mixer.kind == "attention"}
    assert windows == {None, 8}


MEASURED_OBJECTIVES = """objectives:
  - {name: accuracy, goal: maximize}
  - {name: latency_ms, goal: minimize, batch: 1, seq_len: 32, phase: prefill}
  - {name: throughput_decode, phase: decode, batch: 8}
  - {name: peak_memory, phase: train_step, batch: 4}
  - {name: cache_bytes, metric: state_bytes, seq_len: 4096}
  - {name: prefill_ms, phase: prefill}
"""


def test_measured_objectives_name_their_metric_unit_and_goal(tiny_space_text):
    head, tail = tiny_space_text.split("objectives:\n")
    text = head + MEASURED_OBJECTIVES + tail[tail.index("search:"):]
    space = loads(text)
    assert space.directions == ["maximize", "minimize", "maximize", "minimize", "minimize",
                                "minimize"]
    assert [(r["name"], r["metric"], r.get("phase"), r["batch"], r["seq_len"])
            for r in space.latency_requests()] == [
        ("latency_ms", "latency", "prefill", 1, 32),
        ("throughput_decode", "throughput", "decode", 8, 24),  # the task's seq_len by default
        ("peak_memory", "peak_memory", "train_step", 4, 24),
        ("cache_bytes", "state_bytes", None, 1, 4096),  # not a pass: no phase
        ("prefill_ms", "latency", "prefill", 1, 24),
    ]
    assert [r["name"] for r in space.latency_requests(timed_only=True)] == [
        "latency_ms", "throughput_decode", "prefill_ms"]


def test_space_hash_is_unchanged_by_the_metric_field(tiny_space_text):
    plain = loads(tiny_space_text)
    # The hash without the field (changed from 0afa1e7faa4397ab by issue 17's training defaults:
    # no warmup, weight decay 0.01, beta2 0.999; the space trains differently since).
    assert plain.space_hash == "311def42a1681900"
    named = tiny_space_text.replace("seq_len: 32, phase: prefill}",
                                    "seq_len: 32, phase: prefill, metric: latency}")
    assert loads(named).space_hash != plain.space_hash


def test_model_options_default_and_search(tiny_space_text):
    """init, tie_head and positions: the new defaults when left out, searchable like norm, and
    recorded in every spec; learned positions get a table as long as the longest sequence."""
    plain = sample_specs(loads(tiny_space_text), 4, seed=0)[0]
    assert {(s.init, s.tie_head, s.positions) for s in plain} == {("torch", False, "none")}
    assert all(s.training_config["schedule"] == "constant" for s in plain)
    text = tiny_space_text.replace("  channel_mixer:", """\
  init: {choice: [torch, gpt2]}
  tie_head: {choice: [true, false]}
  positions: {choice: [none, learned, sinusoidal]}
  channel_mixer:""").replace("lr: {loguniform", "schedule: cosine, lr: {loguniform")
    space = loads(text)
    specs = sample_specs(space, 40, seed=1)[0]
    assert {s.init for s in specs} == {"torch", "gpt2"}
    assert {s.tie_head for s in specs} == {True, False}
    assert {s.positions for s in specs} == {"none", "learned", "sinusoidal"}
    # the latency objective's 32 tokens are longer than the task's 24
    assert {s.max_positions for s in specs if s.positions == "learned"} == {32}
    assert {s.max_positions for s in specs if s.positions != "learned"} == {None}
    decode = loads(text.replace("phase: prefill", "phase: decode"))  # one token past 32
    assert {s.max_positions for s in sample_specs(decode, 20, seed=1)[0]} == {None, 33}
    assert all("schedule" not in s.training_config for s in specs)  # cosine: as before
    explicit = loads(text.replace("  channel_mixer:", "  max_positions: 100\n  channel_mixer:"))
    assert {s.max_positions for s in sample_specs(explicit, 20, seed=1)[0]} >= {100}


def test_space_hash_is_unchanged_by_default_model_options(tiny_space_text):
    written = tiny_space_text.replace("  channel_mixer:", """\
  init: torch
  tie_head: false
  positions: none
  channel_mixer:""").replace("lr: {loguniform", "schedule: constant, lr: {loguniform")
    assert loads(written).space_hash == loads(tiny_space_text).space_hash == "311def42a1681900"
    assert loads(written.replace("tie_head: false", "tie_head: true")).space_hash != \
        "311def42a1681900"
