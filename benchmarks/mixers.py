"""Every registered token mixer, side by side: parallel (chunked) form vs its recurrence.

For each mixer (registry defaults, plus the knob settings named below) at one width and
sequence length, this times, with the same random input:

- ``parallel``: one ``forward`` over (B, T, D) — the chunked form for linear attention, the
  delta rule and SSMs, SDPA for attention, a conv for convolutions;
- ``recurrent``: ``step`` called T times — the naive token-by-token recurrence that the chunked
  forms replace (and that decoding uses);
- ``train tok/s``: tokens per second of forward + backward over (B, T, D).

It prints one table; ``speedup`` = recurrent / parallel (the issue's goal for the chunked
families is >= 10x at T = 1024). Run it on an otherwise idle machine.

    python benchmarks/mixers.py                         # T=1024, D=64, B=1, 1 thread
    python benchmarks/mixers.py --seq-len 4096 --d-model 128 --threads 2
"""

from __future__ import annotations

import argparse

import torch
from timing import median_seconds

from nas.blocks import get_block, list_blocks

EXTRA_SETTINGS = {  # beyond the defaults: the variants worth timing separately
    "linear_attention": [{"decay": "fixed"}, {"decay": "gla", "normalize": "rmsnorm"}],
    "attention": [{"window": 128}],
    "deltanet": [{"gate": True}],
}


def bench(name: str, knobs: dict, args) -> dict:
    torch.manual_seed(0)
    block = get_block(name, "token_mixer").cls(args.d_model, 0, **knobs)
    x = torch.randn(args.batch, args.seq_len, args.d_model, requires_grad=True)

    def parallel():
        with torch.no_grad():
            block(x)

    def recurrent():
        with torch.no_grad():
            state = None
            for t in range(args.seq_len):
                _, state = block.step(x[:, t], state)

    def train():
        block.zero_grad(set_to_none=True)
        block(x).square().mean().backward()

    par = median_seconds(parallel, args.repeats)
    rec = median_seconds(recurrent, max(1, args.repeats // 3))
    trn = median_seconds(train, args.repeats)
    return {"parallel_ms": par * 1e3, "recurrent_ms": rec * 1e3, "speedup": rec / par,
            "train_tok_s": args.batch * args.seq_len / trn}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", default="*", help="glob over mixer names")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s); B={args.batch} "
          f"T={args.seq_len} D={args.d_model}")
    print(f"{'mixer':<44} {'parallel ms':>12} {'recurrent ms':>13} {'speedup':>8} "
          f"{'train tok/s':>12}")
    for name in list_blocks(args.only, role="token_mixer"):
        for knobs in [{}, *EXTRA_SETTINGS.get(name, [])]:
            try:
                r = bench(name, knobs, args)
            except TypeError as exc:  # a setting for a block version without that knob
                print(f"{name} {knobs}: skipped ({exc})")
                continue
            label = name + ("" if not knobs else " " + ",".join(f"{k}={v}"
                                                                for k, v in knobs.items()))
            print(f"{label:<44} {r['parallel_ms']:>12.2f} {r['recurrent_ms']:>13.1f} "
                  f"{r['speedup']:>7.0f}x {r['train_tok_s']:>12,.0f}")


if __name__ == "__main__":
    main()
