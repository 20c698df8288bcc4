"""What a run's budget has used, and whether more work fits in what is left.

`Spending` reads the run's ledger (`Store.ledger`) into the live `SearchState` (`spent`,
`device_seconds`) and answers the search loop's two questions:

- may work start (`allows`)? A `trials` budget counts trials started: a new one while fewer
  than its amount are counted or starting, another segment of one already counted always. A
  time budget (device-seconds or wall clock) counts what the trials in flight have run so far
  on top of the ledger (`spent_with`; one device each, as the ledger counts a local worker),
  and starts a new trial only if this run's median completed-trial cost (`expected_seconds`)
  fits in what is left once the trials in flight have cost as much (no estimate before a
  trial completes, nor with multi-fidelity, where a trial's cost depends on its promotions);
- why not (`message`)? The budget is spent, or what is left would not hold another trial.

The trials in flight are passed in by the loop: anything with `started` (time.monotonic() when
its current segment started) and `rung` (0 for a trial's first segment).
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Protocol

from nas.budget import Budget
from nas.formatting import format_seconds
from nas.orchestrator.progress import SearchState
from nas.store import COMPLETE, Store


class InFlight(Protocol):
    started: float  # time.monotonic() when its current segment started
    rung: int  # the rung its current segment trains to (0: its first segment)


class Spending:
    """The budget `budget` of run `run_id` as spent so far, shown in `state`."""

    def __init__(self, budget: Budget, store: Store, run_id: int, state: SearchState,
                 multi_fidelity: bool = False) -> None:
        self.budget, self.store, self.run_id, self.state = budget, store, run_id, state
        self.multi_fidelity = multi_fidelity
        # completed trials' device-seconds, sorted, and the completed count they were read at
        self._costs: tuple[int, list[float]] | None = None

    def refresh(self) -> None:
        """Read the ledger: `state.spent` in the budget's unit, `state.device_seconds`."""
        budget = self.budget
        device_seconds, _, charged = self.store.ledger(self.run_id)
        if budget.unit == "device_seconds":
            self.state.spent = device_seconds
        elif budget.unit == "wall_seconds":
            self.state.spent = self.state.elapsed()
        else:
            self.state.spent = charged
        self.state.device_seconds = device_seconds

    def allows(self, in_flight: Collection[InFlight], new_trial: bool = True) -> bool:
        """Whether work may start: a new trial, or (new_trial=False) another segment of a
        trial already counted, which a trials budget does not count again. A time budget
        (device-seconds or wall clock) starts a new trial only if what it is expected to cost
        fits in what is left after the trials in flight (`expected_seconds`). Refreshes."""
        self.refresh()
        budget = self.budget
        if budget.unit == "trials":
            if not new_trial:
                return True
            starting = sum(1 for p in in_flight if p.rung == 0)
            return self.state.spent + starting < budget.amount
        if self.spent_with(in_flight) >= budget.amount:
            return False
        expected = self.expected_seconds() if new_trial else None
        if expected is None:
            return True
        if budget.unit == "wall_seconds":
            return self.state.elapsed() + expected <= budget.amount
        owed = sum(max(0.0, expected - (time.monotonic() - p.started)) for p in in_flight)
        return self.spent_with(in_flight) + owed + expected <= budget.amount

    def message(self, in_flight: Collection[InFlight]) -> str:
        """Why no new trial starts: the budget is spent, or what is left would not hold the
        next trial at this run's typical cost."""
        budget = self.budget
        message = f"budget spent: {budget.describe(self.state.spent)}"
        expected = self.expected_seconds()
        if budget.unit != "trials" and expected is not None \
                and self.spent_with(in_flight) < budget.amount:
            message += (f"; {budget.describe_left(self.spent_with(in_flight))} left would not "
                        f"hold another trial (they take about {format_seconds(expected)})")
        return message

    def spent_with(self, in_flight: Collection[InFlight]) -> float:
        """What the budget has used counting the trials in flight so far: the wall clock, or
        the ledger's device-seconds plus each running trial's seconds since its segment
        started (not yet charged; one device each, as the ledger counts a local worker)."""
        if self.budget.unit == "wall_seconds":
            return self.state.elapsed()
        now = time.monotonic()
        return self.state.spent + sum(now - p.started for p in in_flight)

    def expected_seconds(self) -> float | None:
        """What a new trial is expected to cost: the median device-seconds of this run's
        completed trials (None before any completed, or with multi-fidelity, where a trial's
        cost depends on how far it is promoted)."""
        if self.multi_fidelity:
            return None
        if self._costs is None or self._costs[0] != self.state.complete:  # once per completion
            self._costs = (self.state.complete,
                           sorted(s for s in self.store.device_seconds(self.run_id, COMPLETE)
                                  if s > 0))
        costs = self._costs[1]
        return costs[len(costs) // 2] if costs else None
