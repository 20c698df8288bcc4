"""Latency as a search sees it: one architecture measured in many fresh processes.

`benchmarks/latency.py` times one model again and again inside one warm process. A search does
not: every trial's latency is one `measure_latency` call in a worker that may just have been
started or have sat idle. This script starts ``--sessions`` fresh Python processes per rule (the
rules interleaved), each building the same small model (the quickstart's scale: a pass takes
about a millisecond on a CPU) and measuring it once, and reports the spread of those medians.
Two stopping rules are compared:

- ``counted`` (the defaults): 3 warmup passes, stop at 5 repeats once the spread is under 5 %
  or the median's relative standard error under 1 % (at most 50 repeats, 2 s);
- ``floored``: the same, but warm up for >= 0.2 s and time for >= 0.25 s (up to 5000 repeats).

    python benchmarks/latency_sessions.py                    # 20 sessions per rule, 1 thread
    python benchmarks/latency_sessions.py --sessions 20 --d-model 64 --seq-len 64
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

RULES = {
    "counted": {},  # the defaults
    "floored": {"warmup_seconds": 0.2, "min_seconds": 0.25, "max_repeats": 5000},
}

CHILD = """
import json, sys, time, torch
from nas.blocks import build_model
from nas.evaluate.latency import measure_latency
from nas.spec import ArchSpec, LayerSpec, ModuleSpec
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
channel = ModuleSpec.make("swiglu", expansion=2)
layers = (LayerSpec(ModuleSpec.make("attention", heads=2), channel),
          LayerSpec(ModuleSpec.make("linear_attention", heads=2), channel))
spec = ArchSpec(d_model=args["d_model"], vocab_size=32, layers=layers)
model = build_model(spec, seed=0)
start = time.perf_counter()
result = measure_latency(model, batch=2, seq_len=args["seq_len"], vocab_size=32,
                         seed=args["seed"], **args["rule"])
print(json.dumps({"median_ms": result.median_ms, "spread": result.spread,
                  "repeats": result.repeats, "seconds": time.perf_counter() - start}))
"""


def session(rule: dict, seed: int, args) -> dict:
    payload = json.dumps({"rule": rule, "seed": seed, "threads": args.threads,
                          "d_model": args.d_model, "seq_len": args.seq_len})
    out = subprocess.run([sys.executable, "-c", CHILD, payload], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--d-model", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--idle", type=float, default=1.0,
                        help="seconds to sleep before each session (a worker waiting for work)")
    args = parser.parse_args()
    print(f"{args.sessions} fresh processes per rule, attention + linear attention, d_model "
          f"{args.d_model}, batch 2 x {args.seq_len} tokens, prefill, {args.threads} thread(s)\n")
    print("| rule | mean ms | CV of medians | min-max ms | mean repeats | mean s per call |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    results: dict[str, list[dict]] = {name: [] for name in RULES}
    for seed in range(args.sessions):  # rules interleaved: both see the same machine weather
        for name, rule in RULES.items():
            time.sleep(args.idle)
            results[name].append(session(rule, seed, args))
    for name, runs in results.items():
        medians = [r["median_ms"] for r in runs]
        mean = statistics.mean(medians)
        print(f"| {name} | {mean:.3f} | {statistics.stdev(medians) / mean:.1%} | "
              f"{min(medians):.3f}-{max(medians):.3f} | "
              f"{statistics.mean(r['repeats'] for r in runs):.0f} | "
              f"{statistics.mean(r['seconds'] for r in runs):.2f} |", flush=True)


if __name__ == "__main__":
    main()
