"""The search loop: ask the strategy, screen, dispatch to workers, collect, record, tell, mind
the budget.

`SearchLoop` is driven by `nas.orchestrator.search`, which starts and ends the run around it.
The driver (this loop) is the only writer to the database. Each finished trial is committed in
one transaction before the strategy hears of it, so a crash loses at most the trials in flight.
It runs trials through an `Executor` (`nas.orchestrator.executor_base`) and knows no more of
the workers than that contract.

With `search.fidelity`, a trial trains in segments that end at the rungs of
`nas.strategies.halving`: after each, the multi-objective successive-halving rule says
continue (the next segment starts at once from the trial's checkpoint), pause (the checkpoint
waits; a free worker promotes the best paused trial that has come inside its rung's quota
before it samples anything new) or, at the last rung, complete. Every segment is charged to the
ledger; trials still paused when the search ends are PRUNED with their curves.

Faults: a trial whose worker process is lost (killed, crashed) starts again on a fresh worker,
the same candidate from the same rung, up to `search.retries` times, each lost attempt charged;
a trial that raised is not retried. A trial that runs out of device memory is INFEASIBLE and
the strategy hears so, as for a candidate failing a constraint. The first Ctrl-C stops new
work and lets running trials finish; a second cancels them, and so does SIGTERM or a closed
stdout (see `nas.orchestrator.interrupts`, `nas.orchestrator.output`).

Latency: timed by the training worker before it trains, or, with `search.measure`, by one
separate measurement worker (`nas.orchestrator.measurer`) that gets the trial when it starts;
the two results are joined when both are in. A search that ends normally then settles its
front (`nas.orchestrator.settle`): replicated with other seeds, its latency re-measured.

Budget: what is spent and whether a new trial fits is `nas.orchestrator.spending`'s to say.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field, replace
from typing import Any

from nas.errors import StoreError
from nas.evaluate.measurement import cacheable
from nas.evaluate.trial import TrialRequest
from nas.failures import CANCELLED, ERROR, INFEASIBLE_FAILURES, LOST
from nas.orchestrator.executor_base import (
    Executor,
    TrialFailed,
    TrialOutOfMemory,
    WorkerLost,
    WorkerOutput,
)
from nas.orchestrator.interrupts import Interrupts
from nas.orchestrator.measurer import Measurer, join
from nas.orchestrator.options import SearchOptions
from nas.orchestrator.progress import Reporter, SearchState
from nas.orchestrator.settle import FrontSettling, front_unsettled
from nas.orchestrator.spending import Spending
from nas.searchspace import SearchSpace
from nas.spec import ArchSpec
from nas.store import PAUSED, PRUNED, RUNNING, Decision, Store
from nas.store.artifacts import ArtifactFile, weights_path
from nas.strategies import (
    Complete,
    Duplicate,
    Failed,
    Infeasible,
    Paused,
    Proposal,
    Pruned,
    SpaceExhausted,
    Strategy,
)
from nas.strategies.halving import Fidelity, SuccessiveHalving

# Consecutive samples that were all duplicates or infeasible (failing a constraint of the space)
# before we call the space exhausted: its feasible part is empty, or all of it already trained.
MAX_DUPLICATE_STREAK = 200
_POLL_SECONDS = 0.5


@dataclass
class _Pending:
    """A trial in flight (or paused between multi-fidelity segments)."""

    proposal: Proposal
    started: float
    rung: int = 0  # the rung its current segment trains to (0 without multi-fidelity)
    metrics: dict[str, float] = field(default_factory=dict)  # of earlier segments (latency...)
    curve: list[tuple[int, str, float]] = field(default_factory=list)  # of earlier segments
    retries: int = 0  # attempts lost with their worker so far
    seconds: float = 0.0  # charged for its finished segments so far (multi-fidelity)
    latency: Future | None = None  # its measurement on the measurement worker (search.measure)
    screening: bool = False  # in flight: the measurements its constraints need (no training)
    screened: bool = False  # met the constraints that need measurements

    @property
    def number(self) -> int:
        return self.proposal.number

    @property
    def spec(self) -> ArchSpec:
        return self.proposal.spec


class SearchLoop:
    """One session's search of run `run_id`, from `run()` to `settle_front()`.

    Contract: `run()` fills the executor's `workers` with trials (promotions of paused trials
    first, then the strategy's proposals) until the budget or the space runs out, and returns
    why; a Ctrl-C drains (first) or raises KeyboardInterrupt (second, or once drained). Every
    result is stored before the strategy is told of it, and `state` (shown by `reporter`) is
    kept current. After a normal end `settle_front(message)` replicates and re-measures the
    front. After any other end the caller records what was in flight with `cancel_pending`
    (`interrupted_message` says how a Ctrl-C ended it); `keep` and `front_unsettled()` say
    which weight files the run keeps. The loop never starts or stops its executor or the
    measurement worker (`measurer`; None: training workers time latency)."""

    def __init__(self, space: SearchSpace, options: SearchOptions, store: Store, run_id: int,
                 strategy: Strategy, executor: Executor, state: SearchState,
                 reporter: Reporter, seed: int, interrupts: Interrupts | None = None,
                 measurer: Measurer | None = None) -> None:
        self.space, self.options, self.store, self.run_id = space, options, store, run_id
        self.strategy, self.executor, self.state, self.reporter = (strategy, executor, state,
                                                                   reporter)
        self.seed = seed
        self.interrupts = interrupts or Interrupts()
        self.draining = False  # after the first Ctrl-C: finish what runs, start nothing
        self.cancelled = 0
        self.retries = space.config.search.retries
        self.pending: dict[Future, _Pending] = {}
        self.duplicate_streak = 0
        self.infeasible_streak = 0
        self.exhausted: str | None = None  # set once sampling is given up: never sample again
        self.keep = options.keep_weights or space.config.search.keep_weights
        self.artifacts_root = store.artifacts_root
        fidelity = space.config.search.fidelity
        self.fidelity = fidelity and Fidelity(fidelity.min_steps, space.config.training.steps,
                                              fidelity.reduction)
        self.halving = self.fidelity and SuccessiveHalving(
            self.fidelity, [o["direction"] for o in state.objectives],
            trained=[not o.known_before_training for o in space.objectives])
        self.paused: dict[int, _Pending] = {}
        self.spending = Spending(options.budget, store, run_id, state,
                                 multi_fidelity=self.fidelity is not None)
        self.measurer: Measurer | None = measurer  # None: training workers time latency
        self.settling = FrontSettling(space, store, run_id, state, executor, measurer,
                                      reporter, seed, self.spending, stop=self._end_step_tick)
        self.finishing: _Pending | None = None  # the trial whose result is being stored
        self.budget_stopped = False  # running trials were stopped when the budget ran out
        # What the constraints need measured before a candidate trains (empty: nothing), and
        # those measurements by architecture (they do not depend on the recipe or weights).
        self.screens = space.constraint_measurements()
        self.screened: dict[str, dict[str, float]] = {}

    def run(self) -> str:
        """Search until the budget or the space runs out (returns why), or until Ctrl-C
        (raises KeyboardInterrupt once the running trials have finished or been cancelled)."""
        while True:
            self._check_interrupts()
            stop = None if self.draining else self._fill_workers()
            if not self.pending:
                self._retire_paused()
                if self.draining:
                    raise KeyboardInterrupt
                return stop or "nothing left to run"
            done, _ = wait(list(self.pending), timeout=_POLL_SECONDS, return_when=FIRST_COMPLETED)
            for future in done:
                self.finishing = self.pending.pop(future)
                self._finish(future, self.finishing)
                self.finishing = None  # stored (else the error leaves it for cancel_pending)
            self.spending.refresh()
            self._stop_overrun()
            self.reporter.update(self.state)

    # -- Ctrl-C ------------------------------------------------------------------------------
    def _check_interrupts(self) -> None:
        """First Ctrl-C: drain (start nothing more); second: raise to cancel what runs."""
        if self.interrupts.count >= 2:
            raise KeyboardInterrupt
        if self.interrupts.count == 1 and not self.draining:
            self.draining = True
            self.reporter.interrupted(len(self.pending))

    def cancel_pending(self, error: str, note: str = "cancelled") -> None:
        """The trials in flight, and the one being finished when the search stopped (its
        result not stored), were stopped unfinished: FAIL with `error`, charged their time so
        far (ledger `note`, which is also their failure class: cancelled or abandoned), told
        to the strategy as failed. Each is dropped from the loop
        once recorded, so a database error part-way leaves the rest RUNNING for finish_run."""
        unfinished = list(self.pending.items())
        if self.finishing is not None:
            unfinished.append((None, self.finishing))
        for future, pending in unfinished:
            seconds = time.monotonic() - pending.started
            self.store.fail_trial(self.run_id, pending.number, error=error,
                                  device_seconds=seconds, wall_seconds=seconds, note=note,
                                  failure=note)
            if future is None:
                self.finishing = None
            else:
                del self.pending[future]
            self.strategy.tell(pending.number, Failed(note, error))
            self._drop_checkpoint(pending.number)
            self.state.failed += 1
            self.cancelled += 1
            self.reporter.trial_failed(pending.number, pending.spec, error)
        self.state.running = 0

    def interrupted_message(self) -> str:
        """How a Ctrl-C ended the search: drained, or with running trials cancelled."""
        cause = self.interrupts.cause
        if self.settling.replicating is not None:
            return (f"interrupted ({cause}) while replicating the front, after "
                    f"{self.settling.replicating.report.trials} trial(s); `nas resume "
                    f"{self.state.run_name}` replicates the rest")
        if self.settling.remeasuring is not None:
            return (f"interrupted ({cause}) while re-measuring the front, after "
                    f"{self.settling.remeasuring.report.trials} trial(s); `nas resume "
                    f"{self.state.run_name}` re-measures the rest")
        if self.pending:  # about to be cancelled
            twice = "" if self.interrupts.terminated else " twice"
            return (f"interrupted ({cause}{twice}): {len(self.pending)} running "
                    "trial(s) cancelled")
        return f"interrupted ({cause}); running trials were let finish"

    # -- budget (nas.orchestrator.spending) ---------------------------------------------------
    def _budget_left(self, new_trial: bool = True) -> bool:
        """Whether a new trial (or, new_trial=False, another segment of one already counted)
        may start now, with the trials in flight (`Spending.allows`)."""
        return self.spending.allows(self.pending.values(), new_trial)

    def _stop_overrun(self) -> None:
        """A time budget spent while trials run: stop them now (FAIL "cancelled", charged what
        they used; `nas resume --budget MORE` trains them again) rather than let the search
        overrun its budget by a whole trial."""
        budget = self.spending.budget
        if budget.unit == "trials" or not self.pending \
                or self.settling.remeasuring is not None:
            return
        if self.spending.spent_with(self.pending.values()) < budget.amount:
            return
        for future in list(self.pending):
            self.executor.cancel(future)
        self.cancel_pending(f"cancelled: the budget ({budget.text}) was spent while it ran",
                            "cancelled")
        self.budget_stopped = True

    # -- dispatch ----------------------------------------------------------------------------
    def _fill_workers(self) -> str | None:
        """Start trials until every worker is busy; a reason string once no more may start."""
        while len(self.pending) < self.executor.workers:
            if self.interrupts.count:  # a Ctrl-C while filling: start nothing more
                return None
            if self.halving is not None and self._budget_left(new_trial=False):
                promotion = self.halving.next_promotion()
                if promotion is not None:
                    number, rung = promotion
                    self.store.set_trial_state(self.run_id, number, RUNNING)
                    self._submit(self.paused.pop(number), rung + 1)
                    self.state.paused = len(self.paused)
                    continue
            if self.exhausted:
                return self.exhausted
            if not self._budget_left():
                return self.spending.message(self.pending.values())
            try:
                proposal = self._screen_known(self._propose())
            except SpaceExhausted as exc:  # an exhaustive strategy proposed everything
                self.exhausted = f"search space exhausted: {exc}"
                return self.exhausted
            if proposal.answer is not None:
                self._record_answer(proposal)
                if self.infeasible_streak + self.duplicate_streak >= MAX_DUPLICATE_STREAK:
                    self.exhausted = self._exhausted_message()
                    return self.exhausted
                continue
            if not self.screens:  # else once it passes its measured constraints
                self.duplicate_streak = self.infeasible_streak = 0
            self.store.start_trial(self.run_id, proposal.number, proposal.spec,
                                   worker=getattr(self.executor, "name", "local"),
                                   decision=_decision(proposal))
            self._submit(_Pending(proposal, time.monotonic()), rung=0)
            self.reporter.trial_started(proposal.number, proposal.spec)
        return None

    def _propose(self) -> Proposal:
        """The strategy's next candidate (screened: a duplicate or infeasible one comes back
        answered; a constraint on params, FLOPs or state builds the model on the meta device,
        which for a large one takes seconds). The loop does not poll for signals meanwhile, so
        one interrupts at once; the strategy then tells itself the trial failed. The
        architecture's costs are stored from the worker's model when the trial completes."""
        with self.interrupts.immediate():
            return self.strategy.propose()

    def _submit(self, pending: _Pending, rung: int) -> None:
        """Start `pending`'s next segment (its whole training without multi-fidelity); first,
        where the space has constraints that need measurements, those measurements."""
        if rung == 0 and self.screens and not pending.screened:
            self._submit_screen(pending)
            return
        number = pending.number
        last = self.fidelity is None or rung == len(self.fidelity.rungs) - 1
        checkpoint = None if self.fidelity is None else self._checkpoint_file(number)
        elsewhere = self.measurer is not None  # latency is timed by the measurement worker
        parent = self._parent_of(pending) if rung == 0 else None
        request = TrialRequest(
            spec_json=pending.spec.to_json(), task=self.space.task,
            latency=() if elsewhere else self.space.latency_requests(), seed=self.seed,
            num_threads=self.executor.threads, weights_file=self._weights_file(number),
            stop_step=None if last else self.fidelity.rungs[rung],
            checkpoint_in=checkpoint if rung > 0 else None,
            checkpoint_out=None if last else checkpoint,
            latency_cache=() if rung > 0 or elsewhere else self._steady_timings(pending.spec),
            proxies=self.space.proxy_requests(), allow_code=self.space.allow_code,
            time_limit=self._time_left(pending),
            **(parent or {}),
        )
        pending.rung, pending.started = rung, time.monotonic()
        future = self.executor.submit(request)
        if elsewhere and rung == 0:  # the first segment reports latency: it waits for it
            future = join(future, self._latency_future(pending))
        self.pending[future] = pending
        self.state.running = len(self.pending)

    def _parent_of(self, pending: _Pending) -> dict[str, Any] | None:
        """With `search.inherit`, what the worker needs to start `pending` from its parent's
        weights (the trial its strategy mutated, named in the proposal's strategy state): the
        parent's number, spec and weights file; None without a parent or inheritance."""
        parent = pending.proposal.private.get("parent")
        if not self.space.config.search.inherit or not isinstance(parent, int):
            return None
        try:
            spec = self.store.trial(self.run_id, parent).arch
        except StoreError:
            return None
        return {"parent": parent, "parent_spec_json": spec.to_json(),
                "parent_weights": str(self.artifacts_root / self._weights_path(parent))}

    def _screen_known(self, proposal: Proposal) -> Proposal:
        """`proposal`, answered Infeasible (and the strategy told) where its architecture's
        constraint measurements are known this session and fail a measured constraint."""
        known = self.screened.get(proposal.spec.arch_hash)
        if proposal.answer is not None or known is None:
            return proposal
        reason = self.space.measured_violation(proposal.spec, known)
        if reason is None:
            return proposal
        self.strategy.tell(proposal.number, Infeasible(reason))
        return replace(proposal, answer=Infeasible(reason))

    def _submit_screen(self, pending: _Pending) -> None:
        """Measure what the space's constraints need on the untrained model (latency, memory),
        where latency is timed (the measurement worker, else a training worker), the latency
        cache answering what it holds; `_screened` takes the answer."""
        request = TrialRequest(
            spec_json=pending.spec.to_json(), task=self.space.task, latency=self.screens,
            seed=self.seed, num_threads=self.executor.threads, latency_only=True,
            latency_cache=self._steady_timings(pending.spec), allow_code=self.space.allow_code)
        known = self.screened.get(pending.spec.arch_hash)
        if known is not None:  # measured this session, and it met the constraints
            self.duplicate_streak = self.infeasible_streak = 0
            pending.screened = True
            pending.metrics.update(known)
            self._submit(pending, 0)
            return
        pending.screening, pending.started = True, time.monotonic()
        self.pending[(self.measurer or self.executor).submit(request)] = pending
        self.state.running = len(self.pending)

    def _screened(self, output: WorkerOutput, pending: _Pending) -> None:
        """The constraint measurements of `pending` are in: cached, then either it fails a
        measured constraint (INFEASIBLE, charged the measuring, told to the strategy; it never
        trains) or it is charged the measuring and its training starts."""
        number, result = pending.number, output.result
        self.store.record_latency(pending.spec.arch_hash, result.fingerprint, result.measured)
        measured = {e["name"]: float(result.metrics[e["name"]]) for e in self.screens}
        contended = any(result.metrics.get(f"{e['name']}_contended") for e in self.screens)
        if not contended:  # a busy machine's figures are not kept to judge this architecture
            self.screened[pending.spec.arch_hash] = measured
        reason = self.space.measured_violation(pending.spec, measured)
        if reason is not None and contended:
            reason += " (timed while other processes kept the machine busy)"
        if reason is None:
            self.store.charge_trial(self.run_id, number, device_seconds=output.seconds,
                                    wall_seconds=output.seconds, note="screen")
            self.duplicate_streak = self.infeasible_streak = 0
            pending.screened = True
            pending.metrics.update(measured)
            self._submit(pending, 0)
            return
        self.store.trial_infeasible(self.run_id, number, reason=reason, failure=None,
                                    device_seconds=output.seconds, wall_seconds=output.seconds)
        self.strategy.tell(number, Infeasible(reason))
        self.infeasible_streak += 1
        if self.infeasible_streak + self.duplicate_streak >= MAX_DUPLICATE_STREAK:
            self.exhausted = self._exhausted_message()
        self.state.infeasible += 1
        self.state.running = len(self.pending)
        self.reporter.trial_infeasible(number, pending.spec, reason)

    def _time_left(self, pending: _Pending) -> float | None:
        """Seconds of training `pending` may still take under `search.trial_timeout` (its
        earlier segments' seconds spent), or None without a limit."""
        limit = self.space.config.search.trial_timeout
        return None if limit is None else max(0.0, limit - pending.seconds)

    def _latency_future(self, pending: _Pending) -> Future:
        """The trial's measurement on the measurement worker: sent when it first starts, kept
        across retries of its training unless the measurement itself failed."""
        future = pending.latency
        if future is None or (future.done() and future.exception() is not None):
            request = TrialRequest(
                spec_json=pending.spec.to_json(), task=self.space.task,
                latency=self.space.latency_requests(), seed=self.seed, latency_only=True,
                latency_cache=self._steady_timings(pending.spec),
                allow_code=self.space.allow_code)
            future = pending.latency = self.measurer.submit(request)
        return future

    def _steady_timings(self, spec: ArchSpec) -> tuple[dict, ...]:
        """The cached timings of `spec`'s architecture a trial may reuse instead of timing."""
        return tuple(cacheable(self.store.cached_latency(spec.arch_hash)))

    def front_unsettled(self) -> bool:
        """Whether the end-of-search steps may still reorder the front: then `keep_weights:
        front` prunes only at the end (`nas.orchestrator.settle.front_unsettled`)."""
        return front_unsettled(self.space)

    # -- the end (nas.orchestrator.settle) -------------------------------------------------
    def settle_front(self, message: str) -> str:
        """The end of a normal search: replicate, then re-measure, the front
        (`FrontSettling.settle`); `message` (why the search ended) with what was done
        appended. Ctrl-C raises KeyboardInterrupt."""
        return self.settling.settle(message)

    def _end_step_tick(self) -> None:
        """Between the end-of-search steps' units of work: a Ctrl-C stops them
        (KeyboardInterrupt); else the budget and the display are brought up to date."""
        if self.interrupts.count:
            raise KeyboardInterrupt
        self.spending.refresh()
        self.reporter.update(self.state)

    def _checkpoint_file(self, number: int) -> str:
        return str(self.artifacts_root / self.store.run_folder(self.state.run_name)
                   / f"{number}.checkpoint.pt")

    def _drop_checkpoint(self, number: int) -> None:
        if self.fidelity is not None:
            try:
                os.remove(self._checkpoint_file(number))
            except FileNotFoundError:
                pass

    def _retire_paused(self) -> None:
        """The search is ending: trials still paused at a rung are PRUNED (the strategy too)."""
        names = [o["name"] for o in self.state.objectives]
        for number, pending in sorted(self.paused.items()):
            self.store.set_trial_state(self.run_id, number, PRUNED)
            values = [pending.metrics[n] for n in names] \
                if all(n in pending.metrics for n in names) else None
            self.strategy.tell(number, Pruned(self.fidelity.rungs[pending.rung], values))
            self._drop_checkpoint(number)
            self.state.pruned += 1
            self.reporter.trial_pruned(number, pending.spec)
        self.paused.clear()
        self.state.paused = 0

    def _weights_path(self, number: int) -> str:
        return weights_path(self.store.run_folder(self.state.run_name), number)

    def _weights_file(self, number: int) -> str | None:
        if self.keep == "none":
            return None
        return str(self.artifacts_root / self._weights_path(number))

    def _record_answer(self, proposal: Proposal) -> None:
        """A proposal the strategy answered without training: record it, count it, report it."""
        if isinstance(proposal.answer, Infeasible):
            self._record_infeasible(proposal, proposal.answer.reason)
        else:
            self._record_duplicate(proposal, proposal.answer)

    def _record_infeasible(self, proposal: Proposal, reason: str) -> None:
        """A candidate that fails a constraint: recorded INFEASIBLE with the reason, never
        trained, charged nothing. The strategy was told (Optuna: through its constraints
        support, so NSGA-II and TPE learn where the infeasible region is)."""
        from nas.searchspace.constraints import meta_model

        try:
            params = int(meta_model(proposal.spec).num_params())
        except Exception:  # only for display; the reason is what matters
            params = None
        self.store.add_infeasible(self.run_id, proposal.number, proposal.spec, reason,
                                  params=params, decision=_decision(proposal))
        self.infeasible_streak += 1
        self.state.infeasible += 1
        self.reporter.trial_infeasible(proposal.number, proposal.spec, reason)

    def _exhausted_message(self) -> str:
        """Why sampling stopped: every recent sample infeasible, or already trained, or both."""
        if not self.infeasible_streak:
            return (f"search space exhausted: the last {self.duplicate_streak} samples "
                    "were all architectures already trained")
        total = self.infeasible_streak + self.duplicate_streak
        if not self.duplicate_streak:
            return (f"no feasible candidates: the last {total} samples all failed the space's "
                    "constraints (see the INFEASIBLE trials' errors); relax `constraints:` or "
                    "widen the space")
        return (f"search space exhausted: of the last {total} samples, {self.infeasible_streak} "
                f"failed the space's constraints and {self.duplicate_streak} were architectures "
                "already trained")

    def _record_duplicate(self, proposal: Proposal, answer: Duplicate) -> None:
        """A config trained before, or training now (running, paused at a rung, pruned there):
        never trained twice. The strategy was told the earlier trial's final values, or, while
        it has none (it may never: pruned), that this one was pruned."""
        earlier = self.store.trial(self.run_id, answer.of_number)
        self.store.add_duplicate(self.run_id, proposal.number, proposal.spec, earlier,
                                 decision=_decision(proposal))
        self.duplicate_streak += 1
        self.state.duplicates += 1
        self.reporter.trial_duplicate(proposal.number, proposal.spec, earlier.number)

    # -- results -----------------------------------------------------------------------------
    def _finish(self, future: Future, pending: _Pending) -> None:
        number = pending.number
        names = [o["name"] for o in self.state.objectives]
        screening, pending.screening = pending.screening, False
        try:
            output: WorkerOutput = future.result()
            if screening:
                self._screened(output, pending)
                return
            pending.metrics.update(output.result.metrics)  # later segments overwrite, latency stays
            pending.curve.extend(output.result.curve)
            missing = [n for n in names if n not in pending.metrics]
            if missing:
                raise TrialFailed(f"the trial measured no {', '.join(missing)} (it measured: "
                                  f"{', '.join(sorted(pending.metrics))})")
        except WorkerLost as exc:
            self._worker_lost(pending, exc)
            return
        except TrialOutOfMemory as exc:
            self._out_of_memory(pending, exc)
            return
        except Exception as exc:  # the trial raised: record, go on
            self._fail(pending, _describe_failure(exc), getattr(exc, "failure", ERROR))
            return
        result = output.result
        pending.seconds += output.seconds
        self.store.record_latency(pending.spec.arch_hash, result.fingerprint, result.measured)
        values = {name: float(pending.metrics[name]) for name in names}
        if self.halving is not None and self._at_rung(pending, values, output):
            return
        self._drop_checkpoint(number)
        artifact = None
        if result.weights is not None:
            size, sha256 = result.weights
            artifact = ArtifactFile(self._weights_path(number), size, sha256)
        self.store.complete_trial(
            self.run_id, number, values=values, metrics=pending.metrics, curve=pending.curve,
            device=result.device, device_seconds=output.seconds, wall_seconds=output.seconds,
            artifact=artifact, costs=result.costs,
            elapsed_seconds=self.state.elapsed(),  # survives a crash
        )
        if self.keep == "front" and not self.front_unsettled():
            self.store.prune_artifacts(self.run_id, "front")
        self.strategy.tell(number, Complete([values[n] for n in names]))
        if self.finishing is pending:  # stored and told: a failing reporter cancels nothing
            self.finishing = None
        self.state.complete += 1
        self.state.running = len(self.pending)
        self.state.front = self.store.pareto(self.run_id)
        self.reporter.trial_complete(number, pending.spec, values, pending.seconds)

    def _fail(self, pending: _Pending, error: str, failure: str) -> None:
        """Record a trial that failed for good: FAIL with its failure class (nas.failures),
        charged, and told to the strategy: Infeasible for a class that says the candidate is
        (diverged: its recipe is unstable there), else Failed."""
        number = pending.number
        self._drop_checkpoint(number)
        seconds = time.monotonic() - pending.started
        self.store.fail_trial(self.run_id, number, error=error, device_seconds=seconds,
                              wall_seconds=seconds, failure=failure)
        first_line = error.splitlines()[0] if error else ""
        self.strategy.tell(number, Infeasible(first_line) if failure in INFEASIBLE_FAILURES
                           else Failed(failure, first_line))
        if self.finishing is pending:  # stored and told
            self.finishing = None
        self.state.failed += 1
        self.state.running = len(self.pending)
        self.reporter.trial_failed(number, pending.spec, error)

    def _worker_lost(self, pending: _Pending, exc: WorkerLost) -> None:
        """The worker died under the trial: heal the executor, then start the same candidate
        again from the same rung (same trial number, same spec) while retries are left and the
        search is not draining or out of budget; else it fails."""
        self.executor.heal()
        error = _describe_failure(exc)
        if self.interrupts.count:  # e.g. a SIGTERM sent to the whole process group
            self._fail(pending, f"cancelled: the search was interrupted "
                                f"({self.interrupts.cause}) while it ran; {error}", CANCELLED)
            return
        if pending.retries >= self.retries or self.draining \
                or not self._budget_left(new_trial=False):
            if pending.retries:
                error += f" (lost {pending.retries + 1} times; search.retries: {self.retries})"
            self._fail(pending, error, LOST)
            return
        seconds = time.monotonic() - pending.started
        pending.retries = self.store.retry_trial(self.run_id, pending.number,
                                                 device_seconds=seconds, wall_seconds=seconds)
        self.reporter.trial_retry(pending.number, pending.spec, error, pending.retries)
        self._submit(pending, pending.rung)

    def _out_of_memory(self, pending: _Pending, exc: TrialOutOfMemory) -> None:
        """The candidate does not fit its device: INFEASIBLE with the reason, its seconds
        charged (it held the device until it failed), and the strategy told it is infeasible
        (as a candidate failing a constraint), so it learns to avoid such candidates."""
        number = pending.number
        self._drop_checkpoint(number)
        seconds = time.monotonic() - pending.started
        reason = f"out of memory: {_describe_failure(exc)}"
        self.store.trial_infeasible(self.run_id, number, reason=reason, device_seconds=seconds,
                                    wall_seconds=seconds)
        self.strategy.tell(number, Infeasible(reason))
        self.state.infeasible += 1
        self.state.running = len(self.pending)
        self.reporter.trial_infeasible(number, pending.spec, reason.splitlines()[0])


    def _at_rung(self, pending: _Pending, values: dict[str, float], output: WorkerOutput) -> bool:
        """A segment ended below the last rung: report it, then continue, pause or (out of
        budget) prune the trial; False at the last rung, where the trial completes."""
        number = pending.number
        decision = self.halving.report(number, pending.rung, list(values.values()))
        if decision == "done":
            return False
        if decision == "continue" and (self.draining or not self._budget_left(new_trial=False)):
            decision = "pause"  # no budget (or Ctrl-C) for the next segment: it may never run
        state = {"continue": RUNNING, "pause": PAUSED}[decision]
        self.store.record_rung(
            self.run_id, number, state=state, values=values, metrics=pending.metrics,
            curve=pending.curve, device=output.result.device, device_seconds=output.seconds,
            wall_seconds=output.seconds,
        )
        steps = self.fidelity.rungs[pending.rung]
        if decision == "continue":
            self._submit(pending, pending.rung + 1)
        else:
            self.paused[number] = pending
            self.state.paused = len(self.paused)
            self.strategy.tell(number, Paused(steps, list(values.values())))
        self.reporter.trial_rung(number, pending.spec, steps, values, decision)
        return True


def _decision(proposal: Proposal) -> Decision:
    """What the strategy decided for `proposal`, as nas's tables keep it."""
    return Decision(dict(proposal.params), dict(proposal.private), proposal.retrain_of)


def _describe_failure(exc: BaseException) -> str:
    """'Type: message' first, then the worker's traceback where there is one."""
    if isinstance(exc, TrialFailed):
        return f"{exc.message}\n{exc.worker_traceback.strip()}".strip()
    return f"{type(exc).__name__}: {exc}"
