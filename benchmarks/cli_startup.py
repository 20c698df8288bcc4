"""CLI start-up: wall time of `nas runs`, `nas trials`, `nas pareto` (and a few others) in fresh
processes, against a small SQLite database this script writes into a temporary folder.

Each command runs `--repeats` times in a new process (the `nas` console script beside this
Python, as a user runs it); the commands take turns within each round, so the machine's noise
hits all of them alike. Reported per command: median, interquartile range (25th–75th
percentile), min and max wall seconds, plus two floors: the bare interpreter (`python -c pass`)
and `python -c "import nas.cli"`. The table names the machine (lscpu's model name, cores) and
the load average before and after, since on a shared 2-core machine the load sets the numbers.

The goal of issue #20: `nas runs`, `nas trials` and `nas pareto` start in under 1 s.

    python benchmarks/cli_startup.py                     # 7 rounds
    python benchmarks/cli_startup.py --repeats 15
    python benchmarks/cli_startup.py --baseline /tmp/nas_head   # and another copy of nas,
        # interleaved with this one: `mkdir /tmp/nas_head && git archive REV nas | tar -x -C
        # /tmp/nas_head` puts the nas package of commit REV there

`--baseline DIR` times every command a second time with DIR first on PYTHONPATH (so `import
nas` finds DIR/nas), in the same rounds, so both copies meet the same load.

The database holds two runs: `demo` (2 objectives, 40 completed trials, 2 failed) and `tri`
(3 objectives, 40 completed trials), written with nas.store as the tests write theirs.
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
GOAL_SECONDS = 1.0
GOAL_COMMANDS = ("runs", "trials", "pareto")


def make_database(url: str, trials: int = 40) -> None:
    """Two finished runs of `trials` completed trials each, without training anything."""
    from nas.spec import ArchSpec, LayerSpec, ModuleSpec
    from nas.store import Store

    kinds = {"A": ("attention", {"heads": 2}), "C": ("short_conv", {"kernel_size": 4}),
             "L": ("linear_attention", {"heads": 2})}
    patterns = ["C-C", "A-C", "C-A", "A-A-A-A", "L-L-L-L", "C-A-C-A", "C-C-A-A", "L-A"]

    def spec(mixers: str, d_model: int) -> ArchSpec:
        layers = tuple(LayerSpec(ModuleSpec.make(kinds[m][0], **kinds[m][1]),
                                 ModuleSpec.make("mlp", expansion=2, activation="gelu"))
                       for m in mixers.split("-"))
        return ArchSpec(d_model=d_model, vocab_size=16, layers=layers, training={"lr": 1e-3})

    store = Store(url)
    for name, objectives in (
        ("demo", [{"name": "accuracy", "direction": "maximize"},
                  {"name": "latency_ms", "direction": "minimize"}]),
        ("tri", [{"name": "accuracy", "direction": "maximize"},
                 {"name": "latency_ms", "direction": "minimize"},
                 {"name": "params", "direction": "minimize"}]),
    ):
        run = store.create_run(
            name=name, base_name=name, space_path="s.yaml", space_text="name: space",
            space_hash="abc", objectives=objectives, strategy="nsga2", seed=0,
            budget=f"{trials}trials", budget_unit="trials", budget_amount=trials,
            versions={"nas": "0"}, host="bench")
        for number in range(trials):
            mixers = patterns[number % len(patterns)]
            width = 32 if number % 3 else 64
            store.start_trial(run.id, number, spec(mixers, width), worker="w")
            accuracy = ((number * 37) % 100) / 100
            latency = 1.0 + ((number * 53) % 70) / 10
            params = 1000 * (1 + (number * 29) % 90)
            values = {"accuracy": accuracy, "latency_ms": latency, "params": params}
            values = {o["name"]: values[o["name"]] for o in objectives}
            store.complete_trial(run.id, number, values=values,
                                 metrics={"accuracy": accuracy, "latency_ms": latency,
                                          "params": params},
                                 curve=[(10, "loss", 1.0)], device="cpu",
                                 device_seconds=60.0 + number, wall_seconds=60.0 + number)
        if name == "demo":
            for number in (trials, trials + 1):
                store.start_trial(run.id, number, spec("A-A", 32), worker="w")
                store.fail_trial(run.id, number, error="boom", device_seconds=5.0,
                                 wall_seconds=5.0)
        store.finish_run(run.id, "finished")
    store.close()


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def loadavg() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def nas_command() -> list[str]:
    script = Path(sys.executable).parent / "nas"
    return [str(script)] if script.exists() else [sys.executable, "-m", "nas"]


def commands(url: str) -> dict[str, list[str]]:
    nas = nas_command()
    storage = ["--storage", url]
    return {
        "python -c pass (floor)": [sys.executable, "-c", "pass"],
        "python -c 'import nas.cli'": [sys.executable, "-c", "import nas.cli"],
        "nas --help": [*nas, "--help"],
        "nas runs": [*nas, "runs", *storage],
        "nas trials demo": [*nas, "trials", "demo", *storage],
        "nas pareto demo": [*nas, "pareto", "demo", *storage],
        "nas pareto tri --format json": [*nas, "pareto", "tri", "--format", "json", *storage],
        "nas pareto demo tri": [*nas, "pareto", "demo", "tri", *storage],
        "nas show demo/3": [*nas, "show", "demo/3", *storage],
        "nas report tri --out DIR": [*nas, "report", "tri", "--out", "report", *storage],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--baseline", default=None, metavar="DIR",
                        help="also time the nas package in DIR/nas (first on PYTHONPATH), "
                        "interleaved")
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if k != "NAS_STORAGE"}
    variants = {"this tree": env}
    if args.baseline:
        variants["baseline"] = {**env, "PYTHONPATH": os.pathsep.join(
            p for p in (str(Path(args.baseline).resolve()), env.get("PYTHONPATH")) if p)}
    with tempfile.TemporaryDirectory(prefix="nas-cli-startup-") as tmp:
        url = f"sqlite:///{tmp}/nas.db"
        make_database(url)
        cmds = commands(url)
        runs = [(name, variant) for name in cmds for variant in variants]
        for name, variant in runs:  # one untimed pass: warm the page cache, check they work
            proc = subprocess.run(cmds[name], capture_output=True, text=True,
                                  env=variants[variant], cwd=tmp, timeout=300)
            if proc.returncode != 0:
                sys.exit(f"{name} ({variant}) failed ({proc.returncode}):\n{proc.stderr}")
        load_before = loadavg()
        times: dict[tuple[str, str], list[float]] = {run: [] for run in runs}
        for _ in range(args.repeats):
            for name, variant in runs:
                start = time.perf_counter()
                subprocess.run(cmds[name], capture_output=True, env=variants[variant], cwd=tmp,
                               timeout=300, check=True)
                times[name, variant].append(time.perf_counter() - start)
        load_after = loadavg()

    print(f"machine: {machine()}")
    print(f"load average (1, 5, 15 min): before {load_before}; after {load_after}")
    print(f"{args.repeats} runs each, fresh processes, commands interleaved"
          + (f"; baseline: {args.baseline}" if args.baseline else ""))
    print()
    head = ["command", *(f"{v}: median (s)" for v in variants),
            *(f"{v}: IQR (s)" for v in variants), *(f"{v}: min–max (s)" for v in variants)]
    print("| " + " | ".join(head) + " |")
    print("|---|" + "---:|" * (len(head) - 1))
    for name in cmds:
        cells = []
        for kind in ("median", "iqr", "range"):
            for variant in variants:
                values = times[name, variant]
                if kind == "median":
                    cells.append(f"{statistics.median(values):.2f}")
                elif kind == "iqr":
                    q1, _, q3 = (statistics.quantiles(values, n=4) if len(values) > 1
                                 else values * 3)
                    cells.append(f"{q1:.2f}–{q3:.2f}")
                else:
                    cells.append(f"{min(values):.2f}–{max(values):.2f}")
        print(f"| `{name}` | " + " | ".join(cells) + " |")
    goal = [n for n in cmds if n.split()[:2] in (["nas", c] for c in GOAL_COMMANDS)]
    worst = max(statistics.median(times[n, "this tree"]) for n in goal)
    print()
    print(f"goal: {', '.join(GOAL_COMMANDS)} under {GOAL_SECONDS:.0f} s (median, this tree): "
          f"{'met' if worst < GOAL_SECONDS else 'NOT met'} (slowest median {worst:.2f} s)")


if __name__ == "__main__":
    main()
