"""The search loop, budgets, executors and the live display."""

from nas.orchestrator.budget import Budget, format_seconds, parse_budget

__all__ = ["Budget", "format_seconds", "parse_budget"]
