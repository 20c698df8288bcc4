"""Training again, on resume, the trials a stopped search never finished.

A trial that was lost with its driver (killed, crashed), cancelled by an interrupt or abandoned
when the search stopped on an error says nothing about its candidate. It stays FAIL in the
store and in the strategy, charged for what it used; `requeue_unfinished` asks the strategy to
propose its configuration again (`Strategy.enqueue` with its parameters), so the resumed search
trains it as a new trial, before sampling anything new. The new trial carries `retrain_of` = the
old number (Optuna's user attribute `nas:retrain_of`): each unfinished trial is requeued once,
whichever resume does it, and a requeued trial not yet proposed when that resume stopped is
proposed by the next.
"""

from __future__ import annotations

from nas.store import Store
from nas.strategies.base import Strategy

RETRAIN_OF = "nas:retrain_of"  # as nas.strategies.optuna_strategy stores it


def requeue_unfinished(store: Store, run_id: int, strategy: Strategy) -> list[int]:
    """Enqueue, in trial order, the configuration of every unfinished trial of the run
    (`Store.unfinished_trials`) not requeued before; returns the numbers requeued now."""
    history = strategy.history()
    done = {t.retrain_of for t in history}
    by_number = {t.number: t for t in history}
    requeued = []
    for number in store.unfinished_trials(run_id):
        old = by_number.get(number)
        if number in done or old is None:
            continue
        strategy.enqueue(old.params, retrain_of=number)
        requeued.append(number)
    return requeued
