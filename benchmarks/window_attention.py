"""Sliding-window attention's training cost: the blocked path vs a dense (T, T) mask vs full
causal attention, forward + backward of one attention layer.

    python benchmarks/window_attention.py                  # B=4, T=2048, d_model 256, 1 thread
    python benchmarks/window_attention.py --seq-len 4096 --windows 128,512
"""

from __future__ import annotations

import argparse

import torch
from timing import median_seconds

from nas.blocks import get_block
from nas.blocks.attention import sliding_window_mask


def median_ms(fn, repeats: int) -> float:
    return median_seconds(fn, repeats) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--windows", default="64,256")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch, args.seq_len, args.d_model, requires_grad=True)
    attention = get_block("attention").cls
    full = attention(args.d_model, 0, heads=args.heads)
    full_ms = median_ms(lambda: full(x).sum().backward(), args.repeats)
    print(f"B={args.batch} T={args.seq_len} d_model={args.d_model} heads={args.heads}, "
          f"{args.threads} thread(s), forward + backward ms\n")
    print("| window | blocked | dense mask | full causal |")
    print("| ---: | ---: | ---: | ---: |")
    for window in map(int, args.windows.split(",")):
        layer = attention(args.d_model, 0, heads=args.heads, window=window)
        blocked = median_ms(lambda: layer(x).sum().backward(), args.repeats)  # noqa: B023
        dense_mask = sliding_window_mask(args.seq_len, window)
        layer._window_mask = lambda T, device: dense_mask  # noqa: B023 — force the dense path
        dense = median_ms(lambda: layer(x).sum().backward(), args.repeats)  # noqa: B023
        print(f"| {window} | {blocked:.0f} | {dense:.0f} | {full_ms:.0f} |")


if __name__ == "__main__":
    main()
