"""Contract tests for nas.blocks.

Token and channel mixers are parametrised over the registry: a newly registered block gets the
shape, causality, step = forward, gradient and cost tests without touching this file (add
entries to KNOB_CASES to test it at more than its defaults).

FLOPs are compared with `FlopCounterMode`, which counts matmuls and convolutions (2 per
multiply-add) and nothing elementwise, like `flops_per_token`. SDPA runs on the math backend
there: the fused CPU kernel is not counted at all, while the math path's dense matmuls give the
full T×T, the convention the blocks use.
"""

from __future__ import annotations

import inspect
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from nas.blocks import (
    Knob,
    build_model,
    get_block,
    get_preset,
    list_blocks,
    list_presets,
    make_norm,
)
from nas.blocks.channel import swiglu_hidden
from nas.blocks.linear_attention import EPS
from nas.evaluate.latency import tensors_in
from nas.evaluate.memory import storage_bytes
from nas.kernels import force_backend
from nas.spec import ArchSpec, LayerSpec, ModuleSpec

D = 32
B = 2

# Knob settings per block beyond its defaults; a block missing here runs at its defaults only.
KNOB_CASES: dict[str, list[dict]] = {
    "attention": [{}, {"kv_heads": 1}, {"kv_heads": 2, "rope": False}, {"heads": 2},
                  # variants; windows here stay near T=70 because the FLOPs contract counts the
                  # dense masked kernel (window 16 runs the contracts in test_attention_variants)
                  {"gate": "headwise"}, {"gate": "elementwise", "kv_heads": 2},
                  {"query_heads": 2}, {"query_heads": 2, "kv_heads": 1, "gate": "elementwise"},
                  {"window": 64, "sinks": 2}, {"window": 64, "kv_heads": 1, "gate": "headwise"}],
    "linear_attention": [
        {},
        {"feature_map": "relu"},
        {"heads": 2},
        {"decay": "fixed"},
        {"decay": "gla"},
        {"decay": "fixed", "feature_map": "identity", "normalize": "rmsnorm"},  # RetNet-like
        {"decay": "gla", "feature_map": "identity", "normalize": "rmsnorm", "output_gate": True},
        {"decay": "gla", "feature_map": "relu", "normalize": "none", "heads": 2},
        {"feature_map": "identity", "normalize": "none", "output_gate": True},
        {"normalize": "rmsnorm", "output_gate": True},
    ],
    "short_conv": [{}, {"kernel_size": 2}],
    "mlp": [{}, {"activation": "relu", "expansion": 2}, {"activation": "relu2"}],
    "swiglu": [{}, {"expansion": 2}, {"param_matched": False}],
    "geglu": [{}, {"expansion": 2}],
    "deltanet": [{}, {"gate": True}, {"short_conv": False, "output_gate": False},
                 {"gate": True, "heads": 2, "output_gate": False}],
    "mamba2": [{}, {"d_state": 8, "head_dim": 8}, {"expand": 1, "conv_kernel": 2}],
    "long_conv": [{}, {"decay": False}, {"kernel_size": 2}],
    "moe": [{}, {"experts": 8, "top_k": 1}, {"experts": 3, "top_k": 3, "shared_expert": True},
            {"aux_loss_weight": 0.0, "expansion": 1}],
}



def knob_sets(name: str) -> list[dict]:
    """KNOB_CASES of block `name`, plus the settings of each of its presets (gla, swa, ...)
    that no case covers yet, so a preset gets the block contracts by registering."""
    sets = list(KNOB_CASES.get(name, [{}]))
    defaults = get_block(name).defaults
    for preset in map(get_preset, list_presets()):
        knobs = {**preset.fixed, **preset.defaults, **preset.required}
        if preset.block == name and all({**defaults, **knobs} != {**defaults, **k} for k in sets):
            sets.append(knobs)
    return sets


def cases(role: str) -> list:
    return [
        pytest.param(name, knobs, id=f"{name}-{'-'.join(f'{k}={v}' for k, v in knobs.items())}")
        for name in list_blocks(role=role)
        for knobs in knob_sets(name)
    ]


TOKEN_CASES = cases("token_mixer")
CHANNEL_CASES = cases("channel_mixer")


def make(name: str, knobs: dict, d_model: int = D, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return get_block(name).cls(d_model, 0, **knobs)


def run_steps(step, xs: torch.Tensor):
    """Feed xs (B, T, ...) to step one position at a time; (outputs (B, T, ...), final state)."""
    state, ys = None, []
    for t in range(xs.shape[1]):
        y, state = step(xs[:, t], state)
        ys.append(y)
    return torch.stack(ys, dim=1), state


def held_bytes(state) -> int:
    """Bytes of the distinct tensor storages reachable from a (nested) state."""
    return storage_bytes(tensors_in(state))


def counted_flops(fn, *args) -> int:
    """FLOPs torch's counter sees, with the kernels' plain PyTorch references (a convolution is
    then an F.conv1d the counter knows, not the shifted multiply-adds of a small CPU input)."""
    with force_backend("reference"), sdpa_kernel(SDPBackend.MATH), \
            FlopCounterMode(display=False) as counter:
        fn(*args)
    return counter.get_total_flops()


# -- token mixers ------------------------------------------------------------------------------
@pytest.mark.parametrize("T", [70, 130])
@pytest.mark.parametrize("name,knobs", TOKEN_CASES)
def test_token_mixer_shape_and_causality(name, knobs, T):
    mixer = make(name, knobs)
    x = torch.randn(B, T, D)
    y = mixer(x)
    assert y.shape == (B, T, D)
    for t in (0, 37, T - 1):
        x2 = x.clone()
        x2[:, t] += torch.randn(B, D)
        y2 = mixer(x2)
        torch.testing.assert_close(y2[:, :t], y[:, :t], atol=1e-6, rtol=0)
        assert not torch.allclose(y2[:, t], y[:, t])


@pytest.mark.parametrize("T", [5, 70, 130])
@pytest.mark.parametrize("name,knobs", TOKEN_CASES)
def test_token_mixer_step_matches_forward(name, knobs, T):
    mixer = make(name, knobs).eval()
    x = torch.randn(B, T, D)
    with torch.no_grad():
        y_par = mixer(x)
        y_seq, _ = run_steps(mixer.step, x)
    torch.testing.assert_close(y_seq, y_par, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name,knobs", TOKEN_CASES)
def test_token_mixer_step_leaves_its_state_alone(name, knobs):
    """Decode latency steps from one context state again and again: a step must return a new
    state, not write into the one it is given."""
    mixer = make(name, knobs).eval()
    with torch.no_grad():
        _, state = run_steps(mixer.step, torch.randn(B, 9, D))
        before = [t.clone() for t in tensors_in(state)]
        token = torch.randn(B, D)
        first, _ = mixer.step(token, state)
        again, _ = mixer.step(token, state)
    torch.testing.assert_close(again, first, atol=0, rtol=0)
    for old, now in zip(before, tensors_in(state), strict=True):
        torch.testing.assert_close(now, old, atol=0, rtol=0)


@pytest.mark.parametrize("name,knobs", TOKEN_CASES + CHANNEL_CASES)
def test_gradients_reach_every_parameter(name, knobs):
    block = make(name, knobs)
    x = torch.randn(B, 70, D, requires_grad=True)
    (block(x) * torch.randn(B, 70, D)).sum().backward()
    assert torch.isfinite(x.grad).all()
    for pname, p in block.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name,knobs", TOKEN_CASES)
def test_token_mixer_costs(name, knobs):
    mixer = make(name, knobs)
    assert mixer.num_params() == sum(p.numel() for p in mixer.parameters())
    T = 70
    x = torch.randn(B, T, D)
    with torch.no_grad():
        _, state = run_steps(mixer.step, x)
        counted = counted_flops(mixer, x) / (B * T)
    assert held_bytes(state) == B * mixer.state_bytes(T)
    assert mixer.state_bytes(T, torch.bfloat16) * 2 == mixer.state_bytes(T)
    seen = mixer.flops_per_token(T) - mixer.uncounted_flops_per_token(T)
    assert seen == pytest.approx(counted, rel=0.1)


@pytest.mark.parametrize("T", [5, 64, 70, 130])
@pytest.mark.parametrize("feature_map", ["elu", "relu"])
def test_linear_attention_chunked_equals_naive_recurrence(feature_map, T):
    mixer = make("linear_attention", {"feature_map": feature_map, "heads": 4})
    H, Dh = 4, D // 4
    phi = (lambda a: F.elu(a) + 1) if feature_map == "elu" else F.relu
    x = torch.randn(B, T, D, dtype=torch.float64)
    w_qkv = mixer.qkv.weight.double()
    w_out = mixer.out.weight.double()
    q, k, v = (x @ w_qkv.T).chunk(3, dim=-1)
    outputs = []
    for b in range(B):
        for h in range(H):
            sl = slice(h * Dh, (h + 1) * Dh)
            S = torch.zeros(Dh, Dh, dtype=torch.float64)
            z = torch.zeros(Dh, dtype=torch.float64)
            for t in range(T):
                qt, kt, vt = phi(q[b, t, sl]), phi(k[b, t, sl]), v[b, t, sl]
                S = S + torch.outer(kt, vt)
                z = z + kt
                outputs.append((qt @ S) / (qt @ z + EPS))
    y = torch.stack(outputs).view(B, H, T, Dh).transpose(1, 2).reshape(B, T, D)
    expected = y @ w_out.T
    with torch.no_grad():
        got = mixer(x.float())
    torch.testing.assert_close(got, expected.float(), atol=1e-5, rtol=1e-5)


def test_attention_step_uses_absolute_positions():
    """With RoPE, each decode step rotates by the absolute position the state carries."""
    mixer = make("attention", {"rope": True}).eval()
    x = torch.randn(1, 6, D)
    with torch.no_grad():
        y_seq, state = run_steps(mixer.step, x)
        assert state["pos"] == 6 and state["k"].shape == (1, 4, 6, D // 4)
        y_par = mixer(x)
    torch.testing.assert_close(y_seq, y_par, atol=1e-5, rtol=1e-5)


# -- validation --------------------------------------------------------------------------------
def test_validate_reports_bad_combinations():
    attention = get_block("attention").cls
    assert attention.validate(64, heads=3) == ["attention: heads=3 does not divide d_model=64"]
    assert any("kv_heads=3" in p for p in attention.validate(64, heads=4, kv_heads=3))
    assert any("kv_heads=8" in p for p in attention.validate(64, heads=4, kv_heads=8))
    assert any("unknown knob 'foo'" in p for p in attention.validate(64, foo=1))
    assert any("heads must be int" in p for p in attention.validate(64, heads="4"))
    assert any("heads must be int" in p for p in attention.validate(64, heads=True))
    assert any("even head dim" in p for p in attention.validate(24, heads=8))
    assert attention.validate(24, heads=8, rope=False) == []
    assert any("d_model" in p for p in attention.validate(0))
    linear = get_block("linear_attention").cls
    assert any("heads=3" in p for p in linear.validate(64, heads=3))
    assert any("must be one of" in p for p in linear.validate(64, feature_map="softmax"))
    assert any(">= 2" in p for p in get_block("short_conv").cls.validate(64, kernel_size=1))
    assert any(">= 1" in p for p in get_block("mlp").cls.validate(64, expansion=0))


def test_validate_accepts_good_combinations():
    attention = get_block("attention").cls
    assert attention.validate(64, heads=4, kv_heads=None) == []
    assert attention.validate(64, heads=4, kv_heads=1, rope=False, rope_base=500) == []
    assert attention.validate(64, heads=8, kv_heads=2, rope_base=10000.0) == []
    for name in list_blocks():
        assert get_block(name).cls.validate(64) == [], name
        for knobs in KNOB_CASES.get(name, []):
            assert get_block(name).cls.validate(D, **knobs) == [], (name, knobs)


def test_constructor_rejects_bad_knobs():
    with pytest.raises(ValueError, match="heads=3 does not divide"):
        get_block("attention").cls(64, 0, heads=3)


def test_knob_check_optional_values():
    optional = Knob("kv_heads", int, None, minimum=1)
    assert optional.check(None) is None
    assert optional.check(2) is None
    assert optional.check(0) is not None
    assert Knob("heads", int, 4, minimum=1).check(None) is not None


@pytest.mark.parametrize("name", list_blocks())
def test_signature_defaults_match_registry(name):
    info = get_block(name)
    params = inspect.signature(info.cls.__init__).parameters
    for knob in info.knobs:
        assert knob.name in params, knob.name
        assert params[knob.name].default == knob.default, knob.name


# -- channel mixers and norms ------------------------------------------------------------------
@pytest.mark.parametrize("name,knobs", CHANNEL_CASES)
def test_channel_mixer_shape_and_costs(name, knobs):
    mixer = make(name, knobs)
    x = torch.randn(B, 9, D)
    assert mixer(x).shape == (B, 9, D)
    assert mixer(x[:, 0]).shape == (B, D)
    assert mixer.num_params() == sum(p.numel() for p in mixer.parameters())
    counted = counted_flops(mixer, x) / (B * 9)
    assert mixer.flops_per_token(9) == pytest.approx(counted, rel=0.1)


@pytest.mark.parametrize("d_model", [64, 128])
@pytest.mark.parametrize("expansion", [2, 4])
def test_swiglu_matches_mlp_size(d_model, expansion):
    swiglu = make("swiglu", {"expansion": expansion}, d_model=d_model)
    mlp = make("mlp", {"expansion": expansion}, d_model=d_model)
    assert swiglu.hidden % 8 == 0
    assert swiglu.hidden >= 2 * expansion * d_model / 3
    assert swiglu.num_params() == pytest.approx(mlp.num_params(), rel=0.05)
    assert swiglu_hidden(64, 4) == 176


@pytest.mark.parametrize("name", ["swiglu", "geglu"])
def test_glu_without_parameter_matching_uses_the_mlp_width(name):
    glu = make(name, {"expansion": 3, "param_matched": False}, d_model=32)
    mlp = make("mlp", {"expansion": 3}, d_model=32)
    assert glu.hidden == mlp.hidden == 96
    assert glu.num_params() == sum(p.numel() for p in glu.parameters()) == 3 * 32 * 96


def test_norms():
    x = torch.randn(3, 5, D) * 4 + 1
    rms = make_norm("rmsnorm", D)
    y = rms(x)
    torch.testing.assert_close(y.pow(2).mean(-1), torch.ones(3, 5), atol=1e-4, rtol=0)
    assert rms.eps == 1e-6 and isinstance(rms.weight, nn.Parameter)
    assert isinstance(make_norm("layernorm", D), nn.LayerNorm)
    with pytest.raises(ValueError, match="layernorm, rmsnorm"):
        make_norm("batchnorm", D)


# -- the model ---------------------------------------------------------------------------------
def mixed_spec(norm: str = "rmsnorm", **options) -> ArchSpec:
    layers = (
        LayerSpec(
            ModuleSpec.make("short_conv", kernel_size=4), ModuleSpec.make("swiglu", expansion=2)
        ),
        LayerSpec(
            ModuleSpec.make("attention", heads=4, kv_heads=2, rope=True, rope_base=10000.0),
            ModuleSpec.make("mlp", expansion=2, activation="gelu"),
        ),
        LayerSpec(
            ModuleSpec.make("linear_attention", heads=4, feature_map="elu"),
            ModuleSpec.make("swiglu", expansion=2),
        ),
        LayerSpec(ModuleSpec.make("attention"), ModuleSpec.make("swiglu")),  # registry defaults
    )
    return ArchSpec(d_model=D, vocab_size=16, layers=layers, norm=norm, training={}, **options)


@pytest.fixture(scope="module")
def model():
    return build_model(mixed_spec(), seed=0).eval()


def test_model_forward_shape(model):
    tokens = torch.randint(0, 16, (B, 70))
    assert model(tokens).shape == (B, 70, 16)
    assert build_model(mixed_spec("layernorm"))(tokens).shape == (B, 70, 16)


def test_build_model_is_deterministic_per_seed():
    a = build_model(mixed_spec(), seed=3).state_dict()
    b = build_model(mixed_spec(), seed=3).state_dict()
    c = build_model(mixed_spec(), seed=4).state_dict()
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_build_model_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    build_model(mixed_spec(), seed=7)
    torch.testing.assert_close(torch.rand(4), expected, atol=0, rtol=0)


def test_build_model_init(model):
    """Default: untied head, PyTorch's own init (Linear U(±1/sqrt(fan_in)), Embedding N(0, 1))."""
    head, embed = model.head.weight, model.embed.weight
    assert head is not embed
    assert embed.std().item() == pytest.approx(1.0, rel=0.2)
    bound = 1 / math.sqrt(D)
    assert head.abs().max().item() <= bound
    assert head.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.2)
    assert model.blocks[1].mixer.kv_heads == 2 and model.blocks[3].mixer.heads == 4


def test_build_model_gpt2_init_and_tied_head():
    n_layers = 4
    model = build_model(mixed_spec(init="gpt2", tie_head=True))
    head, embed = model.head.weight, model.embed.weight
    assert head is embed
    assert embed.std().item() == pytest.approx(0.02, rel=0.2)
    outs = [m for m in model.modules() if getattr(m, "residual_out", False)]
    assert len(outs) == 2 * n_layers  # one per token mixer, one per channel mixer
    w = torch.cat([m.weight.flatten() for m in outs])
    assert w.std().item() == pytest.approx(0.02 / math.sqrt(2 * n_layers), rel=0.2)
    n = sum(p.numel() for p in model.parameters())  # parameters() lists the shared matrix once
    assert model.num_params() == n
    untied = build_model(mixed_spec())
    assert untied.num_params() == sum(p.numel() for p in untied.parameters())
    assert untied.num_params() == n + untied.head.weight.numel()


def test_model_options_from_the_spec():
    import dataclasses

    untied = mixed_spec()
    tied = dataclasses.replace(untied, tie_head=True)
    model = build_model(tied)
    assert model.head.weight is model.embed.weight
    assert build_model(untied).head.weight is not build_model(untied).embed.weight
    # init comes from the spec: GPT-2's N(0, 0.02) embedding, or PyTorch's N(0, 1)
    assert build_model(mixed_spec(init="gpt2")).embed.weight.std().item() == pytest.approx(
        0.02, rel=0.2)
    assert model.embed.weight.std().item() == pytest.approx(1.0, rel=0.2)
    learned = build_model(mixed_spec(positions="learned", max_positions=40))
    assert learned.pos_embed.num_embeddings == 40
    with pytest.raises(ValueError, match="past the learned position table"):
        learned(torch.zeros(1, 41, dtype=torch.long))
    assert build_model(mixed_spec(positions="sinusoidal")).positions == "sinusoidal"


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_absolute_positions_step_matches_forward(positions):
    learned = positions == "learned"
    model = build_model(mixed_spec(positions=positions, max_positions=128 if learned else None))
    tokens = torch.randint(0, 16, (B, 70))
    with torch.no_grad():
        logits = model(tokens)
        stepped, state = run_steps(model.step, tokens)
    torch.testing.assert_close(stepped, logits, atol=1e-5, rtol=1e-5)
    assert len(state) == 5 and state[-1] == 70  # four layers, then the next position
    assert model.num_params() == sum(p.numel() for p in model.parameters())


def test_model_step_matches_forward(model):
    tokens = torch.randint(0, 16, (B, 70))
    with torch.no_grad():
        logits = model(tokens)
        stepped, state = run_steps(model.step, tokens)
    torch.testing.assert_close(stepped, logits, atol=1e-5, rtol=1e-5)
    assert len(state) == 4
    assert held_bytes(state) == B * model.state_bytes(70)


def test_model_causality(model):
    tokens = torch.randint(0, 16, (B, 70))
    changed = tokens.clone()
    changed[:, 40] = (changed[:, 40] + 1) % 16
    with torch.no_grad():
        a, b = model(tokens), model(changed)
    torch.testing.assert_close(b[:, :40], a[:, :40], atol=1e-6, rtol=0)
    assert not torch.allclose(b[:, 40], a[:, 40])


def test_model_costs_and_gradients():
    model = build_model(mixed_spec(), seed=1)
    unique = {id(p): p for p in model.parameters()}
    assert model.num_params() == sum(p.numel() for p in unique.values())
    tokens = torch.randint(0, 16, (B, 70))
    counted = counted_flops(model, tokens) / (B * 70)
    assert model.flops_per_token(70) == pytest.approx(counted, rel=0.1)
    F.cross_entropy(model(tokens).flatten(0, 1), tokens.flatten()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_build_model_rejects_unknown_and_invalid():
    def spec_with(mixer: ModuleSpec, channel: ModuleSpec | None = None) -> ArchSpec:
        channel = channel or ModuleSpec.make("mlp")
        return ArchSpec(d_model=D, vocab_size=16, layers=(LayerSpec(mixer, channel),))

    with pytest.raises(KeyError, match=r"unknown token_mixer 'mamba'; known: attention, .*conv"):
        build_model(spec_with(ModuleSpec.make("mamba")))
    with pytest.raises(KeyError, match=r"known: .*mlp, .*swiglu"):
        build_model(spec_with(ModuleSpec.make("attention"), ModuleSpec.make("attention")))
    with pytest.raises(ValueError, match="layer 0: attention: heads=3 does not divide"):
        build_model(spec_with(ModuleSpec.make("attention", heads=3)))
    with pytest.raises(ValueError, match="unknown knob 'window'"):
        build_model(spec_with(ModuleSpec.make("short_conv", window=3)))


def test_model_trains_after_inference_mode_use(model):
    """Latency is timed under inference_mode before training: no cache may keep inference
    tensors that autograd later refuses (RoPE tables are built lazily)."""
    fresh = build_model(model.spec, seed=1)
    tokens = torch.randint(0, fresh.vocab_size, (2, 300))  # longer than any cached table
    with torch.inference_mode():
        fresh(tokens)
    fresh(tokens).sum().backward()
    assert all(p.grad is not None for p in fresh.parameters())


def test_attention_kv_heads_full_is_canonicalized():
    cls = get_block("attention").cls
    assert cls.canonicalize({"heads": 4, "kv_heads": "full"})["kv_heads"] == 4
    assert cls.canonicalize({"heads": 4, "kv_heads": 2})["kv_heads"] == 2
