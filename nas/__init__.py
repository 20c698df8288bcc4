"""nas: declarative architecture search for hybrid sequence models.

`import nas` is light: torch, optuna, ray and triton load only when the parts that need them are
used (`nas.blocks`, `nas.search`, ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nas.errors import NasError, SpaceError
from nas.spec import ArchSpec, LayerSpec, ModuleSpec

__version__ = "0.1.0"

if TYPE_CHECKING:
    from nas.blocks import build_model
    from nas.export import export_trial, load_model
    from nas.searchspace import SearchSpace, load
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
}


def __getattr__(name: str) -> Any:
    """Load heavy parts on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nas' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "ArchSpec", "LayerSpec", "ModuleSpec", "NasError", "SearchSpace", "SpaceError", "Store",
    "__version__", "build_model", "export_trial", "load", "load_model", "open_store",
]
