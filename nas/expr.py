"""A small, safe expression language for conditions such as `params <= 2e6 and count(attention)
>= 1` (space-file constraints) or `accuracy > 0.9 and latency_ms < 2` (filters).

User text is parsed, never executed: `parse` turns numbers written with a unit into plain numbers,
hands the text to `ast.parse(..., mode="eval")` and walks the tree against a strict whitelist of
node types; anything else is an ExprError naming the offending part. `Expr.evaluate(env)` then
walks the checked tree itself, looking every name and function up in `env`. Nothing here knows
what the names mean.

Grammar (Python's precedence, lowest first):

    expr       := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := sum (("<" | "<=" | ">" | ">=" | "==" | "!=") sum)*     chained: a < b < c
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/" | "//") unary)*
    unary      := ("-" | "+") unary | atom
    atom       := NUMBER | NAME | call | "(" expr ")" | "True" | "False"
    call       := NAME "(" [NAME ("," NAME)*] ["," NAME "=" constant]* ")"
    constant   := ["-"] NUMBER | NAME          (a bare name passed as a keyword's string value)
    NUMBER     := digits [. digits] [e[+-]digits] [UNIT]    UNIT: k M G (10^3, 10^6, 10^9),
                                                                  KiB MiB GiB (2^10, 2^20, 2^30)

A call's positional arguments are bare names passed to the function as strings
(`count(attention)` calls `env["count"]("attention")`); keyword values are constants. Names may
not start with an underscore. `and` / `or` / `not` and comparisons give booleans.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nas.errors import brief

__all__ = ["UNITS", "CallInfo", "Expr", "ExprError", "parse"]

UNITS: dict[str, int] = {
    "k": 10**3, "M": 10**6, "G": 10**9,
    "KiB": 2**10, "MiB": 2**20, "GiB": 2**30,
}
MAX_LENGTH = 2000  # characters; a condition is one line, not a program

# ASCII only: `²` or `٣` is a digit to str.isdigit() but not to `\d` or to Python's grammar; such
# characters reach ast.parse, whose "invalid character" becomes one ExprError.
_NUMBER = re.compile(r"(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
_ASCII_DIGITS = frozenset("0123456789")
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv}
_MAX_INT_BITS = 1024  # an integer result beyond this (about 1e308) is an overflow, like a float's
_BINARY_TEXT = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//"}
_COMPARE = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
            ast.GtE: operator.ge, ast.Eq: operator.eq, ast.NotEq: operator.ne}
_COMPARE_TEXT = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==",
                 ast.NotEq: "!="}
_FORBIDDEN = {  # friendlier words for what people are likely to try
    ast.Attribute: "attribute access", ast.Subscript: "subscripts", ast.Lambda: "lambda",
    ast.IfExp: "if-else expressions", ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions", ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions", ast.List: "lists", ast.Tuple: "tuples",
    ast.Dict: "dicts", ast.Set: "sets", ast.JoinedStr: "f-strings", ast.Starred: "* unpacking",
    ast.NamedExpr: "assignment (:=)", ast.Await: "await", ast.Yield: "yield",
    ast.YieldFrom: "yield",
}


class ExprError(ValueError):
    """An expression that cannot be parsed, or cannot be evaluated in the environment given."""


@dataclass(frozen=True)
class CallInfo:
    """One function call in an expression: `state_bytes(seq_len=4096)`, `count(attention)`."""

    name: str
    args: tuple[str, ...] = ()  # bare names, passed as strings
    kwargs: tuple[tuple[str, Any], ...] = ()  # constant values
    text: str = ""  # canonical spelling, e.g. "state_bytes(seq_len=4096)"

    @property
    def kwargs_dict(self) -> dict[str, Any]:
        return dict(self.kwargs)

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        """Call env[name](*args, **kwargs)."""
        function = env.get(self.name)
        if function is None:
            raise ExprError(f"unknown function {self.name!r} in {self.text}; known: "
                            f"{_known(env, callables=True)}")
        if not callable(function):
            raise ExprError(f"{self.name!r} is not a function (in {self.text})")
        try:
            return function(*self.args, **self.kwargs_dict)
        except ExprError:
            raise
        except (TypeError, ValueError, KeyError) as exc:
            raise ExprError(f"{self.text}: {exc}") from None


@dataclass(frozen=True)
class Expr:
    """A parsed, checked expression. Evaluate it with `evaluate(env)`."""

    text: str
    tree: ast.Expression = field(repr=False, compare=False)
    names: tuple[str, ...] = ()  # variables, in order of first use
    calls: tuple[CallInfo, ...] = ()  # distinct calls, in order of first use

    @property
    def functions(self) -> tuple[str, ...]:
        """The distinct function names called."""
        return tuple(dict.fromkeys(c.name for c in self.calls))

    @property
    def is_condition(self) -> bool:
        """True when the top level is a comparison, and/or/not, or True/False: a yes-or-no."""
        body = self.tree.body
        if isinstance(body, ast.Constant):
            return isinstance(body.value, bool)
        return isinstance(body, ast.Compare | ast.BoolOp) or (
            isinstance(body, ast.UnaryOp) and isinstance(body.op, ast.Not))

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        """The value of the expression, names and functions looked up in `env`.

        Raises ExprError for an unknown name or function, a division by zero, or operands that
        do not fit their operator (e.g. None < 2)."""
        return _Evaluator(env).visit(self.tree.body)

    def __str__(self) -> str:
        return self.text


def parse(text: str, *, strings: bool = False) -> Expr:
    """Parse and check `text`; ExprError (one line, naming the offending part) if it is not in
    the language. `strings=True` also admits quoted string constants (to compare text columns,
    e.g. ``state == 'COMPLETE'``)."""
    if not isinstance(text, str):
        raise ExprError(f"an expression must be a string, got {type(text).__name__}")
    original = text
    if not text.strip():
        raise ExprError("empty expression")
    if len(text) > MAX_LENGTH:
        raise ExprError(f"expression longer than {MAX_LENGTH} characters")
    if "\n" in text.strip() or "\r" in text:
        raise ExprError("an expression is one line")
    source = _replace_units(text.strip())
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        where = f" at column {exc.offset}" if exc.offset else ""
        raise ExprError(f"invalid syntax{where} in {original.strip()!r}: "
                        f"{(exc.msg or 'syntax error').split('(')[0].strip()}") from None
    except (RecursionError, MemoryError, ValueError):
        raise ExprError(f"cannot parse {original.strip()!r}: too deeply nested") from None
    checker = _Checker(source, strings)
    try:
        checker.visit(tree.body)
    except RecursionError:
        raise ExprError(f"cannot parse {original.strip()!r}: too deeply nested") from None
    return Expr(original.strip(), tree, tuple(checker.names), tuple(checker.calls.values()))


# ------------------------------------------------------------------------------------------------
# parsing
# ------------------------------------------------------------------------------------------------


def _replace_units(text: str) -> str:
    """`4MiB` -> `4194304`, `2k` -> `2000`: a number directly followed by a unit."""
    out, i = [], 0
    while i < len(text):
        char = text[i]
        following = text[i + 1:i + 2]
        starts_number = char in _ASCII_DIGITS or (char == "." and following in _ASCII_DIGITS)
        if not starts_number or (i and (text[i - 1].isalnum() or text[i - 1] in "_.")):
            out.append(char)
            i += 1
            continue
        number = _NUMBER.match(text, i)
        unit = _IDENTIFIER.match(text, number.end())
        if unit is None:
            out.append(number.group())
            i = number.end()
            continue
        written = text[i:unit.end()]
        if unit.group() not in UNITS:
            if unit.group()[0] in "eE" and re.fullmatch(r"[eE]\d*", unit.group()):
                raise ExprError(f"malformed number {written!r}: write e.g. 2e6 or 2.5e-3")
            raise ExprError(f"unknown unit {unit.group()!r} in {written!r}; known units: "
                            f"{', '.join(UNITS)} (written right after the number, e.g. 4MiB)")
        value = float(number.group().replace("_", "")) * UNITS[unit.group()]
        out.append(str(int(value)) if value.is_integer() else repr(value))
        i = unit.end()
    return "".join(out)


def _segment(source: str, node: ast.AST) -> str:
    return ast.get_source_segment(source, node) or type(node).__name__


def _known(env: Mapping[str, Any], callables: bool) -> str:
    names = sorted(k for k, v in env.items() if callable(v) == callables)
    return ", ".join(names) or "(none)"


class _Checker:
    """Walks a parsed tree; raises ExprError at the first node outside the whitelist."""

    def __init__(self, source: str, strings: bool = False) -> None:
        self.source, self.strings = source, strings
        self.names: dict[str, None] = {}
        self.calls: dict[str, CallInfo] = {}

    def fail(self, node: ast.AST, problem: str) -> ExprError:
        return ExprError(f"{problem}: {_segment(self.source, node)!r}")

    def name(self, node: ast.Name) -> str:
        if node.id.startswith("_"):
            raise self.fail(node, "names may not start with '_'")
        return node.id

    def visit(self, node: ast.AST) -> None:
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, float) and not math.isfinite(value):
                raise self.fail(node, "a number this large is not allowed (it reads as infinity)")
            if isinstance(value, bool | int | float) or (self.strings and isinstance(value, str)):
                return
            kind = "strings" if isinstance(value, str | bytes) else type(value).__name__
            raise self.fail(node, f"{kind} are not allowed")
        if isinstance(node, ast.Name):
            self.names.setdefault(self.name(node))
            return
        if isinstance(node, ast.BoolOp):  # And, Or: the only two
            for value in node.values:
                self.visit(value)
            return
        if isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, ast.Not | ast.USub | ast.UAdd):
                raise self.fail(node, "operator '~' is not allowed")
            self.visit(node.operand)
            return
        if isinstance(node, ast.BinOp):
            if type(node.op) not in _BINARY:
                raise self.fail(node, f"operator {_op_text(node.op)} is not allowed "
                                      "(use + - * / //)")
            self.visit(node.left)
            self.visit(node.right)
            return
        if isinstance(node, ast.Compare):
            for op in node.ops:
                if type(op) not in _COMPARE:
                    raise self.fail(node, f"operator {_op_text(op)} is not allowed "
                                          "(use < <= > >= == !=)")
            self.visit(node.left)
            for comparator in node.comparators:
                self.visit(comparator)
            return
        if isinstance(node, ast.Call):
            self.call(node)
            return
        what = _FORBIDDEN.get(type(node), type(node).__name__)
        raise self.fail(node, f"{what} not allowed")

    def call(self, node: ast.Call) -> None:
        if not isinstance(node.func, ast.Name):
            raise self.fail(node, "only plain function names can be called, e.g. count(attention)")
        function = self.name(node.func)
        args = []
        for arg in node.args:
            if not isinstance(arg, ast.Name):
                raise self.fail(arg, f"arguments of {function}() must be bare names "
                                     "(keyword arguments take constants)")
            args.append(self.name(arg))
        kwargs = []
        for keyword in node.keywords:
            if keyword.arg is None:
                raise self.fail(keyword.value, "** unpacking is not allowed")
            if keyword.arg.startswith("_"):
                raise self.fail(node, "names may not start with '_'")
            kwargs.append((keyword.arg, self.constant(keyword.value, function)))
        shown = [*args, *(f"{k}={v}" for k, v in kwargs)]
        text = f"{function}({', '.join(shown)})"
        self.calls.setdefault(text, CallInfo(function, tuple(args), tuple(kwargs), text))

    def constant(self, node: ast.AST, function: str) -> Any:
        """A keyword value: a number (optionally negated), True/False, or a bare name (str)."""
        if isinstance(node, ast.Constant) and isinstance(node.value, bool | int | float):
            return node.value
        if (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
                and isinstance(node.operand, ast.Constant)
                and isinstance(node.operand.value, int | float)
                and not isinstance(node.operand.value, bool)):
            return -node.operand.value
        if isinstance(node, ast.Name):
            return self.name(node)
        raise self.fail(node, f"keyword arguments of {function}() must be constants")


def _op_text(op: ast.AST) -> str:
    return {ast.Pow: "'**'", ast.Mod: "'%'", ast.FloorDiv: "'//'", ast.MatMult: "'@'",
            ast.BitAnd: "'&'", ast.BitOr: "'|'", ast.BitXor: "'^'", ast.LShift: "'<<'",
            ast.RShift: "'>>'", ast.Is: "'is'", ast.IsNot: "'is not'", ast.In: "'in'",
            ast.NotIn: "'not in'"}.get(type(op), repr(type(op).__name__))


# ------------------------------------------------------------------------------------------------
# evaluation
# ------------------------------------------------------------------------------------------------


class _Evaluator:
    """Evaluates a tree `_Checker` accepted; nothing outside the whitelist can reach here."""

    def __init__(self, env: Mapping[str, Any]) -> None:
        self.env = env

    def visit(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in self.env or callable(self.env[node.id]):
                raise ExprError(f"unknown name {node.id!r}; known: {_known(self.env, False)}")
            return self.env[node.id]
        if isinstance(node, ast.BoolOp):
            if isinstance(node.op, ast.And):
                return all(bool(self.visit(v)) for v in node.values)  # short-circuits
            return any(bool(self.visit(v)) for v in node.values)
        if isinstance(node, ast.UnaryOp):
            operand = self.visit(node.operand)
            if isinstance(node.op, ast.Not):
                return not operand
            self._numbers(node, operand)
            return -operand if isinstance(node.op, ast.USub) else +operand
        if isinstance(node, ast.BinOp):
            left, right = self.visit(node.left), self.visit(node.right)
            self._numbers(node, left, right)
            if isinstance(node.op, ast.Div | ast.FloorDiv) and right == 0:
                raise ExprError(f"division by zero in {ast.unparse(node)!r}")
            try:
                result = _BINARY[type(node.op)](left, right)
            except OverflowError:
                result = math.inf
            if isinstance(result, float) and not math.isfinite(result) or (
                    isinstance(result, int) and result.bit_length() > _MAX_INT_BITS):
                raise ExprError(f"{brief(ast.unparse(node))} overflows (beyond about 1e308)")
            return result
        if isinstance(node, ast.Compare):
            left = self.visit(node.left)
            for op, comparator in zip(node.ops, node.comparators, strict=True):
                right = self.visit(comparator)
                try:
                    holds = _COMPARE[type(op)](left, right)
                except TypeError:
                    raise ExprError(f"cannot compare {left!r} {_COMPARE_TEXT[type(op)]} "
                                    f"{right!r} in {ast.unparse(node)!r}") from None
                if not holds:
                    return False
                left = right
            return True
        if isinstance(node, ast.Call):
            return _call_info(node).evaluate(self.env)
        raise ExprError(f"{type(node).__name__} not allowed")  # pragma: no cover - checked

    @staticmethod
    def _numbers(node: ast.AST, *values: Any) -> None:
        for value in values:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ExprError(f"{ast.unparse(node)!r}: arithmetic needs numbers, got "
                                f"{value!r}")


def _call_info(node: ast.Call) -> CallInfo:
    checker = _Checker("")
    checker.call(node)
    return next(iter(checker.calls.values()))
