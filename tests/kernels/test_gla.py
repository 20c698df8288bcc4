"""Chunked gated linear attention: the chunked reference against a per-step loop, the Triton
kernels (forward and backward) against the reference, the dispatch, and the block wired to it.

Every comparison is against an independent float64 computation: the chunked reference against
`naive_recurrent_gla`, the Triton path (fp32; Triton's CPU interpreter without a GPU) against
the float64 chunked reference — output, final state and the gradient of every input under
random upstream gradients on both outputs — at awkward shapes: T not a multiple of the chunk,
head dims that are not powers of two, Dv ≠ Dk, several sub-chunks per chunk, strong gates.
On a CUDA machine the same tests run the compiled kernels (plus the `gpu`-marked ones).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nas.kernels import force_backend, poison_outputs
from nas.kernels.gla import chunk_gla
from nas.kernels.gla.reference import chunk_gla_reference, naive_recurrent_gla

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
NAMES = ("q", "k", "v", "log_decay", "initial_state")


def make_inputs(B, H, T, Dk, Dv, decay, initial, *, gate_scale=1.0, seed=0):
    """float64 leaves in NAMES order (None where absent). decay: none | head | channel;
    gate_scale multiplies the log decays (large = strong forgetting)."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    q, k, v = randn(B, H, T, Dk) / Dk**0.5, randn(B, H, T, Dk), randn(B, H, T, Dv)
    if decay == "none":
        log_decay = None
    elif decay == "head":  # per head and step, like RetNet's γ_h with some data dependence
        log_decay = -gate_scale * 0.2 * torch.rand(B, H, T, 1, generator=gen, dtype=torch.float64)
    else:  # per channel, GLA's logsigmoid gate
        log_decay = gate_scale * F.logsigmoid(2.0 * randn(B, H, T, Dk) + 1.0) / 4.0
    h0 = randn(B, H, Dk, Dv) if initial else None
    return [t if t is None else t.to(DEVICE) for t in (q, k, v, log_decay, h0)]


def run(fn, inputs, dtype, upstream, **kwargs):
    """(o, S_T, {name: gradient}) of fn under the loss Σ o ⊙ do + Σ S_T ⊙ dS_T (a term is left
    out where its upstream is None), inputs cast to `dtype` (log decays to fp32 at least)."""
    wide = torch.promote_types(dtype, torch.float32)
    leaves = [
        None if t is None else t.to(wide if n == "log_decay" else dtype).requires_grad_()
        for n, t in zip(NAMES, inputs, strict=True)
    ]
    q, k, v, log_decay, h0 = leaves
    o, final = fn(q, k, v, log_decay, initial_state=h0, output_final_state=True, **kwargs)
    do, dfinal = upstream
    loss = 0.0
    if do is not None:
        loss = loss + (o * do.to(o.dtype)).sum()
    if dfinal is not None:
        loss = loss + (final * dfinal.to(final.dtype)).sum()
    loss.backward()
    grads = {  # an input the loss does not reach (q with no upstream on o) has gradient zero
        n: torch.zeros_like(t) if t.grad is None else t.grad
        for n, t in zip(NAMES, leaves, strict=True)
        if t is not None
    }
    return o.detach(), final.detach(), grads


def random_upstream(inputs, seed=1):
    gen = torch.Generator().manual_seed(seed)
    B, H, T, Dk = inputs[0].shape
    Dv = inputs[2].shape[-1]
    do = torch.randn(B, H, T, Dv, generator=gen, dtype=torch.float64).to(DEVICE)
    dfinal = torch.randn(B, H, Dk, Dv, generator=gen, dtype=torch.float64).to(DEVICE)
    return do, dfinal


def rel_rms(got: torch.Tensor, expected: torch.Tensor) -> float:
    """‖got − expected‖ / ‖expected‖."""
    got, expected = got.double(), expected.double()
    return ((got - expected).norm() / expected.norm().clamp_min(1e-30)).item()


def assert_all_close(got, expected, tol):
    (o, final, grads), (o_ref, final_ref, grads_ref) = got, expected
    assert grads.keys() == grads_ref.keys()
    pairs = {"o": (o, o_ref), "final_state": (final, final_ref)}
    pairs.update({f"d{n}": (grads[n], grads_ref[n]) for n in grads})
    for name, (a, b) in pairs.items():
        assert a.shape == b.shape, name
        assert torch.isfinite(a).all(), f"{name} has non-finite entries"
    errors = {name: rel_rms(a, b) for name, (a, b) in pairs.items()}  # 0 vs 0 counts as 0
    bad = {n: f"{e:.2e}" for n, e in errors.items() if not e <= tol}
    assert not bad, f"relative RMS error above {tol}: {bad}"


def reference(q, k, v, log_decay, **kwargs):
    return chunk_gla_reference(q, k, v, log_decay, **kwargs)


def triton_path(q, k, v, log_decay, **kwargs):
    with force_backend("triton"), poison_outputs():
        return chunk_gla(q, k, v, log_decay, **kwargs)


def naive(q, k, v, log_decay, *, initial_state=None, output_final_state=True):
    return naive_recurrent_gla(q, k, v, log_decay, initial_state=initial_state)


# -- the chunked reference is the recurrence ----------------------------------------------------
@pytest.mark.parametrize("initial", [False, True], ids=["zeros", "h0"])
@pytest.mark.parametrize("decay", ["none", "head", "channel"])
@pytest.mark.parametrize("chunk", [16, 32])
def test_reference_equals_naive_recurrence(decay, initial, chunk):
    """Outputs, final state and every gradient, float64; T=45 leaves a partial chunk, and
    chunk 32 gives per-channel decays two sub-chunks."""
    inputs = make_inputs(2, 2, 45, 5, 7, decay, initial, gate_scale=4.0)
    upstream = random_upstream(inputs)
    got = run(reference, inputs, torch.float64, upstream, chunk_size=chunk)
    expected = run(naive, inputs, torch.float64, upstream)
    assert_all_close(got, expected, tol=1e-12)


def test_reference_without_final_state_returns_none():
    q, k, v, log_decay, _ = make_inputs(1, 1, 9, 4, 4, "channel", False)
    o, final = chunk_gla_reference(q, k, v, log_decay, chunk_size=16)
    assert final is None and o.shape == v.shape


# -- Triton against the reference ---------------------------------------------------------------
TRITON_CASES = [  # decay, T, Dk, Dv, chunk, initial state, upstream on (o, final state)
    pytest.param("none", 37, 17, 18, 16, True, (True, True), id="none-T37-Dk17-Dv18-h0"),
    pytest.param("none", 5, 8, 3, 16, False, (True, True), id="none-T5-short"),
    pytest.param("head", 70, 33, 17, 16, False, (True, True), id="head-T70-Dk33-Dv17"),
    pytest.param("head", 50, 16, 33, 32, True, (True, False), id="head-T50-h0-no-dfinal"),
    pytest.param("channel", 70, 17, 18, 32, True, (True, True), id="channel-T70-C32-h0"),
    pytest.param("channel", 45, 16, 17, 16, False, (True, True), id="channel-T45-C16"),
    pytest.param("channel", 50, 33, 34, 64, False, (True, True), id="channel-T50-C64"),
    pytest.param("channel", 40, 17, 16, 32, True, (False, True), id="channel-final-state-only"),
]


@pytest.mark.parametrize("decay,T,Dk,Dv,chunk,initial,upstream", TRITON_CASES)
def test_triton_matches_reference(decay, T, Dk, Dv, chunk, initial, upstream):
    inputs = make_inputs(2, 2, T, Dk, Dv, decay, initial)
    do, dfinal = random_upstream(inputs)
    upstream = (do if upstream[0] else None, dfinal if upstream[1] else None)
    got = run(triton_path, inputs, torch.float32, upstream, chunk_size=chunk)
    expected = run(reference, inputs, torch.float64, upstream, chunk_size=chunk)
    assert_all_close(got, expected, tol=1e-4)


@pytest.mark.parametrize("decay", ["head", "channel"])
def test_triton_strong_gates(decay):
    """Log decays down to about -30 per step (per channel) or -4 (per head): a chunk's
    cumulative log decay is far below fp32's exp range, so any exp(-b) factorisation would be
    inf. Gradients through such gates still match the reference."""
    inputs = make_inputs(1, 2, 45, 17, 16, decay, True, gate_scale=20.0)
    upstream = random_upstream(inputs)
    got = run(triton_path, inputs, torch.float32, upstream, chunk_size=32)
    expected = run(reference, inputs, torch.float64, upstream, chunk_size=32)
    assert_all_close(got, expected, tol=1e-4)


def test_triton_half_precision():
    """fp16 inputs (tl.dot on fp16 operands, fp32 accumulation and states). bf16 is left to the
    GPU test: Triton's CPU interpreter computes bf16 tl.dot wrongly."""
    inputs = make_inputs(1, 2, 40, 16, 17, "channel", True)
    upstream = random_upstream(inputs)
    got = run(triton_path, inputs, torch.float16, upstream, chunk_size=32)
    expected = run(reference, inputs, torch.float64, upstream, chunk_size=32)
    assert got[0].dtype == torch.float16 and got[1].dtype == torch.float32
    assert_all_close(got, expected, tol=5e-3)


# -- dispatch -----------------------------------------------------------------------------------
def test_dispatch(monkeypatch):
    import nas.kernels.gla.triton_gla as triton_gla

    inputs = make_inputs(1, 2, 20, 8, 8, "channel", True)
    q, k, v, log_decay, h0 = (t.float() for t in inputs)
    expected = chunk_gla_reference(q, k, v, log_decay, chunk_size=16, initial_state=h0,
                                   output_final_state=True)
    with force_backend("triton"):
        o, final = chunk_gla(q, k, v, log_decay, chunk_size=16, initial_state=h0,
                             output_final_state=True)
    torch.testing.assert_close((o, final), expected, atol=1e-5, rtol=1e-5)

    def refuse(*args, **kwargs):
        raise AssertionError("the Triton path ran")

    monkeypatch.setattr(triton_gla, "chunk_gla_triton", refuse)
    with force_backend("reference"):
        got = chunk_gla(q, k, v, log_decay, chunk_size=16, initial_state=h0,
                        output_final_state=True)
    torch.testing.assert_close(got, expected, atol=0, rtol=0)
    with force_backend("triton"), pytest.raises(AssertionError, match="Triton path ran"):
        chunk_gla(q, k, v, log_decay, chunk_size=16)
    if DEVICE == "cpu":  # automatic choice on CPU tensors: the reference
        got = chunk_gla(q, k, v, log_decay, chunk_size=16, initial_state=h0,
                        output_final_state=True)
        torch.testing.assert_close(got, expected, atol=0, rtol=0)
        assert chunk_gla(q, k, v, log_decay, chunk_size=16)[1] is None


def test_invalid_arguments():
    q = torch.zeros(1, 2, 8, 4)
    with pytest.raises(ValueError, match="last dimension"):
        chunk_gla(q, q, q, torch.zeros(1, 2, 8, 3))
    with pytest.raises(ValueError, match="chunk_size"):
        chunk_gla(q, q, q, chunk_size=24)
    with pytest.raises(ValueError, match="must be"):
        chunk_gla(q, q[..., :5, :], q)


# -- the block runs the kernel ------------------------------------------------------------------
@pytest.mark.parametrize("decay", ["fixed", "gla"])
def test_linear_attention_block_on_the_triton_path(decay):
    """normalize=denominator makes Dv = Dh + 1; the block's output and every parameter's
    gradient agree between the two backends."""
    from nas.blocks import get_block

    torch.manual_seed(0)
    mixer = get_block("linear_attention").cls(32, 0, heads=2, decay=decay).to(DEVICE)
    mixer.chunk_size = 32  # two chunks, two sub-chunks each, at T = 40
    x = torch.randn(2, 40, 32, device=DEVICE)
    results = []
    for backend in ("reference", "triton"):
        mixer.zero_grad()
        with force_backend(backend), poison_outputs():
            y = mixer(x)
        y.pow(2).sum().backward()
        results.append((y.detach(), {n: p.grad.clone() for n, p in mixer.named_parameters()}))
    (y_ref, g_ref), (y_tri, g_tri) = results
    assert rel_rms(y_tri, y_ref) < 1e-5
    for name in g_ref:
        assert rel_rms(g_tri[name], g_ref[name]) < 1e-4, name


# -- on a GPU: realistic sizes and bf16 ---------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("decay", ["none", "head", "channel"])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.bfloat16, 5e-2)])
def test_triton_on_gpu_at_model_sizes(decay, dtype, tol):
    inputs = make_inputs(2, 4, 300, 64, 65, decay, True)
    upstream = random_upstream(inputs)
    got = run(triton_path, inputs, dtype, upstream, chunk_size=64)
    expected = run(reference, inputs, torch.float64, upstream, chunk_size=64)
    assert_all_close(got, expected, tol=tol)
