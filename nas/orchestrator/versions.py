"""The software a run was searched with, recorded on the run (`nas_runs.versions`)."""

from __future__ import annotations

import platform

import optuna

import nas


def versions() -> dict[str, str]:
    """The software searching: nas, torch, optuna, python, and triton where it is installed
    (read from its metadata; importing it is not needed)."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    found = {"nas": nas.__version__, "torch": torch.__version__, "optuna": optuna.__version__,
             "python": platform.python_version()}
    try:
        found["triton"] = version("triton")
    except PackageNotFoundError:
        pass
    return found
