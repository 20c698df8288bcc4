"""The Triton RMSNorm (output, dx, dweight) against the reference, and the reference against
torch's own rms_norm in fp64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nas.kernels import force_backend, poison_outputs
from nas.kernels.rmsnorm import reference, rms_norm

pytest.importorskip("triton")
# the kernels run on the GPU when there is one, else in the interpreter (tests/conftest.py)
DEV = "cuda" if torch.cuda.is_available() else "cpu"


def rel_rms(a: torch.Tensor, b: torch.Tensor) -> float:
    """RMS of a - b relative to the RMS of b (fp64, on the CPU)."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return ((a - b).pow(2).mean().sqrt() / b.pow(2).mean().sqrt().clamp_min(1e-30)).item()


def run(backend, x, weight, dy, eps):
    """Output and (dx, dweight) of rms_norm on `backend` under upstream gradient dy."""
    x = x.detach().to(DEV).requires_grad_()
    weight = weight.detach().to(DEV).requires_grad_()
    with force_backend(backend), poison_outputs():
        y = rms_norm(x, weight, eps)
        y.backward(dy.to(DEV))
    return y.detach(), x.grad, weight.grad


def inputs(shape, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    D = shape[-1]
    x = (torch.randn(shape, generator=g) * 3 + 0.5).to(dtype)
    weight = (1 + 0.5 * torch.randn(D, generator=g)).to(dtype)
    dy = torch.randn(shape, generator=g).to(dtype)
    return x, weight, dy


# M rows of D: one partial tile, several tiles, and more tiles than backward programs (loop)
SHAPES = [(1, 13, 37), (3, 5, 65), (2, 50, 37), (7, 300), (2, 3, 1)]


@pytest.mark.parametrize("shape", SHAPES)
def test_triton_matches_reference_fp32(shape):
    x, weight, dy = inputs(shape, torch.float32, sum(shape))
    got = run("triton", x, weight, dy, 1e-6)
    want = run("reference", x, weight, dy, 1e-6)
    for name, a, b in zip(("y", "dx", "dweight"), got, want, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert torch.isfinite(a).all(), name
        assert rel_rms(a, b) <= 1e-5, name


@pytest.mark.parametrize("shape", [(2, 13, 37), (3, 65)])
def test_triton_matches_reference_bf16(shape):
    x, weight, dy = inputs(shape, torch.bfloat16, 7)
    got = run("triton", x, weight, dy, 1e-5)
    want = run("reference", x, weight, dy, 1e-5)
    for name, a, b in zip(("y", "dx", "dweight"), got, want, strict=True):
        assert a.dtype == torch.bfloat16, name
        assert rel_rms(a, b) <= 1e-2, name


def test_non_contiguous_input_and_gradient():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(37, 2, 13, generator=g).to(DEV).permute(1, 2, 0)  # (2, 13, 37), non-contiguous
    weight = torch.randn(37, generator=g)
    dy = torch.randn(37, 2, 13, generator=g).to(DEV).permute(1, 2, 0)
    got = run("triton", x, weight, dy, 1e-6)
    want = run("reference", x, weight, dy, 1e-6)
    for a, b in zip(got, want, strict=True):
        assert rel_rms(a, b) <= 1e-5


def test_reference_matches_torch_in_fp64():
    x, weight, dy = inputs((3, 5, 37), torch.float32, 11)
    x64, w64 = x.double().requires_grad_(), weight.double().requires_grad_()
    ours = run("reference", x, weight, dy, 1e-6)
    y = F.rms_norm(x64, (37,), w64, 1e-6)
    y.backward(dy.double())
    for a, b in zip(ours, (y.detach(), x64.grad, w64.grad), strict=True):
        assert rel_rms(a, b) <= 1e-6


def test_cpu_dispatch_uses_reference(monkeypatch):
    monkeypatch.delenv("NAS_KERNELS", raising=False)
    calls = []
    original = reference.rms_norm
    monkeypatch.setattr(reference, "rms_norm", lambda *a: calls.append(1) or original(*a))
    rms_norm(torch.randn(2, 5, dtype=torch.bfloat16), torch.ones(5))  # fp32 takes F.rms_norm
    assert calls == [1]


def test_rmsnorm_block_runs_the_kernel():
    from nas.blocks.norm import RMSNorm

    block = RMSNorm(37).to(DEV)
    with torch.no_grad():
        block.weight.normal_()
    x = torch.randn(2, 13, 37, device=DEV)
    results = {}
    for backend in ("triton", "reference"):
        block.zero_grad()
        xi = x.clone().requires_grad_()
        with force_backend(backend), poison_outputs():
            y = block(xi)
            y.backward(torch.cos(y.detach()))
        results[backend] = (y.detach(), xi.grad, block.weight.grad.clone())
    for a, b in zip(results["triton"], results["reference"], strict=True):
        assert rel_rms(a, b) <= 1e-5


def test_fp64_and_very_long_rows_take_the_reference(monkeypatch):
    from nas.kernels import rmsnorm as op
    from nas.kernels.rmsnorm import triton_rmsnorm

    monkeypatch.setattr(triton_rmsnorm, "rms_norm", None)  # calling the kernel would fail
    with force_backend("triton"):
        x, weight = torch.randn(2, 5, dtype=torch.float64), torch.rand(5, dtype=torch.float64)
        assert rel_rms(rms_norm(x, weight), F.rms_norm(x, (5,), weight, 1e-6)) <= 1e-12
        D = op.MAX_D + 1
        rms_norm(torch.randn(1, D), torch.ones(D))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpu_native_path_matches_reference(dtype, monkeypatch):
    """Off the Triton path fp32/fp64 go through F.rms_norm: outputs and gradients equal the
    reference's."""
    monkeypatch.delenv("NAS_KERNELS", raising=False)
    x = torch.randn(3, 5, 48, dtype=dtype, requires_grad=True)
    weight = torch.randn(48, dtype=dtype, requires_grad=True)
    dy = torch.randn(3, 5, 48, dtype=dtype)
    y = rms_norm(x, weight, 1e-5)
    grads = torch.autograd.grad(y, (x, weight), dy)
    y_ref = reference.rms_norm(x, weight, 1e-5)
    grads_ref = torch.autograd.grad(y_ref, (x, weight), dy)
    torch.testing.assert_close(y, y_ref)
    for g, g_ref in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(g, g_ref)
