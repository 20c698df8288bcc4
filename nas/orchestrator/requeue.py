"""Training again, on resume, the trials a stopped search never finished.

A trial that was lost with its driver (killed, crashed), cancelled by an interrupt or abandoned
when the search stopped on an error says nothing about its candidate. It stays FAIL in the
store and in Optuna, charged for what it used; `requeue_unfinished` asks Optuna to propose its
configuration again (`Study.enqueue_trial` with its parameters), so the resumed search trains it
as a new trial, before sampling anything new. The new trial carries the user attribute
`nas:retrain_of` = the old number: each unfinished trial is requeued once, whichever resume does
it, and a requeued trial not yet asked when that resume stopped is asked by the next.
"""

from __future__ import annotations

import optuna

from nas.store import Store

RETRAIN_OF = "nas:retrain_of"


def requeue_unfinished(store: Store, run_id: int, study: optuna.Study) -> list[int]:
    """Enqueue, in trial order, the configuration of every unfinished trial of the run
    (`Store.unfinished_trials`) not requeued before; returns the numbers requeued now."""
    trials = study.get_trials(deepcopy=False)
    done = {t.user_attrs.get(RETRAIN_OF) for t in trials}
    by_number = {t.number: t for t in trials}
    requeued = []
    for number in store.unfinished_trials(run_id):
        old = by_number.get(number)
        if number in done or old is None:
            continue
        study.enqueue_trial(dict(old.params), user_attrs={RETRAIN_OF: number},
                            skip_if_exists=False)
        requeued.append(number)
    return requeued
