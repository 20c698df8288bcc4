"""`nas.orchestrator.spending.Spending` alone: what counts against each kind of budget, and when
a new trial may start (the search-level behaviour is in test_budget_holds.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from nas.budget import parse_budget
from nas.orchestrator.spending import Spending


@dataclass
class Running:
    started: float
    rung: int = 0


class Ledger:
    """A store with a fixed ledger (device-seconds, wall-seconds, trials charged) and the
    device-seconds of its completed trials."""

    def __init__(self, device_seconds=0.0, charged=0, completed=()):
        self.totals, self.completed = (device_seconds, device_seconds, charged), list(completed)
        self.reads = 0

    def ledger(self, run_id):
        return self.totals

    def device_seconds(self, run_id, state):
        self.reads += 1
        return self.completed


class State:
    def __init__(self, complete=0, elapsed=0.0):
        self.spent = self.device_seconds = 0.0
        self.complete, self._elapsed = complete, elapsed

    def elapsed(self):
        return self._elapsed


def test_a_trials_budget_counts_trials_started_and_not_later_segments():
    spending = Spending(parse_budget("3trials"), Ledger(charged=1), 7, State())
    starting = [Running(time.monotonic()), Running(time.monotonic(), rung=1)]
    assert spending.allows(starting)  # 1 charged + 1 starting < 3
    assert not spending.allows([*starting, Running(time.monotonic())])
    assert spending.allows([Running(time.monotonic())] * 5, new_trial=False)
    assert spending.message([]) == "budget spent: 1 of 3 trials"


def test_a_time_budget_starts_a_trial_only_if_its_median_cost_fits():
    store = Ledger(device_seconds=25.0, completed=[0.0, 10.0, 20.0, 30.0])
    state = State(complete=4)
    spending = Spending(parse_budget("1cpum"), store, 7, state)  # 60 device-seconds
    assert spending.expected_seconds() == 20.0  # the median of the costs above 0
    assert spending.allows([])  # 25 + 20 <= 60
    assert not spending.allows([Running(time.monotonic())])  # 25 + ~0 + 20 owed + 20 > 60
    assert state.spent == 25.0 and state.device_seconds == 25.0
    assert "left would not hold another trial (they take about 20s)" in spending.message(
        [Running(time.monotonic())])
    spending.expected_seconds()
    assert store.reads == 1  # read once per completion
    state.complete = 5
    spending.expected_seconds()
    assert store.reads == 2


def test_without_an_estimate_only_what_is_spent_counts():
    spending = Spending(parse_budget("1cpum"), Ledger(device_seconds=59.0, completed=[20.0]), 7,
                        State(complete=1), multi_fidelity=True)
    assert spending.expected_seconds() is None
    assert spending.allows([])
    assert not spending.allows([Running(time.monotonic() - 2)])  # 59 + 2 s in flight >= 60


def test_a_wall_clock_budget_counts_the_elapsed_time():
    spending = Spending(parse_budget("80s"), Ledger(device_seconds=500.0, completed=[20.0]), 7,
                        State(complete=1, elapsed=61.0))
    assert not spending.allows([])  # 61 + 20 > 80, however few device-seconds are charged
    assert spending.spent_with([Running(time.monotonic() - 30)]) == 61.0
