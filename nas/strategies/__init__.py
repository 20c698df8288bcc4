"""Search strategies: Optuna samplers behind one factory, and Pareto utilities.

Only the pure helpers are imported here; `nas.strategies.optuna_strategy` imports Optuna.
"""

from nas.strategies.pareto import dominates, pareto_mask

__all__ = ["dominates", "pareto_mask"]
