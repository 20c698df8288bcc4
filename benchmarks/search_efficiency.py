"""Search efficiency: hypervolume of the Pareto front against device-seconds spent.

Three ways to search one space with one budget, each run with several seeds:

- ``default+mf``: the default strategy (NSGA-II for two objectives) with multi-fidelity
  (`search.fidelity`: asynchronous multi-objective successive halving over training steps);
- ``random``: random sampling, every candidate trained to the end;
- ``nsga2``: Optuna's NSGA-II without any pruning, every candidate trained to the end.

The space is `benchmarks/spaces/mqar_efficiency.yaml`: MQAR recall, per-layer choice among
attention, linear attention, short convolution and Mamba-2, 2-4 layers, three widths, learning
rate; objectives held-out accuracy (maximize) and parameter count (minimize). The parameter
count is the second objective on purpose: a latency timed on a shared 2-core machine is noisy
and would make the fronts of different runs differ for reasons that have nothing to do with the
strategies; the parameter count is exact, so apart from training itself the comparison is
deterministic. The runs differ only in their `search:` block (and the seed).

Every run is one `run_search` into its own SQLite database under `--out`, one worker process
with one torch thread, budget `--budget` device-seconds. Runs are interleaved (seed 0 of each
strategy, then seed 1, ...) so that load from other processes on the machine hits all
strategies alike.

Reading back, the budget ledger of each run (every charge, in order: whole trials, each
multi-fidelity segment, failed and pruned work alike) gives the device-seconds spent when each
trial completed. The hypervolume at a point of the budget is that of the completed trials whose
completion had been charged by then, with a reference point and normalization fixed for all
runs: accuracy in [0, 1] as it is, parameters divided by `PARAMS_REF` (just above the largest
model in the space), reference point (accuracy 0, parameters `PARAMS_REF`), so the hypervolume
lies in [0, 1]. Only fully trained (COMPLETE) trials count: an accuracy measured at a lower rung
is not comparable with one after the whole schedule.

Device-seconds are wall time inside the worker, so a busy machine inflates them. The summary
and the plot therefore also compare at equal training steps (each charge counts the steps of
the segment it paid for), up to the fewest steps any run trained: a view machine load cannot
change. One seed gives all strategies the same first candidates (NSGA-II's first generation is
random sampling from it) and the same training seed, so runs of one seed are paired.

    python benchmarks/search_efficiency.py                      # 3 seeds, 240 s each (~40 min)
    python benchmarks/search_efficiency.py --budget 30 --seeds 1 --out /tmp/nas_eff_smoke
    python benchmarks/search_efficiency.py --only-plot           # tables and plot from the DBs
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

os.environ.setdefault("OMP_NUM_THREADS", "1")  # torch loads later, here and in the workers

ROOT = Path(__file__).resolve().parent.parent
SPACE_FILE = ROOT / "benchmarks" / "spaces" / "mqar_efficiency.yaml"
PLOT_FILE = ROOT / "docs" / "benchmarks" / "search_efficiency.png"
PARAMS_REF = 180_000.0  # the largest candidate (M-M-M-M, swiglu, d_model 64) has 178,144
STRATEGIES = ("default+mf", "random", "nsga2")
GRID_POINTS = 241
# The goals of the benchmark: at equal budget, hypervolume >= these multiples of the baselines';
# or the baselines' final hypervolume reached within this share of the budget.
GOAL_RATIO = {"random": 1.5, "nsga2": 1.2}
GOAL_BUDGET_SHARE = 2 / 3


# -- the runs --------------------------------------------------------------------------------


def search_block(strategy: str, base: dict) -> dict:
    """The `search:` block of `strategy`, from the space file's own (which is default+mf):
    the baselines drop `fidelity` and name their sampler."""
    block = dict(base)
    if strategy == "default+mf":
        return block
    block.pop("fidelity", None)
    block["strategy"] = {"random": "random", "nsga2": "nsga2"}[strategy]
    return block


def space_text(strategy: str) -> str:
    """The YAML text of the space for `strategy` (the benchmark's file, `search:` replaced)."""
    data = yaml.safe_load(SPACE_FILE.read_text())
    data["search"] = search_block(strategy, data.get("search") or {})
    return yaml.safe_dump(data, sort_keys=False)


def run_name(strategy: str, seed: int) -> str:
    return f"{strategy.replace('+', '-')}-s{seed}"


def database(out: Path, strategy: str, seed: int) -> Path:
    return out / f"{run_name(strategy, seed)}.db"


def storage_url(path: Path) -> str:
    return f"sqlite:///{path}"


def finished_run_exists(path: Path, budget_seconds: float, text: str) -> bool:
    """Whether `path` holds a finished run of exactly this space text and budget (reused)."""
    from nas.store import Store

    if not path.exists():
        return False
    store = Store(storage_url(path), create=False)
    try:
        runs = store.runs()
        return len(runs) == 1 and runs[0].status == "finished" \
            and runs[0].space_text == text and abs(runs[0].budget_amount - budget_seconds) < 1e-3
    finally:
        store.close()


def remove_run(out: Path, strategy: str, seed: int) -> None:
    """Delete a run's database, its SQLite side files and its artifacts (multi-fidelity
    checkpoints left by an interrupted run) under `out/nas-artifacts/`."""
    import shutil

    path = database(out, strategy, seed)
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    shutil.rmtree(out / "nas-artifacts" / run_name(strategy, seed), ignore_errors=True)


def run_one(strategy: str, seed: int, budget_seconds: float, out: Path) -> float:
    """Search the space with `strategy` and `seed` into its own database (one worker, one
    thread, `budget_seconds` device-seconds); returns the wall seconds it took. A finished run
    of the same space and budget already in `out` is kept instead."""
    import torch

    from nas.budget import parse_budget
    from nas.orchestrator.progress import NullReporter
    from nas.orchestrator.search import SearchOptions, run_search
    from nas.searchspace import loads

    text = space_text(strategy)
    path = database(out, strategy, seed)
    if finished_run_exists(path, budget_seconds, text):
        print(f"  {run_name(strategy, seed)}: reusing {path}", flush=True)
        return 0.0
    remove_run(out, strategy, seed)
    torch.set_num_threads(1)
    space = loads(text, str(SPACE_FILE))
    budget = parse_budget(f"{budget_seconds / 3600:.9f}cpuh")
    options = SearchOptions(budget=budget, storage=storage_url(path),
                            name=run_name(strategy, seed), seed=seed, workers=1, threads=1,
                            keep_weights="none")
    start = time.monotonic()
    outcome = run_search(space, options, NullReporter())
    if outcome.status != "finished":
        raise SystemExit(f"{run_name(strategy, seed)} {outcome.status}: {outcome.message}")
    return time.monotonic() - start


# -- reading a run back ----------------------------------------------------------------------

MEASURES = {"seconds": "device-seconds", "steps": "training steps"}


@dataclass(frozen=True)
class Completion:
    """A fully trained trial, with what its run had been charged when it completed."""

    seconds: float  # device-seconds charged up to and including its completing charge
    steps: int  # training steps charged up to then (every segment of every trial)
    point: tuple[float, float]  # (accuracy, params / PARAMS_REF)


@dataclass(frozen=True)
class RunTrace:
    """One run as the benchmark reads it: its completions in order, and its counts."""

    strategy: str
    seed: int
    completions: list[Completion]
    seconds: float  # device-seconds charged in all
    steps: int  # training steps charged in all
    states: dict[str, int]  # trials by state
    charged: dict[str, float]  # device-seconds by the final state of the trial charged
    elapsed: float  # wall seconds of the search

    def spent(self, measure: str) -> float:
        """All that was charged, in device-seconds or training steps."""
        return self.seconds if measure == "seconds" else float(self.steps)


def rungs_of(space_text: str) -> tuple[int, ...]:
    """The training steps at which a trial's segments end: the multi-fidelity rungs, or the
    whole schedule in one segment."""
    from nas.orchestrator.fidelity import Fidelity

    data = yaml.safe_load(space_text)
    steps = int(data["training"]["steps"])
    fidelity = (data.get("search") or {}).get("fidelity")
    if not fidelity:
        return (steps,)
    return Fidelity(int(fidelity["min_steps"]), steps, int(fidelity.get("reduction", 3))).rungs


def ledger(path: Path) -> tuple[object, list[object], list[tuple[int, float, str]]]:
    """(run, its trials, its charges as (trial number, device-seconds, note) in the order they
    were made) of the one run in the database at `path`."""
    from sqlalchemy import select

    from nas.store import Store
    from nas.store.models import LedgerRow

    store = Store(storage_url(path), create=False)
    try:
        (run,) = store.runs()
        trials = store.trials(run.id)
        with store.transaction() as s:
            charges = [(r.trial_number, r.device_seconds, r.note) for r in s.scalars(
                select(LedgerRow).where(LedgerRow.run_id == run.id).order_by(LedgerRow.id))]
    finally:
        store.close()
    return run, trials, charges


def read_run(path: Path, strategy: str, seed: int) -> RunTrace:
    """Replay the run in `path` from its budget ledger: a trial enters the pool of the front
    at the charge that completed it. A charge's training steps are those of the segment it
    paid for (a failed or lost attempt counts its whole segment)."""
    from nas.store import COMPLETE

    run, trials, charges = ledger(path)
    rungs = rungs_of(run.space_text)
    points = {t.number: normalized(t.values) for t in trials if t.state == COMPLETE}
    state_of = {t.number: t.state for t in trials}
    segments: dict[int, int] = {}  # segments each trial has finished
    seconds, steps, completions, charged = 0.0, 0, [], {}
    for number, cost, note in charges:
        done = segments.get(number, 0)
        seconds += cost
        steps += rungs[min(done, len(rungs) - 1)] - (rungs[done - 1] if done else 0)
        state = state_of.get(number, "?")
        charged[state] = charged.get(state, 0.0) + cost
        if note in ("rung", "complete"):
            segments[number] = done + 1
        if note == "complete" and number in points:
            completions.append(Completion(seconds, steps, points[number]))
    states: dict[str, int] = {}
    for t in trials:
        states[t.state] = states.get(t.state, 0) + 1
    return RunTrace(strategy, seed, completions, seconds, steps, states, charged,
                    run.elapsed_seconds)


def normalized(values: dict[str, float]) -> tuple[float, float]:
    """(accuracy, params / PARAMS_REF) of a trial's objective values."""
    return float(values["accuracy"]), float(values["params"]) / PARAMS_REF


def hypervolume(points: Sequence[tuple[float, float]]) -> float:
    """Area dominated by `points` (accuracy maximized, normalized params minimized) within the
    reference point (0, 1): a number in [0, 1]."""
    from nas.strategies.pareto import hypervolume_2d

    return hypervolume_2d(points, ["maximize", "minimize"], [0.0, 1.0])


def spent_at(completion: Completion, measure: str) -> float:
    return completion.seconds if measure == "seconds" else float(completion.steps)


def hypervolume_at(trace: RunTrace, amount: float, measure: str = "seconds") -> float:
    """Hypervolume of the trials of `trace` completed within the first `amount` charged
    (device-seconds or training steps)."""
    return hypervolume([c.point for c in trace.completions if spent_at(c, measure) <= amount])


def curve(trace: RunTrace, grid: Sequence[float], measure: str = "seconds") -> list[float]:
    """`hypervolume_at` at every point of `grid`."""
    return [hypervolume_at(trace, x, measure) for x in grid]


def first_solver(trace: RunTrace, accuracy: float = 0.99) -> float:
    """Device-seconds spent when the first trial with at least `accuracy` completed (inf if
    none did)."""
    return next((c.seconds for c in trace.completions if c.point[0] >= accuracy), math.inf)


def first_reaching(grid: Sequence[float], values: Sequence[float], target: float) -> float:
    """The first grid point at which `values` reach `target` (inf if none does)."""
    return next((t for t, v in zip(grid, values, strict=True) if v >= target - 1e-12), math.inf)


# -- the summary -----------------------------------------------------------------------------


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def make_grid(budget: float) -> list[float]:
    return [budget * i / (GRID_POINTS - 1) for i in range(GRID_POINTS)]


def by_strategy(traces: Sequence[RunTrace]) -> dict[str, list[RunTrace]]:
    """The traces of each strategy present, in STRATEGIES order."""
    return {s: [t for t in traces if t.strategy == s] for s in STRATEGIES
            if any(t.strategy == s for t in traces)}


def mean_curve(traces: Sequence[RunTrace], grid: Sequence[float], measure: str) -> list[float]:
    """The hypervolume curve averaged over `traces`."""
    curves = [curve(t, grid, measure) for t in traces]
    return [statistics.fmean(col) for col in zip(*curves, strict=True)]


def amount_text(amount: float, budget: float, measure: str) -> str:
    """'160 s (67%)', '5,040 steps (40%)', or 'not reached'."""
    if math.isinf(amount):
        return "not reached"
    unit = f"{amount:.0f} s" if measure == "seconds" else f"{amount:,.0f} steps"
    return f"{unit} ({amount / budget:.0%})"


def solver_text(seconds: float, budget: float) -> str:
    """'87', or '—' when it did not happen within `budget`."""
    return "—" if seconds > budget else f"{seconds:.0f}"


def runs_table(groups: dict[str, list[RunTrace]], budget: float) -> list[str]:
    """Markdown: per strategy the hypervolume at the device-second budget (mean ± std, per
    seed), when the first solver completed, and what was sampled, pruned and spent."""
    lines = ["| strategy | seeds | hypervolume at budget (mean ± std) | per seed | first "
             "accuracy ≥ 0.99 at (s, per seed) | completed | pruned | sampled | budget on "
             "pruned | steps trained | wall s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s, runs in groups.items():
        final = [hypervolume_at(t, budget) for t in runs]
        mean, std = mean_std(final)
        lines.append(
            f"| {s} | {len(runs)} | **{mean:.3f}** ± {std:.3f} | "
            f"{', '.join(f'{v:.3f}' for v in final)} | "
            f"{', '.join(solver_text(first_solver(t), budget) for t in runs)} | "
            f"{statistics.fmean(t.states.get('COMPLETE', 0) for t in runs):.1f} | "
            f"{statistics.fmean(t.states.get('PRUNED', 0) for t in runs):.1f} | "
            f"{statistics.fmean(sum(t.states.values()) for t in runs):.1f} | "
            f"{statistics.fmean(t.charged.get('PRUNED', 0.0) / t.seconds for t in runs):.0%} | "
            f"{statistics.fmean(t.steps for t in runs):,.0f} | "
            f"{statistics.fmean(t.elapsed for t in runs):.0f} |")
    return lines


def reach_table(groups: dict[str, list[RunTrace]], budget: float, measure: str) -> list[str]:
    """Markdown: what each strategy's mean curve needs to reach 90% and 100% of each
    baseline's mean hypervolume at `budget`."""
    baselines = [b for b in ("random", "nsga2") if b in groups]
    if not baselines:
        return []
    grid = make_grid(budget)
    targets = {b: statistics.fmean(hypervolume_at(t, budget, measure) for t in groups[b])
               for b in baselines}
    lines = ["| strategy | " + " | ".join(f"90% of {b} | 100% of {b}" for b in baselines)
             + " |", "|---|" + "---|---|" * len(baselines)]
    for s, runs in groups.items():
        mean = mean_curve(runs, grid, measure)
        cells = [amount_text(first_reaching(grid, mean, f * targets[b]), budget, measure)
                 for b in baselines for f in (0.9, 1.0)]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return lines


def goal_lines(groups: dict[str, list[RunTrace]], budget: float, measure: str) -> list[str]:
    """The issue's goals for default+mf against each baseline at `budget` (device-seconds or
    training steps): the ratio of mean hypervolumes, and the share of the budget its mean
    curve needs to reach theirs."""
    if "default+mf" not in groups:
        return []
    grid = make_grid(budget)
    ours = statistics.fmean(hypervolume_at(t, budget, measure) for t in groups["default+mf"])
    mean = mean_curve(groups["default+mf"], grid, measure)
    lines = []
    for base, goal in GOAL_RATIO.items():
        if base not in groups:
            continue
        theirs = statistics.fmean(hypervolume_at(t, budget, measure) for t in groups[base])
        ratio = ours / theirs if theirs > 0 else math.inf
        reach = first_reaching(grid, mean, theirs)
        lines.append(
            f"- vs {base}: hypervolume ratio **{ratio:.2f}×** (goal ≥ {goal}×: "
            f"{'met' if ratio >= goal else 'not met'}); {base}'s hypervolume "
            f"{'never reached' if math.isinf(reach) else 'reached after '}"
            f"{'' if math.isinf(reach) else amount_text(reach, budget, measure)} "
            f"(goal ≤ {GOAL_BUDGET_SHARE:.0%} of the "
            f"budget: {'met' if reach / budget <= GOAL_BUDGET_SHARE else 'not met'})")
    return lines


def step_budget(traces: Sequence[RunTrace]) -> float:
    """The training steps every run got through: the budget of the load-independent view."""
    return float(min(t.steps for t in traces))


def steps_table(groups: dict[str, list[RunTrace]], budget: float) -> list[str]:
    """Markdown: per strategy the hypervolume at `budget` training steps (mean ± std, seeds)."""
    lines = ["| strategy | hypervolume at equal steps (mean ± std) | per seed |", "|---|---|---|"]
    for s, runs in groups.items():
        final = [hypervolume_at(t, budget, "steps") for t in runs]
        mean, std = mean_std(final)
        lines.append(f"| {s} | **{mean:.3f}** ± {std:.3f} | "
                     f"{', '.join(f'{v:.3f}' for v in final)} |")
    return lines


def summary(traces: Sequence[RunTrace], budget: float) -> str:
    """The whole report, in Markdown: at equal device-seconds (the budget), then at equal
    training steps (the fewest any run trained), each with the goals."""
    groups = by_strategy(traces)
    steps = step_budget(traces)
    return "\n".join([
        f"At equal device-seconds ({budget:.0f} s per run):", "",
        *runs_table(groups, budget), "",
        "Device-seconds each mean curve needs to reach a baseline's mean hypervolume at the "
        "budget:", "", *reach_table(groups, budget, "seconds"), "",
        *goal_lines(groups, budget, "seconds"), "",
        f"At equal training steps ({steps:,.0f}, the fewest any run trained; independent of "
        "machine load):", "", *steps_table(groups, steps), "",
        *reach_table(groups, steps, "steps"), "", *goal_lines(groups, steps, "steps"),
    ])


COLORS = {"default+mf": "tab:blue", "random": "tab:gray", "nsga2": "tab:orange"}


def draw_panel(ax, groups: dict[str, list[RunTrace]], budget: float, measure: str) -> None:
    """One panel: per strategy the mean hypervolume curve over `measure`, shaded between the
    lowest and the highest seed."""
    grid = make_grid(budget)
    for strategy, runs in groups.items():
        curves = [curve(t, grid, measure) for t in runs]
        low = [min(col) for col in zip(*curves, strict=True)]
        high = [max(col) for col in zip(*curves, strict=True)]
        mean = [statistics.fmean(col) for col in zip(*curves, strict=True)]
        ax.fill_between(grid, low, high, color=COLORS[strategy], alpha=0.18, linewidth=0,
                        step="post")
        seeds = f"{len(curves)} seed{'s' if len(curves) > 1 else ''}"
        ax.step(grid, mean, where="post", color=COLORS[strategy],
                label=f"{strategy} ({seeds})")
    ax.set_xlabel(f"{MEASURES[measure]} charged" + (" (1 CPU thread)" if measure == "seconds"
                                                     else ""))
    ax.set_xlim(0, budget)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)


def plot(traces: Sequence[RunTrace], budget: float, path: Path) -> None:
    """Hypervolume against device-seconds (left) and against training steps (right, up to
    the fewest any run trained): per strategy the mean over seeds, shaded min..max."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = by_strategy(traces)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    draw_panel(left, groups, budget, "seconds")
    draw_panel(right, groups, step_budget(traces), "steps")
    left.set_ylabel("hypervolume (accuracy × params, normalized)")
    left.legend(loc="lower right")
    fig.suptitle("Search efficiency on MQAR: mean over seeds, band = min..max of the seeds")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- the command -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=240.0,
                        help="device-seconds per run (default 240)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per strategy (default 3)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/nas_efficiency"),
                        help="folder of the runs' SQLite databases")
    parser.add_argument("--strategies", default=",".join(STRATEGIES),
                        help=f"comma-separated subset of {', '.join(STRATEGIES)}")
    parser.add_argument("--plot", type=Path, default=PLOT_FILE, help="where the PNG goes")
    parser.add_argument("--only-plot", action="store_true",
                        help="run nothing: summarize and plot the databases already in --out")
    args = parser.parse_args(argv)
    args.strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = [s for s in args.strategies if s not in STRATEGIES]
    if unknown:
        parser.error(f"unknown strategy {unknown[0]!r}; use {', '.join(STRATEGIES)}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.only_plot:
        for seed in range(args.seeds):  # interleaved: machine load hits every strategy alike
            for strategy in args.strategies:
                wall = run_one(strategy, seed, args.budget, args.out)
                trace = read_run(database(args.out, strategy, seed), strategy, seed)
                print(f"  {run_name(strategy, seed)}: hypervolume "
                      f"{hypervolume_at(trace, args.budget):.3f}, {trace.states}, "
                      f"{trace.seconds:.0f} device-s, {wall:.0f} wall-s", flush=True)
    traces = [read_run(database(args.out, s, seed), s, seed)
              for seed in range(args.seeds) for s in args.strategies
              if database(args.out, s, seed).exists()]
    if not traces:
        raise SystemExit(f"no runs in {args.out}")
    print(summary(traces, args.budget))
    plot(traces, args.budget, args.plot)
    print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    sys.exit(main())
