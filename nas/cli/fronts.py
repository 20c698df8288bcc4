"""Comparing runs by their fronts (`nas pareto RUN RUN …`, `nas compare RUN RUN`, `nas plot RUN
RUN …`), and the hypervolume-over-device-hours curve that `nas plot` draws for one run.

Runs compare on their *shared objectives*: those with the same name and direction in every run
(others are left out and said so). On them each run has its own front; the hypervolume of every
run is measured in one box, common to all: each shared objective scaled to [0, 1] between its
best and worst value over all the runs' completed trials, the worst value of each being the
reference point. The *combined front* is the front of all the runs' trials together; each run's
share of it says who found the trade-offs that survive the comparison.

Pure Python over store records (no numpy, no matplotlib): the query commands import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from nas.errors import NasError
from nas.store import COMPLETE, LedgerEntry, RunRecord, Store, TrialRecord
from nas.strategies.pareto import dominates, hypervolume, pareto_mask

REACH = 0.9  # default --reach: the share of a final hypervolume the device-hours are counted to
REFERENCE_RULE = ("each scaled to [0, 1] between its best and worst value over all the compared "
                  "runs' completed trials; reference point: the worst value of each, one for "
                  "all runs")


# ------------------------------------------------------------------------------------------------
# hypervolume over device time (one run, any box)
# ------------------------------------------------------------------------------------------------


def charges(trials: Sequence[TrialRecord],
            ledger: Sequence[LedgerEntry] | None) -> list[tuple[float, int | None]]:
    """(device-seconds, number of the trial completing then, else None) in spending order:
    the run's ledger (every charge, pruned and failed trials' segments included), else each
    finished trial's total charged when it finished."""
    if ledger:
        return [(e.device_seconds, e.trial_number if e.note == "complete" else None)
                for e in ledger]
    finished = sorted((t for t in trials if t.finished_at is not None),
                      key=lambda t: (t.finished_at, t.number))
    return [(t.device_seconds or 0.0, t.number) for t in finished]


def completion_hours(trials: Sequence[TrialRecord],
                     ledger: Sequence[LedgerEntry] | None) -> dict[int, float]:
    """Trial number → the run's cumulative device-hours when it completed."""
    hours, out = 0.0, {}
    for seconds, number in charges(trials, ledger):
        hours += seconds / 3600
        if number is not None:
            out[number] = hours
    return out


def hypervolume_progress(spent: Sequence[tuple[float, int | None]],
                         complete: Sequence[TrialRecord], names: Sequence[str],
                         directions: Sequence[str], low: dict[str, float],
                         high: dict[str, float]) -> list[tuple[float, float]]:
    """(device-hours, hypervolume) at each completion of `complete` in the order of `spent`
    (`charges`): the hypervolume of the trials completed so far over objectives `names`, each
    scaled to [0, 1] between `low` and `high`, the worst end of each being the reference point.
    An objective with high == low decides no dominance and is left out; a trial at the worst
    value of some objective adds nothing."""
    goal = dict(zip(names, directions, strict=True))
    used = [n for n in names if high[n] > low[n]]
    dirs = [goal[n] for n in used]
    worst = [high[n] if goal[n] == "minimize" else low[n] for n in used]
    box = 1.0
    for n in used:
        box *= high[n] - low[n]
    by_number = {t.number: t for t in complete}
    front: list[list[float]] = []  # non-dominated points seen so far, in `used` order
    progress: list[tuple[float, float]] = []
    hours = volume = 0.0
    for seconds, number in spent:
        hours += seconds / 3600
        if (t := by_number.get(number)) is None:  # type: ignore[arg-type]
            continue
        point = [float(t.values[n]) for n in used]
        if used and not any(dominates(q, point, dirs) or q == point for q in front):
            # What the new point adds: its own box less the part the front already covers,
            # which is the volume of the front with every point made no better than it.
            limited = [[max(a, b) if d == "minimize" else min(a, b)
                        for a, b, d in zip(q, point, dirs, strict=True)] for q in front]
            volume += (hypervolume([point], dirs, worst)
                       - hypervolume(limited, dirs, worst)) / box
            front = [q for q in front if not dominates(point, q, dirs)] + [point]
        progress.append((hours, volume))
    return progress


def hours_to(progress: Sequence[tuple[float, float]], target: float) -> float | None:
    """The device-hours at which `progress` first reached `target` (None: never)."""
    for hours, value in progress:
        if value >= target * (1 - 1e-9):
            return hours
    return None


# ------------------------------------------------------------------------------------------------
# comparing runs
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFront:
    """One run of a comparison, over the shared objectives."""

    run: RunRecord
    complete: list[TrialRecord]  # completed trials with a value for every shared objective
    front: list[TrialRecord]  # those on the run's own front over the shared objectives
    progress: list[tuple[float, float]]  # (device-hours, hypervolume in the common box)
    hours: dict[int, float]  # trial number → device-hours spent when it completed
    left_out: list[str]  # the run's objectives that are not compared
    combined: int = 0  # members of the combined front that are this run's

    @property
    def hypervolume(self) -> float:
        return self.progress[-1][1] if self.progress else 0.0


@dataclass(frozen=True)
class Comparison:
    objectives: list[dict[str, str]]  # the shared ones: name, direction
    runs: list[RunFront]
    best: dict[str, float]  # best value of each shared objective over all completed trials
    worst: dict[str, float]  # worst value of each: the common reference point
    reach: float = REACH
    combined: set[tuple[int, int]] = field(default_factory=set)  # (run index, trial number)

    @property
    def names(self) -> list[str]:
        return [o["name"] for o in self.objectives]

    @property
    def directions(self) -> list[str]:
        return [o["direction"] for o in self.objectives]

    @property
    def combined_size(self) -> int:
        return len(self.combined)

    @property
    def best_hypervolume(self) -> float:
        return max(r.hypervolume for r in self.runs)

    def share(self, index: int) -> float:
        """Run `index`'s share of the combined front."""
        return self.runs[index].combined / self.combined_size if self.combined_size else 0.0

    def hours_to_best(self, index: int) -> float | None:
        """Device-hours run `index` spent until its hypervolume reached `reach` × the best
        final hypervolume among the runs (None: never)."""
        return hours_to(self.runs[index].progress, self.reach * self.best_hypervolume)

    def hours_to_own(self, index: int) -> float | None:
        """Device-hours run `index` spent until it reached `reach` × its own final one."""
        run = self.runs[index]
        return hours_to(run.progress, self.reach * run.hypervolume)


def shared_objectives(runs: Sequence[RunRecord]) -> list[dict[str, str]]:
    """The objectives (name and direction) every run has, in the first run's order; NasError
    naming the runs' objectives when they share none."""
    others = [{(o["name"], o["direction"]) for o in r.objectives} for r in runs[1:]]
    common = [o for o in runs[0].objectives
              if all((o["name"], o["direction"]) in keys for keys in others)]
    if common:
        return [{"name": o["name"], "direction": o["direction"]} for o in common]
    listed = "; ".join(f"{_label(r.name)}: " + ", ".join(
        f"{o['name']} ({o['direction'][:3]})" for o in r.objectives) for r in runs)
    raise NasError(f"runs {', '.join(_label(r.name) for r in runs)} share no objective (same "
                   f"name and direction): {listed} — fix: compare runs that optimise a common "
                   "objective, or compare two trials with `nas compare RUN/A RUN/B`")


def compare_runs(entries: Sequence[tuple[RunRecord, Sequence[TrialRecord],
                                         Sequence[LedgerEntry] | None]],
                 reach: float = REACH) -> Comparison:
    """The comparison of runs given as (run, its trials, its ledger): see the module's
    docstring. NasError when they share no objective or none of them completed a trial with
    a value for each shared one."""
    if not 0 < reach <= 1:
        raise NasError(f"--reach must be a share of the final hypervolume in (0, 1], got {reach}")
    objectives = shared_objectives([run for run, _, _ in entries])
    names = [o["name"] for o in objectives]
    directions = [o["direction"] for o in objectives]
    complete = [[t for t in trials if t.state == COMPLETE and t.values
                 and all(t.values.get(n) is not None for n in names)]
                for _, trials, _ in entries]
    every = [t for trials in complete for t in trials]
    if not every:
        raise NasError(f"runs {', '.join(_label(r.name) for r, _, _ in entries)} have no "
                       f"completed trial with a value for {', '.join(names)}: nothing to compare")
    low = {n: min(float(t.values[n]) for t in every) for n in names}
    high = {n: max(float(t.values[n]) for t in every) for n in names}
    goal = dict(zip(names, directions, strict=True))
    worst = {n: high[n] if goal[n] == "minimize" else low[n] for n in names}
    best = {n: low[n] if goal[n] == "minimize" else high[n] for n in names}
    fronts = []
    for (run, trials, ledger), done in zip(entries, complete, strict=True):
        mask = pareto_mask([[float(t.values[n]) for n in names] for t in done], directions)
        fronts.append(RunFront(
            run=run, complete=done, front=[t for t, on in zip(done, mask, strict=True) if on],
            progress=hypervolume_progress(charges(trials, ledger), done, names, directions,
                                          low, high),
            hours=completion_hours(trials, ledger),
            left_out=[n for n in run.objective_names if n not in names]))
    members = [(i, t) for i, f in enumerate(fronts) for t in f.front]
    mask = pareto_mask([[float(t.values[n]) for n in names] for _, t in members], directions)
    combined = {(i, t.number) for (i, t), on in zip(members, mask, strict=True) if on}
    fronts = [replace(f, combined=sum(1 for j, _ in combined if j == i))
              for i, f in enumerate(fronts)]
    return Comparison(objectives, fronts, best, worst, reach, combined)


def load_comparison(store: Store, refs: Sequence[str], reach: float = REACH) -> Comparison:
    """`compare_runs` over the runs `refs` (names or ids) of `store`; NasError for a run named
    twice."""
    records = [store.run(ref) for ref in refs]
    seen: dict[int, str] = {}
    for ref, run in zip(refs, records, strict=True):
        if run.id in seen:
            raise NasError(f"run {_label(run.name)} is named twice ({_label(seen[run.id])}, "
                           f"{_label(ref)}); name each run once")
        seen[run.id] = ref
    return compare_runs([(run, store.trials(run.id), store.ledger_entries(run.id))
                         for run in records], reach)


def _label(text: str) -> str:
    from nas.store.untrusted import shown

    return shown(text)
