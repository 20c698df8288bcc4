"""Search strategies compared on a tabular benchmark: anytime hypervolume over many seeds.

A tabular benchmark (`nas.tabular`: every configuration of a finite space really trained, kept
as data) lets a search be *replayed*: `search.evaluate: {table: PATH}` answers each trial from
the table, charging the device-seconds its training recorded
(`nas.orchestrator.replay_executor`). So a strategy can be run over tens of seeds through
nas's real search loop — the same strategy objects, store, duplicate and budget handling as a
trained search — in seconds per run, and compared with confidence intervals.

`run` searches the table's own space (its stored text, `Table.space`) with each strategy and
seed: the space's `search:` section is replaced by `{strategy: NAME, seed: SEED, evaluate:
{table: <absolute path>}, keep_weights: none, remeasure: 0}` (plus `population_size` when
given; no replicates, no fidelity), objectives and everything else kept. Each search is one
`run_search` (one replay worker unless `--workers`) into a throwaway SQLite database (on
/dev/shm where there is one: no disk syncs), under a budget in device-seconds (default: 100 ×
the mean device-seconds of one training of a configuration — about 100 trials; or
`--budget-seconds S`, or `--budget-trials N`). Runs are interleaved, seed-major (seed 0 of
every strategy, then seed 1, ...), so a change in machine load hits every strategy alike (it
only changes wall time: the device-seconds are the table's). The output file is rewritten after
every run and a rerun with the same `--out` skips the (strategy, seed) pairs it already holds,
so a long run can be stopped and resumed (or extended with more seeds or strategies); it
refuses a file made from another table or budget. The searches are nas's own, unpatched: the
table is read once per process (`ReplayExecutor.open` keeps it), and a replayed run writes no
Optuna copy of its study. With `--charge steady` each replayed trial costs the steady
training time `nas table measure` timed (the table's `train_seconds_steady`) instead of what its
training recorded under the load of its moment; the default budget follows.

Reading a run back: its budget ledger, in order (one charge per trial that ran: completed,
or failed), gives the device-seconds and the number of trials charged when each trial
completed. Scoring: a completed configuration counts with its **seed-mean** values over the
table's trainings (what the configuration is worth, not the one noisy training the search
happened to see — so a lucky draw does not count as a find, and a search is judged on which
configurations it found). The hypervolume at a point of the budget is that of the
configurations completed by then, with ONE reference point for the whole table: per
objective, the worst seed-mean value over all the table's entries (e.g. the lowest accuracy,
the largest parameter count); it is divided by the hypervolume of the whole table's front
(every entry's seed-mean values, same reference). So 1.0 means the search has found the
table's entire true Pareto front, and values lie in [0, 1]. The run's record keeps the
trajectory (the points where this hypervolume rose), the completed configurations in order
(to rescore later), counts of duplicate, infeasible and failed trials (a configuration the
table lacks fails with "ReplayMiss", counted apart: none with a complete table), and the
wall time of the run.

`report` reads that file: per strategy the mean normalized hypervolume with its 95 %
Student-t interval at 10/25/50/100 % of the budget; the share of the budget at which the
strategy's mean curve first reaches random search's final mean hypervolume, and the median
over seeds of the share at which each seed's run does; paired tests (by seed: runs of one
seed share their first random proposals' seed, and one seed's trials are answered with the
same recorded training) of each strategy against random, nsga2 and tpe at 25/50/100 % —
two-sided Wilcoxon signed-rank p-values (`nas.stats.signed_rank_test`: exact up to 50
nonzero differences) beside the mean difference; and a plot of mean hypervolume against
device-seconds (or trials, for a trial budget) with 95 % bands. The Markdown is printed and
optionally written.

    python benchmarks/strategies.py run --table hybrid_recall.json.gz --seeds 50 \\
        --strategies evolution,local,predictor,random,nsga2,tpe,gp --out strategies.json
    python benchmarks/strategies.py report strategies.json --markdown strategies.md \\
        --plot strategies.png
    python benchmarks/strategies.py run --table T.json.gz --seeds 2 --strategies random,local \\
        --budget-trials 30 --out /tmp/smoke.json                       # a smoke test
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # torch loads later (the strategies import it)

FORMAT, VERSION = "nas-strategies-benchmark", 1
DEFAULT_STRATEGIES = ("evolution", "local", "predictor", "random", "nsga2", "tpe", "gp")
DEFAULT_BUDGET_TRAININGS = 100  # default budget: this many mean trainings' device-seconds
FRACTIONS = (0.10, 0.25, 0.50, 1.00)  # of the budget, where the table reports hypervolume
TEST_FRACTIONS = (0.25, 0.50, 1.00)  # where strategies are tested against the baselines
BASELINES = ("random", "nsga2", "tpe")
REACH_BASELINE = "random"  # whose final mean hypervolume the "reach" columns aim at
PLOT_POINTS = 201
REPLAY_MISS = "ReplayMiss"  # how a trial of a configuration the table lacks fails


# -- scoring: one reference point and one normalization for the whole table ---------------------


@dataclass(frozen=True)
class Scoring:
    """How a set of configurations is scored: their seed-mean values over the table, the
    hypervolume with the table's reference point, divided by the whole table's."""

    names: tuple[str, ...]
    directions: tuple[str, ...]
    means: dict[str, tuple[float, ...]]  # config_hash -> seed-mean objective values
    reference: tuple[float, ...]  # per objective, the worst seed-mean value in the table
    best: float  # hypervolume of the table's front (all entries), same reference

    def hypervolume(self, hashes: Sequence[str]) -> float:
        """Normalized hypervolume of the configurations `hashes` (those not in the table
        count for nothing)."""
        from nas.strategies.pareto import hypervolume

        points = [self.means[h] for h in hashes if h in self.means]
        return hypervolume(points, self.directions, self.reference) / self.best \
            if self.best > 0 else 0.0

    def improves(self, front: Sequence[str], config: str) -> bool:
        """Whether `config` would join the non-dominated set `front` (in the table, not
        dominated by nor equal to a member)."""
        from nas.strategies.pareto import dominates

        point = self.means.get(config)
        return point is not None and not any(
            self.means[h] == point or dominates(self.means[h], point, self.directions)
            for h in front)

    def joined(self, front: Sequence[str], config: str) -> list[str]:
        """`front` with `config` (which `improves` it) added and what it dominates removed."""
        from nas.strategies.pareto import dominates

        point = self.means[config]
        return [h for h in front if not dominates(point, self.means[h], self.directions)] \
            + [config]

    def to_json(self) -> dict[str, Any]:
        return {"objectives": [{"name": n, "direction": d}
                               for n, d in zip(self.names, self.directions, strict=True)],
                "reference": list(self.reference), "best_hypervolume": self.best,
                "front_size": len(self.front())}

    def front(self) -> list[str]:
        """The hashes of the table's true (seed-mean) Pareto front."""
        from nas.strategies.pareto import pareto_mask

        hashes = list(self.means)
        mask = pareto_mask([self.means[h] for h in hashes], self.directions)
        return [h for h, keep in zip(hashes, mask, strict=True) if keep]


def scoring(table: Any) -> Scoring:
    """The Scoring of `table` (a nas.tabular.Table): see the module docstring."""
    from nas.strategies.pareto import hypervolume

    names = tuple(o["name"] for o in table.objectives)
    directions = tuple(o["direction"] for o in table.objectives)
    means = {}
    for entry in table.entries.values():
        seen = [[t.values[n] for t in entry.trainings if n in t.values] for n in names]
        if all(seen):
            means[entry.config_hash] = tuple(statistics.fmean(v) for v in seen)
    if not means:
        raise SystemExit("the table has no entry with every objective")
    reference = tuple(
        (min if d == "maximize" else max)(m[i] for m in means.values())
        for i, d in enumerate(directions))
    best = hypervolume(list(means.values()), directions, reference)
    return Scoring(names, directions, means, reference, best)


def mean_training_seconds(table: Any, charge: str = "recorded") -> float:
    """Device-seconds of one training of a configuration, averaged over the table's entries
    (each entry: the mean of its trainings; with charge "steady", its train_seconds_steady)."""
    if charge == "steady":
        return statistics.fmean(e.costs["train_seconds_steady"] for e in table.entries.values())
    return statistics.fmean(statistics.fmean(t.device_seconds for t in e.trainings)
                            for e in table.entries.values())


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- one replayed search -----------------------------------------------------------------------


def space_text(table: Any, table_path: Path, strategy: str, seed: int,
               population_size: int | None, charge: str = "recorded") -> str:
    """The table's own space, its `search:` section replaced (module docstring)."""
    import yaml

    data = yaml.safe_load(table.space)
    search: dict[str, Any] = {"strategy": strategy, "seed": seed,
                              "evaluate": {"table": str(table_path.resolve()),
                                           "charge": charge},
                              "keep_weights": "none", "remeasure": 0}
    if population_size is not None:
        search["population_size"] = population_size
    data["search"] = search
    return yaml.safe_dump(data, sort_keys=False)


def budget_of(args: argparse.Namespace, table: Any) -> dict[str, Any]:
    """The budget of every run: {unit: device_seconds | trials, amount, text} (text as
    nas.budget.parse_budget reads it)."""
    if args.budget_trials is not None:
        amount = int(args.budget_trials)
        return {"unit": "trials", "amount": float(amount), "text": f"{amount}trials"}
    seconds = args.budget_seconds if args.budget_seconds is not None \
        else DEFAULT_BUDGET_TRAININGS * mean_training_seconds(table, args.charge)
    # device-hours with enough digits that the amount read back is the one asked for
    return {"unit": "device_seconds", "amount": float(seconds),
            "text": f"{seconds / 3600:.12f}cpuh"}


def run_one(table: Any, table_path: Path, score: Scoring, strategy: str, seed: int,
            budget: dict[str, Any], folder: Path, workers: int, population_size: int | None,
            allow_code: bool = False, charge: str = "recorded") -> dict[str, Any]:
    """Replay one search (`strategy`, `seed`) into a fresh database in `folder`; its record
    (see `read_run`) with the wall seconds it took."""
    from nas.budget import parse_budget
    from nas.orchestrator.progress import NullReporter
    from nas.orchestrator.search import SearchOptions, run_search
    from nas.searchspace import loads

    name = f"{strategy}-s{seed}"
    url = f"sqlite:///{folder / (name + '.db')}"
    text = space_text(table, table_path, strategy, seed, population_size, charge)
    start = time.monotonic()
    space = loads(text, str(folder / f"{name}.yaml"), allow_code=allow_code)
    options = SearchOptions(budget=parse_budget(budget["text"]), storage=url, name=name,
                            seed=seed, workers=workers, threads=1, keep_weights="none")
    outcome = run_search(space, options, NullReporter())
    searched = time.monotonic() - start
    record = read_run(url, outcome.run_name, score)
    record.update(strategy=strategy, seed=seed, status=outcome.status, message=outcome.message,
                  wall_seconds=round(searched, 3))
    return record


def read_run(url: str, run_name: str, score: Scoring) -> dict[str, Any]:
    """A finished replay run read back from its database: its completions in ledger order
    ([device-seconds charged by then, trials charged by then, config_hash]), the trajectory of
    normalized hypervolume ([device-seconds, trials, hypervolume] where it rose), the trials by
    state, the replay misses among the failures, and what was charged in all."""
    from nas.store import COMPLETE, FAIL, Store

    store = Store(url, create=False)
    try:
        trials = {t.number: t for t in store.trials(run_name)}
        ledger = store.ledger_entries(run_name)
    finally:
        store.close()
    seconds, charged_trials = 0.0, set()
    completions, trajectory, found, front, hv = [], [], set(), [], 0.0
    for row in ledger:
        seconds += row.device_seconds
        if row.trial_number is None:
            continue
        charged_trials.add(row.trial_number)
        trial = trials.get(row.trial_number)
        if row.note != "complete" or trial is None or trial.state != COMPLETE:
            continue
        completions.append([round(seconds, 6), len(charged_trials), trial.config_hash])
        if trial.config_hash in found:
            continue
        found.add(trial.config_hash)
        if not score.improves(front, trial.config_hash):
            continue
        front = score.joined(front, trial.config_hash)
        now = score.hypervolume(front)
        if now > hv + 1e-15:
            hv = now
            trajectory.append([round(seconds, 6), len(charged_trials), now])
    states: dict[str, int] = {}
    for t in trials.values():
        states[t.state] = states.get(t.state, 0) + 1
    misses = sum(1 for t in trials.values()
                 if t.state == FAIL and REPLAY_MISS in (t.error or ""))
    return {"device_seconds": round(seconds, 6), "trials_charged": len(charged_trials),
            "states": states, "replay_misses": misses, "distinct_found": len(found),
            "final_hypervolume": hv, "trajectory": trajectory, "completions": completions}


# -- the results file --------------------------------------------------------------------------


def load_results(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text())
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise SystemExit(f"{path}: not a results file of this benchmark ({FORMAT} v{VERSION})")
    return doc


def save_results(path: Path, doc: dict[str, Any]) -> None:
    """Write atomically: a run stopped mid-write leaves the previous file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, separators=(",", ":")))
    os.replace(tmp, path)


def start_results(path: Path, header: dict[str, Any]) -> dict[str, Any]:
    """The results so far in `path` (its header must match: same table file, budget and
    settings), or a new document."""
    if not path.exists():
        return {**header, "runs": []}
    doc = load_results(path)
    for key in ("table", "budget", "settings"):
        mine = {k: v for k, v in header[key].items() if k not in ("path",)}
        theirs = {k: v for k, v in doc.get(key, {}).items() if k not in ("path",)}
        if mine != theirs:
            raise SystemExit(f"{path} holds runs with another {key} ({theirs} vs {mine}); "
                             "fix: pass another --out, or the same table and settings")
    return doc


def command_run(args: argparse.Namespace) -> None:
    from nas.tabular import read

    table_path = args.table.resolve()
    table = read(table_path)
    score = scoring(table)
    budget = budget_of(args, table)
    header = {
        "format": FORMAT, "version": VERSION,
        "table": {"path": str(table_path), "name": table.name, "sha256": file_digest(table_path),
                  "configurations": len(table.entries),
                  "mean_training_seconds": mean_training_seconds(table, args.charge),
                  **score.to_json()},
        "budget": budget,
        "settings": {"workers": args.workers, "population_size": args.population_size,
                     "charge": args.charge},
    }
    doc = start_results(args.out, header)
    done = {(r["strategy"], r["seed"]) for r in doc["runs"]}
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    todo = [(s, seed) for seed in seeds for s in args.strategies if (s, seed) not in done]
    mean_seconds = header["table"]["mean_training_seconds"]
    print(f"table {table.name}: {len(table.entries)} configurations, front of "
          f"{header['table']['front_size']}, mean training {mean_seconds:.1f} device-s; budget "
          f"{budget['amount']:.6g} {budget['unit'].replace('_', '-')}; {len(todo)} runs to do "
          f"({len(done)} already in {args.out})", flush=True)
    with tempfile.TemporaryDirectory(prefix="nas-strategies-", dir=args.tmp) as tmp:
        for strategy, seed in todo:  # seed-major: load changes hit every strategy alike
            folder = Path(tmp) / f"{strategy}-s{seed}"
            folder.mkdir()
            record = run_one(table, table_path, score, strategy, seed, budget, folder,
                             args.workers, args.population_size, args.allow_code, args.charge)
            if record["status"] == "interrupted":  # Ctrl-C or SIGTERM: stop, record nothing
                print(f"  {strategy}-s{seed} interrupted: not recorded; the next run with "
                      f"this --out goes on from here", flush=True)
                raise SystemExit(130)
            doc["runs"].append(record)
            save_results(args.out, doc)
            s = record["states"]
            print(f"  {strategy}-s{seed}: hv {record['final_hypervolume']:.3f}, "
                  f"{record['trials_charged']} trials charged ({s.get('COMPLETE', 0)} complete,"
                  f" {s.get('DUPLICATE', 0)} duplicate, {s.get('INFEASIBLE', 0)} infeasible, "
                  f"{s.get('FAIL', 0)} failed, {record['replay_misses']} replay misses), "
                  f"{record['device_seconds']:.0f} device-s, {record['wall_seconds']:.1f} wall-s"
                  f"; {record['message']}", flush=True)
            for path in folder.iterdir():  # nothing kept: the record is all
                path.unlink()
            folder.rmdir()


# -- the report --------------------------------------------------------------------------------


def axis(doc: dict[str, Any]) -> tuple[int, float, str]:
    """(index into a trajectory point, budget, label) of the x axis: device-seconds for a
    device-seconds budget, trials charged for a trial budget."""
    budget = doc["budget"]
    if budget["unit"] == "trials":
        return 1, budget["amount"], "trials charged"
    return 0, budget["amount"], "device-seconds charged (recorded trainings)"


def hv_at(run: dict[str, Any], x: float, index: int) -> float:
    """The run's normalized hypervolume once `x` (device-seconds or trials) was charged."""
    hv = 0.0
    for point in run["trajectory"]:
        if point[index] > x + 1e-9:
            break
        hv = point[2]
    return hv


def first_reaching(run: dict[str, Any], target: float, index: int) -> float:
    """Where the run's hypervolume first reached `target` (inf: never)."""
    return next((p[index] for p in run["trajectory"] if p[2] >= target - 1e-12), math.inf)


def mean_curve_reaching(runs: Sequence[dict[str, Any]], target: float, index: int,
                        budget: float) -> float:
    """Where the mean over `runs` of the hypervolume first reaches `target`, exactly: the mean
    is a step function that can only rise where some run's does (inf: not within budget)."""
    steps = sorted({p[index] for r in runs for p in r["trajectory"] if p[index] <= budget})
    for x in steps:
        if statistics.fmean(hv_at(r, x, index) for r in runs) >= target - 1e-12:
            return x
    return math.inf


def group(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Runs by strategy, strategies in the order first run, runs by seed."""
    out: dict[str, list[dict[str, Any]]] = {}
    for run in doc["runs"]:
        out.setdefault(run["strategy"], []).append(run)
    return {s: sorted(rs, key=lambda r: r["seed"]) for s, rs in out.items()}


def share_text(share: float) -> str:
    return "not reached" if math.isinf(share) else f"{share:.0%}"


def p_text(p: float) -> str:
    return f"{p:.2g}" if p >= 0.001 else "<0.001"


def hypervolume_table(groups: dict[str, list[dict[str, Any]]], doc: dict[str, Any]) -> list[str]:
    """Markdown: per strategy the mean normalized hypervolume [95 % CI] at FRACTIONS of the
    budget, when it reaches random's final mean, and what its runs did."""
    from nas.stats import mean_interval

    index, budget, _ = axis(doc)
    target = None
    if REACH_BASELINE in groups:
        target = statistics.fmean(hv_at(r, budget, index) for r in groups[REACH_BASELINE])
    head = ["strategy", "seeds", *(f"HV @{f:.0%}" for f in FRACTIONS),
            f"reaches {REACH_BASELINE}'s final (mean curve)", "(median seed)",
            "trials: charged / dup / infeas / failed / misses", "wall s / run"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for strategy, runs in groups.items():
        cells = [strategy, str(len(runs))]
        for f in FRACTIONS:
            mean, _, low, high = mean_interval([hv_at(r, f * budget, index) for r in runs])
            cells.append(f"{mean:.3f} [{low:.3f}, {high:.3f}]")
        if target is None:
            cells += ["—", "—"]
        else:
            curve = mean_curve_reaching(runs, target, index, budget) / budget
            seeds = statistics.median(first_reaching(r, target, index) / budget for r in runs)
            cells += [share_text(curve), share_text(seeds)]

        def avg(key: str, runs: list = runs) -> float:
            return statistics.fmean(r["states"].get(key, 0) for r in runs)

        cells.append(f"{statistics.fmean(r['trials_charged'] for r in runs):.0f} / "
                     f"{avg('DUPLICATE'):.0f} / {avg('INFEASIBLE'):.0f} / {avg('FAIL'):.1f} / "
                     f"{statistics.fmean(r['replay_misses'] for r in runs):.1f}")
        cells.append(f"{statistics.fmean(r['wall_seconds'] for r in runs):.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def paired(groups: dict[str, list[dict[str, Any]]], strategy: str, baseline: str,
           fraction: float, doc: dict[str, Any]) -> tuple[int, float, float]:
    """(pairs, mean difference strategy − baseline, two-sided p) of the hypervolume at
    `fraction` of the budget, paired by seed."""
    from nas.stats import signed_rank_test

    index, budget, _ = axis(doc)
    theirs = {r["seed"]: hv_at(r, fraction * budget, index) for r in groups[baseline]}
    diffs = [hv_at(r, fraction * budget, index) - theirs[r["seed"]]
             for r in groups[strategy] if r["seed"] in theirs]
    if not diffs:
        return 0, math.nan, math.nan
    return len(diffs), statistics.fmean(diffs), signed_rank_test(diffs).p_value


def tests_table(groups: dict[str, list[dict[str, Any]]], doc: dict[str, Any]) -> list[str]:
    """Markdown: each strategy against each baseline present, at TEST_FRACTIONS: mean
    difference of normalized hypervolume (paired by seed) and the signed-rank p-value."""
    baselines = [b for b in BASELINES if b in groups]
    if not baselines:
        return []
    head = ["strategy"] + [f"vs {b} @{f:.0%}" for b in baselines for f in TEST_FRACTIONS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for strategy in groups:
        cells = [strategy]
        for b in baselines:
            for f in TEST_FRACTIONS:
                if b == strategy:
                    cells.append("—")
                    continue
                n, diff, p = paired(groups, strategy, b, f, doc)
                cells.append("—" if n == 0 else f"{diff:+.3f} (p {p_text(p)})")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def report_text(doc: dict[str, Any]) -> str:
    groups = group(doc)
    table, budget = doc["table"], doc["budget"]
    unit = "trials" if budget["unit"] == "trials" else "device-seconds"
    objectives = ", ".join(f"{o['name']} ({o['direction']}, reference "
                           f"{r:.6g})" for o, r in zip(table["objectives"], table["reference"],
                                                       strict=True))
    size = (f"{budget['amount']:.6g} device-seconds per run "
            f"({budget['amount'] / table['mean_training_seconds']:.0f} mean trainings)"
            if unit == "device-seconds" else f"{budget['amount']:.0f} trials per run")
    lines = [
        f"Table `{table['name']}` ({table['configurations']} configurations, true front of "
        f"{table['front_size']}; sha256 {table['sha256'][:12]}), budget {size}.",
        "",
        f"Hypervolume of the configurations found, scored by their seed-mean values; objectives "
        f"{objectives}; normalized by the table's whole front "
        f"({table['best_hypervolume']:.6g}), so 1 = the true front found. Mean over seeds "
        "[95 % t-interval].",
        "",
        *hypervolume_table(groups, doc),
        "",
        "Paired by seed: mean difference of normalized hypervolume (strategy − baseline), "
        "two-sided Wilcoxon signed-rank p-value.",
        "",
        *tests_table(groups, doc),
    ]
    return "\n".join(lines)


COLORS = {"evolution": "tab:blue", "local": "tab:green", "predictor": "tab:red",
          "random": "tab:gray", "nsga2": "tab:orange", "tpe": "tab:purple", "gp": "tab:brown",
          "grid": "black"}


def plot(doc: dict[str, Any], path: Path) -> None:
    """Mean normalized hypervolume against the budget, one line per strategy, 95 % band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nas.stats import mean_interval

    index, budget, label = axis(doc)
    grid = [budget * i / (PLOT_POINTS - 1) for i in range(PLOT_POINTS)]
    fig, ax = plt.subplots(figsize=(8, 5))
    for strategy, runs in group(doc).items():
        stats = [mean_interval([hv_at(r, x, index) for r in runs]) for x in grid]
        color = COLORS.get(strategy)
        ax.fill_between(grid, [s[2] for s in stats], [s[3] for s in stats], color=color,
                        alpha=0.15, linewidth=0, step="post")
        ax.step(grid, [s[0] for s in stats], where="post", color=color,
                label=f"{strategy} ({len(runs)} seeds)")
    ax.set_xlabel(label)
    ax.set_ylabel("hypervolume / hypervolume of the table's front")
    ax.set_xlim(0, budget)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(f"Strategies on table {doc['table']['name']}: mean over seeds, 95 % band")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def command_report(args: argparse.Namespace) -> None:
    doc = load_results(args.results)
    if not doc["runs"]:
        raise SystemExit(f"{args.results}: no runs yet")
    text = report_text(doc)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    if args.plot:
        plot(doc, args.plot)
        print(f"\nplot: {args.plot}")


# -- the command -------------------------------------------------------------------------------


def default_tmp() -> Path | None:
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="replay searches of a table, append to --out")
    run.add_argument("--table", type=Path, required=True, help="a table file (.json.gz)")
    run.add_argument("--strategies", default=None,
                     help="comma-separated registered strategy names (default: "
                          f"{','.join(DEFAULT_STRATEGIES)}, those registered here)")
    run.add_argument("--seeds", type=int, default=50, help="seeds per strategy (default 50)")
    run.add_argument("--first-seed", type=int, default=0, help="the first seed (default 0)")
    budget = run.add_mutually_exclusive_group()
    budget.add_argument("--budget-seconds", type=float, default=None,
                        help="device-seconds per run (default: "
                             f"{DEFAULT_BUDGET_TRAININGS} × the mean training)")
    budget.add_argument("--budget-trials", type=int, default=None,
                        help="trials charged per run instead of device-seconds")
    run.add_argument("--out", type=Path, required=True,
                     help="results JSON (appended to: pairs already in it are skipped)")
    run.add_argument("--charge", choices=("recorded", "steady"), default="recorded",
                     help="what a replayed trial costs: its recorded device-seconds, or the "
                          "steady training time `nas table measure` timed (search.evaluate."
                          "charge); the default budget follows it")
    run.add_argument("--population-size", type=int, default=None,
                     help="search.population_size of every run (default: the space's default)")
    run.add_argument("--workers", type=int, default=1, help="trials in flight (default 1)")
    run.add_argument("--tmp", type=Path, default=default_tmp(),
                     help="where the throwaway databases go (default: /dev/shm where there is "
                          "one — a memory file system, no disk syncs — else the temp folder)")
    run.add_argument("--allow-code", action="store_true",
                     help="the table's space names user code, and you trust it")
    report = sub.add_parser("report", help="tables (and a plot) from a results file")
    report.add_argument("results", type=Path)
    report.add_argument("--markdown", type=Path, default=None, help="also write the Markdown")
    report.add_argument("--plot", type=Path, default=None, help="a PNG of the curves")
    args = parser.parse_args(argv)
    if args.command == "run":
        from nas.strategies import list_strategies

        known = list_strategies()
        if args.strategies is None:  # gp is registered only where scipy is installed
            skipped = [s for s in DEFAULT_STRATEGIES if s not in known]
            if skipped:
                print(f"not registered here, left out: {', '.join(skipped)}", file=sys.stderr)
            args.strategies = ",".join(s for s in DEFAULT_STRATEGIES if s in known)
        args.strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
        unknown = [s for s in args.strategies if s not in known]
        if unknown:
            hint = " (gp is registered only where scipy is installed)" if "gp" in unknown else ""
            parser.error(f"unknown strategy {unknown[0]!r}; known: {', '.join(known)}{hint}")
        if args.seeds < 1 or args.workers < 1:
            parser.error("--seeds and --workers must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.command == "run":
        command_run(args)
    else:
        command_report(args)


if __name__ == "__main__":
    sys.exit(main())
