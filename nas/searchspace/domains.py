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

from nas.errors import brief, did_you_mean
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
    """A malformed domain; the message is 'PROBLEM; fix: FIX' (see `split_fix`)."""


FIX = "; fix: "  # how a ValueError's message carries its fix, e.g. a task's or a DomainError's


def split_fix(message: str) -> tuple[str, str]:
    """(problem, fix) of a message written 'PROBLEM; fix: FIX' ('' when it names no fix)."""
    problem, _, fix = message.partition(FIX)
    return problem, fix


def number_as_text(value: Any) -> float | None:
    """The number a text such as '1e-3' spells (YAML 1.1 reads it as text: it wants a dot and a
    signed exponent), else None."""
    if not isinstance(value, str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def type_fault(value: Any, wanted: type, example: Any = None) -> tuple[str, str]:
    """(problem, fix) for `value`, which is not of type `wanted` (int, float, bool or str)."""
    words = {int: "an integer", float: "a number", bool: "true or false", str: "text"}
    shown = str(value).lower() + " (a boolean)" if isinstance(value, bool) else brief(value)
    problem = f"must be {words.get(wanted, wanted.__name__)}, got {shown}"
    number = number_as_text(value)
    if number is not None and wanted in (int, float):
        if wanted is int and number.is_integer():
            return problem, f"YAML reads {value} as text; write {int(number)}"
        return problem, (f"YAML reads {value} as text; write {yaml_float(value)} "
                         f"(or {brief(number)})")
    if wanted is int and isinstance(value, float) and value.is_integer():
        return problem, f"write {int(value)}"
    if wanted in (int, float):
        kind = "a whole number" if wanted is int else "a number"
        such = f" such as {brief(example)}" if example is not None else ""
        return problem, f"write {kind}{such}"
    if wanted is bool:
        return problem, "write true or false"
    return problem, "quote it: \"...\""


def yaml_float(text: str) -> str:
    """`text` as YAML reads a float: a dot in the mantissa, a sign on the exponent (1e-3 ->
    1.0e-3, 1e4 -> 1.0e+4)."""
    mantissa, e, exponent = text.replace("E", "e").partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    if e and exponent[:1] not in ("+", "-"):
        exponent = "+" + exponent
    return mantissa + e + exponent


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
    example = '{expr: "d_model // 32"} or {same_as: attention.heads}'
    if len(raw) != 1:
        raise DomainError(f"a reference has one key, expr or same_as; got keys {sorted(raw)}"
                          f"{FIX}write it alone, e.g. {example}")
    keyword, text = next(iter(raw.items()))
    if not isinstance(text, str) or not text.strip():
        raise DomainError(f"{keyword} needs text, got {brief(text)}{FIX}write e.g. {example}")
    return Reference(keyword, text.strip())


def is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


_EXAMPLES = {"fixed": "{fixed: 64}", "choice": "{choice: [32, 64]}", "int": "{int: [2, 8]}",
             "uniform": "{uniform: [0.0, 0.2]}", "loguniform": "{loguniform: [1.0e-4, 1.0e-2]}"}


def parse_domain(raw: Any) -> Domain:
    """Turn a YAML value into a Domain; raises DomainError ('PROBLEM; fix: FIX')."""
    if _non_finite(raw):
        raise DomainError(f"{brief(raw)} holds .inf or .nan{FIX}write finite numbers")
    if is_scalar(raw):
        return Fixed(raw)
    if isinstance(raw, list):
        raise DomainError(f"a bare list {brief(raw)} is ambiguous{FIX}write "
                          f"{{choice: {brief(raw)}}} to search over it")
    if not isinstance(raw, dict):
        raise DomainError(f"expected a value or a domain mapping, got {type(raw).__name__}"
                          f"{FIX}write a value such as 64, or a domain such as "
                          f"{_EXAMPLES['choice']}")
    keyword = [k for k in raw if k in DOMAIN_KEYWORDS]
    if len(keyword) != 1:
        raise DomainError(
            f"a domain mapping needs exactly one of {', '.join(DOMAIN_KEYWORDS)}; got keys "
            f"{sorted(map(str, raw))}{did_you_mean(next(iter(raw), ''), DOMAIN_KEYWORDS)}"
            f"{FIX}write one, e.g. {_EXAMPLES['choice']} or {_EXAMPLES['int']}"
        )
    kind = keyword[0]
    extra = sorted(_EXTRA_KEYS.get(kind, ()))
    unknown = set(raw) - {kind} - set(extra)
    if unknown:
        raise DomainError(f"unknown key(s) {sorted(map(str, unknown))} in a {brief(kind)} domain"
                          f"{did_you_mean(min(map(str, unknown)), extra)}{FIX}remove it"
                          + (f" ({kind} also takes {', '.join(extra)})" if extra else ""))
    arg = raw[kind]
    if kind == "fixed":
        if not is_scalar(arg):
            raise DomainError(f"fixed needs a single value, got {brief(arg)}{FIX}write one value, "
                              f"or {{choice: [...]}} to search over several")
        return Fixed(arg)
    if kind == "choice":
        if not isinstance(arg, list) or not arg or not all(is_scalar(v) for v in arg):
            raise DomainError(f"choice needs a non-empty list of plain values (numbers, text, "
                              f"true/false, null); got {brief(arg)}{FIX}write e.g. "
                              f"{_EXAMPLES['choice']}")
        if len(set(map(repr, arg))) != len(arg):
            raise DomainError(f"choice lists a value twice: {brief(arg)}{FIX}list each value once")
        return Choice(tuple(arg))
    low, high = _bounds(kind, arg)
    if kind == "int":
        return _int_range(arg, low, high, raw.get("step", 1), raw.get("log", False))
    if kind == "loguniform" and low <= 0:
        raise DomainError(f"loguniform needs a positive lower bound, got {brief(low)}{FIX}"
                          "start above "
                          f"0, e.g. {_EXAMPLES['loguniform']}, or use uniform:")
    return FloatRange(float(low), float(high), log=kind == "loguniform")


def _int_range(arg: Any, low: Any, high: Any, step: Any, log: Any) -> IntRange:
    """The IntRange `{int: arg, step:, log:}`, checked."""
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)):
        raise DomainError(f"int needs integer bounds, got {brief(arg)}{FIX}write whole "
                          "numbers, e.g. "
                          f"{_EXAMPLES['int']}, or use uniform: for real numbers")
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise DomainError(f"int step must be a positive integer, got {brief(step)}{FIX}"
                          "write a whole "
                          "number >= 1, e.g. step: 2")
    log = bool(log)
    if log and (low < 1 or step != 1):
        raise DomainError(f"int with log: true needs low >= 1 and no step{FIX}start the range "
                          "at 1 or more and remove step:, or remove log:")
    if (high - low) // step >= _MAX_INT_VALUES:  # every value is checked at load time
        raise DomainError(f"int {brief(arg)} has more than {_MAX_INT_VALUES:,} values{FIX}"
                          "narrow it "
                          "or add a `step:`")
    return IntRange(low, high, step, log)


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
        texts = [v for v in arg if number_as_text(v) is not None] if isinstance(arg, list) else []
        fix = (f"YAML reads {texts[0]} as text; write {yaml_float(texts[0])}" if texts
               else f"write e.g. {_EXAMPLES[kind]}")
        raise DomainError(f"{kind} needs [low, high], two numbers; got {brief(arg)}{FIX}{fix}")
    low, high = arg
    if low > high:
        raise DomainError(f"{kind} bounds are reversed: low {low} > high {high}{FIX}write "
                          f"[{high}, {low}]")
    return low, high
