"""Attention variants (output gate, sliding window with sinks, sparse query heads) against
plain-PyTorch references, and the GLU / ReLU² channel mixers.

The registry-wide contract tests in test_blocks.py run these knobs too; windows there stay near
T=70 because their FLOPs check counts the dense masked kernel. Short windows (16, with and
without sinks) get the same contracts here, with the FLOPs check stated for what the dense
training path really executes.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from nas.blocks import get_block
from nas.blocks.attention import (
    apply_rotary,
    blocked_window_attention,
    blocked_window_mask,
    sliding_window_mask,
)
from nas.blocks.channel import swiglu_hidden
from nas.evaluate.latency import tensors_in
from nas.evaluate.memory import storage_bytes

D = 32
B = 2

# Short windows: every T in the contract tests (5, 70, 130) but the first exceeds them.
WINDOW_CASES = [
    {"window": 16},
    {"window": 16, "sinks": 2},
    {"window": 16, "sinks": 2, "kv_heads": 2, "gate": "headwise"},
    {"window": 16, "sinks": 1, "query_heads": 2, "kv_heads": 1, "gate": "elementwise"},
    {"window": 16, "sinks": 3, "rope": False},
]
# The reference test covers every variant, windowed or not.
REFERENCE_CASES = WINDOW_CASES + [
    {},
    {"kv_heads": 1},
    {"gate": "headwise"},
    {"gate": "elementwise", "heads": 2},
    {"query_heads": 2},
    {"heads": 8, "query_heads": 4, "kv_heads": 2, "gate": "headwise", "rope_base": 500.0},
    {"window": 1},
    {"window": 1, "sinks": 4, "gate": "elementwise"},
]


def case_id(knobs: dict) -> str:
    return "-".join(f"{k}={v}" for k, v in knobs.items()) or "defaults"



def make_attention(knobs: dict, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return get_block("attention").cls(D, 0, **knobs)


def run_steps(mixer, xs: torch.Tensor, check_state=None):
    state, ys = None, []
    for t in range(xs.shape[1]):
        y, state = mixer.step(xs[:, t], state)
        if check_state is not None:
            check_state(t, state)
        ys.append(y)
    return torch.stack(ys, dim=1), state


def held_bytes(state) -> int:
    """Bytes of the distinct tensor storages in an attention state dict."""
    return storage_bytes(tensors_in(state))


# -- the reference -----------------------------------------------------------------------------
def reference_attention(mixer: nn.Module, knobs: dict, x: torch.Tensor) -> torch.Tensor:
    """The block's output recomputed in float64 from its weights and knobs alone: RoPE from its
    definition, the mask materialized entry by entry, softmax by hand, one head at a time."""
    heads = knobs.get("heads", 4)
    Dh = D // heads
    Hq = knobs.get("query_heads") or heads
    Hkv = knobs.get("kv_heads") or Hq
    gate = knobs.get("gate", "none")
    window, sinks = knobs.get("window"), knobs.get("sinks", 0)
    gate_dim = {"none": 0, "headwise": Hq, "elementwise": Hq * Dh}[gate]
    x = x.double()
    _, T, _ = x.shape
    q, k, v, g = (x @ mixer.qkv.weight.double().T).split(
        [Hq * Dh, Hkv * Dh, Hkv * Dh, gate_dim], dim=-1
    )
    q = q.view(B, T, Hq, Dh)
    k = k.view(B, T, Hkv, Dh)
    v = v.view(B, T, Hkv, Dh)
    if knobs.get("rope", True):
        base = knobs.get("rope_base", 10000.0)
        half = Dh // 2
        inv_freq = torch.tensor([base ** (-2 * i / Dh) for i in range(half)], dtype=torch.float64)
        angle = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq  # (T, Dh/2)
        cos, sin = angle.cos()[:, None], angle.sin()[:, None]  # (T, 1, Dh/2)

        def rotate(a):  # channel i pairs with channel i + Dh/2
            a1, a2 = a[..., :half], a[..., half:]
            return torch.cat((a1 * cos - a2 * sin, a2 * cos + a1 * sin), dim=-1)

        q, k = rotate(q), rotate(k)
    allowed = torch.tensor(
        [
            [j <= i and (window is None or i - j < window or j < sinks) for j in range(T)]
            for i in range(T)
        ]
    )
    heads_out = []
    for h in range(Hq):
        kv = h // (Hq // Hkv)
        scores = q[:, :, h] @ k[:, :, kv].transpose(1, 2) / math.sqrt(Dh)  # (B, T, T)
        scores = scores.masked_fill(~allowed, float("-inf"))
        p = (scores - scores.amax(dim=-1, keepdim=True)).exp()
        p = p / p.sum(dim=-1, keepdim=True)
        heads_out.append(p @ v[:, :, kv])  # (B, T, Dh)
    y = torch.stack(heads_out, dim=2)  # (B, T, Hq, Dh)
    if gate == "headwise":
        y = y * torch.sigmoid(g)[..., None]
    elif gate == "elementwise":
        y = y * torch.sigmoid(g).view(B, T, Hq, Dh)
    return y.reshape(B, T, Hq * Dh) @ mixer.out.weight.double().T


@pytest.mark.parametrize("knobs", REFERENCE_CASES, ids=case_id)
def test_attention_matches_reference(knobs):
    mixer = make_attention(knobs).eval()
    T = 40
    x = torch.randn(B, T, D)
    expected = reference_attention(mixer, knobs, x)
    with torch.no_grad():
        y_par = mixer(x)
        y_seq, _ = run_steps(mixer, x)
    torch.testing.assert_close(y_par.double(), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(y_seq.double(), expected, atol=1e-5, rtol=1e-5)
    if knobs.get("window") is not None:  # the window really cuts: full attention differs
        full = {k: v for k, v in knobs.items() if k not in ("window", "sinks")}
        assert not torch.allclose(reference_attention(mixer, full, x)[:, -1], expected[:, -1])


def test_sliding_window_mask():
    mask = sliding_window_mask(6, window=2, sinks=1)
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0],
            [1, 0, 1, 1, 0, 0],
            [1, 0, 0, 1, 1, 0],
            [1, 0, 0, 0, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(mask, expected)
    assert torch.equal(sliding_window_mask(5, window=5), torch.ones(5, 5).tril().bool())


@pytest.mark.parametrize("knobs", [{"window": 40}, {"window": 64}, {"window": 38, "sinks": 2},
                                   {"window": 40, "kv_heads": 1, "gate": "headwise"}],
                         ids=case_id)
def test_window_covering_the_sequence_is_full_attention(knobs):
    T = 40
    full = {k: v for k, v in knobs.items() if k not in ("window", "sinks")}
    windowed, plain = make_attention(knobs).eval(), make_attention(full).eval()
    for p, q in zip(windowed.parameters(), plain.parameters(), strict=True):
        assert torch.equal(p, q)
    x = torch.randn(B, T, D)
    with torch.no_grad():
        assert torch.equal(windowed(x), plain(x))
        assert torch.equal(run_steps(windowed, x)[0], run_steps(plain, x)[0])


# -- gate=none and the defaults are the block as it was ----------------------------------------
def old_attention_forward(qkv: nn.Linear, out: nn.Linear, x, heads, kv_heads, rope, rope_base):
    """The attention forward as it was before gates, windows and query heads, verbatim."""
    from nas.blocks.attention import Rotary

    B_, T, D_ = x.shape
    Dh = D_ // heads
    q, k, v = qkv(x).split((D_, kv_heads * Dh, kv_heads * Dh), dim=-1)
    q = q.view(B_, T, heads, Dh).transpose(1, 2)
    k = k.view(B_, T, kv_heads, Dh).transpose(1, 2)
    v = v.view(B_, T, kv_heads, Dh).transpose(1, 2)
    if rope:
        cos, sin = Rotary(Dh, float(rope_base))(0, T, q.dtype)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
    if kv_heads != heads:
        k = k[:, :, None].expand(B_, kv_heads, heads // kv_heads, T, Dh).reshape(B_, heads, T, Dh)
        v = v[:, :, None].expand(B_, kv_heads, heads // kv_heads, T, Dh).reshape(B_, heads, T, Dh)
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return out(y.transpose(1, 2).reshape(B_, T, D_))


@pytest.mark.parametrize(
    "knobs",
    [{}, {"kv_heads": 1}, {"heads": 2, "rope": False}, {"heads": 8, "kv_heads": 2,
                                                        "rope_base": 500.0}],
    ids=case_id,
)
def test_gate_none_is_the_old_block(knobs):
    heads, kv_heads = knobs.get("heads", 4), knobs.get("kv_heads") or knobs.get("heads", 4)
    mixer = make_attention({**knobs, "gate": "none", "window": None, "sinks": 0,
                            "query_heads": None}, seed=5)
    # Same seed, same construction order as before: the same weights...
    torch.manual_seed(5)
    qkv = nn.Linear(D, D + 2 * kv_heads * (D // heads), bias=False)
    out = nn.Linear(D, D, bias=False)
    assert list(mixer.state_dict()) == ["qkv.weight", "out.weight"]
    assert torch.equal(mixer.qkv.weight, qkv.weight) and torch.equal(mixer.out.weight, out.weight)
    # ... and the same output, bit for bit, and the same costs.
    x = torch.randn(B, 50, D)
    with torch.no_grad():
        expected = old_attention_forward(qkv, out, x, heads, kv_heads,
                                         knobs.get("rope", True), knobs.get("rope_base", 1e4))
        torch.testing.assert_close(mixer(x), expected, atol=0, rtol=0)
    kv_dim = kv_heads * (D // heads)
    assert mixer.num_params() == D * (D + 2 * kv_dim) + D * D
    assert mixer.flops_per_token(70) == 2 * D * (D + 2 * kv_dim) + 2 * D * D + 4 * 70 * D
    assert mixer.state_bytes(70) == 2 * 70 * kv_dim * 4


# -- the contracts at short windows ------------------------------------------------------------
@pytest.mark.parametrize("T", [70, 130])
@pytest.mark.parametrize("knobs", WINDOW_CASES, ids=case_id)
def test_window_shape_and_causality(knobs, T):
    mixer = make_attention(knobs)
    x = torch.randn(B, T, D)
    y = mixer(x)
    assert y.shape == (B, T, D)
    for t in (0, 37, T - 1):
        x2 = x.clone()
        x2[:, t] += torch.randn(B, D)
        y2 = mixer(x2)
        torch.testing.assert_close(y2[:, :t], y[:, :t], atol=1e-6, rtol=0)
        assert not torch.allclose(y2[:, t], y[:, t])
    # Beyond the window (and past the sinks) a token no longer sees a changed input.
    sinks = knobs.get("sinks", 0)
    x3 = x.clone()
    x3[:, sinks + 1] += 1.0
    with torch.no_grad():
        y3 = mixer(x3)
    far = sinks + 1 + knobs["window"]
    torch.testing.assert_close(y3[:, far:], y[:, far:], atol=1e-6, rtol=0)
    assert not torch.allclose(y3[:, far - 1], y[:, far - 1])


@pytest.mark.parametrize("T", [5, 70, 130])
@pytest.mark.parametrize("knobs", WINDOW_CASES, ids=case_id)
def test_window_step_matches_forward(knobs, T):
    mixer = make_attention(knobs).eval()
    x = torch.randn(B, T, D)
    with torch.no_grad():
        y_par = mixer(x)
        y_seq, state = run_steps(mixer, x)
    torch.testing.assert_close(y_seq, y_par, atol=1e-5, rtol=1e-5)
    assert state["pos"] == T


@pytest.mark.parametrize("knobs", WINDOW_CASES, ids=case_id)
def test_kv_cache_stays_within_sinks_plus_window(knobs):
    mixer = make_attention(knobs).eval()
    bound = knobs.get("sinks", 0) + knobs["window"]

    def check(t, state):  # after step t, t + 1 tokens were seen
        n = state["k"].shape[2]
        assert n == min(t + 1, bound) and state["v"].shape[2] == n
        assert state["pos"] == t + 1  # positions stay absolute
        assert held_bytes(state) == B * mixer.state_bytes(t + 1)

    with torch.no_grad():
        run_steps(mixer, torch.randn(B, 3 * bound, D), check)
    assert mixer.state_bytes(10**6) == mixer.state_bytes(bound)
    assert mixer.state_bytes(10**6, torch.bfloat16) * 2 == mixer.state_bytes(10**6)


@pytest.mark.parametrize("knobs", WINDOW_CASES, ids=case_id)
def test_window_gradients_and_costs(knobs):
    mixer = make_attention(knobs)
    T = 70
    x = torch.randn(B, T, D, requires_grad=True)
    (mixer(x) * torch.randn(B, T, D)).sum().backward()
    assert torch.isfinite(x.grad).all()
    for name, p in mixer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert mixer.num_params() == sum(p.numel() for p in mixer.parameters())
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as c:
        mixer(x)
    counted = c.get_total_flops() / (B * T)
    # The analytic count is a windowed kernel's (window + sinks keys per query); at this T the
    # training path is the dense masked one, which executes all T keys, 2·2·q_dim FLOPs per
    # extra key.
    W, S = knobs["window"], knobs.get("sinks", 0)
    assert counted == mixer.flops_per_token(T) + 4 * (T - W - S) * mixer.q_dim
    assert mixer.flops_per_token(W + S - 3) == make_attention(
        {k: v for k, v in knobs.items() if k not in ("window", "sinks")}
    ).flops_per_token(W + S - 3)


def test_window_mask_is_cached_and_trainable_after_inference_mode():
    mixer = make_attention({"window": 8, "sinks": 1})
    assert "window_mask" not in mixer.state_dict()
    x = torch.randn(1, 30, D)
    with torch.inference_mode():
        mixer(x)  # the mask is first built here, as latency timing does
    mask = mixer.window_mask
    assert mask.shape == (30, 30) and not mask.is_inference()
    mixer(x).sum().backward()  # autograd accepts the cached mask
    assert mixer.window_mask is mask  # built once per length
    mixer(x[:, :20])
    assert mixer.window_mask.shape == (20, 20)
    long = torch.randn(1, 300, D, requires_grad=True)
    y = mixer(long)  # long enough for the blocked path: 5 blocks of 64 queries, 1 + 7 + 64 keys
    assert mixer.window_mask.shape == (5, 64, 72)
    dense = F.scaled_dot_product_attention  # the same layer through the dense mask
    mask = sliding_window_mask(300, 8, 1)
    q, k, v, _ = mixer.qkv(long).split(mixer.splits, dim=-1)
    q, k, v = (t.view(1, 300, -1, mixer.head_dim).transpose(1, 2) for t in (q, k, v))
    cos, sin = mixer.rotary(0, 300, q.dtype)
    q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
    k, v = mixer._repeat_kv(k), mixer._repeat_kv(v)
    expected = mixer.out(dense(q, k, v, attn_mask=mask).transpose(1, 2).reshape(1, 300, -1))
    torch.testing.assert_close(y, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("T", [9, 64, 65, 200])
@pytest.mark.parametrize("window,sinks,block", [(1, 0, 4), (3, 2, 4), (8, 1, 8), (5, 7, 16)])
def test_blocked_window_attention_equals_the_dense_mask(T, window, sinks, block):
    if T <= window + sinks:
        pytest.skip("the block takes the causal path there")
    q, k, v = (torch.randn(2, 3, T, 5, dtype=torch.float64) for _ in range(3))
    dense = F.scaled_dot_product_attention(q, k, v, attn_mask=sliding_window_mask(T, window, sinks))
    mask = blocked_window_mask(-(-T // block), block, window, sinks)
    blocked = blocked_window_attention(q, k, v, window, sinks, mask)
    torch.testing.assert_close(blocked, dense, rtol=1e-10, atol=1e-12)


def test_query_heads_shapes_and_grouping():
    mixer = make_attention({"heads": 8, "query_heads": 4, "kv_heads": 2, "gate": "elementwise"})
    Dh = D // 8
    assert (mixer.query_heads, mixer.kv_heads, mixer.head_dim) == (4, 2, Dh)
    # q: 4 heads, k and v: 2 heads each, gate: one per output channel of the 4 query heads
    assert mixer.qkv.weight.shape == (4 * Dh + 2 * 2 * Dh + 4 * Dh, D)
    assert mixer.out.weight.shape == (D, 4 * Dh)
    # kv_heads: full (or unset) means one kv head per remaining query head
    assert make_attention({"heads": 8, "query_heads": 2}).kv_heads == 2
    assert make_attention({"heads": 8, "query_heads": 2, "kv_heads": 1}).kv_heads == 1
    # fewer query heads, fewer score/value FLOPs
    full, sparse = make_attention({"heads": 4}), make_attention({"heads": 4, "query_heads": 2})
    attend = full.flops_per_token(1000) - full.flops_per_token(0)
    assert sparse.flops_per_token(1000) - sparse.flops_per_token(0) == attend / 2


def test_canonicalize_with_query_heads():
    cls = get_block("attention").cls
    assert cls.canonicalize({"heads": 4, "kv_heads": "full"}) == {"heads": 4, "kv_heads": 4}
    assert cls.canonicalize({"heads": 4, "kv_heads": None, "query_heads": None}) == {
        "heads": 4, "kv_heads": 4, "query_heads": 4}
    assert cls.canonicalize({"heads": 4, "kv_heads": "full", "query_heads": 2}) == {
        "heads": 4, "kv_heads": 2, "query_heads": 2}
    assert cls.canonicalize({"heads": 4, "kv_heads": 1, "query_heads": 2})["kv_heads"] == 1
    # equal architectures, equal knobs after canonicalization
    a = cls.canonicalize({**get_block("attention").defaults, "heads": 4})
    b = cls.canonicalize({**get_block("attention").defaults, "heads": 4, "query_heads": 4,
                          "kv_heads": 4})
    assert a == b and cls.validate(D, **a) == []


# -- validation --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "knobs,message",
    [
        ({"window": 0}, "window must be >= 1, got 0"),
        ({"window": -4}, "window must be >= 1"),
        ({"window": 16, "sinks": -1}, "sinks must be >= 0, got -1"),
        ({"sinks": 2}, "sinks=2 needs a window"),
        ({"window": True}, "window must be int"),
        ({"window": 16.0}, "window must be int"),
        ({"query_heads": 8}, "query_heads=8 exceeds heads=4"),
        ({"query_heads": 0}, "query_heads must be >= 1"),
        ({"query_heads": 2, "kv_heads": 4}, "kv_heads=4 does not divide query_heads=2"),
        ({"heads": 8, "query_heads": 6, "kv_heads": 4}, "kv_heads=4 does not divide query_heads=6"),
        ({"query_heads": 3, "kv_heads": 2}, "kv_heads=2 does not divide query_heads=3"),
        ({"gate": "softmax"}, "gate must be one of ['none', 'headwise', 'elementwise']"),
        ({"gate": True}, "gate must be str"),
    ],
    ids=lambda v: case_id(v) if isinstance(v, dict) else "",
)
def test_bad_combinations_rejected(knobs, message):
    cls = get_block("attention").cls
    problems = cls.validate(D, **knobs)
    assert any(message in p for p in problems), problems
    with pytest.raises(ValueError, match="attention: "):
        cls(D, 0, **knobs)


def test_good_combinations_accepted():
    cls = get_block("attention").cls
    for knobs in REFERENCE_CASES + [
        {"window": 1, "sinks": 0},
        {"window": 10**6},
        {"heads": 8, "query_heads": 6, "kv_heads": 3},  # kv_heads need not divide heads
        {"query_heads": 4, "kv_heads": None},
        {"window": None, "sinks": 0, "gate": "none", "query_heads": None},
    ]:
        assert cls.validate(D, **knobs) == [], knobs


# -- channel mixers ----------------------------------------------------------------------------
def test_geglu_and_relu2():
    torch.manual_seed(0)
    x = torch.randn(B, 9, D, dtype=torch.float64)
    geglu = get_block("geglu").cls(D, 0, expansion=2).double()
    w1, w2 = geglu.fc.weight.chunk(2, dim=0)
    expected = (F.gelu(x @ w1.T) * (x @ w2.T)) @ geglu.proj.weight.T
    torch.testing.assert_close(geglu(x), expected, atol=1e-12, rtol=0)
    swiglu = get_block("swiglu").cls(D, 0, expansion=2)
    assert geglu.hidden == swiglu.hidden == swiglu_hidden(D, 2)
    assert geglu.num_params() == swiglu.num_params()
    assert geglu.flops_per_token(9) == swiglu.flops_per_token(9)
    mlp = get_block("mlp").cls(D, 0, expansion=2, activation="relu2").double()
    expected = F.relu(x @ mlp.fc.weight.T).pow(2) @ mlp.proj.weight.T
    torch.testing.assert_close(mlp(x), expected, atol=1e-12, rtol=0)
    assert any("must be one of ['gelu', 'relu', 'relu2']" in p
               for p in get_block("mlp").cls.validate(D, activation="swish"))
