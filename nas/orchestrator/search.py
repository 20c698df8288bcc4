"""A search session from start to end: `run_search` (a new run) and `resume_search` (a stopped
or crashed one), around the loop of `nas.orchestrator.loop`.

A session checks what it is asked before anything is written (trusted user code, the
measurement device, the workers and threads; on resume, that no live driver holds the run and
that its folder stays inside the artifacts root: `nas.orchestrator.takeover`), creates or
reopens the run, builds or rebuilds the strategy (`nas.orchestrator.history`), starts the
workers (`nas.orchestrator.workers`), runs the loop under a heartbeat
(`nas.orchestrator.heartbeat`), and ends the run: its status and message, the trials left in
flight, the weight files its policy keeps, and the Optuna copy of its study.

The driver's own end: from the run's creation on, whatever stops the driver short of SIGKILL
(a signal, a full disk, a bug) marks the run interrupted or failed and records the trials in
flight FAIL, charged; only a database that refuses every write leaves it `running`, for
`nas resume` to take over. Resume trains the trials that ended without a verdict on their
candidate again (`nas.orchestrator.requeue`). A trial's device-seconds are always the sum of
its ledger rows: retries, multi-fidelity segments and the attempt lost with a driver.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import optuna
from sqlalchemy.exc import SQLAlchemyError

from nas.budget import parse_budget
from nas.errors import StoreError
from nas.orchestrator.heartbeat import Heartbeat
from nas.orchestrator.history import prepare_study_storage, rebuilt_strategy, write_optuna_copy
from nas.orchestrator.interrupts import Interrupts
from nas.orchestrator.loop import SearchLoop
from nas.orchestrator.options import SearchOptions
from nas.orchestrator.output import OutputGuard
from nas.orchestrator.progress import Reporter, SearchState
from nas.orchestrator.replay_executor import check_replay
from nas.orchestrator.requeue import requeue_unfinished
from nas.orchestrator.takeover import check_run_folder, refuse_if_alive
from nas.orchestrator.versions import versions
from nas.orchestrator.workers import check_measure_device, check_parallelism, start_workers
from nas.searchspace import SearchSpace
from nas.store import (
    COMPLETE,
    DUPLICATE,
    FAIL,
    INFEASIBLE,
    PRUNED,
    RunRecord,
    Store,
    TrialRecord,
)
from nas.strategies import Strategy, make_strategy

__all__ = ["SearchOptions", "SearchOutcome", "resume_search", "run_search"]


@dataclass
class SearchOutcome:
    """How a session ended, read back from the database: the run, its status (finished,
    interrupted or failed), why, and its Pareto front."""

    run_name: str
    status: str
    message: str
    front: list[TrialRecord] = field(default_factory=list)


def run_search(space: SearchSpace, options: SearchOptions, reporter: Reporter) -> SearchOutcome:
    """Run a new search to its budget's end (or Ctrl-C); returns the stored outcome.

    A space that names user code must have been loaded with allow_code=True (the user's
    trust); otherwise this raises its SpaceError before anything starts. Every trial request
    carries that permission (TrialRequest.allow_code): workers import user code only with it."""
    from nas.searchspace.loader import require_trusted

    require_trusted(space)
    check_measure_device(space)
    check_parallelism(space, options)
    replay = check_replay(space, options.budget.unit, options.ray_address)
    store = Store(options.storage)
    seed = space.config.search.seed if options.seed is None else options.seed
    objectives = [{"name": o.name, "direction": o.direction} for o in space.objectives]
    interrupts = Interrupts()  # from here to the end, a signal never leaves the run `running`
    with interrupts:
        with interrupts.immediate(), _writing(options.storage):
            prepare_study_storage(store)  # before the run exists: its errors leave no run
            run = store.create_run(
                name=options.name, base_name=space.name, space_path=space.path,
                space_text=space.text, space_hash=space.space_hash, objectives=objectives,
                strategy=space.strategy, seed=seed, budget=options.budget.text,
                budget_unit=options.budget.unit, budget_amount=options.budget.amount,
                versions={**versions(), **({"replay": replay} if replay else {})},
                host=socket.gethostname(), driver_pid=os.getpid(),
            )
        with _ends_run_on_error(store, run.id, interrupts, "while starting"), \
                interrupts.immediate(), _writing(options.storage):
            # In memory: nas's tables are the truth, the database's Optuna study a copy
            # written when the session ends (nas.orchestrator.history).
            strategy = make_strategy(space.strategy, space, seed,
                                     population_size=space.config.search.population_size,
                                     storage=None, study_name=run.name)
        return _drive(space, options, store, run, strategy, seed, reporter, interrupts)


def resume_search(run_name: str, options: SearchOptions, reporter: Reporter) -> SearchOutcome:
    """Take up a stopped or crashed run where it left off, in the same database.

    The space is the one stored with the run; finished trials are kept and count against the
    budget (`options.budget`, or the run's own when None); trials a dead driver left RUNNING
    become FAIL (charged up to its last sign of life) and are told to the strategy, rebuilt
    from the run's stored trials (`nas.strategies.load_strategy`), which continues the run's
    stream. Every trial that ended without a verdict on its
    candidate (lost with its driver, cancelled by an interrupt, abandoned when the search
    failed) has its configuration trained again, once, as a new trial
    (`nas.orchestrator.requeue`).
    """
    store = Store(options.storage, create=False)
    run = store.run(run_name)
    refuse_if_alive(run, options.storage)
    check_run_folder(store, run)
    from nas.searchspace import loads
    from nas.searchspace.loader import require_trusted

    space = loads(run.space_text, run.space_path, allow_code=options.allow_code)
    require_trusted(space)
    check_measure_device(space)
    check_parallelism(space, options)
    budget = options.budget or parse_budget(run.budget)
    check_replay(space, budget.unit, options.ray_address)
    interrupts = Interrupts()  # from here to the end, a signal never leaves the run `running`
    with interrupts:
        with interrupts.immediate(), _writing(options.storage):
            store.reopen_run(run.id, driver_pid=os.getpid(), host=socket.gethostname(),
                             budget=(budget.text, budget.unit, budget.amount))
            run = store.run(run.id)
        with _ends_run_on_error(store, run.id, interrupts, "while resuming"), \
                interrupts.immediate(), _writing(options.storage):
            strategy = rebuilt_strategy(store, run, space,
                                        population_size=space.config.search.population_size)
            requeue_unfinished(store, run.id, strategy)
        return _drive(space, replace(options, budget=budget), store, run, strategy, run.seed,
                      reporter, interrupts)


def _drive(space: SearchSpace, options: SearchOptions, store: Store, run: RunRecord,
           strategy: Strategy, seed: int, reporter: Reporter,
           interrupts: Interrupts) -> SearchOutcome:
    """The part new and resumed searches share: run the loop, record how it ended. The counts
    shown (complete, failed, ...) are the run's, earlier sessions included.

    Contract: called with `interrupts` entered and the run `running`; however it ends (budget,
    signal, closed stdout, database error, bug) the run is marked finished, interrupted or
    failed before it returns or raises, unless the database itself refuses the write (then
    `nas resume` marks it). Trials in flight at an unfinished end are recorded FAIL (charged,
    told to the strategy) and their workers are stopped."""
    with _ends_run_on_error(store, run.id, interrupts, "while starting the workers"), \
            interrupts.immediate():
        executor, measurer = start_workers(space, options)
    with _ends_run_on_error(store, run.id, interrupts, "while starting",
                            stop=(executor, measurer)), interrupts.immediate():
        counts = store.state_counts(run.id)
        state = SearchState(run_name=run.name, storage=options.storage, budget=options.budget,
                            objectives=run.objectives,
                            started=time.monotonic() - run.elapsed_seconds,
                            workers=executor.workers, threads=executor.threads,
                            complete=counts.get(COMPLETE, 0), failed=counts.get(FAIL, 0),
                            duplicates=counts.get(DUPLICATE, 0),
                            infeasible=counts.get(INFEASIBLE, 0),
                            pruned=counts.get(PRUNED, 0), front=store.pareto(run.id))
    # A closed stdout (`nas search | head`) stops the search as SIGTERM would.
    reporter = OutputGuard(reporter, on_closed=lambda: interrupts.stop("stdout closed"))
    loop = SearchLoop(space, options, store, run.id, strategy, executor, state, reporter, seed,
                 interrupts, measurer)
    status, message = "failed", "the search stopped on an unexpected error"
    database_error = None
    with Heartbeat(store, run.id):
        try:
            reporter.start(state)
            message = loop.run()
            message = loop.settle_front(message)  # a normal end only: not after Ctrl-C
            status = "finished"
        except KeyboardInterrupt:
            status, message = "interrupted", loop.interrupted_message()
        except STORAGE_ERRORS as exc:  # disk full, database gone: stop, keep what is stored
            database_error = f"cannot write to {options.storage}: {storage_reason(exc)}"
            message = database_error
        finally:
            try:  # the run is marked below even if this cleanup fails (or a third Ctrl-C)
                executor.shutdown(cancel=True)
                if measurer is not None:
                    measurer.shutdown(cancel=True)
                _record_unfinished(loop, status, message)
                state.status, state.message = status, message
                state.proxies = _proxy_agreement(store, run.id)
                reporter.stop(state)
            finally:
                _end_run(store, run.id, loop, status, message, state.elapsed())
    if not database_error and space.config.search.evaluate is None:  # a replay: no copy
        write_optuna_copy(store, store.run(run.id), space,
                          population_size=space.config.search.population_size)
    if database_error:
        raise StoreError(f"{database_error}; every trial finished before it is stored, and "
                         f"`nas resume {run.name}` trains the unfinished ones again")
    outcome = SearchOutcome(run.name, status, message, store.pareto(run.id))
    store.close()
    return outcome


# What a failing database raises: through SQLAlchemy (nas' store), or wrapped by Optuna's storage.
STORAGE_ERRORS = (SQLAlchemyError, optuna.exceptions.StorageInternalError)


def storage_reason(exc: BaseException) -> str:
    """The database's own words for a storage error (e.g. "database or disk is full")."""
    cause = exc.__cause__ if isinstance(exc, optuna.exceptions.StorageInternalError) else exc
    return str(getattr(cause, "orig", None) or cause or exc)


@contextmanager
def _writing(url: str) -> Iterator[None]:
    """Storage errors of a write (a read-only file, a full disk) as one-line StoreErrors."""
    try:
        yield
    except STORAGE_ERRORS as exc:
        raise StoreError(f"cannot write to {url}: {storage_reason(exc)}") from None


@contextmanager
def _ends_run_on_error(store: Store, run_id: int, interrupts: Interrupts, when: str,
                       stop: tuple = ()) -> Iterator[None]:
    """For the steps between a run's creation (or reopening) and its loop: any exception
    marks the run interrupted (KeyboardInterrupt: a signal) or failed (its one-line reason)
    and stops the executors in `stop` (None entries skipped) before it propagates, so no run
    is left `running` with no driver."""
    try:
        yield
    except BaseException as exc:
        for executor in stop:
            if executor is not None:
                executor.shutdown(cancel=True)
        if isinstance(exc, KeyboardInterrupt):
            status, message = "interrupted", f"interrupted ({interrupts.cause}) {when}"
        else:
            status = "failed"
            reason = storage_reason(exc) if isinstance(exc, STORAGE_ERRORS) else str(exc)
            message = f"failed {when}: {reason or type(exc).__name__}"
        try:
            store.finish_run(run_id, status, message)
        except STORAGE_ERRORS:
            pass  # the database refuses writes: `nas resume` marks the run later
        raise


def _proxy_agreement(store: Store, run_id: int) -> list[dict]:
    """How each proxy task ranks the run's completed trials against the target (see
    nas.evaluate.ranking); empty without proxies or when the database cannot be read."""
    from nas.evaluate.ranking import proxy_agreement, proxy_names

    try:
        complete = store.trials(run_id, states=[COMPLETE])
    except SQLAlchemyError:
        return []
    return proxy_agreement(complete, proxy_names(complete))


def _end_run(store: Store, run_id: int, loop: SearchLoop, status: str, message: str,
             elapsed: float) -> None:
    """Prune the run's weight files to its policy (all kept when the front may still be
    re-measured) and mark the run `status`. A database that refuses is left as it is: every
    finished trial is already committed, and `nas resume` marks the rest."""
    try:  # no worker writes any more: files of trials off the policy go, orphans too
        store.prune_artifacts(run_id, "all" if status != "finished"
                              and loop.front_unsettled() else loop.keep, sweep=True)
    except (SQLAlchemyError, OSError):
        pass
    try:
        store.finish_run(run_id, status, message, elapsed_seconds=elapsed)
    except SQLAlchemyError:
        pass


def _record_unfinished(loop: SearchLoop, status: str, message: str) -> None:
    """A search that did not finish stopped the trials in flight (and the one whose result
    it was storing, if that failed): record them FAIL, charged, "cancelled: ..." after an
    interrupt, "abandoned: ..." after an error, so `nas resume` trains them again. Where the
    database refuses, finish_run (or a later resume) marks them instead."""
    if status == "finished":
        return
    if status == "interrupted":
        error, note = (f"cancelled: the search was interrupted ({loop.interrupts.cause}) "
                       "while it ran"), "cancelled"
    else:
        error, note = f"abandoned: the search stopped while it ran ({message})", "abandoned"
    try:
        loop.cancel_pending(error, note)
    except STORAGE_ERRORS:
        pass
