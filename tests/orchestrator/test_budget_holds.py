"""Budgets that hold: a time budget stops the trials running when it is spent (they are FAIL
"cancelled", charged, and trained again by a resume with more budget), and a new trial starts
only if what this run's trials cost fits in what is left."""

from __future__ import annotations

from nas.budget import parse_budget
from nas.failures import CANCELLED
from nas.orchestrator.progress import NullReporter
from nas.orchestrator.search import SearchOptions, run_search
from nas.searchspace import loads
from nas.store import COMPLETE, FAIL, Store
from tests.orchestrator.test_faults import FIXED_SPACE


def search(text, tmp_path, budget):
    url = f"sqlite:///{tmp_path}/nas.db"
    options = SearchOptions(budget=parse_budget(budget), storage=url, threads=1, workers=1)
    return run_search(loads(text, "space.yaml"), options, NullReporter()), Store(url)


def test_a_wall_budget_stops_a_trial_that_would_overrun_it(tmp_path):
    endless = FIXED_SPACE.replace("steps: 1500", "steps: 5000000").replace("RETRIES", "0")
    outcome, store = search(endless, tmp_path, "6s")
    assert outcome.status == "finished" and outcome.message.startswith("budget spent"), \
        outcome.message
    [trial] = store.trials(outcome.run_name)
    assert (trial.state, trial.failure) == (FAIL, CANCELLED)
    assert trial.error.startswith("cancelled: the budget (6s) was spent while it ran")
    assert 0 < trial.device_seconds < 30  # charged what it used, stopped near the budget
    assert store.run(outcome.run_name).elapsed_seconds < 30  # not the hours it would take
    assert store.unfinished_trials(store.run(outcome.run_name).id) == [0]  # resume retrains


def test_a_device_budget_is_not_overrun_by_a_whole_trial(tmp_path):
    text = (FIXED_SPACE.replace("steps: 1500", "steps: 300").replace("RETRIES", "0")
            .replace("lr: 3.0e-3", "lr: {loguniform: [1.0e-3, 1.0e-2]}"))
    outcome, store = search(text, tmp_path, "0.25cpum")  # 15 device-seconds
    device_seconds, _, _ = store.ledger(store.run(outcome.run_name).id)
    trials = store.trials(outcome.run_name)
    assert sum(t.state == COMPLETE for t in trials) >= 2, [t.error for t in trials]
    # Without the estimate the last trial would start with a second left and run to its end;
    # with it (and running trials stopped when the budget is spent) the ledger stays within
    # the budget but for the loop's polling interval.
    assert device_seconds <= 15 + 1.5, device_seconds
    assert outcome.message.startswith("budget spent")
