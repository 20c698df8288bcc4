"""Training throughput: a model from `build_model` vs the same network written by hand.

The registry, the knob plumbing and the generic Block must cost nothing at training time. This
script builds an ArchSpec-driven model and a plain, hand-written PyTorch model of exactly the same
shape (pre-norm blocks, RMSNorm, causal attention with RoPE through SDPA or a gated short
convolution, SwiGLU, tied head), copies the weights across so both start identical, feeds both
the same MQAR batches, and times training steps in alternating rounds so machine noise hits
both alike. It reports steps/s of each and the ratio (goal: >= 0.97).

    python benchmarks/throughput.py                      # default shape, CPU
    python benchmarks/throughput.py --d-model 256 --pattern C-A-C-A-C-A --seq-len 256 --device cuda
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from hand_written import GatedShortConv  # benchmarks/hand_written.py, beside this script

from nas.blocks import build_model
from nas.spec import ArchSpec, LayerSpec, ModuleSpec
from nas.tasks import make_task

# -- the hand-written model ------------------------------------------------------------------


class HandRMSNorm(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return F.rms_norm(x, (x.shape[-1],), self.weight, 1e-6)


class HandAttention(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads, self.hd = heads, d // heads
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.out = nn.Linear(d, d, bias=False)
        inv = 10000.0 ** (-torch.arange(0, self.hd, 2).float() / self.hd)
        ang = torch.outer(torch.arange(4096).float(), inv)
        ang = torch.cat((ang, ang), -1)
        self.register_buffer("cos", ang.cos(), persistent=False)
        self.register_buffer("sin", ang.sin(), persistent=False)

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, self.hd).permute(2, 0, 3, 1, 4)
        cos, sin = self.cos[:T], self.sin[:T]

        def rot(t):
            a, b = t.chunk(2, -1)
            return t * cos + torch.cat((-b, a), -1) * sin

        y = F.scaled_dot_product_attention(rot(q), rot(k), v, is_causal=True)
        return self.out(y.transpose(1, 2).reshape(B, T, D))


class HandSwiGLU(nn.Module):
    def __init__(self, d: int, hidden: int) -> None:
        super().__init__()
        self.w_in = nn.Linear(d, 2 * hidden, bias=False)
        self.w_out = nn.Linear(hidden, d, bias=False)

    def forward(self, x):
        a, b = self.w_in(x).chunk(2, -1)
        return self.w_out(F.silu(a) * b)


class HandModel(nn.Module):
    def __init__(self, vocab: int, d: int, mixers: list[nn.Module], hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.mixers = nn.ModuleList(mixers)
        self.norm1 = nn.ModuleList(HandRMSNorm(d) for _ in mixers)
        self.mlps = nn.ModuleList(HandSwiGLU(d, hidden) for _ in mixers)
        self.norm2 = nn.ModuleList(HandRMSNorm(d) for _ in mixers)
        self.norm_f = HandRMSNorm(d)

    def forward(self, tokens):
        x = self.embed(tokens)
        for mix, n1, mlp, n2 in zip(self.mixers, self.norm1, self.mlps, self.norm2, strict=True):
            x = x + mix(n1(x))
            x = x + mlp(n2(x))
        return self.norm_f(x) @ self.embed.weight.t()


# -- the benchmark ---------------------------------------------------------------------------


def make_pair(args) -> tuple[nn.Module, nn.Module]:
    kinds = args.pattern.split("-")
    swiglu = ModuleSpec.make("swiglu", expansion=args.expansion)
    mixers = {"A": ModuleSpec.make("attention", heads=args.heads, kv_heads=args.heads, rope=True,
                                   rope_base=10000.0),
              "C": ModuleSpec.make("short_conv", kernel_size=4)}
    spec = ArchSpec(d_model=args.d_model, vocab_size=args.vocab,
                    layers=tuple(LayerSpec(mixers[k], swiglu) for k in kinds), training={},
                    tie_head=True)  # as the hand model
    ours = build_model(spec, seed=0, device=args.device)
    hidden = math.ceil(2 * args.expansion * args.d_model / 3 / 8) * 8
    hand_mixers = [HandAttention(args.d_model, args.heads) if k == "A"
                   else GatedShortConv(args.d_model, 4) for k in kinds]
    hand = HandModel(args.vocab, args.d_model, hand_mixers, hidden).to(args.device)
    copy_weights(ours, hand)
    return ours, hand


def copy_weights(src: nn.Module, dst: nn.Module) -> None:
    """Same initialization: parameters matched by shape within each layer, in order."""
    a, b = list(src.parameters()), list(dst.parameters())
    shapes_a = sorted(tuple(p.shape) for p in a)
    shapes_b = sorted(tuple(p.shape) for p in b)
    if shapes_a != shapes_b:
        raise SystemExit(f"models differ in shape:\n{shapes_a}\n{shapes_b}")
    pool = {}
    for p in a:
        pool.setdefault(tuple(p.shape), []).append(p)
    with torch.no_grad():
        for p in b:
            p.copy_(pool[tuple(p.shape)].pop(0))


def train_steps(model, batches, lr=1e-3) -> float:
    """Seconds for len(batches) AdamW steps."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    start = time.perf_counter()
    for inputs, targets in batches:
        logits = model(inputs)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if inputs.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def forward_passes(model, batches) -> float:
    """Seconds for one inference forward pass (no autograd) over each batch: prefill latency."""
    start = time.perf_counter()
    with torch.inference_mode():
        for inputs, _ in batches:
            model(inputs)
    if inputs.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pattern", default="C-A-C-A", help="layers: A attention, C short conv")
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--expansion", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=64)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--mode", choices=("train", "forward"), default="train",
                        help="train: AdamW steps; forward: inference forward passes (prefill), "
                             "e.g. --mode forward --batch 1 --seq-len 64 --threads 1")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load = f"{os.getloadavg()[0]:.2f}"
    ours, hand = make_pair(args)
    task = make_task({"kind": "mqar", "vocab_size": args.vocab, "seq_len": args.seq_len,
                      "num_kv_pairs": max(1, min(args.seq_len // 8, (args.vocab - 2) // 2))})
    gen = torch.Generator().manual_seed(0)
    batches = [tuple(t.to(args.device) for t in task.sample(args.batch, gen))
               for _ in range(args.steps)]
    with torch.no_grad():  # identical start: identical outputs
        x = batches[0][0]
        diff = (ours(x) - hand(x)).abs().max().item()
    timed = train_steps if args.mode == "train" else forward_passes
    if args.mode == "forward":
        ours.eval(), hand.eval()
    timed(ours, batches[:2])  # warm up both
    timed(hand, batches[:2])
    t_ours, t_hand = [], []
    for _ in range(args.rounds):  # alternate so drift and noise hit both alike
        t_ours.append(timed(ours, batches))
        t_hand.append(timed(hand, batches))
    ours_sps = args.steps / statistics.median(t_ours)
    hand_sps = args.steps / statistics.median(t_hand)
    unit = "steps/s" if args.mode == "train" else "passes/s"
    device = (torch.cuda.get_device_name() if args.device.startswith("cuda")
              else f"{cpu_name()}, {torch.get_num_threads()} threads")
    print(f"device: {device}; torch {torch.__version__}")
    print(f"shape: {args.pattern} d_model={args.d_model} heads={args.heads} swiglu×"
          f"{args.expansion} batch={args.batch} seq_len={args.seq_len}; "
          f"{args.rounds} rounds × {args.steps} steps; max |Δlogits| at init {diff:.2e}")
    print(f"mode: {args.mode}; load average before/after: {load}, {os.getloadavg()[0]:.2f}")
    print(f"build_model : {ours_sps:8.2f} {unit}  ({1e3 / ours_sps:.3f} ms each)")
    print(f"hand-written: {hand_sps:8.2f} {unit}  ({1e3 / hand_sps:.3f} ms each)")
    print(f"ratio       : {ours_sps / hand_sps:8.3f}  (goal >= 0.97)")


if __name__ == "__main__":
    main()
