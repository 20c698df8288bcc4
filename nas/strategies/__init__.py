"""Search strategies: the Strategy seam (`base`), its registry, successive halving and Pareto
utilities.

Everything here is light (no Optuna, no torch): `nas.strategies.optuna_strategy`, which imports
Optuna, is loaded by the registry when an Optuna-backed strategy is first made.
"""

from nas.strategies.base import (
    Complete,
    Duplicate,
    Failed,
    Infeasible,
    Outcome,
    Paused,
    Proposal,
    Pruned,
    SpaceExhausted,
    Strategy,
    Told,
)
from nas.strategies.pareto import dominates, pareto_mask
from nas.strategies.registry import (
    get_strategy,
    list_strategies,
    load_strategy,
    make_strategy,
    rebuild_strategy,
    register_strategy,
)

__all__ = [
    "Complete", "Duplicate", "Failed", "Infeasible", "Outcome", "Paused", "Proposal", "Pruned",
    "SpaceExhausted", "Strategy", "Told", "dominates", "get_strategy", "list_strategies",
    "load_strategy", "make_strategy", "pareto_mask", "rebuild_strategy", "register_strategy",
]
