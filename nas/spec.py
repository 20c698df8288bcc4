"""ArchSpec: the one language every part of nas speaks.

Pure data, no torch. An ArchSpec is what a search samples, what a worker builds and trains, what
the store keeps and what a user exports. It is immutable and has one canonical JSON form:

    {"d_model": 64, "vocab_size": 64, "norm": "rmsnorm",
     "layers": [{"mixer": {"kind": "short_conv", "kernel_size": 4},
                 "channel_mixer": {"kind": "swiglu", "expansion": 2}}, ...],
     "training": {"steps": 400, "batch_size": 64, "lr": 0.003, ...}}

`arch_hash` identifies the *architecture* (everything but `training`): the same architecture has
the same hash in any process and any Python version, because it is a SHA-256 of the canonical
JSON (sorted keys, no whitespace), never Python's salted `hash()`. `config_hash` also covers the
training recipe, so two trials with the same architecture but different learning rates differ.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Scalar = str | int | float | bool | None

_HASH_CHARS = 16  # 64 bits of SHA-256: collisions are negligible for any search we will run


def _freeze(params: Mapping[str, Any]) -> tuple[tuple[str, Scalar], ...]:
    """Sorted (key, value) pairs; values must be JSON scalars."""
    items = []
    for key, value in sorted(params.items()):
        if isinstance(value, bool | int | float | str) or value is None:
            items.append((str(key), value))
        else:
            raise TypeError(f"spec parameter {key!r} must be a scalar, got {type(value).__name__}")
    return tuple(items)


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, floats by repr."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _digest(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:_HASH_CHARS]


@dataclass(frozen=True)
class ModuleSpec:
    """A registered block (token or channel mixer) and its knobs, all explicit."""

    kind: str
    params: tuple[tuple[str, Scalar], ...] = ()

    @classmethod
    def make(cls, kind: str, **params: Scalar) -> ModuleSpec:
        return cls(kind=kind, params=_freeze(params))

    @property
    def knobs(self) -> dict[str, Scalar]:
        return dict(self.params)

    def to_dict(self) -> dict[str, Scalar]:
        return {"kind": self.kind, **self.knobs}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModuleSpec:
        data = dict(data)
        kind = data.pop("kind")
        return cls.make(kind, **data)


@dataclass(frozen=True)
class LayerSpec:
    """One pre-norm residual block: a token mixer, then a channel mixer."""

    mixer: ModuleSpec
    channel_mixer: ModuleSpec

    def to_dict(self) -> dict[str, Any]:
        return {"mixer": self.mixer.to_dict(), "channel_mixer": self.channel_mixer.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LayerSpec:
        return cls(
            mixer=ModuleSpec.from_dict(data["mixer"]),
            channel_mixer=ModuleSpec.from_dict(data["channel_mixer"]),
        )


@dataclass(frozen=True)
class ArchSpec:
    """A complete, trainable candidate: architecture plus training recipe."""

    d_model: int
    vocab_size: int
    layers: tuple[LayerSpec, ...]
    norm: str = "rmsnorm"
    training: tuple[tuple[str, Scalar], ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.layers:
            raise ValueError("an ArchSpec needs at least one layer")
        if isinstance(self.training, Mapping):  # accept a dict, store it frozen
            object.__setattr__(self, "training", _freeze(self.training))

    # -- views -------------------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def training_config(self) -> dict[str, Scalar]:
        return dict(self.training)

    @property
    def mixer_kinds(self) -> tuple[str, ...]:
        return tuple(layer.mixer.kind for layer in self.layers)

    def short_form(self) -> str:
        """Mixers per layer by one letter each, e.g. ``C-A-C-A`` (see MIXER_LETTERS)."""
        return "-".join(mixer_letter(kind) for kind in self.mixer_kinds)

    # -- serialization -----------------------------------------------------------------------
    def architecture_dict(self) -> dict[str, Any]:
        return {
            "d_model": self.d_model,
            "vocab_size": self.vocab_size,
            "norm": self.norm,
            "layers": [layer.to_dict() for layer in self.layers],
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.architecture_dict(), "training": self.training_config}

    def to_json(self) -> str:
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArchSpec:
        return cls(
            d_model=int(data["d_model"]),
            vocab_size=int(data["vocab_size"]),
            layers=tuple(LayerSpec.from_dict(layer) for layer in data["layers"]),
            norm=str(data.get("norm", "rmsnorm")),
            training=_freeze(data.get("training", {})),
        )

    @classmethod
    def from_json(cls, text: str) -> ArchSpec:
        return cls.from_dict(json.loads(text))

    # -- identity ----------------------------------------------------------------------------
    @property
    def arch_hash(self) -> str:
        """Stable identity of the architecture (training recipe excluded)."""
        return _digest(self.architecture_dict())

    @property
    def config_hash(self) -> str:
        """Stable identity of architecture *and* training recipe: equal ones train identically."""
        return _digest(self.to_dict())


MIXER_LETTERS: dict[str, str] = {
    "attention": "A",
    "linear_attention": "L",
    "short_conv": "C",
    "identity": "I",
    "mean_pool": "P",
    "deltanet": "D",
    "mamba2": "M",
    "long_conv": "H",
}


def mixer_letter(kind: str) -> str:
    """One-letter name for a mixer kind; unknown kinds use their first letter, lower-case."""
    return MIXER_LETTERS.get(kind, kind[:1].lower())
