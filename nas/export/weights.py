"""Trained weights as safetensors files: written by workers, read by `nas.load_model`.

Tied parameters (the LM head shares the embedding matrix) are stored once; loading ties them
again because the rebuilt model shares them by construction. Files are written to a temporary
name and renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model


def save_weights(model: torch.nn.Module, path: str | Path,
                 metadata: dict[str, str] | None = None) -> tuple[int, str]:
    """Write `model`'s state to `path` (folders created); returns (bytes, SHA-256 hex)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    save_model(model, str(partial), metadata=metadata)
    data = partial.read_bytes()
    os.replace(partial, path)
    return len(data), hashlib.sha256(data).hexdigest()


def load_weights(model: torch.nn.Module, path: str | Path) -> torch.nn.Module:
    """Load `path` into `model` in place (every tensor must match by name and shape)."""
    missing, unexpected = load_model(model, str(path), strict=True)
    if missing or unexpected:  # strict=True raises first; kept as a guard
        raise RuntimeError(f"weights do not fit: missing {missing}, unexpected {unexpected}")
    return model
