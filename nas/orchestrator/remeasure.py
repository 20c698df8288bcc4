"""Re-measuring the front when a search ends (`search.remeasure: N`, default 2; 0 disables).

A latency objective is a single measurement session; a front member may owe its place to a
quiet moment of the machine. When a search ends normally, every completed trial on the front
or within measurement noise of it (no trial beats it beyond the latency spreads) has its
latency objectives timed again in N fresh sessions, on the device that timed it first (a
training worker, or the `search.measure` worker), one session at a time and in rounds (session 1
of every such architecture, then session 2 of each, ...), so that one architecture's sessions
lie apart in time and a slow phase of the machine seldom hits all of them. The N session
medians are pooled with the original: the trial's objective becomes the median of all, its
spread the larger of the sessions' typical spread and the spread between their medians (so the
disagreement between sessions, not only within one, decides which trials are ≈ near the front).
Measurements flagged contended (nas.evaluate.measurement) are left out of the pool while an
uncontended one is there. Every session also joins the latency cache, where the steadier or
uncontended figure replaces a disturbed one for later runs. The front is recomputed; trials
that join it are re-measured in turn.

Audit trail, in each trial's metrics (so `nas show RUN/N` lists it): `{name}_initial` and
`{name}_initial_spread` (the value before), `{name}_remeasure_K` and `{name}_remeasure_K_spread`
for each session K, `{name}_sessions` (how many were pooled); `{name}_initial_contended` and
`{name}_remeasure_K_contended` (1.0) mark the contended ones. The original is pooled only when
the architecture's cache holds a measurement on the re-measuring device's fingerprint (else it
came from another device, and only the new sessions count).

Each architecture's update and its ledger charge (note "remeasure") are one transaction, made
after its last round, and a trial that has `{name}_sessions` is never re-measured again, so a
driver that dies part way leaves nothing counted twice: `nas resume` re-measures the rest.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass, field, replace
from typing import Any

from nas.evaluate.device import fingerprint_hash
from nas.evaluate.trial import TrialRequest
from nas.store import COMPLETE, Store, TrialRecord
from nas.strategies.pareto import front_and_near

_POLL_SECONDS = 0.5


def pool(medians: Sequence[float], spreads: Sequence[float]) -> tuple[float, float]:
    """(median, relative spread) of several sessions' medians and spreads: the median of the
    medians; the larger of the median session spread and the medians' own relative IQR."""
    if not medians or len(medians) != len(spreads):
        raise ValueError("pool: need one spread per median, and at least one")
    center = statistics.median(medians)
    between = 0.0
    if len(medians) > 1 and center > 0:
        q1, _, q3 = statistics.quantiles(medians, n=4, method="inclusive")
        between = (q3 - q1) / center
    return center, max(statistics.median(spreads), between)


def in_doubt(trials: Sequence[TrialRecord], names: Sequence[str],
             directions: Sequence[str]) -> list[TrialRecord]:
    """The completed trials on the front or within measurement noise of it, in trial order."""
    done = [t for t in trials if t.state == COMPLETE and t.values]
    front, near = front_and_near(done, names, directions)
    return [t for t, a, b in zip(done, front, near, strict=True) if a or b]


def remeasured(trial: TrialRecord, latency_names: Sequence[str]) -> bool:
    """Whether the trial's latency objectives were re-measured already (in any session)."""
    metrics = trial.metrics or {}
    return all(f"{name}_sessions" in metrics for name in latency_names)


def updated_metrics(trial: TrialRecord, name: str, sessions: Sequence[dict[str, Any]],
                    with_original: bool) -> dict[str, float]:
    """The trial's metrics for objective `name` after `sessions` (measured dicts with the
    objective's `value`, or else median_ms, spread, and optionally `contended`): pooled value
    and spread, and the audit trail. Contended measurements (the original's
    `{name}_contended`, a session's `contended`) are left out of the pool while any other is
    there; `{name}_contended` is then 0, or 1 when every pooled one was contended."""
    metrics = trial.metrics or {}
    before = float(trial.values[name])
    before_spread = float(metrics.get(f"{name}_spread", 0.0))
    fresh = [float(s.get("value", s["median_ms"])) for s in sessions]
    taken = [(v, float(s["spread"]), bool(s.get("contended")))
             for v, s in zip(fresh, sessions, strict=True)]
    if with_original:
        taken.insert(0, (before, before_spread, bool(metrics.get(f"{name}_contended"))))
    clean = [t for t in taken if not t[2]]
    pooled = clean or taken
    value, spread = pool([t[0] for t in pooled], [t[1] for t in pooled])
    out = {name: value, f"{name}_spread": spread, f"{name}_initial": before,
           f"{name}_initial_spread": before_spread, f"{name}_sessions": float(len(pooled))}
    if any(s.get("contended") is not None for s in sessions) or f"{name}_contended" in metrics:
        out[f"{name}_contended"] = float(not clean)
    if with_original and taken[0][2]:
        out[f"{name}_initial_contended"] = 1.0
    for k, (s, session_value) in enumerate(zip(sessions, fresh, strict=True), start=1):
        out[f"{name}_remeasure_{k}"] = session_value
        out[f"{name}_remeasure_{k}_spread"] = float(s["spread"])
        if s.get("contended"):
            out[f"{name}_remeasure_{k}_contended"] = 1.0
    return out


@dataclass
class RemeasureReport:
    """What the step did: trials updated, architectures timed, failures ('N: error')."""

    trials: int = 0
    architectures: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def describe(self, sessions: int) -> str:
        if not self.trials and not self.failures:
            return ""
        text = (f"re-measured the latency of {self.trials} trial(s) on or near the front "
                f"({sessions} session(s) each)")
        if self.failures:
            text += f"; {len(self.failures)} could not be: {self.failures[0]}"
        return text


@dataclass
class FrontRemeasure:
    """The end-of-search step for one run.

    `runner.submit(request)` returns a Future[WorkerOutput] (an executor, or the Measurer);
    `template` is the latency-only request every architecture's request is made from (task,
    latency entries, seed, device, threads; `latency_sessions` = the sessions). `stop()` is
    polled while waiting and raises (KeyboardInterrupt) to abandon the step; the architecture
    being timed then is left for a later resume. `on_start(count)` and `on_trial(trial,
    before, after)` report progress.
    """

    store: Store
    run_id: int
    objectives: Sequence[dict[str, str]]
    latency_names: Sequence[str]
    runner: Any
    template: TrialRequest
    stop: Callable[[], None] = lambda: None
    on_start: Callable[[int], None] = lambda count: None
    on_trial: Callable[[TrialRecord, dict, dict], None] = lambda trial, before, after: None
    heal: Callable[[], None] = lambda: None
    report: RemeasureReport = field(default_factory=RemeasureReport)

    def run(self) -> RemeasureReport:
        """Re-measure until no trial on (or near) the front is left un-re-measured."""
        if self.template.latency_sessions < 1 or not self.latency_names:
            return self.report
        names = [o["name"] for o in self.objectives]
        directions = [o["direction"] for o in self.objectives]
        tried: set[str] = set()
        while True:
            trials = self.store.trials(self.run_id, states=[COMPLETE])
            todo = [t for t in in_doubt(trials, names, directions)
                    if not remeasured(t, self.latency_names) and t.arch_hash not in tried]
            if not todo:
                return self.report
            self.on_start(len(todo))
            firsts = [next(t for t in todo if t.arch_hash == arch_hash)
                      for arch_hash in dict.fromkeys(t.arch_hash for t in todo)]
            tried.update(t.arch_hash for t in firsts)
            self._in_rounds(firsts)

    def _in_rounds(self, firsts: Sequence[TrialRecord]) -> None:
        """Time the architectures of `firsts` in rounds — session 1 of each, then session 2 of
        each, ... — so that one architecture's sessions lie apart in time and a slow phase of
        the machine (they last seconds on a shared VM) seldom hits them all; then record each."""
        outputs: dict[str, list] = {t.arch_hash: [] for t in firsts}
        for k in range(self.template.latency_sessions):
            for first in firsts:
                done = outputs.get(first.arch_hash)
                if done is None:  # failed in an earlier round
                    continue
                request = replace(self.template, spec_json=first.arch.to_json(),
                                  latency_cache=(), latency_sessions=1,
                                  seed=self.template.seed + k)
                output = self._wait(first, self.runner.submit(request))
                if output is None:
                    del outputs[first.arch_hash]
                    continue
                done.append(output)
        for first in firsts:
            if first.arch_hash in outputs:
                self._record(first, outputs[first.arch_hash])

    def _wait(self, first: TrialRecord, future) -> Any:
        """The worker's output, or None after noting the failure."""
        while not future.done():
            self.stop()
            wait([future], timeout=_POLL_SECONDS, return_when=FIRST_COMPLETED)
        exc = future.exception()
        if exc is not None:
            self.heal()
            self.report.failures.append(f"trial {first.number}: {exc}".splitlines()[0])
            return None
        return future.result()

    def _record(self, first: TrialRecord, outputs: Sequence[Any]) -> None:
        """Pool one architecture's sessions (`outputs`, one per session) into every completed
        trial of the run that has it, and charge their time, in one transaction."""
        measured = [{**m, "session": k} for k, output in enumerate(outputs, start=1)
                    for m in output.result.measured]
        seconds = sum(output.seconds for output in outputs)
        key = fingerprint_hash(outputs[0].result.fingerprint)
        cached = self.store.cached_latency(first.arch_hash)
        same = [t for t in self.store.trials(self.run_id, states=[COMPLETE])
                if t.arch_hash == first.arch_hash and not remeasured(t, self.latency_names)]
        updates = {}
        for trial in same:
            metrics = dict(trial.metrics or {})
            for name in self.latency_names:
                sessions = [m for m in measured if m["name"] == name]
                if not sessions:
                    continue
                shape = (sessions[0]["phase"], sessions[0]["batch"], sessions[0]["seq_len"])
                comparable = any(c["fingerprint_hash"] == key
                                 and (c["phase"], c["batch"], c["seq_len"]) == shape
                                 for c in cached)
                metrics.update(updated_metrics(trial, name, sessions, comparable))
            values = {**trial.values, **{n: metrics[n] for n in self.latency_names}}
            updates[trial.number] = (values, metrics)
        # the sessions join the latency cache: a steadier (or uncontended) one replaces what a
        # disturbed first measurement left there, so later runs reuse the better figure
        self.store.record_latency(first.arch_hash, outputs[0].result.fingerprint, measured)
        self.store.record_remeasure(self.run_id, updates, charged=first.number,
                                    device_seconds=seconds, wall_seconds=seconds)
        self.report.architectures += 1
        self.report.seconds += seconds
        for trial in same:
            self.report.trials += 1
            self.on_trial(trial, trial.values, updates[trial.number][0])
