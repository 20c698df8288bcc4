"""The chunked (gated) delta rule: the reference chunked form against a per-step loop, and the
Triton kernels (forward and backward; Triton's CPU interpreter here) against the reference.

Every comparison is against an independent float64 computation: the chunked reference against
`naive_recurrent_delta_rule` (outputs, final state, gradients), the fp32 Triton path against the
float64 chunked reference (output, final state and the gradient of every input, with random
upstream gradients on both outputs), at awkward shapes: T not a multiple of the chunk (16 here,
so several chunks at small T), head dims that are not powers of two, Dv split over tiles.
(Named apart from tests/blocks/test_delta_rule.py: the test folders are not packages.)
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nas.kernels import force_backend, poison_outputs
from nas.kernels.delta_rule import chunk_delta_rule
from nas.kernels.delta_rule.reference import chunk_delta_rule_reference, naive_recurrent_delta_rule

CHUNK = 16
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # compiled kernels there, else interpreted
NAMES = ("q", "k", "v", "beta", "log_decay", "initial_state")


def make_inputs(B, H, T, Dk, Dv, *, gated, initial, decay_scale=1.0, seed=0):
    """float64 leaves in NAMES order (None where absent); unit-norm q, k, β ∈ (0, 1)."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    q = F.normalize(randn(B, H, T, Dk), dim=-1)
    k = F.normalize(randn(B, H, T, Dk), dim=-1)
    v = randn(B, H, T, Dv)
    beta = torch.rand(B, H, T, generator=gen, dtype=torch.float64) * 0.98 + 0.01
    log_decay = (
        -decay_scale * torch.rand(B, H, T, generator=gen, dtype=torch.float64) if gated else None
    )
    h0 = randn(B, H, Dk, Dv) if initial else None
    return [None if t is None else t.to(DEVICE) for t in (q, k, v, beta, log_decay, h0)]


def run(fn, inputs, dtype, upstream, final_grad=True, **kwargs):
    """fn's outputs and the gradients of every present input under the loss
    Σ o ⊙ do (+ Σ M_T ⊙ dM_T), inputs cast to `dtype`. Returns (o, M_T, {name: grad})."""
    leaves = [None if t is None else t.to(dtype).requires_grad_() for t in inputs]
    q, k, v, beta, log_decay, h0 = leaves
    o, final = fn(q, k, v, beta, log_decay, initial_state=h0, output_final_state=True, **kwargs)
    do, dfinal = upstream
    loss = (o * do.to(o.dtype)).sum()
    if final_grad:
        loss = loss + (final * dfinal.to(final.dtype)).sum()
    loss.backward()
    grads = {n: t.grad for n, t in zip(NAMES, leaves, strict=True) if t is not None}
    return o.detach(), final.detach(), grads


def random_upstream(inputs, seed=1):
    gen = torch.Generator().manual_seed(seed)
    v, k = inputs[2], inputs[1]
    B, H, T, Dv = v.shape
    do = torch.randn(B, H, T, Dv, generator=gen, dtype=torch.float64)
    dfinal = torch.randn(B, H, k.shape[-1], Dv, generator=gen, dtype=torch.float64)
    return do.to(DEVICE), dfinal.to(DEVICE)


def rel_rms(got: torch.Tensor, expected: torch.Tensor) -> float:
    """‖got − expected‖ / ‖expected‖ (root mean squares)."""
    got, expected = got.double(), expected.double()
    return ((got - expected).norm() / expected.norm().clamp_min(1e-30)).item()


def assert_close_all(got, expected, tol, label=""):
    (o, final, grads), (o_ref, final_ref, grads_ref) = got, expected
    assert grads.keys() == grads_ref.keys()
    errors = {"o": rel_rms(o, o_ref), "final_state": rel_rms(final, final_ref)}
    errors.update({f"d{n}": rel_rms(grads[n], grads_ref[n]) for n in grads})
    assert all(torch.isfinite(t).all() for t in (o, final, *grads.values())), label
    bad = {n: e for n, e in errors.items() if not e <= tol}
    assert not bad, f"{label}: relative RMS errors above {tol}: {bad}"


# -- (a) the chunked reference is the recurrence ----------------------------------------------
@pytest.mark.parametrize("gated", [False, True], ids=["deltanet", "gated"])
@pytest.mark.parametrize("initial", [False, True], ids=["zero-state", "initial-state"])
@pytest.mark.parametrize("T,chunk", [(37, CHUNK), (48, CHUNK), (9, 64)])
def test_reference_chunked_equals_recurrence(gated, initial, T, chunk):
    inputs = make_inputs(2, 2, T, 5, 7, gated=gated, initial=initial, decay_scale=2.0)
    upstream = random_upstream(inputs)
    got = run(chunk_delta_rule_reference, inputs, torch.float64, upstream, chunk_size=chunk)
    expected = run(naive_recurrent_delta_rule, inputs, torch.float64, upstream)
    assert_close_all(got, expected, 1e-10, f"T={T} C={chunk}")


def test_reference_without_final_state_and_in_low_precision():
    inputs = make_inputs(1, 2, 20, 8, 8, gated=True, initial=False)
    q, k, v, beta, g, _ = inputs
    o, final = chunk_delta_rule_reference(q, k, v, beta, g, chunk_size=CHUNK)
    assert final is None
    o16, final16 = chunk_delta_rule_reference(
        *(t.bfloat16() for t in (q, k, v, beta)), g.float(), chunk_size=CHUNK,
        output_final_state=True,
    )
    assert o16.dtype == torch.bfloat16 and final16.dtype == torch.float32
    assert rel_rms(o16, o) < 2e-2


# -- (b) Triton kernels vs the reference ---------------------------------------------------------
TRITON_CASES = [
    # (B, H, T, Dk, Dv, max Dv tile)
    pytest.param(1, 2, 37, 17, 33, 64, id="T37-Dk17-Dv33"),
    pytest.param(2, 2, 16, 33, 17, 64, id="T16-one-chunk-Dk33-Dv17"),
    pytest.param(1, 2, 70, 16, 20, 16, id="T70-Dv20-two-Dv-tiles"),
]


def triton_vs_reference(shape, max_bv, monkeypatch, *, gated, initial, decay_scale=1.0,
                        final_grad=True, tol=2e-5):
    from nas.kernels.delta_rule import triton_delta_rule

    monkeypatch.setattr(triton_delta_rule, "MAX_BV", max_bv)
    inputs = make_inputs(*shape, gated=gated, initial=initial, decay_scale=decay_scale)
    upstream = random_upstream(inputs)
    with force_backend("triton"), poison_outputs():
        got = run(chunk_delta_rule, inputs, torch.float32, upstream, final_grad,
                  chunk_size=CHUNK)
    expected = run(chunk_delta_rule_reference, inputs, torch.float64, upstream, final_grad,
                   chunk_size=CHUNK)
    assert got[0].dtype == torch.float32 and got[1].dtype == torch.float32
    assert_close_all(got, expected, tol, f"{shape} gated={gated} initial={initial}")


@pytest.mark.parametrize("gated", [False, True], ids=["deltanet", "gated"])
@pytest.mark.parametrize("initial", [False, True], ids=["zero-state", "initial-state"])
@pytest.mark.parametrize("B,H,T,Dk,Dv,max_bv", TRITON_CASES)
def test_triton_matches_reference(B, H, T, Dk, Dv, max_bv, gated, initial, monkeypatch):
    triton_vs_reference((B, H, T, Dk, Dv), max_bv, monkeypatch, gated=gated, initial=initial)


def test_triton_strong_decay_and_no_final_state_gradient(monkeypatch):
    """log α down to -5 per step: a chunk's cumulative log decay reaches about -40, which would
    overflow any exp(-b) factorisation; no upstream gradient on the final state."""
    triton_vs_reference((1, 2, 40, 16, 16), 64, monkeypatch, gated=True, initial=True,
                        decay_scale=5.0, final_grad=False)


def test_triton_without_final_state_and_only_a_final_state_loss():
    inputs = [t.float() if t is not None else None
              for t in make_inputs(1, 2, 21, 16, 16, gated=True, initial=True)]
    q, k, v, beta, g, h0 = inputs
    with force_backend("triton"), poison_outputs():
        o, final = chunk_delta_rule(q, k, v, beta, g, chunk_size=CHUNK, initial_state=h0)
    assert final is None
    torch.testing.assert_close(o, chunk_delta_rule_reference(q, k, v, beta, g, chunk_size=CHUNK,
                                                     initial_state=h0)[0], atol=1e-5, rtol=1e-5)
    # a loss on the final state alone: the output's gradient is absent, not zero-filled by us
    leaves = [t.clone().requires_grad_() for t in inputs]
    with force_backend("triton"), poison_outputs():
        _, final = chunk_delta_rule(*leaves[:5], chunk_size=CHUNK, initial_state=leaves[5],
                                    output_final_state=True)
    final.square().sum().backward()
    ref = [t.double().requires_grad_() for t in inputs]
    _, final_ref = chunk_delta_rule_reference(*ref[:5], chunk_size=CHUNK, initial_state=ref[5],
                                      output_final_state=True)
    final_ref.square().sum().backward()
    for name, a, b in zip(NAMES, leaves, ref, strict=True):
        if name == "q":  # the final state does not depend on q
            assert b.grad is None and torch.equal(a.grad, torch.zeros_like(a))
        else:
            assert rel_rms(a.grad, b.grad) < 2e-5, name


def test_triton_bfloat16_inputs():
    """bf16 q, k, v, β (fp32 log α): computed in fp32, o and gradients come back in the inputs'
    dtypes, close to the float64 reference of the same rounded inputs."""
    inputs = make_inputs(1, 2, 37, 16, 16, gated=True, initial=True)
    inputs = [t.bfloat16().double() for t in inputs[:4]] + inputs[4:]  # representable in bf16
    upstream = random_upstream(inputs)
    leaves = [t.to(torch.bfloat16 if i < 4 else torch.float32).requires_grad_()
              for i, t in enumerate(inputs)]
    with force_backend("triton"), poison_outputs():
        o, final = chunk_delta_rule(*leaves[:5], chunk_size=CHUNK, initial_state=leaves[5],
                                    output_final_state=True)
    assert o.dtype == torch.bfloat16 and final.dtype == torch.float32
    ((o.float() * upstream[0].float()).sum() + (final * upstream[1].float()).sum()).backward()
    expected = run(chunk_delta_rule_reference, inputs, torch.float64, upstream, chunk_size=CHUNK)
    assert rel_rms(o, expected[0]) < 1e-2 and rel_rms(final, expected[1]) < 1e-2
    for name, leaf in zip(NAMES, leaves, strict=True):
        assert leaf.grad.dtype == leaf.dtype, name
        assert rel_rms(leaf.grad, expected[2][name]) < 1e-2, name


def test_block_runs_the_kernel_when_forced():
    """DeltaNet (gated) forward and backward through the Triton path equal the reference path."""
    from nas.blocks import get_block

    torch.manual_seed(0)
    mixer = get_block("deltanet").cls(32, 0, heads=2, gate=True).to(DEVICE)
    x = torch.randn(2, 21, 32, device=DEVICE)
    results = []
    for backend in ("reference", "triton"):
        mixer.zero_grad()
        xb = x.clone().requires_grad_()
        with force_backend(backend), poison_outputs():
            y = mixer(xb)
        (y * torch.linspace(-1, 1, 32, device=DEVICE)).sum().backward()
        grads = [p.grad.clone() for p in mixer.parameters()]
        results.append((y.detach(), xb.grad, grads))
    (y_ref, dx_ref, g_ref), (y, dx, g) = results
    assert rel_rms(y, y_ref) < 2e-5 and rel_rms(dx, dx_ref) < 2e-5
    assert all(rel_rms(a, b) < 2e-5 for a, b in zip(g, g_ref, strict=True))


# -- (c) dispatch -----------------------------------------------------------------------------
def test_cpu_dispatches_to_the_reference(monkeypatch):
    from nas.kernels.delta_rule import triton_delta_rule

    def fail(*args, **kwargs):
        raise AssertionError("the Triton path ran")

    monkeypatch.setattr(triton_delta_rule, "chunk_delta_rule_triton", fail)
    inputs = [t.float().cpu() if t is not None else None
              for t in make_inputs(1, 2, 20, 8, 8, gated=True, initial=True)]
    q, k, v, beta, g, h0 = inputs
    o, final = chunk_delta_rule(q, k, v, beta, g, chunk_size=CHUNK, initial_state=h0,
                                output_final_state=True)
    o_ref, final_ref = chunk_delta_rule_reference(q, k, v, beta, g, chunk_size=CHUNK,
                                          initial_state=h0, output_final_state=True)
    assert torch.equal(o, o_ref) and torch.equal(final, final_ref)
    with force_backend("triton"), pytest.raises(AssertionError, match="Triton path ran"):
        chunk_delta_rule(q, k, v, beta, g, chunk_size=CHUNK)
    with force_backend("triton"):  # float64 always takes the reference
        chunk_delta_rule(*(t.double() for t in (q, k, v, beta, g)), chunk_size=CHUNK)


def test_shape_errors_name_the_argument():
    q = torch.randn(1, 2, 8, 4)
    with pytest.raises(ValueError, match="beta"):
        chunk_delta_rule(q, q, q, torch.rand(1, 2, 7))
    with pytest.raises(ValueError, match="initial_state"):
        chunk_delta_rule(q, q, q, torch.rand(1, 2, 8), initial_state=torch.zeros(1, 2, 4, 5))
