"""Accuracy replicates when a search ends (`search.replicates: {seeds: N, for: SCOPE}`).

One training seed can decide whether an architecture is on the front (on MQAR pure attention
escapes the plateau for some learning rates and seeds, not others). When a search ends
normally, every completed trial on the front (`for: front`), or on it or within noise of it
(`for: near_front`, the default: `nas.strategies.pareto.front_and_near`), or every completed
trial (`for: all`: a tabular benchmark's build), is trained again from scratch with the seeds
`seed + 1`, ..., `seed + N - 1` (the run's seed; N trainings in all, the original counted),
full training, on the executor's workers in parallel. Only the
trained objectives (accuracy, loss, ... — not the measured ones: latency is left as it was,
and re-timed by `search.remeasure`; nor `params`, which no seed changes) are replicated.

Per trial and replicated objective `obj`, the metrics get: `{obj}_initial` (the first seed's
value), `{obj}_replicate_K` for K = 1..N-1 (seed `seed + K`), `{obj}_replicates` (how many
trainings the mean is over), `{obj}_mean`, `{obj}_std` (sample standard deviation),
`{obj}_ci_low` and `{obj}_ci_high` (the 95 % Student-t interval of the mean) and
`{obj}_spread` (the interval's half-width relative to the mean). The trial's objective value
becomes the mean, so the front is over means, and `front_and_near` decides `≈` from the
intervals: a trial is near the front while no trial beats it beyond both intervals (trials
never replicated get the typical one-seed interval of the replicated ones, see
`nas.strategies.pareto.replicate_intervals`).

A replicate that fails (diverges, runs out of memory, times out, its worker is lost) is kept
in the audit as `{obj}_replicate_K_failed: 1.0` (and `replicate_failures`, their count) and
left out of the mean: a diverged training has no accuracy to average, and imputing a worst
value (0 accuracy, infinite loss) would let one unlucky seed erase the others. The failures are
shown beside the interval (`nas show`), so a candidate that trains only sometimes is visible.

Cost: each replicate is a full training, charged to the trial in the ledger (note
"replicate", one row per seed, its device seconds added to the trial). Like the latency
re-measurement, this phase starts after the budget is spent and may overrun it by up to
(N-1) trainings per replicated trial; a `trials` budget does not count it (no new trial).

Order: replicates run before the latency re-measurement (nas.orchestrator.settle: the means
move the front most, and the front whose latency is then re-timed is the replicated one); if
the re-measurement brings new trials on or near the front, they are replicated in turn.

Each trial's update (values, metrics, ledger rows, front) is one transaction made when its last
replicate is in; a trial that has `{obj}_replicates` for every replicated objective is never
replicated again, so a run interrupted in this phase is finished by `nas resume` (the trials
whose replicates were all in keep them; the others are replicated from scratch).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field, replace
from typing import Any

from nas.evaluate.trial import TrialRequest
from nas.stats import mean_interval
from nas.store import COMPLETE, Store, TrialRecord
from nas.strategies.pareto import front_and_near, pareto_mask

_POLL_SECONDS = 0.5

def replicated_objectives(objectives: Sequence[Any]) -> list[str]:
    """The names of the objectives a seed changes: the trained ones (not measured), `params`
    excluded. `objectives` are the space's ObjectiveConfigs."""
    return [o.name for o in objectives if not o.is_measured and o.name != "params"]


def replicated(trial: TrialRecord, names: Sequence[str]) -> bool:
    """Whether the trial was replicated already (its replicate metrics are stored)."""
    metrics = trial.metrics or {}
    return all(f"{name}_replicates" in metrics for name in names)


def updated_metrics(trial: TrialRecord, names: Sequence[str],
                    replicates: Sequence[dict[str, float] | None]) -> dict[str, float]:
    """The trial's metrics after its replicates (`replicates[K-1]`: the metrics of seed
    `seed + K`, None where that training failed): per objective the audit trail, mean,
    interval and spread described in the module docstring; `{obj}` itself becomes the mean."""
    metrics = dict(trial.metrics or {})
    failures = sum(1 for r in replicates if r is None)
    for name in names:
        first = float(trial.values[name])
        taken = [first]
        metrics[f"{name}_initial"] = first
        for k, result in enumerate(replicates, start=1):
            if result is None or name not in result or not math.isfinite(float(result[name])):
                metrics[f"{name}_replicate_{k}_failed"] = 1.0
                continue
            metrics[f"{name}_replicate_{k}"] = float(result[name])
            taken.append(float(result[name]))
        mean, std, low, high = mean_interval(taken)
        metrics.update({name: mean, f"{name}_mean": mean, f"{name}_std": std,
                        f"{name}_ci_low": low, f"{name}_ci_high": high,
                        f"{name}_replicates": float(len(taken)),
                        f"{name}_spread": (high - mean) / abs(mean) if mean else 0.0})
    metrics["replicate_failures"] = float(failures)
    return metrics


def to_replicate(trials: Sequence[TrialRecord], objectives: Sequence[dict[str, str]],
                 names: Sequence[str], scope: str) -> list[TrialRecord]:
    """The completed trials of `trials` not replicated yet that are on the front (`scope`
    front), on it or within noise of it (near_front), or all of them (all), in trial order."""
    done = [t for t in trials if t.state == COMPLETE and t.values]
    if not done:
        return []
    if scope == "all":
        return [t for t in done if not replicated(t, names)]
    all_names = [o["name"] for o in objectives]
    directions = [o["direction"] for o in objectives]
    if scope == "front":
        points = [[float(t.values[n]) for n in all_names] for t in done]
        chosen = pareto_mask(points, directions)
    else:
        front, near = front_and_near(done, all_names, directions)
        chosen = [a or b for a, b in zip(front, near, strict=True)]
    return [t for t, on in zip(done, chosen, strict=True) if on and not replicated(t, names)]


@dataclass
class ReplicateReport:
    """What the step did: trials replicated, trainings run, failed ones ('trial N seed S: ...')."""

    trials: int = 0
    trainings: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def describe(self, seeds: int) -> str:
        if not self.trials:
            return ""
        text = (f"replicated {self.trials} trial(s) on or near the front with "
                f"{seeds - 1} more seed(s) each")
        if self.failures:
            text += f"; {len(self.failures)} replicate(s) failed: {self.failures[0]}"
        return text


@dataclass
class FrontReplicates:
    """The end-of-search replicate step for one run.

    `runner.submit(request)` returns a Future[WorkerOutput] (the search's executor);
    `template` is the training request every replicate is made from (task, seed = the run's
    seed, threads, time limit; no latency entries, no weights, no proxies). `seeds` counts the
    original. At most `runner.workers` replicates are in flight (the rest wait here, so a
    failed one is charged its own time, not its queueing). `stop()` is polled while waiting and
    raises KeyboardInterrupt to abandon the step: trials with a replicate still out are left
    for `nas resume`. `on_start(count, more_seeds)` and `on_trial(trial, before, after)` (the
    objective values) report progress; `heal()` repairs the runner after a lost worker.
    """

    store: Store
    run_id: int
    objectives: Sequence[dict[str, str]]
    names: Sequence[str]  # the replicated objectives
    seeds: int
    scope: str
    runner: Any
    template: TrialRequest
    stop: Callable[[], None] = lambda: None
    on_start: Callable[[int, int], None] = lambda count, more: None
    on_trial: Callable[[TrialRecord, dict, dict], None] = lambda trial, before, after: None
    heal: Callable[[], None] = lambda: None
    report: ReplicateReport = field(default_factory=ReplicateReport)

    def run(self) -> ReplicateReport:
        """Replicate until no trial on (or near) the front is left unreplicated; the means
        can move other trials onto the front, which are then replicated in turn."""
        if self.seeds < 2 or not self.names:
            return self.report
        tried: set[int] = set()
        while True:
            trials = self.store.trials(self.run_id, states=[COMPLETE])
            todo = [t for t in to_replicate(trials, self.objectives, self.names, self.scope)
                    if t.number not in tried]
            if not todo:
                return self.report
            tried.update(t.number for t in todo)
            self.on_start(len(todo), self.seeds - 1)
            self._replicate(todo)

    def requests(self, trial: TrialRecord) -> list[TrialRequest]:
        """The replicates of `trial`: its spec (architecture and recipe) with seeds
        template.seed + 1 .. + seeds - 1."""
        spec_json = trial.arch.to_json()
        return [replace(self.template, spec_json=spec_json, seed=self.template.seed + k)
                for k in range(1, self.seeds)]

    def _replicate(self, todo: Sequence[TrialRecord]) -> None:
        jobs = [(trial, k, request) for trial in todo
                for k, request in enumerate(self.requests(trial), start=1)]
        results: dict[int, dict[int, tuple[dict[str, float] | None, float]]] = {
            t.number: {} for t in todo}
        by_number = {t.number: t for t in todo}
        running: dict[Future, tuple[TrialRecord, int, float]] = {}
        width = max(1, int(getattr(self.runner, "workers", 1) or 1))
        queue = list(jobs)
        while queue or running:
            while queue and len(running) < width:
                trial, k, request = queue.pop(0)
                running[self.runner.submit(request)] = (trial, k, time.monotonic())
            self.stop()
            done, _ = wait(list(running), timeout=_POLL_SECONDS, return_when=FIRST_COMPLETED)
            for future in done:
                trial, k, started = running.pop(future)
                results[trial.number][k] = self._outcome(trial, k, future, started)
                if len(results[trial.number]) == self.seeds - 1:
                    self._record(by_number[trial.number], results[trial.number])

    def _outcome(self, trial: TrialRecord, k: int, future: Future,
                 started: float) -> tuple[dict[str, float] | None, float]:
        """(metrics or None when the training failed, seconds to charge) of one replicate."""
        exc = future.exception()
        if exc is None:
            output = future.result()
            self.report.trainings += 1
            return dict(output.result.metrics), float(output.seconds)
        from nas.orchestrator.executor_base import WorkerLost

        if isinstance(exc, WorkerLost):
            self.heal()
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self.report.failures.append(f"trial {trial.number} seed "
                                    f"{self.template.seed + k}: {first}")
        return None, time.monotonic() - started

    def _record(self, trial: TrialRecord, outcomes: dict[int, tuple[dict | None, float]]) -> None:
        """Store one trial's replicates: values (the means), metrics, a ledger row per seed,
        the front; one transaction."""
        ordered = [outcomes[k] for k in sorted(outcomes)]
        metrics = updated_metrics(trial, self.names, [m for m, _ in ordered])
        values = {**trial.values, **{n: metrics[n] for n in self.names}}
        charges = [seconds for _, seconds in ordered]
        self.store.record_replicates(self.run_id, trial.number, values=values, metrics=metrics,
                                     charges=charges)
        self.report.trials += 1
        self.report.seconds += sum(charges)
        self.on_trial(trial, {n: trial.values[n] for n in self.names},
                      {n: values[n] for n in self.names})
