"""The Strategy seam: what proposes candidates and what it is told about them.

A strategy owns the search's decisions *what to try*: it samples the space itself, walking the
compiled decision graph (`SearchSpace.sample` with a suggester of its own), and hears every
outcome. The search loop (`nas.orchestrator.loop`) and the Ray Tune searcher
(`nas.integrations.tune`) decide where and when candidates run; they only call the methods
below and never see the strategy's internals (no `optuna.Trial` outside an implementation).

The protocol, in order, for each trial number:

    proposal = strategy.propose()            # ask -> sample -> dedupe -> constraints
    if proposal.answer is not None:          # answered without training (Duplicate or
        record it; never train it            #   Infeasible), already told to the strategy
    else:
        train it, then strategy.tell(proposal.number, outcome)
                                             # Paused(...) any number of times, then exactly
                                             # one terminal outcome

Outcomes (frozen dataclasses below): `Complete(values)`, `Failed(failure_class, message)`,
`Infeasible(reason)`, `Duplicate(of_number, values)`, `Pruned(step, values)` and the one
non-terminal kind, `Paused(step, values)` (multi-fidelity: the trial waits at a rung and may
later continue to another Paused, to Complete or to Pruned). Objective values are in the order
of the space's objectives (`space.directions`).

`propose` is concrete here and the same for every strategy, so the protocol is written once:
the implementation opens a trial (`_ask`), the space is sampled through its suggester, and a
sample whose configuration (`ArchSpec.config_hash`) was already trained or is training (any
proposal not answered and not ended Failed or Infeasible) is answered `Duplicate` of that trial,
with its values once it completed; otherwise a sample failing a constraint of the space is
answered `Infeasible`. A proposal to train is therefore never a finished (or running) duplicate.

Rebuilding: `history()` is the run's trials in number order, each with its last outcome, as the
implementation stores them; `Strategy.rebuild(space, seed, history, **options)` makes a new
strategy that has been told exactly that history and proposes what the live one would propose
next. Trials without a terminal outcome in the history (their driver is gone) are told
`Failed("lost")` by the rebuild.

Determinism: two strategies made with the same space, seed and options, proposing and told the
same things in the same order, propose the same sequence; so do a live one and its rebuild.

Thread-safety: none. One driver thread calls a strategy; calls never overlap. A strategy may be
pickled between calls (Ray Tune does).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, TypeAlias

from nas.failures import (  # noqa: F401 - the classes a Failed outcome carries, re-exported
    ABANDONED,
    CANCELLED,
    ERROR,
    FAILURE_CLASSES,
    INTERRUPTED,
    LOST,
)
from nas.spec import ArchSpec, Scalar

if TYPE_CHECKING:  # the space compiler imports torch; `import nas.strategies` stays light
    from nas.searchspace import SearchSpace
    from nas.searchspace.domains import Suggester

Values: TypeAlias = tuple[float, ...]  # one per objective, in the space's order



class SpaceExhausted(Exception):
    """`propose` has nothing left to propose (an exhaustive strategy has proposed every
    configuration of the space). No trial was opened; the search stops sampling, with this
    exception's message as the reason."""


def _values(values: Sequence[float] | None) -> Values | None:
    return None if values is None else tuple(float(v) for v in values)


@dataclass(frozen=True)
class Complete:
    """Trained to the end: its objective values."""

    values: Values

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", _values(self.values))


@dataclass(frozen=True)
class Failed:
    """Ended without values (`failure_class` one of nas.failures.FAILURE_CLASSES). oom and
    diverged say the candidate is infeasible and reach a strategy as `Infeasible` instead
    (the search loop decides); a strategy treats every Failed as "no information"."""

    failure_class: str = ERROR
    message: str = ""


@dataclass(frozen=True)
class Infeasible:
    """Fails a constraint of the space, or does not fit its device; `reason` says which."""

    reason: str = ""


@dataclass(frozen=True)
class Duplicate:
    """The same configuration as trial `of_number`; its final values, or None while it has none
    (running, paused or pruned)."""

    of_number: int
    values: Values | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", _values(self.values))


@dataclass(frozen=True)
class Pruned:
    """Stopped for good at `step` (multi-fidelity); `values` there, if known. Low-fidelity
    values are informative only: a strategy must not rank them with final ones."""

    step: int
    values: Values | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", _values(self.values))


@dataclass(frozen=True)
class Paused:
    """Waiting at rung `step` with `values` there (multi-fidelity); not terminal."""

    step: int
    values: Values | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", _values(self.values))


Outcome: TypeAlias = Complete | Failed | Infeasible | Duplicate | Pruned | Paused
TERMINAL = (Complete, Failed, Infeasible, Duplicate, Pruned)


@dataclass(frozen=True)
class Proposal:
    """A candidate: its trial number (unique in the run, increasing), the ArchSpec and the
    decision values the strategy chose (`params`: decision name -> value, as the graph asked
    them). `answer` is set when the strategy answered it itself (Duplicate, Infeasible): such a
    proposal is recorded, never trained. `retrain_of`: the trial whose configuration this
    one trains again (see `Strategy.enqueue`)."""

    number: int
    spec: ArchSpec
    params: Mapping[str, Scalar]
    answer: Duplicate | Infeasible | None = None
    retrain_of: int | None = None
    private: Mapping[str, Any] = field(default_factory=dict)  # the strategy's own state (Told)


@dataclass(frozen=True)
class Told:
    """One trial of a strategy's history: its params, its last outcome (None while it has no
    terminal one) and the strategy's own JSON-able per-trial state (`private`), which a rebuild
    hands back. `queued`: enqueued and not proposed yet."""

    number: int
    params: Mapping[str, Scalar]
    outcome: Outcome | None
    retrain_of: int | None = None
    queued: bool = False
    private: Mapping[str, Any] = field(default_factory=dict)


class Asked(NamedTuple):
    """What `_ask` opens: the trial's number, the suggester that samples it, and the trial it
    trains again (an enqueued one) or None."""

    number: int
    suggester: Suggester
    retrain_of: int | None = None


class _Recorder:
    """Passes suggestions through to `inner` and keeps the values it chose, by name."""

    def __init__(self, inner: Suggester) -> None:
        self.inner, self.params = inner, {}

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        self.params[name] = value = self.inner.suggest_categorical(name, choices)
        return value

    def suggest_int(self, name: str, low: int, high: int, step: int = 1,
                    log: bool = False) -> int:
        self.params[name] = value = self.inner.suggest_int(name, low, high, step=step, log=log)
        return value

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        self.params[name] = value = self.inner.suggest_float(name, low, high, log=log)
        return value


class Replay:
    """A suggester that answers every suggestion from `params` (KeyError for a decision it
    lacks): the spec a history's params stand for is `space.sample(Replay(params))`."""

    def __init__(self, params: Mapping[str, Scalar]) -> None:
        self.params = params

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self.params[name]

    def suggest_int(self, name: str, low: int, high: int, step: int = 1,
                    log: bool = False) -> int:
        return self.params[name]

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        return self.params[name]


class Strategy(ABC):
    """Proposes candidates from `space` and is told every outcome; see the module docstring
    for the protocol, determinism and thread-safety.

    Callers use `propose`, `tell`, `enqueue`, `history` and the classmethods. Implementations
    provide `_ask`, `_answer`, `enqueue`, `history` and the classmethods `create` and
    `rebuild` (and `load` where they keep their state in a database); they call `_restore`
    once when built from stored trials.
    """

    name: ClassVar[str] = ""  # set by the registry's factory on instances it makes
    # True for a strategy that enumerates the space: it refuses continuous decisions
    needs_finite_space: ClassVar[bool] = False

    def __init__(self, space: SearchSpace, seed: int) -> None:
        self.space, self.seed = space, int(seed)
        self.directions = tuple(space.directions)
        self._open: dict[int, Proposal] = {}  # proposed to train, no terminal outcome yet
        self._trained: dict[str, int] = {}  # config hash -> the trial that trains it
        self._hashes: dict[int, str] = {}  # trial number -> config hash, for trained ones
        self._final: dict[int, Values] = {}  # trial number -> values it completed with

    # -- construction (implementations) ----------------------------------------------------
    @classmethod
    @abstractmethod
    def create(cls, space: SearchSpace, seed: int, **options: Any) -> Strategy:
        """A fresh strategy for `space`. Options every strategy accepts (and may ignore):
        `population_size`, `storage` (a database URL, None: in memory) and `study_name`."""

    @classmethod
    @abstractmethod
    def rebuild(cls, space: SearchSpace, seed: int, history: Sequence[Told],
                **options: Any) -> Strategy:
        """A strategy told `history` (another's `history()`, in number order) that proposes
        what that one proposes next. Options as for `create`."""

    @classmethod
    def load(cls, space: SearchSpace, seed: int, **options: Any) -> Strategy:
        """Reattach to the state this strategy stored under `study_name` in `storage`."""
        from nas.errors import StoreError

        raise StoreError(f"strategy {cls.name or cls.__name__} keeps no state in a database, so "
                         "a run searched with it cannot be resumed; fix: start a new search")

    # -- the protocol (callers) ------------------------------------------------------------
    def propose(self) -> Proposal:
        """The next candidate, sampled through the space's decision graph. If `answer` is set
        it was answered (told Duplicate or Infeasible) and must not be trained. Any exception
        while sampling (KeyboardInterrupt included) tells the trial Failed before it propagates.
        """
        asked = self._ask()
        recorder = _Recorder(asked.suggester)
        try:
            spec = self.space.sample(recorder)
            answer = self._screen(spec)
        except BaseException as exc:
            failure = INTERRUPTED if isinstance(exc, KeyboardInterrupt) else ERROR
            self._answer(asked.number, Failed(failure, f"{type(exc).__name__}: {exc}"))
            raise
        proposal = Proposal(asked.number, spec, dict(recorder.params), answer, asked.retrain_of,
                            dict(self._private(asked.number)))
        if answer is None:
            self._open[proposal.number] = proposal
            self._trained.setdefault(spec.config_hash, proposal.number)
            self._hashes[proposal.number] = spec.config_hash
        else:
            self._answer(proposal.number, answer)
        return proposal

    def tell(self, number: int, outcome: Outcome) -> None:
        """Deliver `outcome` for the open trial `number` (proposed to train, not ended).
        ValueError for a trial that is not open or an outcome of the wrong size."""
        if number not in self._open:
            raise ValueError(f"trial {number} is not open (never proposed to train, or ended)")
        values = getattr(outcome, "values", None)
        if values is not None and len(values) != len(self.directions):
            raise ValueError(f"trial {number}: expected {len(self.directions)} objective values,"
                             f" got {values}")
        self._answer(number, outcome)  # first: if it raises (a storage error) the trial stays open
        self._note(number, outcome)

    def open_trials(self) -> list[int]:
        """Numbers proposed to train that have no terminal outcome yet."""
        return sorted(self._open)

    @abstractmethod
    def enqueue(self, params: Mapping[str, Scalar], retrain_of: int | None = None) -> None:
        """Make `params` (a history entry's) the next proposal(s), before anything sampled,
        in the order enqueued; the proposal carries `retrain_of`."""

    @abstractmethod
    def history(self) -> list[Told]:
        """Every trial so far in number order (enqueued ones `queued`), with its last outcome."""

    # -- implementation hooks ---------------------------------------------------------------
    @abstractmethod
    def _ask(self) -> Asked:
        """Open the next trial: its number and the suggester the space is sampled with."""

    @abstractmethod
    def _answer(self, number: int, outcome: Outcome) -> None:
        """Deliver a checked outcome to the implementation (called once per outcome, for
        answered proposals too). If it raises, nothing must have changed: the caller may tell
        the trial again (e.g. Failed, when the search ends on that error)."""

    def _private(self, number: int) -> Mapping[str, Any]:
        """The implementation's own JSON-able state for trial `number` once it is sampled (a
        rebuild gets it back as `Told.private`); none by default."""
        return {}

    # -- shared bookkeeping -----------------------------------------------------------------
    def _screen(self, spec: ArchSpec) -> Duplicate | Infeasible | None:
        earlier = self._trained.get(spec.config_hash)
        if earlier is not None:
            return Duplicate(earlier, self._final.get(earlier))
        reason = self.space.violation(spec)
        return None if reason is None else Infeasible(reason)

    def _note(self, number: int, outcome: Outcome) -> None:
        """Update what dedupe knows from a trained trial's outcome."""
        if isinstance(outcome, Paused):
            return
        self._open.pop(number)
        if isinstance(outcome, Complete):
            self._final[number] = outcome.values
        elif isinstance(outcome, Failed | Infeasible | Duplicate):
            config = self._hashes.pop(number, None)
            if config is not None and self._trained.get(config) == number:
                del self._trained[config]

    def _restore(self, history: Sequence[Told]) -> None:
        """Rebuild dedupe's knowledge from stored trials (specs replayed from their params)."""
        for told in history:
            if not isinstance(told.outcome, Complete | Pruned):
                continue
            spec = self.space.sample(Replay(told.params))
            if isinstance(told.outcome, Complete):
                self._final[told.number] = told.outcome.values
            self._trained.setdefault(spec.config_hash, told.number)
            self._hashes[told.number] = spec.config_hash


def lost(history: Sequence[Told]) -> list[Told]:
    """`history` with every trial lacking a terminal outcome (and not queued) told
    Failed("lost"), as a rebuild treats them."""
    return [replace(t, outcome=Failed(LOST, "its driver is gone"))
            if not t.queued and not isinstance(t.outcome, TERMINAL) else t for t in history]
