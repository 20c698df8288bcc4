"""The Triton SwiGLU (output, dgate, dup) against the reference, and the reference against
silu(g)·u differentiated by autograd in fp64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nas.kernels import force_backend, poison_outputs
from nas.kernels.swiglu import reference, swiglu

pytest.importorskip("triton")
# the kernels run on the GPU when there is one, else in the interpreter (tests/conftest.py)
DEV = "cuda" if torch.cuda.is_available() else "cpu"


def rel_rms(a: torch.Tensor, b: torch.Tensor) -> float:
    """RMS of a - b relative to the RMS of b (fp64, on the CPU)."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return ((a - b).pow(2).mean().sqrt() / b.pow(2).mean().sqrt().clamp_min(1e-30)).item()


def run(backend, fused, dy):
    """Output and gradient of `fused` (..., 2N) = [gate | up] of swiglu on `backend`: gate and
    up are strided halves of one tensor, as in GatedMLP."""
    fused = fused.detach().to(DEV).requires_grad_()
    with force_backend(backend), poison_outputs():
        gate, up = fused.chunk(2, dim=-1)  # (..., N) each
        y = swiglu(gate, up)
        y.backward(dy.to(DEV))
    return y.detach(), fused.grad


def inputs(shape, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    *lead, N = shape
    fused = (3 * torch.randn(*lead, 2 * N, generator=g)).to(dtype)
    dy = torch.randn(shape, generator=g).to(dtype)
    return fused, dy


SHAPES = [(1, 13, 37), (3, 5, 65), (2, 20, 130), (17,)]


@pytest.mark.parametrize("shape", SHAPES)
def test_triton_matches_reference_fp32(shape):
    fused, dy = inputs(shape, torch.float32, sum(shape))
    got = run("triton", fused, dy)
    want = run("reference", fused, dy)
    for name, a, b in zip(("y", "d[gate|up]"), got, want, strict=True):
        assert torch.isfinite(a).all(), name
        assert rel_rms(a, b) <= 1e-5, name


@pytest.mark.parametrize("shape", [(2, 13, 37), (3, 65)])
def test_triton_matches_reference_bf16(shape):
    fused, dy = inputs(shape, torch.bfloat16, 5)
    got = run("triton", fused, dy)
    want = run("reference", fused, dy)
    for name, a, b in zip(("y", "d[gate|up]"), got, want, strict=True):
        assert a.dtype == torch.bfloat16, name
        assert rel_rms(a, b) <= 1e-2, name


def test_contiguous_and_non_contiguous_arguments():
    g = torch.Generator().manual_seed(2)
    gate = torch.randn(3, 37, generator=g).to(DEV)
    up = torch.randn(37, 3, generator=g).to(DEV).t()  # (3, 37), column stride 3: gets copied
    dy = torch.randn(3, 37, generator=g).to(DEV)
    grads = {}
    for backend in ("triton", "reference"):
        a, b = gate.clone().requires_grad_(), up.clone().requires_grad_()
        with force_backend(backend), poison_outputs():
            y = swiglu(a, b)
            y.backward(dy)
        grads[backend] = (y.detach(), a.grad, b.grad)
    for a, b in zip(grads["triton"], grads["reference"], strict=True):
        assert rel_rms(a, b) <= 1e-5


def test_reference_matches_autograd_in_fp64():
    fused, dy = inputs((4, 37), torch.float32, 9)
    ours = run("reference", fused, dy)
    f64 = fused.double().requires_grad_()
    gate, up = f64.chunk(2, dim=-1)
    y = gate * torch.sigmoid(gate) * up
    y.backward(dy.double())
    assert rel_rms(ours[0], y.detach()) <= 1e-6
    assert rel_rms(ours[1], f64.grad) <= 1e-6
    assert rel_rms(ours[0], F.silu(fused[:, :37]) * fused[:, 37:]) <= 1e-6


def test_mismatched_arguments_raise():
    with force_backend("triton"), pytest.raises(ValueError, match="must match"):
        swiglu(torch.randn(2, 3, device=DEV), torch.randn(2, 4, device=DEV))


def test_cpu_dispatch_uses_reference(monkeypatch):
    monkeypatch.delenv("NAS_KERNELS", raising=False)
    calls = []
    original = reference.swiglu
    monkeypatch.setattr(reference, "swiglu", lambda *a: calls.append(1) or original(*a))
    bf16 = torch.bfloat16  # fp32/fp64 skip the promotion
    swiglu(torch.randn(2, 5, dtype=bf16), torch.randn(2, 5, dtype=bf16))
    assert calls == [1]


def test_swiglu_block_runs_the_kernel_and_keeps_its_math():
    from nas.blocks.channel import SwiGLU

    torch.manual_seed(0)
    block = SwiGLU(20, 0, expansion=2).to(DEV)
    x = torch.randn(2, 13, 20, device=DEV)
    results = {}
    for backend in ("triton", "reference"):
        block.zero_grad()
        xi = x.clone().requires_grad_()
        with force_backend(backend), poison_outputs():
            y = block(xi)
            y.backward(torch.cos(y.detach()))
        results[backend] = (y.detach(), xi.grad, block.fc.weight.grad.clone())
    for a, b in zip(results["triton"], results["reference"], strict=True):
        assert rel_rms(a, b) <= 1e-5
    gate, up = block.fc(x).chunk(2, dim=-1)
    assert rel_rms(results["triton"][0], block.proj(F.silu(gate) * up).detach()) <= 1e-5


def test_fp64_takes_the_reference(monkeypatch):
    from nas.kernels.swiglu import triton_swiglu

    monkeypatch.setattr(triton_swiglu, "swiglu", None)  # calling the kernel would fail
    gate = torch.randn(2, 5, dtype=torch.float64)
    with force_backend("triton"):
        assert rel_rms(swiglu(gate, gate), F.silu(gate) * gate) <= 1e-12


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpu_native_path_matches_reference(dtype, monkeypatch):
    """Off the Triton path fp32/fp64 skip the reference's promotion: same outputs and grads."""
    monkeypatch.delenv("NAS_KERNELS", raising=False)
    gate = torch.randn(4, 7, 24, dtype=dtype, requires_grad=True)
    up = torch.randn(4, 7, 24, dtype=dtype, requires_grad=True)
    dy = torch.randn(4, 7, 24, dtype=dtype)
    y = swiglu(gate, up)
    y_ref = reference.swiglu(gate, up)
    torch.testing.assert_close(y, y_ref)
    for g, g_ref in zip(torch.autograd.grad(y, (gate, up), dy),
                        torch.autograd.grad(y_ref, (gate, up), dy), strict=True):
        torch.testing.assert_close(g, g_ref)
