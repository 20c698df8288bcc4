"""Timing that notices its machine: one small search run idle, then again with CPU burners.

Runs `nas search` on benchmarks/spaces/contention.yaml (the quickstart's architectures, a short
fixed training recipe, random sampling with a fixed seed, so both runs try the same
architectures) twice, each into its own fresh database (no shared latency cache): once on the
machine as it is, once with ``--burners`` busy-loop processes, each pinned to its own core, for
the whole run. Both runs use the same timing policy (``--threads`` torch threads per worker).

It reports, per architecture both runs completed, the reported latency (the trial's final
objective, after the front's re-measurement) idle and loaded, how far the loaded one is from the
idle one, and whether the loaded run flagged it contended; then Kendall's τ between the two
latency rankings. Goal (issue 20): τ >= 0.9, and no loaded latency more than 25 % from its idle
value unless flagged contended. Run it on an otherwise quiet machine: the "idle" run is only as
idle as the machine (its load is printed before each run).

    python benchmarks/contention.py                       # 10 trials per run, cores-1 burners
    python benchmarks/contention.py --burners 2           # every core busy: all flagged?
    python benchmarks/contention.py --trials 2 --steps 5  # smoke test, well under a minute
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPACE = ROOT / "benchmarks" / "spaces" / "contention.yaml"
OBJECTIVE = "latency_ms"
OFF_LIMIT = 0.25
TAU_GOAL = 0.9
BURN = "import os, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True:\n    pass\n"


def machine() -> str:
    from nas.evaluate.device import _cpu_model

    model = _cpu_model() or platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def start_burners(count: int) -> list[subprocess.Popen]:
    """`count` busy loops, pinned to distinct CPUs (the last ones this process may use)."""
    cpus = sorted(os.sched_getaffinity(0))[-count:] if count else []
    burners = [subprocess.Popen([sys.executable, "-c", BURN, str(cpu)]) for cpu in cpus]
    time.sleep(0.5)
    return burners


def stop_burners(burners: list[subprocess.Popen]) -> None:
    for burner in burners:
        burner.kill()
    for burner in burners:
        burner.wait()


def machine_load() -> str:
    from nas.evaluate.contention import probe

    load = probe(threads=1, seconds=0.5, samples=6)
    return "unknown" if load is None else load.describe()


def run_search(folder: Path, name: str, args) -> dict[str, dict]:
    """One `nas search` into its own database; per architecture (hash): short form, the median
    reported latency of its completed trials, and whether any of them was flagged contended."""
    from nas.store import COMPLETE, Store

    space = folder / "space.yaml"
    text = SPACE.read_text(encoding="utf-8")
    if args.steps is not None:
        text = text.replace("steps: 40,", f"steps: {args.steps},")
    space.write_text(text, encoding="utf-8")
    url = f"sqlite:///{folder}/{name}.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OMP_NUM_THREADS", None)  # --threads decides
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "nas", "search", str(space), "--budget", f"{args.trials}trials",
         "--storage", url, "--name", name, "--threads", str(args.threads),
         "--progress", "quiet"], capture_output=True, text=True, env=env, cwd=folder)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{name}: nas search failed:\n{proc.stderr}{proc.stdout}")
    warned = [line for line in proc.stdout.splitlines() if "machine is busy" in line]
    print(f"  {name}: {seconds:.0f} s" + (f"; it said: {warned[0].strip()}" if warned else ""))
    by_arch: dict[str, dict] = {}
    for trial in Store(url).trials(name, states=[COMPLETE]):
        entry = by_arch.setdefault(trial.arch_hash, {"short_form": trial.short_form,
                                                     "d_model": trial.d_model, "values": [],
                                                     "contended": False})
        entry["values"].append(float(trial.values[OBJECTIVE]))
        entry["contended"] |= bool((trial.metrics or {}).get(f"{OBJECTIVE}_contended"))
    for entry in by_arch.values():
        entry["latency"] = statistics.median(entry["values"])
    return by_arch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="trials per run")
    parser.add_argument("--burners", type=int, default=max(1, (os.cpu_count() or 1) - 1),
                        help="busy-loop processes during the loaded run (default: cores - 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps per trial (default: the space's 40)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from nas.evaluate.ranking import kendall

    print(f"machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"space: {SPACE.relative_to(ROOT)}, {args.trials} trials per run, {args.threads} "
          f"thread(s), loaded run: {args.burners} burner(s)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"  before the idle run: {machine_load()}")
        idle = run_search(folder, "idle", args)
        burners = start_burners(args.burners)
        try:
            print(f"  during the loaded run: {machine_load()}")
            loaded = run_search(folder, "loaded", args)
        finally:
            stop_burners(burners)

    shared = [h for h in idle if h in loaded]
    print(f"\n| architecture | d_model | idle ms | loaded ms | off | > {OFF_LIMIT:.0%} | "
          "contended |")
    print("| --- | ---: | ---: | ---: | ---: | --- | --- |")
    unflagged = 0
    for arch in sorted(shared, key=lambda h: idle[h]["latency"]):
        a, b = idle[arch], loaded[arch]
        off = b["latency"] / a["latency"] - 1
        over = abs(off) > OFF_LIMIT
        unflagged += over and not b["contended"]
        print(f"| {a['short_form']} | {a['d_model']} | {a['latency']:.3f} | "
              f"{b['latency']:.3f} | {off:+.0%} | {'yes' if over else 'no'} | "
              f"{'yes' if b['contended'] else 'no'} |")
    tau = kendall([idle[h]["latency"] for h in shared], [loaded[h]["latency"] for h in shared])
    print(f"\n{len(shared)} architectures in both runs; Kendall τ of the latency rankings: "
          f"{tau:.3f} (goal >= {TAU_GOAL}); more than {OFF_LIMIT:.0%} off and not flagged: "
          f"{unflagged} (goal 0)")
    met = tau >= TAU_GOAL and unflagged == 0
    print(f"goal {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
