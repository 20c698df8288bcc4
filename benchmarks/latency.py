"""How trustworthy the latency objective is, and what it shows about the mixers.

Two measurements, on whatever device runs this (CUDA if present, else the CPU at --threads):

1. **Noise.** The same model is measured ``--sessions`` times with `measure_latency` (each a
   full measurement: warmup, repeats until the spread target or the time cap); the coefficient
   of variation (stdev / mean) of the reported medians is what a search sees when it compares
   two architectures. Goal: <= 10 % on a CPU, <= 3 % on a GPU.
2. **Crossover.** Models of one mixer family (``--layers`` layers of attention, linear
   attention, Mamba-2, ...) are timed at growing sequence lengths, prefill (batch × T forward)
   and decode (one token at a context of T). The table shows where a linear-time layer gets
   faster than softmax attention on this device, which the hybrid literature puts at a few
   thousand tokens for prefill on GPUs and much earlier for decode.

    python benchmarks/latency.py                                  # CPU, 1 thread
    python benchmarks/latency.py --threads 2 --lengths 256,1024,4096
    python benchmarks/latency.py --eager          # on CUDA: no CUDA graphs (launch-bound)
"""

from __future__ import annotations

import argparse
import statistics

import torch

from nas.blocks import build_model
from nas.evaluate.device import device_fingerprint
from nas.evaluate.latency import measure_latency
from nas.spec import ArchSpec, LayerSpec, ModuleSpec

FAMILIES = {
    "attention": ModuleSpec.make("attention", heads=4),
    "linear_attention": ModuleSpec.make("linear_attention", heads=4),
    "linear_attention gla": ModuleSpec.make("linear_attention", heads=4, decay="gla"),
    "deltanet": ModuleSpec.make("deltanet", heads=4),
    "mamba2": ModuleSpec.make("mamba2"),
    "short_conv": ModuleSpec.make("short_conv"),
}
VOCAB = 256


def model_of(mixer: ModuleSpec, d_model: int, layers: int, device: str):
    layer = LayerSpec(mixer=mixer, channel_mixer=ModuleSpec.make("swiglu", expansion=2))
    spec = ArchSpec(d_model=d_model, vocab_size=VOCAB, layers=(layer,) * layers)
    return build_model(spec, seed=0, device=device).eval()


def noise(args, device: str) -> None:
    print(f"\n## Noise: {args.sessions} measurements of one model each\n")
    print("| model | phase | seq_len | mean ms | CV of medians | mean in-run spread | graphed |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for family in ("attention", "linear_attention"):
        model = model_of(FAMILIES[family], args.d_model, args.layers, device)
        for phase, seq_len in (("prefill", 512), ("decode", 512), ("train_step", 256)):
            results = [
                measure_latency(model, batch=1, seq_len=seq_len, vocab_size=VOCAB, phase=phase,
                                seed=session, cuda_graph=not args.eager)
                for session in range(args.sessions)
            ]
            medians = [r.median_ms for r in results]
            cv = statistics.stdev(medians) / statistics.mean(medians)
            spread = statistics.mean(r.spread for r in results)
            print(f"| {family} | {phase} | {seq_len} | {statistics.mean(medians):.3f} | "
                  f"{cv:.1%} | {spread:.1%} | {all(r.graphed for r in results)} |")


def crossover(args, device: str) -> None:
    lengths = [int(x) for x in args.lengths.split(",")]
    for phase in ("prefill", "decode"):
        print(f"\n## {phase} ms by sequence length (batch 1, {args.layers} layers, "
              f"d_model {args.d_model})\n")
        print("| family | " + " | ".join(f"T={t}" for t in lengths) + " |")
        print("| --- |" + " ---: |" * len(lengths))
        timings: dict[str, list[float]] = {}
        for family, mixer in FAMILIES.items():
            model = model_of(mixer, args.d_model, args.layers, device)
            timings[family] = [
                measure_latency(model, batch=1, seq_len=t, vocab_size=VOCAB, phase=phase,
                                max_seconds=args.max_seconds, cuda_graph=not args.eager).median_ms
                for t in lengths
            ]
            print(f"| {family} | " + " | ".join(f"{ms:.3f}" for ms in timings[family]) + " |")
        for family, times in timings.items():
            if family != "attention":
                print(f"\n{family} vs attention ({phase}): "
                      f"{crossover_point(lengths, times, timings['attention'])}", end="")
        print()


def crossover_point(lengths: list[int], times: list[float], reference: list[float]) -> str:
    """Where `times` beats `reference` from some length on (and at every longer one)."""
    faster = [ms < ref for ms, ref in zip(times, reference, strict=True)]
    if all(faster):
        return f"faster at every length measured (from T={lengths[0]})"
    if not faster[-1]:
        return f"not faster by T={lengths[-1]}"
    first = max(i for i, f in enumerate(faster) if not f) + 1
    return f"faster from T={lengths[first]} (slower at T={lengths[first - 1]})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--lengths", default="128,512,1024,2048,4096")
    parser.add_argument("--max-seconds", type=float, default=2.0)
    parser.add_argument("--skip-noise", action="store_true")
    parser.add_argument("--eager", action="store_true", help="on CUDA, time without CUDA graphs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print("# " + ", ".join(f"{k}={v}" for k, v in device_fingerprint(device).items()))
    if not args.skip_noise:
        noise(args, device)
    crossover(args, device)


if __name__ == "__main__":
    main()
