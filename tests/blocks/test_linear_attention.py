"""Linear attention's decay switch, normalisations and output gate; the control mixers.

The registry-parametrised contracts (shape, causality, step = forward, gradients, costs) run in
test_blocks.py over its KNOB_CASES; here the chunked forward is checked against the naive
per-step recurrence for every knob combination, strong decays are checked not to overflow, and
the new blocks are used from a search space.
"""

from __future__ import annotations

import itertools
import math
import textwrap

import optuna
import pytest
import torch
import torch.nn.functional as F

from nas.blocks import build_model, get_block
from nas.blocks.linear_attention import (
    EPS,
    FEATURE_MAPS,
    GATE_TAU,
    NORM_EPS,
    retnet_log_gammas,
)
from nas.searchspace import loads
from nas.spec import ArchSpec, LayerSpec, ModuleSpec

D = 32
B = 2
LINEAR = get_block("linear_attention").cls

COMBOS = [
    pytest.param(decay, normalize, fmap, gate, id=f"{decay}-{normalize}-{fmap}-gate{int(gate)}")
    for decay, normalize, fmap, gate in itertools.product(
        ("none", "fixed", "gla"), ("denominator", "rmsnorm", "none"), tuple(FEATURE_MAPS),
        (False, True),
    )
    if not (fmap == "identity" and normalize == "denominator")
]



def make(seed: int = 0, **knobs) -> torch.nn.Module:
    torch.manual_seed(seed)
    return LINEAR(D, 0, **knobs)


def naive(mixer, x: torch.Tensor) -> torch.Tensor:
    """The recurrence token by token, in float64, from the module's weights:
    S_t = diag(α_t) S_{t-1} + φ(k_t) v_tᵀ, z_t = diag(α_t) z_{t-1} + φ(k_t), o_t = φ(q_t)ᵀ S_t."""
    x = x.double()
    Bx, T, _ = x.shape
    H, Dh = mixer.heads, mixer.head_dim
    phi = FEATURE_MAPS[mixer.feature_map]
    q, k, v = (x @ mixer.qkv.weight.double().T).chunk(3, dim=-1)
    q, k, v = phi(q).view(Bx, T, H, Dh), phi(k).view(Bx, T, H, Dh), v.view(Bx, T, H, Dh)
    if mixer.decay == "fixed":
        gamma = 1 - 2.0 ** (-5 - torch.arange(H, dtype=torch.float64))
        alpha = gamma.view(1, 1, H, 1).expand(Bx, T, H, Dh)
    elif mixer.decay == "gla":
        down, up = mixer.decay_proj
        logits = x @ down.weight.double().T @ up.weight.double().T + up.bias.double()
        alpha = (torch.sigmoid(logits) ** (1 / GATE_TAU)).view(Bx, T, H, Dh)
    else:
        alpha = torch.ones(Bx, T, H, Dh, dtype=torch.float64)
    S = torch.zeros(Bx, H, Dh, Dh, dtype=torch.float64)
    z = torch.zeros(Bx, H, Dh, dtype=torch.float64)
    ys = []
    for t in range(T):
        S = alpha[:, t, :, :, None] * S + k[:, t, :, :, None] * v[:, t, :, None, :]
        z = alpha[:, t] * z + k[:, t]
        o = torch.einsum("bhd,bhde->bhe", q[:, t], S)
        if mixer.normalize == "denominator":
            o = o / ((q[:, t] * z).sum(-1, keepdim=True) + EPS)
        elif mixer.normalize == "rmsnorm":
            o = o / torch.sqrt(o.pow(2).mean(-1, keepdim=True) + NORM_EPS)
        y = o.reshape(Bx, D)
        if mixer.output_gate:
            y = y * F.silu(x[:, t] @ mixer.gate.weight.double().T)
        ys.append(y @ mixer.out.weight.double().T)
    return torch.stack(ys, dim=1)


# -- chunked form = recurrence -----------------------------------------------------------------
@pytest.mark.parametrize("decay,normalize,feature_map,output_gate", COMBOS)
def test_chunked_equals_naive_recurrence(decay, normalize, feature_map, output_gate):
    mixer = make(decay=decay, normalize=normalize, feature_map=feature_map,
                 output_gate=output_gate)
    # Errors relative to the output's scale (normalize=none sums grow with t). RMSNorm of an
    # output that is nearly zero (identity features let φ(q)·φ(k) cancel) amplifies fp32
    # rounding by up to 1/sqrt(NORM_EPS); the fp64 comparison below is exact regardless.
    tol = 5e-5 if (feature_map, normalize) == ("identity", "rmsnorm") else 1e-5
    for T in (5, 64, 70, 130):  # T not a multiple of 64: a padded final chunk
        x = torch.randn(B, T, D)
        with torch.no_grad():
            got = mixer(x).double()
        expected = naive(mixer, x)
        error = (got - expected).abs().max().item()
        assert error <= tol * max(1.0, expected.abs().max().item()), (T, error)
    mixer64 = mixer.double()  # the algorithm itself, without fp32 rounding
    x = torch.randn(B, 130, D, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(mixer64(x), naive(mixer64, x), atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("normalize", ["denominator", "rmsnorm"])
def test_strong_gates_do_not_overflow(normalize):
    """log α ≈ -3.75 per step: a chunk's cumulative log decay reaches about -240, so any
    exp(-b) (e.g. k·exp(-b_j) factorisations) would be inf in fp32."""
    mixer = make(decay="gla", normalize=normalize)
    with torch.no_grad():
        mixer.decay_proj[1].bias.fill_(-60.0)
    x = torch.randn(B, 130, D, requires_grad=True)
    y = mixer(x)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y.detach(), naive(mixer, x.detach()).float(), atol=1e-5, rtol=1e-5)
    y.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in mixer.parameters())


def test_fixed_decays_are_retnet_gammas():
    log_gammas = retnet_log_gammas(32)
    assert math.exp(log_gammas[0]) == pytest.approx(1 - 1 / 32)
    assert all(g < 0 for g in log_gammas)  # even where 1 - 2^(-5-h) rounds to 1 in fp32
    assert list(log_gammas) == sorted(log_gammas)  # later heads remember longer
    mixer = make(decay="fixed")
    assert sum(p.numel() for p in mixer.parameters()) == 4 * D * D  # not learned


def test_step_carries_the_decayed_state():
    mixer = make(decay="gla", normalize="rmsnorm", feature_map="identity").eval()
    x = torch.randn(B, 70, D)
    state = None
    with torch.no_grad():
        for t in range(70):
            _, state = mixer.step(x[:, t], state)
    assert len(state) == 1 and state[0].shape == (B, 4, D // 4, D // 4)
    _, state = make(decay="fixed").step(x[:, 0])
    assert len(state) == 2  # (S, z) with the denominator


def test_default_knobs_keep_the_old_block():
    """A spec written before the decay switch (heads and feature_map only) builds the same
    parameters and computes the same function as one with every new knob at its default."""
    def spec(**knobs) -> ArchSpec:
        layer = LayerSpec(ModuleSpec.make("linear_attention", heads=4, feature_map="elu", **knobs),
                          ModuleSpec.make("mlp"))
        return ArchSpec(d_model=D, vocab_size=16, layers=(layer,))

    old = build_model(spec(), seed=0)
    new = build_model(spec(decay="none", normalize="denominator", output_gate=False), seed=0)
    assert old.state_dict().keys() == new.state_dict().keys()
    assert {n for n, _ in old.blocks[0].mixer.named_parameters()} == {"qkv.weight", "out.weight"}
    tokens = torch.randint(0, 16, (B, 70))
    torch.testing.assert_close(old(tokens), new(tokens), atol=0, rtol=0)


# -- validation --------------------------------------------------------------------------------
def test_validate_decay_knobs():
    problems = LINEAR.validate(64, feature_map="identity")  # normalize defaults to denominator
    assert len(problems) == 1
    assert "feature_map=identity" in problems[0] and "normalize=rmsnorm" in problems[0]
    with pytest.raises(ValueError, match="feature_map=identity cannot use normalize=denominator"):
        LINEAR(64, 0, feature_map="identity")
    assert any("must be one of" in p for p in LINEAR.validate(64, decay="mamba"))
    assert any("must be one of" in p for p in LINEAR.validate(64, normalize="layernorm"))
    assert any("output_gate must be bool" in p for p in LINEAR.validate(64, output_gate=1))
    for decay, normalize, fmap, gate in (p.values for p in COMBOS):
        assert LINEAR.validate(64, decay=decay, normalize=normalize, feature_map=fmap,
                               output_gate=gate) == []


# -- controls ----------------------------------------------------------------------------------
def test_identity_mixer_is_a_pass_through():
    mixer = get_block("identity").cls(D, 0)
    x = torch.randn(B, 7, D)
    assert torch.equal(mixer(x), x) and list(mixer.parameters()) == []
    y, state = mixer.step(x[:, 0])
    assert torch.equal(y, x[:, 0]) and state == ()


def test_mean_pool_is_the_causal_running_mean():
    mixer = get_block("mean_pool").cls(D, 0)
    x = torch.randn(B, 9, D)
    expected = torch.stack([x[:, : t + 1].mean(dim=1) for t in range(9)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(mixer(x), mixer.out(expected))
        state = None
        for t in range(9):
            _, state = mixer.step(x[:, t], state)
    total, count = state
    assert count == 9
    torch.testing.assert_close(total, x.sum(dim=1))
    assert getattr(mixer.out, "residual_out", False)


def test_control_letters():
    layers = tuple(LayerSpec(ModuleSpec.make(kind), ModuleSpec.make("mlp"))
                   for kind in ("identity", "mean_pool", "linear_attention"))
    spec = ArchSpec(d_model=D, vocab_size=16, layers=layers)
    assert spec.short_form() == "I-P-L"
    model = build_model(spec)
    assert model(torch.randint(0, 16, (B, 10))).shape == (B, 10, 16)


# -- in a search space -------------------------------------------------------------------------
SPACE = textwrap.dedent("""\
    name: decays
    task: {kind: mqar, vocab_size: 16, seq_len: 24, num_kv_pairs: 3}
    model:
      d_model: {choice: [16, 32]}
      n_layers: 2
      token_mixers:
        linear_attention: {heads: 2, decay: {choice: [none, fixed, gla]}, normalize: rmsnorm,
                           feature_map: identity}
        mean_pool: {}
      channel_mixer: {kind: mlp, expansion: 2}
    training: {steps: 20, batch_size: 8, lr: 1.0e-3}
    objectives:
      - {name: accuracy, goal: maximize}
    search: {strategy: random, seed: 0}
""")


def test_search_space_with_decays_and_controls():
    space = loads(SPACE, "decays.yaml")
    spec = space.sample(optuna.trial.FixedTrial({
        "model.d_model": 32,
        "model.hybrid.other": "linear_attention",
        "model.token_mixers.linear_attention.decay": "gla",
    }))
    assert spec.short_form() == "L-L"
    assert spec.layers[0].mixer.knobs == {"heads": 2, "decay": "gla", "normalize": "rmsnorm",
                                          "feature_map": "identity", "output_gate": False}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        spec = space.sample(trial)
        study.tell(trial, 0.0)
        mixer = spec.layers[0].mixer
        variant = mixer.kind if mixer.kind == "mean_pool" else mixer.knobs["decay"]
        if variant not in seen:
            seen.add(variant)
            model = build_model(spec)
            assert model(torch.randint(0, 16, (1, 24))).shape == (1, 24, 16)
    assert seen == {"mean_pool", "none", "fixed", "gla"}
