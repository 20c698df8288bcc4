"""The block registry: every token mixer and channel mixer a search can choose.

Blocks register with a decorator that declares their knobs (name, type, default, allowed values),
so the search-space compiler can check a user's YAML against them without building anything.
An unknown name raises with the list of known names. Tests parametrize over this registry, so a
new block gets the contract tests (shape, causality, step = parallel, costs) by registering.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from nas.spec import Scalar

Role = Literal["token_mixer", "channel_mixer"]


@dataclass(frozen=True)
class Knob:
    """One hyperparameter of a block. `choices` restricts the values where given; `minimum`
    bounds numbers from below."""

    name: str
    type: type
    default: Scalar
    choices: tuple[Scalar, ...] | None = None
    minimum: float | None = None
    doc: str = ""

    def check(self, value: Any) -> str | None:
        """None if `value` is acceptable, else a short reason. None is acceptable exactly when
        the default is None (an optional knob, e.g. attention's kv_heads)."""
        if value is None and self.default is None:
            return None
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if (self.type is int and isinstance(value, bool)) or not isinstance(value, self.type):
            return f"must be {self.type.__name__}, got {value!r}"
        if self.choices is not None and value not in self.choices:
            return f"must be one of {list(self.choices)}, got {value!r}"
        if self.minimum is not None and value < self.minimum:
            return f"must be >= {self.minimum}, got {value!r}"
        return None


@dataclass(frozen=True)
class BlockInfo:
    name: str
    role: Role
    cls: type
    knobs: tuple[Knob, ...]
    doc: str

    def knob(self, name: str) -> Knob | None:
        return next((k for k in self.knobs if k.name == name), None)

    @property
    def defaults(self) -> dict[str, Scalar]:
        return {k.name: k.default for k in self.knobs}


_REGISTRY: dict[str, BlockInfo] = {}


def register_block(name: str, role: Role, knobs: Sequence[Knob] = ()) -> Callable[[type], type]:
    """Class decorator: register `cls` under `name` with its declared knobs."""

    def decorate(cls: type) -> type:
        if name in _REGISTRY:
            raise ValueError(f"block {name!r} is already registered")
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        _REGISTRY[name] = BlockInfo(name, role, cls, tuple(knobs), doc)
        cls.block_name = name
        return cls

    return decorate


def get_block(name: str, role: Role | None = None) -> BlockInfo:
    """The registered block `name`; raises KeyError naming the known ones."""
    info = _REGISTRY.get(name)
    if info is None or (role is not None and info.role != role):
        known = ", ".join(list_blocks(role=role))
        raise KeyError(f"unknown {role or 'block'} {name!r}; known: {known}")
    return info


def list_blocks(pattern: str = "*", role: Role | None = None) -> list[str]:
    """Registered names matching a glob, optionally of one role, sorted."""
    return sorted(
        n for n, info in _REGISTRY.items()
        if fnmatch.fnmatch(n, pattern) and (role is None or info.role == role)
    )
