"""Optuna-backed strategies behind one factory: `nsga2`, `tpe`, `random`.

The search drives Optuna through ask/tell, so Optuna decides *what* to try while nas decides
where and when it runs. The study lives in memory for now; the nas store is the record.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import optuna

STRATEGIES = ("nsga2", "tpe", "random")


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
                seed=seed, n_startup_trials=min(10, population_size), multivariate=True, group=True
            )
    if strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")


def create_study(name: str, directions: Sequence[str], strategy: str, seed: int,
                 population_size: int = 16) -> optuna.Study:
    """An in-memory study with one direction per objective."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = make_sampler(strategy, seed, population_size)
    return optuna.create_study(study_name=name, directions=list(directions), sampler=sampler)
