"""The end of a search that ran to its end: settling its front.

`FrontSettling.settle` replicates the front's trained objectives with other seeds
(`search.replicates`, `nas.orchestrator.replicates`), then re-measures its latency in fresh
sessions (`search.remeasure`, `nas.orchestrator.remeasure`); while the re-measurement brings
unreplicated trials on (or near) the front, again. Replicates go first: the means move the
front most, and the latency re-timed should be that of the final front.

Contract: called by the search loop after a normal end only (not after Ctrl-C), with its
executor (and measurement worker, which times the re-measurement where there is one) still
running. `stop` is called between units of work: it raises KeyboardInterrupt to stop (the
phase under way is then left in `replicating` / `remeasuring`, for the message saying what a
resume does), else brings the display up to date. After each phase the budget's spending is
refreshed, the run's elapsed time recorded and `state.front` re-read.
"""

from __future__ import annotations

from collections.abc import Callable

from nas.evaluate.trial import TrialRequest
from nas.orchestrator.executor_base import Executor
from nas.orchestrator.measurer import Measurer
from nas.orchestrator.progress import Reporter, SearchState
from nas.orchestrator.remeasure import FrontRemeasure
from nas.orchestrator.replicates import FrontReplicates, replicated_objectives
from nas.orchestrator.spending import Spending
from nas.searchspace import SearchSpace
from nas.store import Store, TrialRecord


def front_unsettled(space: SearchSpace) -> bool:
    """Whether an end-of-search re-measurement of latency may still reorder the front: then
    `keep_weights: front` prunes only at the end, since re-measured values can move any
    trial onto the front (sessions drift well beyond one session's spread). Likewise with
    replicates (their means move the front) and with weight inheritance (a child's parent
    may be off the front, and its weights are what the child starts from)."""
    return bool(space.config.search.remeasure
                and space.latency_requests(timed_only=True)) or \
        space.config.search.replicates is not None or \
        space.config.search.inherit  # means move the front too; parents need their weights


class FrontSettling:
    """The end-of-search steps of run `run_id` (see the module docstring)."""

    def __init__(self, space: SearchSpace, store: Store, run_id: int, state: SearchState,
                 executor: Executor, measurer: Measurer | None, reporter: Reporter, seed: int,
                 spending: Spending, stop: Callable[[], None]) -> None:
        self.space, self.store, self.run_id, self.state = space, store, run_id, state
        self.executor, self.measurer, self.reporter, self.seed = executor, measurer, reporter, seed
        self.spending, self.stop = spending, stop
        self.remeasuring: FrontRemeasure | None = None  # while the front is re-measured
        self.replicating: FrontReplicates | None = None  # while the front is replicated
        self.replicated_trials = 0  # trials replicated by this driver (settle)

    def settle(self, message: str) -> str:
        """Replicate, then re-measure, the front (again while that brings new trials on it);
        `message` (why the search ended) with what was done appended."""
        message = self.replicate(message)
        message = self.remeasure(message)
        if self.space.config.search.replicates is None:
            return message
        while True:
            before = self.replicated_trials
            message = self.replicate(message)
            if self.replicated_trials == before:
                return message
            message = self.remeasure(message)

    def replicate(self, message: str) -> str:
        """Train the trials on (or near) the front again with `search.replicates.seeds` - 1
        more seeds each (nas.orchestrator.replicates); `message` with what was done appended.
        Ctrl-C raises KeyboardInterrupt."""
        config = self.space.config.search.replicates
        names = replicated_objectives(self.space.objectives)
        if config is None or not names:
            return message
        template = TrialRequest(
            spec_json="", task=self.space.task, latency=(), seed=self.seed,
            num_threads=self.executor.threads, allow_code=self.space.allow_code,
            time_limit=self.space.config.search.trial_timeout)

        def on_trial(trial: TrialRecord, before: dict, after: dict) -> None:
            self.reporter.trial_replicated(trial.number, trial.arch, before, after)

        self.replicating = FrontReplicates(
            self.store, self.run_id, self.state.objectives, names, config.seeds, config.scope,
            self.executor, template, stop=self.stop,
            on_start=lambda count, more: self.reporter.replicating(count, more),
            on_trial=on_trial, heal=self.executor.heal)
        report = self.replicating.run()
        self.replicating = None
        self.replicated_trials += report.trials
        self.spending.refresh()
        self.store.record_elapsed(self.run_id, self.state.elapsed())
        self.state.front = self.store.pareto(self.run_id)
        note = report.describe(config.seeds)
        return f"{message}; {note}" if note else message

    def remeasure(self, message: str) -> str:
        """Re-measure the latency of the front (and of the trials within noise of it) in
        `search.remeasure` fresh sessions on the device that timed them; `message` (why the
        search ended) with what was done appended. Ctrl-C raises KeyboardInterrupt."""
        sessions = self.space.config.search.remeasure
        latency = self.space.latency_requests(timed_only=True)  # memory is not noisy
        if not sessions or not latency:
            return message
        runner = self.measurer or self.executor
        template = TrialRequest(spec_json="", task=self.space.task, latency=latency,
                                seed=self.seed, num_threads=self.executor.threads,
                                latency_only=True, latency_sessions=sessions,
                                allow_code=self.space.allow_code)
        names = [entry["name"] for entry in latency]

        def on_trial(trial: TrialRecord, before: dict, after: dict) -> None:
            self.reporter.trial_remeasured(trial.number, trial.arch,
                                           {n: before[n] for n in names},
                                           {n: after[n] for n in names})

        self.remeasuring = FrontRemeasure(
            self.store, self.run_id, self.state.objectives, names, runner, template,
            stop=self.stop,
            on_start=lambda count: self.reporter.remeasuring(count, sessions),
            on_trial=on_trial, heal=runner.heal)
        report = self.remeasuring.run()
        self.remeasuring = None
        self.spending.refresh()
        self.store.record_elapsed(self.run_id, self.state.elapsed())
        self.state.front = self.store.pareto(self.run_id)
        note = report.describe(sessions)
        return f"{message}; {note}" if note else message
