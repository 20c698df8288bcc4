"""A run's strategy history read from nas's own tables, which are its single truth.

Every trial row holds what the strategy decided for it (`nas_trials.decisions`,
`strategy_state`, `retrain_of`: nas.store.Decision) beside what happened to it, so:

- `nas resume` rebuilds the strategy from `stored_history` (`Strategy.rebuild`): a trial that
  reached nas's tables is told to the strategy exactly as stored there (re-measured latencies
  included), one that never reached them is told nothing, and numbers continue without gaps;
- the Optuna study in the run's database (for optuna-dashboard and Optuna's CLI) is a copy
  derived from the same history when a search session ends (`write_optuna_copy`), never
  written on a trial's path. During a session the strategy keeps its study in memory. A new
  search creates Optuna's tables before its run exists (`prepare_study_storage`).

Runs stored before nas's tables held decisions have them filled in from their Optuna study on
resume (`backfill_from_optuna`).
"""

from __future__ import annotations

import logging
from typing import Any

from nas.failures import ERROR, INFEASIBLE_FAILURES, INTERRUPTED
from nas.store import (
    COMPLETE,
    DUPLICATE,
    FAIL,
    INFEASIBLE,
    PRUNED,
    Decision,
    RunRecord,
    Store,
    TrialRecord,
)
from nas.strategies import (
    Complete,
    Duplicate,
    Failed,
    Infeasible,
    Outcome,
    Pruned,
    Strategy,
    Told,
    load_strategy,
    rebuild_strategy,
)

_log = logging.getLogger("nas.orchestrator")


def stored_history(store: Store, run: RunRecord) -> list[Told] | None:
    """The run's trials as a strategy history, in number order from 0; None when a trial
    lacks its stored decision (a run searched before nas's tables held them). A number with
    no row (its sampling was interrupted before it was stored) is a Failed("interrupted")
    entry without decisions, as the live strategy was told."""
    decisions = dict(store.decisions(run.id))
    if any(decision is None for decision in decisions.values()):
        return None
    trials = {t.number: t for t in store.trials(run.id)}
    history = []
    for number in range(max(trials, default=-1) + 1):
        trial, decision = trials.get(number), decisions.get(number)
        if trial is None or decision is None:
            history.append(Told(number, {}, Failed(INTERRUPTED, "sampling it was interrupted")))
            continue
        history.append(Told(number, dict(decision.values), outcome(trial, trials, run),
                            retrain_of=decision.retrain_of, private=dict(decision.state)))
    return history


def outcome(trial: TrialRecord, trials: dict[int, TrialRecord],
            run: RunRecord) -> Outcome | None:
    """What the strategy was told about `trial`, read from its row (None: no terminal outcome
    yet, running or paused, which a rebuild tells lost)."""
    names = run.objective_names
    reason = (trial.error or "").strip().splitlines()[0] if (trial.error or "").strip() else ""
    if trial.state == COMPLETE:
        return Complete([trial.values[n] for n in names])
    if trial.state == INFEASIBLE:
        return Infeasible(reason)
    if trial.state == FAIL:
        if trial.failure in INFEASIBLE_FAILURES:
            return Infeasible(reason)
        return Failed(trial.failure or ERROR, reason)
    if trial.state == DUPLICATE:
        earlier = trials.get(trial.duplicate_of)
        final = earlier is not None and earlier.state == COMPLETE and trial.values
        return Duplicate(trial.duplicate_of,
                         [trial.values[n] for n in names] if final else None)
    if trial.state == PRUNED:
        return Pruned(int((trial.metrics or {}).get("steps", 0)))
    return None


def backfill_from_optuna(store: Store, run: RunRecord, space: Any, **options: Any) -> bool:
    """Fill in the decisions of trials stored without them from the run's Optuna study (where
    nas < 0.6 kept them); whether every trial has one afterwards."""
    if all(d is not None for _, d in store.decisions(run.id)):
        return True
    loaded = load_strategy(run.strategy, space, run.seed, study_name=run.name,
                           storage=store.url, **options)
    store.record_decisions(run.id, {
        t.number: Decision(dict(t.params), {k: v for k, v in t.private.items()
                                            if not k.startswith("constraints:")}, t.retrain_of)
        for t in loaded.history() if not t.queued})
    return all(d is not None for _, d in store.decisions(run.id))


def rebuilt_strategy(store: Store, run: RunRecord, space: Any, **options: Any) -> Strategy:
    """The run's strategy as its stored trials left it, its study in memory (options:
    population_size)."""
    history = stored_history(store, run) if backfill_from_optuna(store, run, space,
                                                                 **options) else None
    if history is None:  # a row the Optuna study does not know either: continue from it alone
        return load_strategy(run.strategy, space, run.seed, study_name=run.name,
                             storage=store.url, **options)
    return rebuild_strategy(run.strategy, space, run.seed, history, study_name=run.name,
                            storage=None, **options)


def write_optuna_copy(store: Store, run: RunRecord, space: Any, **options: Any) -> bool:
    """Write the run's Optuna study into its database afresh from nas's tables (replacing the
    one there), so optuna-dashboard and `optuna trials` show the run as nas stores it;
    whether it was written. A failure is logged, never raised: the copy is a convenience."""
    import optuna

    try:
        history = stored_history(store, run)
        if history is None:
            return False
        try:
            optuna.delete_study(study_name=run.name, storage=store.url)
        except KeyError:  # none yet
            pass
        rebuild_strategy(run.strategy, space, run.seed, history, study_name=run.name,
                         storage=store.url, **options)
        return True
    except Exception as exc:  # noqa: BLE001 - the run's own tables are the results
        _log.warning("could not write the Optuna copy of run %s: %s", run.name, exc)
        return False


def prepare_study_storage(store: Store) -> None:
    """Create Optuna's tables in the store's database, one process at a time (under the lock
    nas's own migrations take): two searches starting at once on a new database would
    otherwise both create them, and the second fail ("table studies already exists")."""
    import optuna

    with store.schema_lock():
        storage = optuna.storages.RDBStorage(store.url)
        storage.engine.dispose()
