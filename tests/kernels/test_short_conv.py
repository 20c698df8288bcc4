"""The Triton short causal conv (forward, dx, dweight, decode update) against the reference,
and the reference against an explicit sum over taps."""

from __future__ import annotations

import pytest
import torch

from nas.kernels import force_backend, poison_outputs
from nas.kernels import short_conv as conv_mod
from nas.kernels.short_conv import causal_conv1d, causal_conv1d_update, reference, small

pytest.importorskip("triton")
# the kernels run on the GPU when there is one, else in the interpreter (tests/conftest.py)
DEV = "cuda" if torch.cuda.is_available() else "cpu"
from nas.kernels.short_conv import triton_short_conv  # noqa: E402


def rel_rms(a: torch.Tensor, b: torch.Tensor) -> float:
    """RMS of a - b relative to the RMS of b (fp64, on the CPU)."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return ((a - b).pow(2).mean().sqrt() / b.pow(2).mean().sqrt().clamp_min(1e-30)).item()


def explicit_conv(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """y_t = Σ_j w[:, j] x_{t-K+1+j}, written as a loop over taps (fp64)."""
    B, T, D = x.shape
    K = weight.shape[1]
    x, weight = x.double(), weight.double()
    y = torch.zeros(B, T, D, dtype=torch.float64)
    for j in range(K):
        shift = K - 1 - j
        y[:, shift:] += x[:, : T - shift] * weight[:, j]
    return y


def run(fn, x, weight, dy):
    """Output and (dx, dweight) of fn(x, weight) under upstream gradient dy."""
    x = x.detach().to(DEV).requires_grad_()
    weight = weight.detach().to(DEV).requires_grad_()
    y = fn(x, weight)
    y.backward(dy.to(DEV))
    return y.detach(), x.grad, weight.grad


SHAPES = [(1, 13, 37, 2), (2, 13, 65, 3), (3, 5, 37, 4), (2, 40, 20, 5), (1, 1, 8, 3)]


@pytest.mark.parametrize("B, T, D, K", SHAPES)
@pytest.mark.parametrize("blocks", [(8, 16), (64, 64)])
def test_triton_matches_reference(B, T, D, K, blocks):
    g = torch.Generator().manual_seed(B * 1000 + T * 10 + K)
    x = torch.randn(B, T, D, generator=g)
    weight = torch.randn(D, K, generator=g)
    dy = torch.randn(B, T, D, generator=g)
    with poison_outputs():
        got = run(lambda a, w: triton_short_conv.causal_conv1d(a, w, *blocks), x, weight, dy)
    want = run(reference.causal_conv1d, x.double(), weight.double(), dy.double())
    for name, a, b in zip(("y", "dx", "dweight"), got, want, strict=True):
        assert torch.isfinite(a).all(), name
        assert rel_rms(a, b) <= 1e-5, name


def test_triton_bf16_matches_fp64_reference():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 13, 37, generator=g).bfloat16()
    weight = torch.randn(37, 4, generator=g).bfloat16()
    dy = torch.randn(2, 13, 37, generator=g).bfloat16()
    with poison_outputs():
        got = run(triton_short_conv.causal_conv1d, x, weight, dy)
    want = run(reference.causal_conv1d, x.double(), weight.double(), dy.double())
    for name, a, b in zip(("y", "dx", "dweight"), got, want, strict=True):
        assert a.dtype == torch.bfloat16, name
        assert rel_rms(a, b) <= 1e-2, name


def test_strided_inputs_and_forced_dispatch(monkeypatch):
    """x a half of a fused projection (row stride 2D), weight a (D, 1, K) conv weight's view,
    dy non-contiguous: the public function, forced to Triton, still matches."""
    B, T, D, K = 2, 13, 37, 4
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # an fp32 reference on GPU
    g = torch.Generator().manual_seed(0)
    both = torch.randn(B, T, 2 * D, generator=g).to(DEV).requires_grad_()
    conv_w = torch.randn(D, 1, K, generator=g).to(DEV).requires_grad_()
    dy = torch.randn(B, D, T, generator=g).to(DEV).transpose(1, 2)  # (B, T, D), non-contiguous
    results = {}
    for backend in ("triton", "reference"):
        both.grad = conv_w.grad = None
        with force_backend(backend), poison_outputs():
            u = both.chunk(2, dim=-1)[0]  # (B, T, D), row stride 2D
            y = causal_conv1d(u, conv_w[:, 0])
            y.backward(dy)
        results[backend] = (y.detach(), both.grad.clone(), conv_w.grad.clone())
    for a, b in zip(results["triton"], results["reference"], strict=True):
        assert rel_rms(a, b) <= 1e-5


@pytest.mark.parametrize("K", [2, 3, 4, 5])
def test_reference_matches_explicit_sum(K):
    g = torch.Generator().manual_seed(K)
    x = torch.randn(2, 9, 6, generator=g)
    weight = torch.randn(6, K, generator=g)
    assert rel_rms(reference.causal_conv1d(x, weight), explicit_conv(x, weight)) <= 1e-6


@pytest.mark.parametrize("backend", ["triton", "reference"])
@pytest.mark.parametrize("K", [2, 4])
def test_update_token_by_token_equals_full_conv(backend, K):
    B, T, D = 2, 7, 37
    g = torch.Generator().manual_seed(K)
    x = torch.randn(B, T, D, generator=g)
    weight = torch.randn(D, K, generator=g)
    full = explicit_conv(x, weight)
    x, weight = x.to(DEV), weight.to(DEV)
    state = torch.zeros(B, K - 1, D, device=DEV)
    with force_backend(backend), poison_outputs():
        for t in range(T):
            previous, snapshot = state, state.clone()
            y, state = causal_conv1d_update(x[:, t], previous, weight)
            assert rel_rms(y, full[:, t]) <= 1e-6
            assert torch.equal(previous, snapshot)  # the given state is left unchanged
    assert torch.equal(state, x[:, T - K + 1 :])  # the last K-1 inputs, oldest first


def test_update_with_strided_state_and_input():
    B, D, K = 3, 65, 3
    g = torch.Generator().manual_seed(1)
    x_t = torch.randn(B, 2 * D, generator=g).to(DEV)[:, D:]  # (B, D), row stride 2D
    state = torch.randn(B, D, K - 1, generator=g).to(DEV).transpose(1, 2)  # (B, K-1, D)
    weight = torch.randn(D, K, generator=g).to(DEV)
    with poison_outputs():
        got = triton_short_conv.causal_conv1d_update(x_t, state, weight, block_d=16)
    want = reference.causal_conv1d_update(x_t, state, weight)
    assert rel_rms(got[0], want[0]) <= 1e-6
    assert torch.equal(got[1], want[1])


def test_update_falls_back_to_reference_under_autograd(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("the Triton update has no backward")

    monkeypatch.setattr(triton_short_conv, "causal_conv1d_update", boom)
    weight = torch.randn(5, 3, requires_grad=True)
    with force_backend("triton"):
        y, _ = causal_conv1d_update(torch.randn(2, 5), torch.zeros(2, 2, 5), weight)
    y.sum().backward()
    assert weight.grad is not None


def test_cpu_dispatch_uses_reference(monkeypatch):
    monkeypatch.delenv("NAS_KERNELS", raising=False)
    calls = []
    for name in ("causal_conv1d", "causal_conv1d_update"):
        original = getattr(reference, name)
        monkeypatch.setattr(
            reference, name, lambda *a, _f=original, _n=name: calls.append(_n) or _f(*a)
        )
    assert conv_mod.reference is reference
    causal_conv1d(torch.randn(1, 4, 3, requires_grad=True), torch.randn(3, 2))
    causal_conv1d_update(torch.randn(1, 3), torch.zeros(1, 1, 3), torch.randn(3, 2))
    assert calls == ["causal_conv1d", "causal_conv1d_update"]


@pytest.mark.parametrize("B,T,D,K", [(1, 64, 32, 4), (2, 7, 5, 1), (1, 3, 8, 6), (4, 33, 16, 3)])
def test_small_cpu_path_matches_reference(B, T, D, K, monkeypatch):
    """Outside autograd, small CPU inputs take the shifted multiply-adds; they equal the
    reference conv (also when K exceeds T), and autograd or a forced backend keeps the conv."""
    monkeypatch.delenv("NAS_KERNELS", raising=False)
    x, weight = torch.randn(B, T, D, dtype=torch.float64), torch.randn(D, K, dtype=torch.float64)
    with torch.no_grad():
        assert small.fits(x, weight)
        torch.testing.assert_close(causal_conv1d(x, weight), reference.causal_conv1d(x, weight))
    assert not small.fits(x.requires_grad_(), weight)
    assert not small.fits(torch.zeros(1, small.MAX_NUMEL + 1, 1), weight)
    used = []
    monkeypatch.setattr(small, "causal_conv1d_small", lambda *a: used.append(1))
    with torch.no_grad(), force_backend("reference"):
        causal_conv1d(x, weight)
    assert not used


def block_pass(block, x, backend):
    """Output, input gradient and every parameter gradient of one block pass on `backend`."""
    block.zero_grad()
    x = x.detach().clone().requires_grad_()
    with force_backend(backend), poison_outputs():
        y = block(x)
        y.backward(torch.ones_like(y) + y.detach())  # a non-uniform upstream gradient
    grads = {n: p.grad.clone() for n, p in block.named_parameters()}
    return y.detach(), x.grad, grads


@pytest.mark.parametrize("name", ["short_conv", "mamba2"])
def test_blocks_run_the_kernel_forward_backward_and_step(name, monkeypatch):
    """The wired blocks give the same outputs and parameter gradients on either backend, and
    their Triton decode step reproduces the forward token by token."""
    from nas.blocks.conv import ShortConv
    from nas.blocks.mamba2 import Mamba2

    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # an fp32 reference on GPU
    torch.manual_seed(0)
    if name == "short_conv":
        block = ShortConv(37, 0, kernel_size=3)
    else:
        block = Mamba2(12, 0, d_state=5, expand=2, head_dim=8, conv_kernel=4)
    block = block.to(DEV)
    x = torch.randn(2, 13, block.d_model, device=DEV)
    got, want = block_pass(block, x, "triton"), block_pass(block, x, "reference")
    assert rel_rms(got[0], want[0]) <= 1e-5
    assert rel_rms(got[1], want[1]) <= 1e-5
    assert got[2].keys() == want[2].keys() and "conv.weight" in got[2]
    for n in want[2]:
        assert rel_rms(got[2][n], want[2][n]) <= 1e-5, n
    state = None
    with torch.no_grad(), force_backend("triton"), poison_outputs():
        for t in range(x.shape[1]):
            y_t, state = block.step(x[:, t], state)
            assert rel_rms(y_t, want[0][:, t]) <= 1e-4


def test_fp64_and_long_kernels_take_the_reference(monkeypatch):
    monkeypatch.setattr(triton_short_conv, "causal_conv1d", None)  # the kernel would fail
    monkeypatch.setattr(triton_short_conv, "causal_conv1d_update", None)
    K = conv_mod.MAX_K + 1
    cases = [(torch.float64, 3), (torch.float32, K)]
    with force_backend("triton"):
        for dtype, taps in cases:
            x = torch.randn(1, 4, 3, dtype=dtype)
            weight = torch.randn(3, taps, dtype=dtype)
            causal_conv1d(x, weight)
            causal_conv1d_update(x[:, 0], torch.zeros(1, taps - 1, 3, dtype=dtype), weight)
