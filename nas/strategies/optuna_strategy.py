"""`OptunaStrategy`: Optuna's samplers (nsga2, tpe, random, gp) behind the Strategy seam.

The strategy drives an Optuna study through ask/tell. The study is stored in the run's own
database under the run's name (Optuna's tables beside the `nas_` ones), so
`optuna-dashboard sqlite:///nas.db` and `optuna trials --storage sqlite:///nas.db --study-name RUN`
show every search; `load` reattaches to it on resume.

How each outcome reaches Optuna (`OptunaStrategy._answer`, the one place that decides):

    Complete(values)        COMPLETE with the values, constraint `nas_space` = 0 (feasible)
    Infeasible(reason)      COMPLETE with placeholder values 0.0 and constraint `nas_space` = 1,
                            user attr `nas:infeasible` = the reason's first line. Optuna's
                            constraints support (NSGA-II's constrained domination, TPE's
                            feasibility split) ranks it below every feasible trial, so the
                            sampler learns where the infeasible region is; FAIL would teach it
                            nothing. The placeholders are never compared with real values.
    Duplicate(n, values)    as Complete with the earlier trial's values, or PRUNED while that
                            one has none; user attr `nas:duplicate_of` = n
    Failed(class, message)  FAIL, user attr `nas:failure` = the class
    Pruned(step, values)    PRUNED, user attr `nas:pruned_at` = step (low-fidelity values never
                            enter the sampler's front)
    Paused(step, values)    nothing: Optuna has no paused state, the trial stays RUNNING

Determinism: before each ask the sampler is rebuilt, seeded from (seed, number of trials in the
study), so what it proposes depends only on the seed and the study's trials. A rebuilt or
reloaded strategy therefore proposes exactly what the live one would, and a resumed search
continues the run's stream instead of replaying its first draws.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from nas.errors import StoreError
from nas.spec import Scalar
from nas.strategies.base import (
    ERROR,
    LOST,
    Asked,
    Complete,
    Duplicate,
    Failed,
    Infeasible,
    Outcome,
    Paused,
    Pruned,
    Strategy,
    Told,
    lost,
)

STRATEGIES = ("nsga2", "tpe", "random")  # the samplers a space's `search.strategy` may name
SAMPLERS = (*STRATEGIES, "gp")
CONSTRAINT = "nas_space"  # the one Optuna constraint nas sets: the space's `constraints:`
RETRAIN_OF = "nas:retrain_of"  # user attr: the trial whose configuration this one retrains
INFEASIBLE = "nas:infeasible"
DUPLICATE_OF = "nas:duplicate_of"
FAILURE = "nas:failure"
PRUNED_AT = "nas:pruned_at"


def mark_feasibility(trial: optuna.Trial, feasible: bool) -> None:
    """Tell Optuna's constraints support whether a candidate meets the space's constraints
    (constraint value 0 or 1)."""
    trial.set_constraint(CONSTRAINT, 0.0 if feasible else 1.0)


class _NSGAII(optuna.samplers.NSGAIISampler):
    """NSGA-II whose parent populations are a function of the study's trials alone.

    Optuna caches each generation's parents in the study's attributes the first time they are
    computed, and returns them in selection order then but in trial order from the cache, so
    the same trials give different children depending on when the cache was written (a study
    rebuilt from its trials would not propose what the live one does). Here parents are
    selected in trial order from the trials alone; the generation key stays Optuna's.

    Selection recurses through every earlier generation, so it is memoized in `parents` (a
    dict the strategy keeps across the samplers it makes, one per ask) by generation and the
    completed trials of the earlier generations: finished trials never change in a study,
    so the same key always selects the same parents."""

    def __init__(self, *args: Any, parents: dict | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._parents = {} if parents is None else parents

    def get_parent_population(self, study: optuna.Study, generation: int
                              ) -> list[optuna.trial.FrozenTrial]:
        if generation == 0:
            return []
        key = (generation, tuple(
            t.number for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.system_attrs.get(self._GENERATION_KEY, 0) < generation))
        if key not in self._parents:
            self._parents[key] = sorted(self.select_parent(study, generation),
                                        key=lambda t: t.number)
        return self._parents[key]


_NSGAII._GENERATION_KEY = optuna.samplers.NSGAIISampler._GENERATION_KEY
_NSGAII._PARENT_CACHE_KEY_PREFIX = optuna.samplers.NSGAIISampler._PARENT_CACHE_KEY_PREFIX


def make_sampler(
    strategy: str, seed: int, population_size: int = 16, parents: dict | None = None
) -> optuna.samplers.BaseSampler:
    """A seeded sampler; the same seed replays the same sequence of suggestions. `parents`:
    NSGA-II's memo of parent populations, shared by the samplers of one study."""
    if strategy == "nsga2":
        return _NSGAII(population_size=population_size, seed=seed, parents=parents)
    if strategy == "tpe":
        # Few startup trials: searches here are tens of trials, not thousands.
        with warnings.catch_warnings():  # multivariate/group are flagged experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=min(10, population_size), multivariate=True,
                group=True,
            )
    if strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if strategy == "gp":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=min(10, population_size),
                                             warn_independent_sampling=False)
    raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(SAMPLERS)}")


def load_study(name: str, strategy: str, seed: int, population_size: int = 16,
               storage: str | None = None) -> optuna.Study:
    """Reattach to a stored study. Trials a dead driver left RUNNING are told FAIL.
    (`OptunaStrategy` replaces the sampler before each ask, seeded from the trials so far.)"""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        probe = optuna.load_study(study_name=name, storage=storage)
    except KeyError:  # Optuna's "Record does not exist"
        raise StoreError(
            f"run {name!r} has no Optuna study in {storage}, so it cannot be continued (a run "
            "recorded from a Ray Tune experiment keeps its study in the searcher's memory); "
            "start a new search instead") from None
    sampler = make_sampler(strategy, seed + len(probe.trials), population_size)
    study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(trial.number, state=TrialState.FAIL)
    return study


def create_study(name: str, directions: Sequence[str], strategy: str, seed: int,
                 population_size: int = 16, storage: str | None = None) -> optuna.Study:
    """A new study named `name` with one direction per objective, in `storage` (a database
    URL; None keeps it in memory). Raises StoreError if that database already has the name."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = make_sampler(strategy, seed, population_size)
    try:
        return optuna.create_study(study_name=name, directions=list(directions),
                                   sampler=sampler, storage=storage)
    except optuna.exceptions.DuplicatedStudyError:
        raise StoreError(f"an Optuna study named {name!r} already exists in {storage}; "
                         "choose another --name") from None


def trial_seed(seed: int, count: int) -> int:
    """The sampler's seed for the ask that follows `count` trials: well mixed, in [0, 2**32)."""
    return int(np.random.SeedSequence([seed & 0xFFFFFFFFFFFFFFFF, count]).generate_state(1)[0])


class _Distributions:
    """A suggester answering from `params` that records the Optuna distribution of each
    suggestion, as `optuna.Trial` would have created it (for `Study.add_trial`)."""

    def __init__(self, params: Mapping[str, Scalar]) -> None:
        self.params, self.found = params, {}

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        self.found[name] = CategoricalDistribution(list(choices))
        return self.params[name]

    def suggest_int(self, name: str, low: int, high: int, step: int = 1,
                    log: bool = False) -> int:
        self.found[name] = IntDistribution(low, high, log=log, step=step)
        return self.params[name]

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        self.found[name] = FloatDistribution(low, high, log=log)
        return self.params[name]


class OptunaStrategy(Strategy):
    """A Strategy over an Optuna study; `sampler` is one of SAMPLERS. See the module docstring
    for how outcomes map to Optuna states. `study` is public for Optuna's own tools (read it,
    do not ask or tell through it)."""

    def __init__(self, space: Any, seed: int, study: optuna.Study, sampler: str,
                 population_size: int = 16) -> None:
        super().__init__(space, seed)
        self.study, self.sampler, self.population_size = study, sampler, population_size
        self._live: dict[int, optuna.Trial] = {}  # asked, no terminal outcome yet
        self._parents: dict = {}  # NSGA-II's parent populations, memoized (_NSGAII)

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def create(cls, space: Any, seed: int, *, sampler: str, population_size: int = 16,
               storage: str | None = None, study_name: str = "nas") -> OptunaStrategy:
        study = create_study(study_name, space.directions, sampler, seed, population_size,
                             storage=storage)
        return cls(space, seed, study, sampler, population_size)

    @classmethod
    def load(cls, space: Any, seed: int, *, sampler: str, population_size: int = 16,
             storage: str | None = None, study_name: str = "nas") -> OptunaStrategy:
        """The study stored as `study_name` in `storage`; its RUNNING trials are told FAIL."""
        study = load_study(study_name, sampler, seed, population_size, storage=storage)
        strategy = cls(space, seed, study, sampler, population_size)
        strategy._restore(strategy.history())
        return strategy

    @classmethod
    def rebuild(cls, space: Any, seed: int, history: Sequence[Told], *, sampler: str,
                population_size: int = 16, storage: str | None = None,
                study_name: str = "nas") -> OptunaStrategy:
        strategy = cls.create(space, seed, sampler=sampler, population_size=population_size,
                              storage=storage, study_name=study_name)
        history = lost(history)
        for expected, told in enumerate(history):
            if told.number != expected:
                raise ValueError(f"history is not in number order from 0: entry {expected} is "
                                 f"trial {told.number}")
            strategy._add(told)
        strategy._restore(history)
        return strategy

    def _add(self, told: Told) -> None:
        attrs = {} if told.retrain_of is None else {RETRAIN_OF: told.retrain_of}
        if told.queued:
            self.study.enqueue_trial(dict(told.params), user_attrs=attrs, skip_if_exists=False)
            return
        recorder = _Distributions(told.params)
        try:
            self.space.sample(recorder)
        except KeyError:  # sampling it was interrupted: its params are a prefix of the walk
            pass
        state, values, more = _optuna_state(told.outcome, len(self.directions))
        feasible = _feasibility(told.outcome)
        self.study.add_trial(optuna.trial.create_trial(
            state=state, values=values, params=dict(told.params),
            distributions={k: d for k, d in recorder.found.items() if k in told.params},
            user_attrs={**attrs, **more},
            system_attrs={k: v for k, v in told.private.items()
                          if not k.startswith("constraints:")},
            constraints=None if feasible is None else {CONSTRAINT: 0.0 if feasible else 1.0}))

    # -- the seam ----------------------------------------------------------------------------
    def _ask(self) -> Asked:
        count = len(self.study.get_trials(deepcopy=False))
        self.study.sampler = make_sampler(self.sampler, trial_seed(self.seed, count),
                                          self.population_size, self._parents)
        trial = self.study.ask()
        self._live[trial.number] = trial
        return Asked(trial.number, trial, trial.user_attrs.get(RETRAIN_OF))

    def _private(self, number: int) -> dict[str, Any]:
        """The trial's system attributes after sampling (e.g. NSGA-II's generation), less the
        constraint Optuna keeps there (set from the outcome)."""
        trial = self._live[number]
        attrs = self.study._storage.get_trial_system_attrs(trial._trial_id)
        return {k: v for k, v in attrs.items() if not k.startswith("constraints:")}

    def _answer(self, number: int, outcome: Outcome) -> None:
        if isinstance(outcome, Paused):
            return
        trial = self._live[number]
        state, values, attrs = _optuna_state(outcome, len(self.directions))
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        feasible = _feasibility(outcome)
        if feasible is not None:
            mark_feasibility(trial, feasible)
        self.study.tell(trial, values, state=None if values is not None else state)
        del self._live[number]

    def enqueue(self, params: Mapping[str, Scalar], retrain_of: int | None = None) -> None:
        self._add(Told(-1, params, None, retrain_of=retrain_of, queued=True))

    def history(self) -> list[Told]:
        return [_told(t) for t in sorted(self.study.get_trials(deepcopy=False),
                                         key=lambda t: t.number)]


def _optuna_state(outcome: Outcome | None, objectives: int
                  ) -> tuple[TrialState, list[float] | None, dict[str, Any]]:
    """(state, values, user attrs) an outcome is told to Optuna as (see the module docstring);
    constraints are set by the caller."""
    if isinstance(outcome, Complete):
        return TrialState.COMPLETE, list(outcome.values), {}
    if isinstance(outcome, Infeasible):
        return (TrialState.COMPLETE, [0.0] * objectives,
                {INFEASIBLE: (outcome.reason.splitlines() or [""])[0]})
    if isinstance(outcome, Duplicate):
        attrs = {DUPLICATE_OF: outcome.of_number}
        if outcome.values is None:
            return TrialState.PRUNED, None, attrs
        return TrialState.COMPLETE, list(outcome.values), attrs
    if isinstance(outcome, Pruned):
        return TrialState.PRUNED, None, {PRUNED_AT: outcome.step}
    if isinstance(outcome, Failed):
        return TrialState.FAIL, None, {FAILURE: outcome.failure_class}
    raise ValueError(f"no Optuna state for {outcome!r}")


def _feasibility(outcome: Outcome | None) -> bool | None:
    """The `nas_space` constraint an outcome sets: False for Infeasible, True for an outcome
    about a candidate that met the constraints (Complete, Duplicate), None for no verdict."""
    if isinstance(outcome, Infeasible):
        return False
    return True if isinstance(outcome, Complete | Duplicate) else None


def _told(trial: optuna.trial.FrozenTrial) -> Told:
    """A stored Optuna trial as the Strategy history entry it stands for."""
    attrs, outcome = trial.user_attrs, None
    values = tuple(trial.values) if trial.values is not None else None
    if trial.state == TrialState.FAIL:
        outcome = Failed(attrs.get(FAILURE, ERROR))
    elif trial.state == TrialState.PRUNED:
        outcome = (Duplicate(attrs[DUPLICATE_OF]) if DUPLICATE_OF in attrs
                   else Pruned(int(attrs.get(PRUNED_AT, 0))))
    elif trial.state == TrialState.COMPLETE:
        if any(c > 0 for c in (trial.constraints or {}).values()):
            outcome = Infeasible(attrs.get(INFEASIBLE, ""))
        elif DUPLICATE_OF in attrs:
            outcome = Duplicate(attrs[DUPLICATE_OF], values)
        else:
            outcome = Complete(values)
    elif trial.state not in (TrialState.RUNNING, TrialState.WAITING):
        outcome = Failed(LOST)
    return Told(trial.number, dict(trial.params), outcome, retrain_of=attrs.get(RETRAIN_OF),
                queued=trial.state == TrialState.WAITING, private=dict(trial.system_attrs))
