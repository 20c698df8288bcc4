"""Gated long convolution: the FFT forward against a direct convolution with the stated filter,
its exact recurrent form, the FFT cost estimate, validation and init.

The registry-parametrised contracts (shape, causality, step = forward, gradients, costs) run in
test_blocks.py over its KNOB_CASES.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nas.blocks import build_model, get_block
from nas.spec import ArchSpec, LayerSpec, ModuleSpec, mixer_letter

D = 32
B = 2
LONG_CONV = get_block("long_conv").cls



def make(seed: int = 0, **knobs) -> torch.nn.Module:
    torch.manual_seed(seed)
    return LONG_CONV(D, 0, **knobs)


def direct(m, x: torch.Tensor) -> torch.Tensor:
    """y_t = out(g_t ⊙ Σ_{τ≤t} h[:, τ] u_{t-τ}) in float64 with the filter written out:
    h[c, τ] = k[c, τ]·[τ < K] + w_c exp(-softplus(ρ_c) τ)."""
    x = x.double()
    T = x.shape[1]
    u, g = (x @ m.in_proj.weight.double().T).chunk(2, dim=-1)
    lags = torch.arange(T, dtype=torch.float64)
    h = torch.zeros(D, T, dtype=torch.float64)
    K = min(m.kernel_size, T)
    h[:, :K] += m.taps.double()[:, :K]
    if m.decay:
        lam = F.softplus(m.decay_raw.double())
        h += m.scale.double()[:, None] * torch.exp(-lam[:, None] * lags)
    y = torch.zeros_like(u)
    for t in range(T):
        y[:, t] = (h[:, : t + 1].flip(-1).T * u[:, : t + 1]).sum(dim=1)
    return (y * g) @ m.out_proj.weight.double().T


@pytest.mark.parametrize("T", [1, 5, 70, 130])
@pytest.mark.parametrize("knobs", [{}, {"decay": False}, {"kernel_size": 7}])
def test_forward_equals_direct_convolution(knobs, T):
    m = make(**knobs)
    x = torch.randn(B, T, D)
    with torch.no_grad():
        got = m(x)
    torch.testing.assert_close(got, direct(m, x).float(), atol=1e-5, rtol=1e-5)


def test_step_matches_forward_on_long_context():
    """The recurrence s_t = e^{-λ} s_{t-1} + u_t reproduces the FFT convolution at T=600."""
    m = make().eval()
    with torch.no_grad():
        m.decay_raw.fill_(-6.0)  # λ ≈ 2.5e-3: the tail reaches back over the whole context
        x = torch.randn(1, 600, D)
        y = m(x)
        state, ys = None, []
        for t in range(x.shape[1]):
            out, state = m.step(x[:, t], state)
            ys.append(out)
    torch.testing.assert_close(torch.stack(ys, dim=1), y, atol=1e-5, rtol=1e-5)


def test_decay_false_is_a_short_convolution():
    m = make(decay=False, kernel_size=3)
    x = torch.randn(B, 40, D)
    x2 = x.clone()
    x2[:, 10] += 1.0
    with torch.no_grad():
        diff = (m(x2) - m(x)).abs().amax(dim=(0, 2))
    assert (diff[10:13] > 0).all() and (diff[13:] == 0).all() and (diff[:10] == 0).all()
    assert {n for n, _ in m.named_parameters()} == {"in_proj.weight", "taps", "out_proj.weight"}


def test_costs_and_state():
    m = make()
    assert m.state_bytes(100) == (3 + 1) * D * 4
    assert make(decay=False).state_bytes(100) == 3 * D * 4
    assert make(decay=False).uncounted_flops_per_token(256) == 0.0
    n = 512
    expected = D * (3 * 2.5 * n * math.log2(n) + 6 * (n // 2 + 1)) / 256
    assert m.uncounted_flops_per_token(256) == pytest.approx(expected)
    # the tail's FFTs are the whole difference the decay makes to the FLOPs
    assert m.flops_per_token(256) == make(decay=False).flops_per_token(256) + expected


def test_init_survives_build_model():
    spec = ArchSpec(
        d_model=D,
        vocab_size=16,
        layers=(LayerSpec(ModuleSpec.make("long_conv"), ModuleSpec.make("swiglu")),) * 2,
    )
    model = build_model(spec, seed=0)
    for block in model.blocks:
        m = block.mixer
        lam = F.softplus(m.decay_raw)
        torch.testing.assert_close(lam, torch.logspace(-3, 0, D))
        torch.testing.assert_close(m.scale, 1 - torch.exp(-lam))
        assert m.taps.abs().max() <= 0.5  # uniform ±1/sqrt(4), not the N(0, 0.02) of Linears
        assert m.out_proj.residual_out
    assert model(torch.randint(0, 16, (B, 20))).shape == (B, 20, 16)
    assert spec.short_form() == "H-H" and mixer_letter("long_conv") == "H"


def test_validate():
    assert LONG_CONV.validate(32) == []
    assert any(">= 2" in p for p in LONG_CONV.validate(32, kernel_size=1))
    assert any("must be bool" in p for p in LONG_CONV.validate(32, decay="yes"))
    with pytest.raises(ValueError, match="kernel_size"):
        LONG_CONV(32, 0, kernel_size=0)
