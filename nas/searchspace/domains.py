"""Value domains of a search space and how an Optuna trial samples them.

YAML spellings (`key` is any searchable value):

    key: 64                          fixed value
    key: {fixed: 64}                 the same, explicitly
    key: {choice: [32, 64, 128]}     categorical
    key: {int: [2, 6]}               integers lo..hi inclusive; optional `step: 2`, `log: true`
    key: {uniform: [0.0, 0.1]}       float, uniform
    key: {loguniform: [1e-4, 1e-2]}  float, log-uniform
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from nas.spec import Scalar

# Keys allowed inside a domain mapping besides the domain's own keyword.
_EXTRA_KEYS = {"int": {"step", "log"}}
DOMAIN_KEYWORDS = ("fixed", "choice", "int", "uniform", "loguniform")


class Suggester(Protocol):
    """The part of `optuna.Trial` that sampling uses."""

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...
    def suggest_int(
        self, name: str, low: int, high: int, step: int = 1, log: bool = False
    ) -> int: ...
    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...


class DomainError(ValueError):
    """A malformed domain; the message says what is wrong and how to write it."""


@dataclass(frozen=True)
class Fixed:
    value: Scalar

    def values(self) -> Iterator[Scalar]:
        yield self.value

    def suggest(self, trial: Suggester, name: str) -> Scalar:
        return self.value

    @property
    def size(self) -> float:
        return 1


@dataclass(frozen=True)
class Choice:
    options: tuple[Scalar, ...]

    def values(self) -> Iterator[Scalar]:
        yield from self.options

    def suggest(self, trial: Suggester, name: str) -> Scalar:
        if len(self.options) == 1:
            return self.options[0]
        return trial.suggest_categorical(name, list(self.options))

    @property
    def size(self) -> float:
        return len(self.options)


@dataclass(frozen=True)
class IntRange:
    low: int
    high: int
    step: int = 1
    log: bool = False

    def values(self) -> Iterator[int]:
        yield from range(self.low, self.high + 1, self.step)

    def suggest(self, trial: Suggester, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)

    @property
    def size(self) -> float:
        return (self.high - self.low) // self.step + 1


@dataclass(frozen=True)
class FloatRange:
    low: float
    high: float
    log: bool = False

    def values(self) -> Iterator[float]:
        """The bounds only: a continuous domain is checked at its ends."""
        yield self.low
        if self.high != self.low:
            yield self.high

    def suggest(self, trial: Suggester, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    @property
    def size(self) -> float:
        return math.inf


Domain = Fixed | Choice | IntRange | FloatRange


def is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def parse_domain(raw: Any) -> Domain:
    """Turn a YAML value into a Domain; raises DomainError with the fix in the message."""
    if is_scalar(raw):
        return Fixed(raw)
    if isinstance(raw, list):
        raise DomainError(
            f"a bare list {raw!r} is ambiguous; write {{choice: {raw!r}}} to search over it"
        )
    if not isinstance(raw, dict):
        raise DomainError(f"expected a value or a domain mapping, got {type(raw).__name__}")
    keyword = [k for k in raw if k in DOMAIN_KEYWORDS]
    if len(keyword) != 1:
        raise DomainError(
            f"a domain mapping needs exactly one of {', '.join(DOMAIN_KEYWORDS)}; got keys "
            f"{sorted(raw)}"
        )
    kind = keyword[0]
    unknown = set(raw) - {kind} - _EXTRA_KEYS.get(kind, set())
    if unknown:
        raise DomainError(f"unknown key(s) {sorted(unknown)} in a {kind!r} domain")
    arg = raw[kind]
    if kind == "fixed":
        if not is_scalar(arg):
            raise DomainError(f"fixed needs a single value, got {arg!r}")
        return Fixed(arg)
    if kind == "choice":
        if not isinstance(arg, list) or not arg or not all(is_scalar(v) for v in arg):
            raise DomainError(f"choice needs a non-empty list of values like [32, 64]; got {arg!r}")
        if len(set(map(repr, arg))) != len(arg):
            raise DomainError(f"choice lists a value twice: {arg!r}")
        return Choice(tuple(arg))
    low, high = _bounds(kind, arg)
    if kind == "int":
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)):
            raise DomainError(f"int needs integer bounds, got {arg!r}")
        step = raw.get("step", 1)
        log = bool(raw.get("log", False))
        if not isinstance(step, int) or step < 1:
            raise DomainError(f"int step must be a positive integer, got {step!r}")
        if log and (low < 1 or step != 1):
            raise DomainError("int with log: true needs low >= 1 and no step")
        return IntRange(low, high, step, log)
    if kind == "loguniform" and low <= 0:
        raise DomainError(f"loguniform needs a positive lower bound, got {low!r}")
    return FloatRange(float(low), float(high), log=kind == "loguniform")


def _bounds(kind: str, arg: Any) -> tuple[Any, Any]:
    if (
        not isinstance(arg, list)
        or len(arg) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in arg)
    ):
        raise DomainError(f"{kind} needs [low, high], two numbers; got {arg!r}")
    low, high = arg
    if low > high:
        raise DomainError(f"{kind} bounds are reversed: low {low} > high {high}")
    return low, high
