"""The search loop: ask the strategy, dedupe, dispatch to workers, record, tell, mind the budget.

The driver (this loop) is the only writer to the database. Each finished trial is committed in
one transaction before the strategy hears of it, so a crash loses at most the trials in flight.
"""

from __future__ import annotations

import os
import platform
import socket
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field, replace

import optuna
from sqlalchemy.exc import SQLAlchemyError

import nas
from nas.errors import StoreError
from nas.evaluate.trial import TrialRequest
from nas.orchestrator.budget import Budget, parse_budget
from nas.orchestrator.executor import LocalExecutor, TrialFailed, WorkerLost, WorkerOutput
from nas.orchestrator.progress import Reporter, SearchState
from nas.searchspace import SearchSpace
from nas.spec import ArchSpec
from nas.store import RunRecord, Store, TrialRecord
from nas.strategies.optuna_strategy import create_study, load_study

# Consecutive samples that were all duplicates or infeasible (failing a constraint of the space)
# before we call the space exhausted: its feasible part is empty, or all of it already trained.
MAX_DUPLICATE_STREAK = 200
_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class SearchOptions:
    budget: Budget | None  # None only when resuming: the run's own budget
    storage: str
    name: str | None = None
    seed: int | None = None  # overrides the space's search.seed
    workers: int = 1
    threads: int | None = None  # torch threads per worker; default: cores / workers


@dataclass
class _Pending:
    trial: optuna.Trial
    spec: ArchSpec
    started: float


@dataclass
class SearchOutcome:
    run_name: str
    status: str
    message: str
    front: list[TrialRecord] = field(default_factory=list)


def versions() -> dict[str, str]:
    import torch

    return {"nas": nas.__version__, "torch": torch.__version__, "optuna": optuna.__version__,
            "python": platform.python_version()}


def run_search(space: SearchSpace, options: SearchOptions, reporter: Reporter) -> SearchOutcome:
    """Run a new search to its budget's end (or Ctrl-C); returns the stored outcome."""
    store = Store(options.storage)
    seed = space.config.search.seed if options.seed is None else options.seed
    objectives = [{"name": o.name, "direction": o.direction} for o in space.objectives]
    run = store.create_run(
        name=options.name, base_name=space.name, space_path=space.path, space_text=space.text,
        space_hash=space.space_hash, objectives=objectives, strategy=space.strategy, seed=seed,
        budget=options.budget.text, budget_unit=options.budget.unit,
        budget_amount=options.budget.amount, versions=versions(), host=socket.gethostname(),
        driver_pid=os.getpid(),
    )
    study = create_study(run.name, space.directions, space.strategy, seed,
                         space.config.search.population_size, storage=options.storage)
    return _drive(space, options, store, run, study, seed, reporter)


def resume_search(run_name: str, options: SearchOptions, reporter: Reporter) -> SearchOutcome:
    """Take up a stopped or crashed run where it left off, in the same database.

    The space is the one stored with the run; finished trials are kept and count against the
    budget (`options.budget`, or the run's own when None); trials a dead driver left RUNNING
    become FAIL and are told to the Optuna study, whose sampler continues on a fresh stream.
    """
    store = Store(options.storage, create=False)
    run = store.run(run_name)
    _refuse_if_alive(run)
    from nas.searchspace import loads

    space = loads(run.space_text, run.space_path)
    budget = options.budget or parse_budget(run.budget)
    store.reopen_run(run.id, driver_pid=os.getpid(), host=socket.gethostname(),
                     budget=(budget.text, budget.unit, budget.amount))
    run = store.run(run.id)
    study = load_study(run.name, run.strategy, run.seed, space.config.search.population_size,
                       storage=options.storage)
    return _drive(space, replace(options, budget=budget), store, run, study, run.seed, reporter)


def _refuse_if_alive(run: RunRecord) -> None:
    """Two drivers on one run would both write: refuse while the recorded one is alive."""
    if run.status != "running" or run.host != socket.gethostname() or not run.driver_pid:
        return
    try:
        os.kill(run.driver_pid, 0)
    except ProcessLookupError:
        return  # it died without finishing the run: safe to take over
    except PermissionError:
        pass
    raise StoreError(f"run {run.name!r} is still being searched by process {run.driver_pid} on "
                     "this host; stop it (Ctrl-C) before resuming")


def _drive(space: SearchSpace, options: SearchOptions, store: Store, run: RunRecord,
           study: optuna.Study, seed: int, reporter: Reporter) -> SearchOutcome:
    """The part new and resumed searches share: run the loop, record how it ended."""
    executor = LocalExecutor(options.workers, options.threads)
    state = SearchState(run_name=run.name, storage=options.storage, budget=options.budget,
                        objectives=run.objectives,
                        started=time.monotonic() - run.elapsed_seconds,
                        workers=options.workers, threads=executor.threads,
                        complete=run.trials_complete, front=store.pareto(run.id))
    loop = _Loop(space, options, store, run.id, study, executor, state, reporter, seed)
    status, message = "failed", "the search stopped on an unexpected error"
    database_error = None
    reporter.start(state)
    try:
        message = loop.run()
        status = "finished"
    except KeyboardInterrupt:
        status, message = "interrupted", "interrupted by the user (Ctrl-C)"
    except SQLAlchemyError as exc:  # disk full, database gone, ...: stop, keep what is stored
        database_error = f"cannot write to {options.storage}: {getattr(exc, 'orig', None) or exc}"
        message = database_error
    finally:
        executor.shutdown(cancel=True)
        reporter.stop(state)
        try:
            store.finish_run(run.id, status, message, elapsed_seconds=state.elapsed())
        except SQLAlchemyError:
            pass  # the database itself is failing; every finished trial is already committed
    if database_error:
        raise StoreError(database_error + "; every trial finished before it is stored")
    outcome = SearchOutcome(run.name, status, message, store.pareto(run.id))
    store.close()
    return outcome


class _Loop:
    def __init__(self, space, options, store, run_id, study, executor, state, reporter, seed):
        self.space, self.options, self.store, self.run_id = space, options, store, run_id
        self.study, self.executor, self.state, self.reporter = study, executor, state, reporter
        self.seed = seed
        self.pending: dict[Future, _Pending] = {}
        self.duplicate_streak = 0
        self.infeasible_streak = 0
        self.exhausted: str | None = None  # set once sampling is given up: never sample again

    def run(self) -> str:
        while True:
            stop = self._fill_workers()
            if not self.pending:
                return stop or "nothing left to run"
            done, _ = wait(list(self.pending), timeout=_POLL_SECONDS, return_when=FIRST_COMPLETED)
            for future in done:
                self._finish(future, self.pending.pop(future))
            self._refresh_budget()
            self.reporter.update(self.state)

    # -- budget ------------------------------------------------------------------------------
    def _refresh_budget(self) -> None:
        budget = self.options.budget
        device_seconds, _, charged = self.store.ledger(self.run_id)
        if budget.unit == "device_seconds":
            self.state.spent = device_seconds
        elif budget.unit == "wall_seconds":
            self.state.spent = self.state.elapsed()
        else:
            self.state.spent = charged
        self.state.device_seconds = device_seconds

    def _budget_left(self) -> bool:
        self._refresh_budget()
        if self.options.budget.unit == "trials":
            return self.state.spent + len(self.pending) < self.options.budget.amount
        return self.state.spent < self.options.budget.amount

    # -- dispatch ----------------------------------------------------------------------------
    def _fill_workers(self) -> str | None:
        """Start trials until every worker is busy; a reason string once no more may start."""
        while len(self.pending) < self.options.workers:
            if self.exhausted:
                return self.exhausted
            if not self._budget_left():
                return f"budget spent: {self.options.budget.describe(self.state.spent)}"
            trial = self.study.ask()
            spec = self.space.sample(trial)
            if self._answered_without_training(trial, spec):
                if self.infeasible_streak + self.duplicate_streak >= MAX_DUPLICATE_STREAK:
                    self.exhausted = self._exhausted_message()
                    return self.exhausted
                continue
            self.duplicate_streak = self.infeasible_streak = 0
            self.store.start_trial(self.run_id, trial.number, spec, worker="local")
            request = TrialRequest(
                spec_json=spec.to_json(), task=self.space.task,
                latency=self.space.latency_requests(), seed=self.seed,
                num_threads=self.executor.threads,
            )
            self.pending[self.executor.submit(request)] = _Pending(trial, spec, time.monotonic())
            self.state.running = len(self.pending)
            self.reporter.trial_started(trial.number, spec)
        return None

    def _answer_infeasible(self, trial: optuna.Trial, spec: ArchSpec, reason: str) -> None:
        """A candidate that fails a constraint: recorded INFEASIBLE with the reason, never
        trained, charged nothing; Optuna hears it as a failed trial, so no sampler treats it
        as a result (the samplers' own `constraints_func` would need objective values, which
        an untrained candidate does not have)."""
        from nas.searchspace.constraints import meta_model

        try:
            params = int(meta_model(spec).num_params())
        except Exception:  # only for display; the reason is what matters
            params = None
        self.store.add_infeasible(self.run_id, trial.number, spec, reason, params=params)
        self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        self.infeasible_streak += 1
        self.state.infeasible += 1
        self.reporter.trial_infeasible(trial.number, spec, reason)

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

    def _answered_without_training(self, trial: optuna.Trial, spec: ArchSpec) -> bool:
        """Infeasible (fails a constraint) or already trained: record it, tell the sampler."""
        reason = self.space.violation(spec)
        if reason is not None:
            self._answer_infeasible(trial, spec, reason)
            return True
        earlier = self.store.find_complete(self.run_id, spec.config_hash)
        if earlier is not None:
            self._answer_duplicate(trial, spec, earlier)
            return True
        return False

    def _answer_duplicate(self, trial: optuna.Trial, spec: ArchSpec, earlier: TrialRecord) -> None:
        self.store.add_duplicate(self.run_id, trial.number, spec, earlier)
        self.study.tell(trial, [earlier.values[o["name"]] for o in self.state.objectives])
        self.duplicate_streak += 1
        self.state.duplicates += 1
        self.reporter.trial_duplicate(trial.number, spec, earlier.number)

    # -- results -----------------------------------------------------------------------------
    def _finish(self, future: Future, pending: _Pending) -> None:
        number = pending.trial.number
        names = [o["name"] for o in self.state.objectives]
        try:
            output: WorkerOutput = future.result()
            missing = [n for n in names if n not in output.result.metrics]
            if missing:
                raise TrialFailed(f"the trial measured no {', '.join(missing)} (it measured: "
                                  f"{', '.join(sorted(output.result.metrics))})")
        except Exception as exc:  # the trial failed or its worker died: record, go on
            seconds = time.monotonic() - pending.started
            error = _describe_failure(exc)
            self.store.fail_trial(self.run_id, number, error=error, device_seconds=seconds,
                                  wall_seconds=seconds)
            self.study.tell(pending.trial, state=optuna.trial.TrialState.FAIL)
            if isinstance(exc, WorkerLost):
                self.executor.heal()
            self.state.failed += 1
            self.state.running = len(self.pending)
            self.reporter.trial_failed(number, pending.spec, error)
            return
        result = output.result
        values = {name: float(result.metrics[name]) for name in names}
        self.store.complete_trial(
            self.run_id, number, values=values, metrics=result.metrics, curve=result.curve,
            device=result.device, device_seconds=output.seconds, wall_seconds=output.seconds,
        )
        self.store.record_elapsed(self.run_id, self.state.elapsed())  # survives a crash
        self.study.tell(pending.trial, [values[n] for n in names])
        self.state.complete += 1
        self.state.running = len(self.pending)
        self.state.front = self.store.pareto(self.run_id)
        self.reporter.trial_complete(number, pending.spec, values, output.seconds)


def _describe_failure(exc: BaseException) -> str:
    """'Type: message' first, then the worker's traceback where there is one."""
    if isinstance(exc, TrialFailed):
        return f"{exc.message}\n{exc.worker_traceback.strip()}".strip()
    return f"{type(exc).__name__}: {exc}"
