"""Strategies by name: `make_strategy`, `load_strategy`, `rebuild_strategy`, `list_strategies`.

An entry names a `Strategy` subclass by import path (imported on first use, so `import nas`
never loads Optuna) and the options it is built with. `register_strategy` adds one; the
conformance suite (tests/strategies/test_strategy_conformance.py) runs every registered name,
so a new strategy is tested by being registered. An unknown name raises with the list of known ones.

Built in: `nsga2`, `tpe`, `random` (Optuna's samplers), and `gp` (Optuna's Gaussian-process
sampler) where its extra dependencies (torch, scipy) are installed.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from nas.strategies.base import Strategy, Told


@dataclass(frozen=True)
class StrategyEntry:
    name: str
    target: str  # "package.module:Class", a Strategy subclass
    options: dict[str, Any] = field(default_factory=dict)  # passed to create/load/rebuild

    def cls(self) -> type[Strategy]:
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)


_REGISTRY: dict[str, StrategyEntry] = {}


def register_strategy(name: str, target: str, **options: Any) -> None:
    """Register `target` ("module:Class") under `name`, built with `options`."""
    if name in _REGISTRY:
        raise ValueError(f"strategy {name!r} is already registered")
    _REGISTRY[name] = StrategyEntry(name, target, dict(options))


def list_strategies(pattern: str = "*") -> list[str]:
    """Registered names matching the glob `pattern`, in registration order."""
    return [n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern)]


def get_strategy(name: str) -> StrategyEntry:
    """The entry for `name`; KeyError naming the known ones."""
    entry = _REGISTRY.get(name)
    if entry is None:
        raise KeyError(f"unknown strategy {name!r}; known: {', '.join(_REGISTRY)}")
    return entry


def _named(strategy: Strategy, name: str) -> Strategy:
    strategy.name = name
    return strategy


def make_strategy(name: str, space: Any, seed: int, **options: Any) -> Strategy:
    """A fresh strategy `name` for `space` (options: population_size, storage, study_name)."""
    entry = get_strategy(name)
    return _named(entry.cls().create(space, seed, **entry.options, **options), name)


def load_strategy(name: str, space: Any, seed: int, **options: Any) -> Strategy:
    """Strategy `name` reattached to what it stored (options as for make_strategy)."""
    entry = get_strategy(name)
    return _named(entry.cls().load(space, seed, **entry.options, **options), name)


def rebuild_strategy(name: str, space: Any, seed: int, history: Sequence[Told],
                     **options: Any) -> Strategy:
    """Strategy `name` told `history` (see `Strategy.rebuild`)."""
    entry = get_strategy(name)
    return _named(entry.cls().rebuild(space, seed, history, **entry.options, **options), name)


def _gp_available() -> bool:
    """Optuna's GPSampler needs torch and scipy (imported only when it samples)."""
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "scipy"))


_OPTUNA = "nas.strategies.optuna_strategy:OptunaStrategy"
for _sampler in ("nsga2", "tpe", "random"):
    register_strategy(_sampler, _OPTUNA, sampler=_sampler)
if _gp_available():
    register_strategy("gp", _OPTUNA, sampler="gp")
register_strategy("grid", "nas.strategies.grid:GridStrategy")
register_strategy("evolution", "nas.strategies.evolution:EvolutionStrategy")
register_strategy("local", "nas.strategies.local:LocalSearchStrategy")
register_strategy("predictor", "nas.strategies.predictor:PredictorStrategy")
