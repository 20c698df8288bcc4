"""Value domains of a search space and how an Optuna trial samples them.

YAML spellings (`key` is any searchable value):

    key: 64                          fixed value
    key: {fixed: 64}                 the same, explicitly
    key: {choice: [32, 64, 128]}     categorical
    key: {int: [2, 6]}               integers lo..hi inclusive; optional `step: 2`, `log: true`
    key: {uniform: [0.0, 0.1]}       float, uniform
    key: {loguniform: [1e-4, 1e-2]}  float, log-uniform

Two more kinds of value are not sampled but computed from other decisions; the compiler
resolves their names (see nas.searchspace.references):

    key: {expr: "d_model // 32"}     an expression over other decisions (nas.expr, never eval)
    key: {same_as: attention.heads}  tied: always the value of that decision
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from nas.errors import did_you_mean
from nas.spec import Scalar

# Keys allowed inside a domain mapping besides the domain's own keyword.
_EXTRA_KEYS = {"int": {"step", "log"}}
_MAX_INT_VALUES = 1_000_000
DOMAIN_KEYWORDS = ("fixed", "choice", "int", "uniform", "loguniform")
REFERENCE_KEYWORDS = ("expr", "same_as")


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

    def describe(self) -> str:
        return repr(self.value)

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

    def describe(self) -> str:
        return "choice " + repr(list(self.options))

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

    def describe(self) -> str:
        return f"int {self.low}..{self.high}" + (f" step {self.step}" if self.step > 1 else "")

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

    def describe(self) -> str:
        return f"{'log' if self.log else ''}uniform [{self.low:g}, {self.high:g}]"

    @property
    def size(self) -> float:
        return math.inf


@dataclass(frozen=True)
class WeightedChoice:
    """A categorical with prior probabilities, sampled through one uniform float.

    Optuna's categorical distribution has no weights, so the trial is asked for
    ``u = suggest_float(name, 0, 1)`` and the option whose cumulative weight first exceeds `u`
    is taken: a random sampler (and the random start-up trials of TPE or NSGA-II) then picks
    each option with exactly its weight; model-based samplers learn over `u`. Options of
    weight 0 are never sampled.
    """

    options: tuple[Scalar, ...]
    weights: tuple[float, ...]

    def values(self) -> Iterator[Scalar]:
        yield from self.options

    def pick(self, u: float) -> Scalar:
        total, running = sum(self.weights), 0.0
        for option, weight in zip(self.options, self.weights, strict=True):
            running += weight / total
            if u < running:
                return option
        return next(o for o, w in zip(self.options[::-1], self.weights[::-1], strict=True) if w)

    def suggest(self, trial: Suggester, name: str) -> Scalar:
        if len(self.options) == 1:
            return self.options[0]
        return self.pick(trial.suggest_float(name, 0.0, 1.0))

    def describe(self) -> str:
        shown = ", ".join(f"{o}: {w:.2f}" for o, w in zip(self.options, self.weights, strict=True))
        return f"choice {{{shown}}}"

    @property
    def size(self) -> float:
        return len(self.options)


@dataclass(frozen=True)
class ContextChoice:
    """A WeightedChoice whose weights depend on other decisions' values (e.g. on the depth):
    `given(values)` is the WeightedChoice to sample from once those are known."""

    options: tuple[Scalar, ...]
    weights_for: Callable[[Mapping[str, Scalar]], tuple[float, ...]] = field(compare=False)
    text: str = "choice with priors"

    def values(self) -> Iterator[Scalar]:
        yield from self.options

    def given(self, values: Mapping[str, Scalar]) -> WeightedChoice:
        return WeightedChoice(self.options, self.weights_for(values))

    def describe(self) -> str:
        return self.text

    @property
    def size(self) -> float:
        return len(self.options)


@dataclass(frozen=True)
class Derived:
    """Not sampled: computed from the values of `inputs` (other decisions) by `compute`.

    `text` says how, e.g. '= d_model // 32' or 'same as model.token_mixers.attention.heads'."""

    inputs: tuple[str, ...]
    compute: Callable[[Mapping[str, Scalar]], Scalar] = field(compare=False)
    text: str = ""

    def values(self) -> Iterator[Scalar]:
        return iter(())  # depends on the inputs: see compute

    def suggest(self, trial: Suggester, name: str) -> Scalar:  # pragma: no cover - never asked
        raise TypeError(f"{name} is computed, not sampled")

    def describe(self) -> str:
        return self.text

    @property
    def size(self) -> float:
        return 1


@dataclass(frozen=True)
class Reference:
    """An unresolved `{expr: ...}` or `{same_as: ...}` value, as written."""

    keyword: str
    text: str


Domain = Fixed | Choice | IntRange | FloatRange | WeightedChoice | ContextChoice | Derived


def parse_reference(raw: Any) -> Reference | None:
    """The Reference written as `raw`, or None when `raw` is not one. DomainError when it is
    malformed (an `expr` must be text, `same_as` a dotted name, and nothing else beside)."""
    if not isinstance(raw, dict) or not any(k in raw for k in REFERENCE_KEYWORDS):
        return None
    if len(raw) != 1:
        raise DomainError(f"a reference has one key, expr or same_as; got keys {sorted(raw)}")
    keyword, text = next(iter(raw.items()))
    if not isinstance(text, str) or not text.strip():
        raise DomainError(f"{keyword} needs text, e.g. {{expr: \"d_model // 32\"}} or "
                          f"{{same_as: attention.heads}}; got {text!r}")
    return Reference(keyword, text.strip())


def is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def parse_domain(raw: Any) -> Domain:
    """Turn a YAML value into a Domain; raises DomainError with the fix in the message."""
    if _non_finite(raw):
        raise DomainError(f"{raw!r} holds .inf or .nan; write finite numbers")
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
            f"{sorted(map(str, raw))}{did_you_mean(next(iter(raw), ''), DOMAIN_KEYWORDS)}"
        )
    kind = keyword[0]
    unknown = set(raw) - {kind} - _EXTRA_KEYS.get(kind, set())
    if unknown:
        raise DomainError(f"unknown key(s) {sorted(map(str, unknown))} in a {kind!r} domain"
                          f"{did_you_mean(min(map(str, unknown)), _EXTRA_KEYS.get(kind, ()))}")
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
        if (high - low) // step >= _MAX_INT_VALUES:  # every value is checked at load time
            raise DomainError(f"int {arg!r} has more than {_MAX_INT_VALUES:,} values; narrow it "
                              "or add a `step:`")
        return IntRange(low, high, step, log)
    if kind == "loguniform" and low <= 0:
        raise DomainError(f"loguniform needs a positive lower bound, got {low!r}")
    return FloatRange(float(low), float(high), log=kind == "loguniform")


def _non_finite(raw: Any) -> bool:
    """Whether a YAML value holds .inf or .nan, as itself or one level down (never a setting)."""
    for value in raw.values() if isinstance(raw, dict) else [raw]:
        items = value if isinstance(value, list) else [value]
        if any(isinstance(x, float) and not math.isfinite(x) for x in items):
            return True
    return False


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
