"""nas: declarative architecture search for hybrid sequence models.

    import nas
    run = nas.search("space.yaml", budget="6m")   # search (blocks), then read the results
    run.pareto(), run.to_pandas()
    run = nas.resume(run.name, budget="10m")       # continue the same run

`import nas` is light: torch, optuna, ray and triton load only when the parts that need them are
used (`nas.blocks`, `nas.search`, ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nas.errors import BudgetError, NasError, SpaceError, StoreError
from nas.spec import ArchSpec, LayerSpec, ModuleSpec

__version__ = "0.1.0"

if TYPE_CHECKING:
    from nas.blocks import build_model
    from nas.export import export_trial, load_model
    from nas.searchspace import SearchSpace, load
    from nas.session import resume, search
    from nas.store import Store
    from nas.store.api import open_store

_LAZY = {
    "build_model": "nas.blocks",
    "load": "nas.searchspace",
    "SearchSpace": "nas.searchspace",
    "Store": "nas.store",
    "open_store": "nas.store.api",
    "load_model": "nas.export",
    "export_trial": "nas.export",
    "search": "nas.session",
    "resume": "nas.session",
}


def __getattr__(name: str) -> Any:
    """Load heavy parts on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nas' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "ArchSpec", "BudgetError", "LayerSpec", "ModuleSpec", "NasError", "SearchSpace", "SpaceError",
    "Store", "StoreError", "__version__", "build_model", "export_trial", "load", "load_model",
    "open_store", "resume", "search",
]
