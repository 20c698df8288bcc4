"""DeltaNet / Gated DeltaNet: the chunked WY form against the plain delta-rule recurrence.

The registry-parametrised contracts (shape, causality, step = forward, gradients, costs) run in
test_blocks.py over its KNOB_CASES; here the module's chunked forward is checked against the
recurrence S_t = α_t S_{t-1} (I − β_t k_t k_tᵀ) + β_t v_t k_tᵀ, o_t = S_t q_t written token by
token from the module's weights, strong decays are checked not to overflow, and the triangular
solve's FLOPs (which FlopCounterMode cannot see) are checked against a counted solve.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from nas.blocks import build_model, get_block
from nas.blocks.delta_rule import CONV_SIZE, NORM_EPS
from nas.kernels.delta_rule.reference import chunk_delta_rule_reference
from nas.spec import ArchSpec, LayerSpec, ModuleSpec

D = 32
B = 2
DELTANET = get_block("deltanet").cls

VARIANTS = [
    pytest.param(gate, short_conv, output_gate,
                 id=f"gate{int(gate)}-conv{int(short_conv)}-ogate{int(output_gate)}")
    for gate in (False, True)
    for short_conv, output_gate in ((True, True), (False, False))
]



def make(seed: int = 0, **knobs) -> torch.nn.Module:
    torch.manual_seed(seed)
    return DELTANET(D, 0, **knobs)


def naive_delta_rule(q, k, v, beta, alpha):
    """q, k, v (B, T, H, Dh), beta, alpha (B, T, H), float64; S (Dv × Dk) per head from zero:
    S_t = α_t S_{t-1} (I − β_t k_t k_tᵀ) + β_t v_t k_tᵀ, o_t = S_t q_t. Returns (B, T, H, Dv)."""
    Bx, T, H, Dh = q.shape
    S = torch.zeros(Bx, H, Dh, Dh, dtype=q.dtype)
    eye = torch.eye(Dh, dtype=q.dtype)
    outs = []
    for t in range(T):
        kt, vt, qt = k[:, t], v[:, t], q[:, t]  # (B, H, Dh)
        bt, at = beta[:, t, :, None, None], alpha[:, t, :, None, None]  # (B, H, 1, 1)
        erase = eye - bt * kt[..., :, None] * kt[..., None, :]  # I − β k kᵀ
        S = at * (S @ erase) + bt * vt[..., :, None] * kt[..., None, :]
        outs.append((S @ qt[..., None])[..., 0])
    return torch.stack(outs, dim=1)


def naive(mixer, x: torch.Tensor) -> torch.Tensor:
    """The whole mixer token by token, in float64, from its weights."""
    x = x.double()
    Bx, T, _ = x.shape
    H, Dh = mixer.heads, mixer.head_dim
    u = x @ mixer.qkv.weight.double().T  # (B, T, 3D)
    if mixer.short_conv:
        taps = mixer.conv.weight.double()[:, 0]  # (3D, K), oldest input first
        padded = F.pad(u, (0, 0, CONV_SIZE - 1, 0))
        u = sum(taps[:, j] * padded[:, j : j + T] for j in range(CONV_SIZE))
    q, k, v = (t.reshape(Bx, T, H, Dh) for t in F.silu(u).chunk(3, dim=-1))
    q = q / q.norm(dim=-1, keepdim=True)
    k = k / k.norm(dim=-1, keepdim=True)
    beta = torch.sigmoid(x @ mixer.beta_proj.weight.double().T)  # (B, T, H)
    if mixer.gate:
        dt = F.softplus(x @ mixer.decay_proj.weight.double().T + mixer.dt_bias.double())
        alpha = torch.exp(-torch.exp(mixer.A_log.double()) * dt)
    else:
        alpha = torch.ones_like(beta)
    o = naive_delta_rule(q, k, v, beta, alpha)  # (B, T, H, Dh)
    if mixer.output_gate:
        o = o / torch.sqrt(o.pow(2).mean(-1, keepdim=True) + NORM_EPS)
    y = o.reshape(Bx, T, D)
    if mixer.output_gate:
        y = y * F.silu(x @ mixer.g_proj.weight.double().T)
    return y @ mixer.out.weight.double().T


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return (got.double() - expected).abs().max().item() / max(1.0, expected.abs().max().item())


# -- chunked form = recurrence -----------------------------------------------------------------
@pytest.mark.parametrize("gate,short_conv,output_gate", VARIANTS)
def test_chunked_equals_naive_recurrence(gate, short_conv, output_gate):
    mixer = make(gate=gate, short_conv=short_conv, output_gate=output_gate)
    for T in (5, 64, 70, 130):  # one short chunk, one exact chunk, padded final chunks
        x = torch.randn(B, T, D)
        with torch.no_grad():
            error = relative_error(mixer(x), naive(mixer, x))
        assert error <= 1e-5, (T, error)  # relative to the output's scale; ~1e-6 seen
    mixer64 = mixer.double()  # the algorithm itself, without fp32 rounding
    x = torch.randn(B, 130, D, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(mixer64(x), naive(mixer64, x), atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("gated", [False, True])
def test_kernel_with_small_chunks_and_strong_decays(gated):
    """Many chunks (C=16 over T=70) and, gated, log α ≈ -5 per step: a chunk's cumulative log
    decay reaches -80, so any exp(-b) factorisation would overflow in fp32."""
    torch.manual_seed(1)
    H, T, Dh = 3, 70, 8
    q, k = (F.normalize(torch.randn(B, H, T, Dh, dtype=torch.float64), dim=-1) for _ in "qk")
    v = torch.randn(B, H, T, Dh, dtype=torch.float64)
    beta = torch.rand(B, H, T, dtype=torch.float64)
    log_decay = -5 * torch.rand(B, H, T, dtype=torch.float64) if gated else None
    alpha = torch.exp(log_decay) if gated else torch.ones_like(beta)
    expected = naive_delta_rule(*(t.transpose(1, 2) for t in (q, k, v, beta, alpha)))
    got, _ = chunk_delta_rule_reference(q, k, v, beta, log_decay, chunk_size=16)
    torch.testing.assert_close(got.transpose(1, 2), expected, atol=1e-10, rtol=1e-10)
    leaves = [t.float().requires_grad_() for t in (q, k, v, beta)]
    g = log_decay.float().requires_grad_() if gated else None
    out, _ = chunk_delta_rule_reference(*leaves, g, chunk_size=16)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    torch.testing.assert_close(out.double().transpose(1, 2), expected, atol=1e-4, rtol=1e-4)
    out.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in leaves + ([g] if gated else []))


def test_strong_gate_in_the_module():
    mixer = make(gate=True)
    with torch.no_grad():
        mixer.A_log.fill_(math.log(16.0))
        mixer.dt_bias.fill_(3.0)  # log α ≈ -16·3 = -48 per step
    x = torch.randn(B, 130, D, requires_grad=True)
    y = mixer(x)
    assert torch.isfinite(y).all()
    assert relative_error(y.detach(), naive(mixer, x.detach())) <= 1e-4
    y.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in mixer.parameters())


def test_half_precision_input_keeps_its_dtype():
    mixer = make(gate=True).to(torch.bfloat16)
    x = torch.randn(B, 70, D, dtype=torch.bfloat16)
    with torch.no_grad():
        y = mixer(x)
    assert y.dtype == torch.bfloat16 and torch.isfinite(y).all()


# -- state, costs, knobs -----------------------------------------------------------------------
def test_step_state_layout():
    x = torch.randn(B, 6, D)
    for short_conv in (True, False):
        mixer = make(short_conv=short_conv, heads=2)
        state = None
        with torch.no_grad():
            for t in range(6):
                _, state = mixer.step(x[:, t], state)
        assert state[0].shape == (B, 2, D // 2, D // 2)
        if short_conv:
            assert len(state) == 2 and state[1].shape == (B, CONV_SIZE - 1, 3 * D)
            torch.testing.assert_close(state[1][:, -1], x[:, 5] @ mixer.qkv.weight.T)
        else:
            assert len(state) == 1
        held = sum(t.numel() * t.element_size() for t in state)
        assert held == B * mixer.state_bytes(6)


def test_solve_flops_match_a_counted_solve():
    """With a formula for the unit triangular solve (n(n−1) FLOPs per right-hand side) in
    FlopCounterMode, the count is flops_per_token, whose uncounted part is the solve."""

    def solve_flops(a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
        n, m = b_shape[-2], b_shape[-1]
        return math.prod(b_shape[:-2]) * n * (n - 1) * m

    mapping = {torch.ops.aten.linalg_solve_triangular: solve_flops}
    for knobs, T in (({}, 70), ({"gate": True, "heads": 2}, 200), ({}, 5)):
        mixer = make(**knobs)
        x = torch.randn(B, T, D)
        # with autograd on, as in training: without it small CPU inputs take the short conv's
        # shifted multiply-adds (nas.kernels.short_conv.small), which the counter does not see
        with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
            mixer(x)
        assert counter.get_total_flops() / (B * T) == pytest.approx(
            mixer.flops_per_token(T), rel=1e-12
        )
        assert mixer.uncounted_flops_per_token(T) > 0


def test_num_params_per_knob():
    H = 4
    base = 4 * D * D + D * H  # qkv, out, β
    assert make(short_conv=False, output_gate=False).num_params() == base
    assert make(short_conv=False, output_gate=False, gate=True).num_params() == base + D * H + 2 * H
    assert make().num_params() == base + 3 * D * CONV_SIZE + D * D


def test_validate():
    assert DELTANET.validate(64, heads=3) == ["deltanet: heads=3 does not divide d_model=64"]
    assert DELTANET.validate(64, heads=8, gate=True, short_conv=False, output_gate=False) == []
    assert any("gate must be bool" in p for p in DELTANET.validate(64, gate="yes"))
    assert any("unknown knob 'chunk_size'" in p for p in DELTANET.validate(64, chunk_size=32))
    with pytest.raises(ValueError, match="heads=3 does not divide"):
        DELTANET(64, 0, heads=3)


def test_in_a_model():
    """The letter, build_model's init (A_log and dt_bias keep theirs), and decoding."""
    layers = (
        LayerSpec(ModuleSpec.make("deltanet", gate=True), ModuleSpec.make("mlp")),
        LayerSpec(ModuleSpec.make("deltanet"), ModuleSpec.make("mlp")),
    )
    spec = ArchSpec(d_model=D, vocab_size=16, layers=layers)
    assert spec.short_form() == "D-D"
    model = build_model(spec, seed=0).eval()
    mixer = model.blocks[0].mixer
    assert (mixer.A_log.exp() >= 1).all() and (mixer.A_log.exp() <= 16).all()
    dt = F.softplus(mixer.dt_bias)
    assert (dt >= 1e-3 * 0.999).all() and (dt <= 0.1 * 1.001).all()
    tokens = torch.randint(0, 16, (B, 70))
    with torch.no_grad():
        logits = model(tokens)
        state, steps = None, []
        for t in range(70):
            y, state = model.step(tokens[:, t], state)
            steps.append(y)
    torch.testing.assert_close(torch.stack(steps, dim=1), logits, atol=1e-5, rtol=1e-5)
