"""Mamba-2 (SSD): the chunked forward against a plain per-step recurrence, init, validation.

The registry-parametrised contracts (shape, causality, step = forward, gradients, costs) run in
test_blocks.py over its KNOB_CASES; here the chunked SSD forward is checked against the
recurrence written out token by token from the module's weights, strong decays are checked not
to overflow, and the Mamba-2 initialisation is checked to survive build_model.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nas.blocks import build_model, get_block
from nas.blocks.mamba2 import NORM_EPS, chunked_ssd
from nas.spec import ArchSpec, LayerSpec, ModuleSpec, mixer_letter

D = 32
B = 2
MAMBA2 = get_block("mamba2").cls



def make(seed: int = 0, **knobs) -> torch.nn.Module:
    torch.manual_seed(seed)
    return MAMBA2(D, 0, **knobs)


def naive(m, x: torch.Tensor) -> torch.Tensor:
    """Mamba-2 token by token in float64 from the module's weights:
    h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_tᵀ, y_t = h_t C_t + D x_t, out(norm(y ⊙ silu(z)))."""
    x = x.double()
    Bsz, T, _ = x.shape
    E, N, H, P, K = m.d_inner, m.d_state, m.heads, m.head_dim, m.conv_kernel
    proj = x @ m.in_proj.weight.double().T
    z, xbc, dt_raw = proj[..., :E], proj[..., E : 2 * E + 2 * N], proj[..., 2 * E + 2 * N :]
    taps = m.conv.weight.double()[:, 0]  # (conv_dim, K)
    bias = m.conv.bias.double()
    A = -torch.exp(m.A_log.double())
    Dskip = m.D.double()
    out = torch.zeros(Bsz, T, D, dtype=torch.float64)
    for b in range(Bsz):
        h = torch.zeros(H, P, N, dtype=torch.float64)
        for t in range(T):
            conv = bias.clone()
            for k in range(K):  # tap K-1 sees position t, tap 0 sees t-(K-1)
                s = t - (K - 1) + k
                if s >= 0:
                    conv = conv + taps[:, k] * xbc[b, s]
            conv = F.silu(conv)
            xt, Bt, Ct = conv[:E].view(H, P), conv[E : E + N], conv[E + N :]
            y = torch.zeros(H, P, dtype=torch.float64)
            for hd in range(H):
                dt = F.softplus(dt_raw[b, t, hd] + m.dt_bias.double()[hd])
                h[hd] = torch.exp(dt * A[hd]) * h[hd] + dt * torch.outer(xt[hd], Bt)
                y[hd] = h[hd] @ Ct + Dskip[hd] * xt[hd]
            g = y.reshape(E) * F.silu(z[b, t])
            g = g / torch.sqrt(g.pow(2).mean() + NORM_EPS) * m.norm_weight.double()
            out[b, t] = g @ m.out_proj.weight.double().T
    return out


@pytest.mark.parametrize("T", [5, 64, 70, 130])
def test_chunked_forward_equals_naive_recurrence(T):
    m = make(d_state=8, head_dim=16)
    x = torch.randn(B, T, D)
    expected = naive(m, x)
    with torch.no_grad():
        got = m(x)
    torch.testing.assert_close(got, expected.float(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("T", [5, 70])
def test_chunked_forward_equals_naive_other_knobs(T):
    m = make(d_state=4, head_dim=8, expand=1, conv_kernel=2)
    x = torch.randn(B, T, D)
    with torch.no_grad():
        got = m(x)
    torch.testing.assert_close(got, naive(m, x).float(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("T", [5, 64, 130])
def test_chunked_ssd_kernel_in_float64(T):
    """The kernel alone: exact to float64 rounding against the plain recurrence."""
    H, P, N = 3, 4, 5
    x = torch.randn(B, T, H, P, dtype=torch.float64)
    a = -torch.rand(B, T, H, dtype=torch.float64) * 2
    Bm, Cm = torch.randn(B, T, N, dtype=torch.float64), torch.randn(B, T, N, dtype=torch.float64)
    h = torch.zeros(B, H, P, N, dtype=torch.float64)
    ys = []
    for t in range(T):
        h = torch.exp(a[:, t])[..., None, None] * h + x[:, t, :, :, None] * Bm[:, None, None, t]
        ys.append((h @ Cm[:, None, t, :, None]).squeeze(-1))  # (B, H, P)
    expected = torch.stack(ys, dim=1)
    torch.testing.assert_close(chunked_ssd(x, a, Bm, Cm, chunk=16), expected, atol=1e-12, rtol=0)


def test_strong_decay_does_not_overflow():
    m = make()
    with torch.no_grad():
        m.A_log.fill_(math.log(1e4))  # exp(dt·A) underflows to 0 within a step
        m.dt_bias.fill_(5.0)
        x = torch.randn(B, 130, D)
        y = m(x)
        y_seq = torch.stack([o for o in _steps(m, x)], dim=1)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y_seq, y, atol=1e-5, rtol=1e-5)


def _steps(m, x):
    state = None
    for t in range(x.shape[1]):
        y, state = m.step(x[:, t], state)
        yield y


def test_init_ranges_survive_build_model():
    spec = ArchSpec(
        d_model=D,
        vocab_size=16,
        layers=(LayerSpec(ModuleSpec.make("mamba2"), ModuleSpec.make("swiglu")),) * 2,
    )
    model = build_model(spec, seed=0)
    for block in model.blocks:
        m = block.mixer
        A = -torch.exp(m.A_log)
        assert ((A >= -16) & (A <= -1)).all()
        dt = F.softplus(m.dt_bias)
        assert ((dt >= 1e-3 - 1e-7) & (dt <= 1e-1 + 1e-7)).all()
        assert torch.equal(m.D, torch.ones_like(m.D))
        assert torch.equal(m.norm_weight, torch.ones_like(m.norm_weight))
        assert m.out_proj.residual_out
    tokens = torch.randint(0, 16, (B, 20))
    assert model(tokens).shape == (B, 20, 16)
    assert spec.short_form() == "M-M" and mixer_letter("mamba2") == "M"


def test_validate_rejects_head_dim_not_dividing_d_inner():
    problems = MAMBA2.validate(32, head_dim=12)
    assert problems == [
        "mamba2: head_dim=12 does not divide d_inner = expand·d_model = 2·32 = 64"
    ]
    assert MAMBA2.validate(32, head_dim=12, expand=3) == []  # 96 = 8 · 12
    assert any(">= 2" in p for p in MAMBA2.validate(32, conv_kernel=1))
    assert any("must be int" in p for p in MAMBA2.validate(32, d_state=2.5))
    with pytest.raises(ValueError, match="head_dim=24 does not divide"):
        MAMBA2(32, 0, head_dim=24)


def test_state_shapes():
    m = make(d_state=8, head_dim=8)
    with torch.no_grad():
        _, (ssm, conv) = m.step(torch.randn(B, D))
    assert ssm.shape == (B, 64 // 8, 8, 8)
    assert conv.shape == (B, 3, 64 + 2 * 8)
