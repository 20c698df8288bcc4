"""Optuna-backed strategies behind one factory: `nsga2`, `tpe`, `random`.

The search drives Optuna through ask/tell, so Optuna decides *what* to try while nas decides
where and when it runs. The study is stored in the run's own database under the run's name (Optuna's
tables beside the `nas_` ones), so `optuna-dashboard sqlite:///nas.db` and
`optuna trials --storage sqlite:///nas.db --study-name RUN` show every search.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import optuna

from nas.errors import StoreError

STRATEGIES = ("nsga2", "tpe", "random")
CONSTRAINT = "nas_space"  # the one Optuna constraint nas sets: the space's `constraints:`


def mark_feasibility(trial: optuna.Trial, feasible: bool) -> None:
    """Tell Optuna's constraints support whether a candidate meets the space's constraints
    (constraint value 0 or 1). An infeasible one is then told COMPLETE with placeholder values:
    NSGA-II's constrained domination and TPE's feasibility split rank it below every feasible
    trial, so the samplers learn where the infeasible region is instead of ignoring it."""
    trial.set_constraint(CONSTRAINT, 0.0 if feasible else 1.0)


def make_sampler(
    strategy: str, seed: int, population_size: int = 16
) -> optuna.samplers.BaseSampler:
    """A seeded sampler; the same seed replays the same sequence of suggestions."""
    if strategy == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=population_size, seed=seed)
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
    raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")


def load_study(name: str, strategy: str, seed: int, population_size: int = 16,
               storage: str | None = None) -> optuna.Study:
    """Reattach to a stored study. Trials a dead driver left RUNNING are told FAIL; the sampler
    is seeded past the trials already made, so it does not replay the first session's draws."""
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
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
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
