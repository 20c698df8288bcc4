"""`InMemoryStrategy`: the bookkeeping every strategy of nas's own shares.

A strategy written for nas (not a wrapper of another library) keeps its trials as a list of
`Told` in number order, in memory; nas's tables are the truth it is rebuilt from on resume
(`Strategy.rebuild` replays the run's history into a fresh instance). This base class does
that bookkeeping once — numbering, the queue of enqueued params, `history()`, `rebuild` — so an
implementation only says what to sample next and, if it learns, what it makes of an outcome:

    class MyStrategy(InMemoryStrategy):
        def _suggester(self, number):       # how trial `number` is sampled (a Suggester);
            ...                             # raise SpaceExhausted when nothing is left
        def _learn(self, told):             # optional: a trial reached an outcome (told.outcome)
            ...

Numbers: an enqueued entry takes its number when it is enqueued (as in Optuna, so a rebuilt
history lines up with the stored one); a proposal takes the oldest enqueued entry, else the next
free number. `_learn` is called for every outcome in order, by a live strategy as it is told and
by a rebuild as it replays, so both end in the same state (the determinism contract of
`nas.strategies.base`).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from nas.spec import Scalar
from nas.strategies.base import Asked, Outcome, Proposal, Replay, Strategy, Told, lost

if TYPE_CHECKING:
    from nas.searchspace import SearchSpace
    from nas.searchspace.domains import Suggester


class InMemoryStrategy(Strategy):
    """A Strategy whose trials live in `self.trials` (a list of Told, index = number). See the
    module docstring for what a subclass implements."""

    def __init__(self, space: SearchSpace, seed: int, **options: Any) -> None:
        super().__init__(space, seed)
        self.options = options
        self.trials: list[Told] = []
        self._asked: int | None = None  # the trial `_ask` opened in the current propose
        self._proposing = False  # inside propose: `_learn` waits for the sampled params

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def create(cls, space: SearchSpace, seed: int, **options: Any) -> InMemoryStrategy:
        """A fresh strategy. `storage` and `study_name` (every strategy is offered them) are
        ignored: the state is rebuilt from the run's trials, never kept in a database."""
        options.pop("storage", None)
        options.pop("study_name", None)
        return cls(space, seed, **options)

    @classmethod
    def rebuild(cls, space: SearchSpace, seed: int, history: Sequence[Told],
                **options: Any) -> InMemoryStrategy:
        strategy = cls.create(space, seed, **options)
        history = lost(history)
        for expected, told in enumerate(history):
            if told.number != expected:
                raise ValueError(f"history is not in number order from 0: entry {expected} is "
                                 f"trial {told.number}")
            strategy.trials.append(told)
            if not told.queued:
                strategy._learn(told)
        strategy._restore(history)
        return strategy

    # -- the seam ----------------------------------------------------------------------------
    def _ask(self) -> Asked:
        for told in self.trials:
            if told.queued:  # the oldest enqueued entry first
                self.trials[told.number] = replace(told, queued=False)
                self._asked = told.number
                return Asked(told.number, Replay(told.params), told.retrain_of)
        number = len(self.trials)
        suggester = self._suggester(number)  # may raise SpaceExhausted: nothing is opened
        self.trials.append(Told(number, {}, None))
        self._asked = number
        return Asked(number, suggester)

    def propose(self) -> Proposal:
        """The base's `propose`; the sampled params are recorded before `_learn` hears of an
        answered (Duplicate, Infeasible) proposal, or of one whose sampling failed."""
        self._asked, self._proposing = None, True
        try:
            proposal = super().propose()
        except BaseException:
            self._proposing = False
            if self._asked is not None and self.trials[self._asked].outcome is not None:
                self._learn(self.trials[self._asked])  # told Failed by the base
            raise
        self._proposing = False
        told = replace(self.trials[proposal.number], params=dict(proposal.params),
                       private=dict(proposal.private))
        self.trials[proposal.number] = told
        if told.outcome is not None:  # answered: Duplicate or Infeasible
            self._learn(told)
        return proposal

    def _answer(self, number: int, outcome: Outcome) -> None:
        told = replace(self.trials[number], outcome=outcome)
        self.trials[number] = told
        if not self._proposing:
            self._learn(told)

    def enqueue(self, params: Mapping[str, Scalar], retrain_of: int | None = None) -> None:
        self.trials.append(Told(len(self.trials), dict(params), None, retrain_of=retrain_of,
                                queued=True))

    def history(self) -> list[Told]:
        return list(self.trials)

    # -- for subclasses ----------------------------------------------------------------------
    @abstractmethod
    def _suggester(self, number: int) -> Suggester:
        """How trial `number` (a new one, not enqueued) samples the space. Raise
        `nas.strategies.base.SpaceExhausted` when the strategy has nothing left to propose."""

    def _learn(self, told: Told) -> None:
        """Trial `told.number` reached `told.outcome` (Paused included). Nothing by default."""
