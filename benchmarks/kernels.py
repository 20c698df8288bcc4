"""Each fused op of nas.kernels against its PyTorch reference, eager and under torch.compile.

For every op at LM shapes (B·T = 16k–64k tokens, H = 8–16, head dims 64–128) it times the
forward and forward+backward of three implementations with the same random inputs:

- ``triton``: the Triton kernel (needs CUDA; skipped on a CPU, where Triton only interprets);
- ``eager``: the reference the kernel is tested against (the chunked PyTorch form);
- ``compiled``: `torch.compile` of that reference (skipped with ``--no-compile``).

It prints one table per op with milliseconds (median of CUDA-event or perf_counter timings after
warmup), achieved TFLOP/s (chunked ops, from the analytic count below) or GB/s (elementwise ops,
from the bytes each must read and write once), and triton's speedup over eager. On a CPU the
default shapes are cut 16x (``--scale``) so the reference finishes; the figures that matter come
from a GPU:

    python benchmarks/kernels.py                      # every op, default shapes
    python benchmarks/kernels.py --only gla --seq-len 4096 --dtype bf16
"""

from __future__ import annotations

import argparse
import fnmatch
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch
from timing import median_seconds

from nas import kernels
from nas.kernels import force_backend


@dataclass
class Case:
    """One op at one shape: `make()` returns (inputs that need grad, fixed inputs); `run(*xs)`
    returns the output(s) to backpropagate; `work` is FLOPs (compute=True) or bytes."""

    op: str
    shape: str
    make: Callable[[], tuple[list[torch.Tensor], list[torch.Tensor]]]
    run: Callable[..., object]
    reference: Callable[..., object]
    fwd_work: float
    compute: bool


def chunked_flops(B: int, H: int, T: int, Dk: int, Dv: int, C: int) -> float:
    """Forward FLOPs of a chunked linear recurrence: per token and head, the chunk's state
    update and readout (2·2·Dk·Dv) and the intra-chunk scores and their product (2·C·(Dk+Dv))."""
    return float(B * H * T * (4 * Dk * Dv + 2 * C * (Dk + Dv)))


def first(out):
    return out[0] if isinstance(out, tuple) else out


def cases(args, device: torch.device, dtype: torch.dtype) -> list[Case]:
    from nas.kernels.delta_rule import chunk_delta_rule
    from nas.kernels.delta_rule import reference as delta_ref
    from nas.kernels.gla import chunk_gla
    from nas.kernels.gla import reference as gla_ref
    from nas.kernels.rmsnorm import reference as rms_ref
    from nas.kernels.rmsnorm import rms_norm
    from nas.kernels.short_conv import causal_conv1d
    from nas.kernels.short_conv import reference as conv_ref
    from nas.kernels.swiglu import reference as swiglu_ref
    from nas.kernels.swiglu import swiglu

    B, T, H, Dh, C = args.batch, args.seq_len // args.scale, args.heads, args.head_dim, 64
    D = H * Dh
    size = dtype.itemsize

    def rand(*shape, scale=1.0):
        return (torch.randn(*shape, device=device) * scale).to(dtype)

    def qkv():
        q, k = rand(B, H, T, Dh, scale=Dh**-0.5), rand(B, H, T, Dh, scale=Dh**-0.5)
        return q, k, rand(B, H, T, Dh)

    def gla_inputs():
        q, k, v = qkv()
        g = torch.nn.functional.logsigmoid(torch.randn(B, H, T, Dh, device=device)) / 16
        return [q, k, v, g], []

    def delta_inputs():
        q, k, v = qkv()
        q, k = (torch.nn.functional.normalize(t.float(), dim=-1).to(dtype) for t in (q, k))
        beta = torch.rand(B, H, T, device=device).to(dtype)
        g = -torch.rand(B, H, T, device=device) * 0.1
        return [q, k, v, beta, g], []

    shape = f"B={B} T={T} H={H} D={Dh}"
    flops = chunked_flops(B, H, T, Dh, Dh, C)
    N = B * T
    return [
        Case("gla", shape + " per-channel gate", gla_inputs,
             lambda q, k, v, g: chunk_gla(q, k, v, g, chunk_size=C),
             lambda q, k, v, g: gla_ref.chunk_gla_reference(q, k, v, g, chunk_size=C),
             flops, True),
        Case("delta_rule", shape + " gated", delta_inputs,
             lambda q, k, v, b, g: chunk_delta_rule(q, k, v, b, g, chunk_size=C),
             lambda q, k, v, b, g: delta_ref.chunk_delta_rule_reference(
                 q, k, v, b, g, chunk_size=C),
             flops + B * H * T * 2 * C * (2 * Dh), True),  # + the per-chunk WY products
        Case("rmsnorm", f"N={N} D={D}", lambda: ([rand(N, D), rand(D)], []),
             lambda x, w: rms_norm(x, w), lambda x, w: rms_ref.rms_norm(x, w),
             float(2 * N * D * size), False),
        Case("swiglu", f"N={N} D={4 * D}", lambda: ([rand(N, 4 * D), rand(N, 4 * D)], []),
             swiglu, swiglu_ref.swiglu, float(3 * N * 4 * D * size), False),
        Case("short_conv", f"B={B} T={T} D={D} K=4",
             lambda: ([rand(B, T, D), rand(D, 4)], []),
             causal_conv1d, conv_ref.causal_conv1d, float(2 * B * T * D * size), False),
    ]


def timer(device: torch.device) -> Callable[[Callable[[], object], int], float]:
    """median seconds of fn() over `repeats` runs, after two warmups (which also absorb
    torch.compile's compilation)."""

    def cuda_time(fn, repeats):
        for _ in range(2):
            fn()
        times = []
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        return statistics.median(times)

    def cpu_time(fn, repeats):
        return median_seconds(fn, repeats, warmup=2)

    return cuda_time if device.type == "cuda" else cpu_time


def measure(case: Case, impl: str, fn: Callable[..., object], args, time_fn) -> dict:
    torch.manual_seed(0)
    grads, fixed = case.make()
    grads = [g.detach().requires_grad_(g.is_floating_point()) for g in grads]
    upstream = torch.randn_like(first(fn(*grads, *fixed)).float()).to(grads[0].dtype)

    def forward():
        with torch.no_grad():
            fn(*grads, *fixed)

    def forward_backward():
        out = first(fn(*grads, *fixed))
        torch.autograd.backward(out, upstream)
        for g in grads:
            g.grad = None

    backend = "triton" if impl == "triton" else "reference"
    with force_backend(backend):
        fwd = time_fn(forward, args.repeats)
        both = time_fn(forward_backward, args.repeats)
    rate = 1e12 if case.compute else 1e9
    return {"fwd_ms": fwd * 1e3, "fwdbwd_ms": both * 1e3,
            "fwd_rate": case.fwd_work / fwd / rate, "fwdbwd_rate": 3 * case.fwd_work / both / rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=4096)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="bf16")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--scale", type=int, default=None, help="divide T by this (CPU: 16)")
    parser.add_argument("--threads", type=int, default=1, help="CPU only: intra-op threads")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--only", default="*", help="glob over op names")
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if args.dtype == "bf16" and cuda else torch.float32
    args.scale = args.scale or (1 if cuda else 16)
    if not cuda:
        torch.set_num_threads(args.threads)
    name = torch.cuda.get_device_name() if cuda else "CPU (no CUDA: Triton rows skipped)"
    print(f"# {name} · torch {torch.__version__} · {dtype} · triton "
          f"{'available' if kernels.triton_available() else 'missing'}")
    time_fn = timer(device)
    for case in cases(args, device, dtype):
        if not fnmatch.fnmatch(case.op, args.only):
            continue
        impls: dict[str, Callable[..., object]] = {"eager": case.reference}
        if cuda and kernels.triton_available():
            impls = {"triton": case.run, **impls}
        if not args.no_compile:
            impls["compiled"] = torch.compile(case.reference)
        unit = "TFLOP/s" if case.compute else "GB/s"
        print(f"\n## {case.op} ({case.shape})\n")
        print(f"| impl | fwd ms | fwd {unit} | fwd+bwd ms | fwd+bwd {unit} | fwd+bwd vs eager |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        rows = {impl: measure(case, impl, fn, args, time_fn) for impl, fn in impls.items()}
        for impl, r in rows.items():
            ratio = rows["eager"]["fwdbwd_ms"] / r["fwdbwd_ms"]
            print(f"| {impl} | {r['fwd_ms']:.3f} | {r['fwd_rate']:.3g} | {r['fwdbwd_ms']:.3f} | "
                  f"{r['fwdbwd_rate']:.3g} | {ratio:.2f}× |")


if __name__ == "__main__":
    main()
