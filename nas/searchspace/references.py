"""Values computed from other decisions: `{expr: "d_model // 32"}` and `{same_as: attention.heads}`.

A reference names decisions the way a nested scope does: a name is looked up first beside the
key that uses it, then one level up, and so on to the top of the file. Written at
`model.token_mixers.linear_attention.heads`:

    heads            -> model.token_mixers.linear_attention.heads   (a knob of the same mixer)
    d_model          -> model.d_model
    attention.heads  -> model.token_mixers.attention.heads
    channel_mixer.expansion -> model.channel_mixer.expansion

Last of all a name is looked up among the token mixers, so `attention.heads` also works from
`model.channel_mixer.expansion`.

An expression is parsed by nas.expr (a whitelist of arithmetic and comparisons, never eval'ed);
dotted names are rewritten to plain identifiers before parsing (`attention.heads` ->
`attention__heads`). Resolution and evaluation errors are ReferenceProblem, which the compiler
turns into a SpaceError at the key that holds the reference.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from nas.expr import ExprError, parse
from nas.searchspace.domains import FIX, Derived, Reference
from nas.spec import Scalar

_DOTTED = re.compile(r"(?<![\w.])[A-Za-z]\w*(?:\.[A-Za-z]\w*)+")
_MANGLE = "__"
TOKEN_MIXERS = "model.token_mixers"  # searched last, so `attention.heads` works from anywhere
NAMES_HELP = ("a name is a decision: a knob of the same mixer (heads), a model value (d_model, "
              "n_layers), another mixer's knob (attention.heads), channel_mixer.expansion")


class ReferenceProblem(ValueError):
    """A reference that cannot be resolved or evaluated; the message says why (and may name
    its fix: 'PROBLEM; fix: FIX')."""


def resolve_name(name: str, key: str, exists: Callable[[str], bool]) -> str | None:
    """The full decision path `name` means when written at `key`, innermost scope first; None
    when nothing by that name exists in any enclosing scope."""
    for candidate in _candidates(name, key):
        if candidate != key and exists(candidate):
            return candidate
    return None


def _candidates(name: str, key: str) -> list[str]:
    """The paths `name` may mean at `key`, innermost scope first, the token mixers last."""
    parts = key.split(".")[:-1]
    scopes = [".".join([*parts[:depth], name]) for depth in range(len(parts), -1, -1)]
    return [*scopes, f"{TOKEN_MIXERS}.{name}"]


@dataclass(frozen=True)
class Resolved:
    """A reference made concrete: the Derived domain and the constants it folded in."""

    domain: Derived
    constants: Mapping[str, Scalar]


def resolve(reference: Reference, key: str, exists: Callable[[str], bool],
            constants: Mapping[str, Scalar]) -> Resolved:
    """The Derived domain for `reference` written at `key`.

    `exists(path)` says whether a decision by that path exists; `constants` maps paths to fixed
    values that are not decisions (e.g. registry defaults of knobs a file leaves out)."""

    def lookup(name: str) -> str:
        found = resolve_name(name, key, lambda p: exists(p) or p in constants)
        if found is None and key in _candidates(name, key):
            raise ReferenceProblem(f"{reference.keyword} {reference.text!r} refers to {key} "
                                   f"itself{FIX}name another decision (d_model, n_layers, or "
                                   "another mixer's knob written MIXER.KNOB), or write a value")
        if found is None:
            raise ReferenceProblem(f"unknown name {name!r} in {reference.keyword} "
                                   f"{reference.text!r}")
        return found

    if reference.keyword == "same_as":
        if not _DOTTED.fullmatch(reference.text) and not reference.text.isidentifier():
            raise ReferenceProblem(f"same_as needs one name such as attention.heads, got "
                                   f"{reference.text!r}")
        target = lookup(reference.text)
        if target in constants:
            value = constants[target]
            return Resolved(Derived((), lambda values: value, f"same as {target} = {value!r}"),
                            {target: value})
        return Resolved(Derived((target,), lambda values: values[target], f"same as {target}"),
                        {})

    source, written = mangle(reference.text)
    try:
        expr = parse(source)
    except ExprError as exc:
        raise ReferenceProblem(f"invalid expression {reference.text!r}: "
                               f"{unmangle(str(exc), written)}") from None
    if expr.calls:
        raise ReferenceProblem(f"function calls are not allowed in an expr: {reference.text!r}")
    targets = {name: lookup(written.get(name, name)) for name in expr.names}
    folded = {path: constants[path] for path in targets.values() if path in constants}
    inputs = tuple(dict.fromkeys(p for p in targets.values() if p not in folded))

    def compute(values: Mapping[str, Scalar]) -> Scalar:
        env = {name: folded[path] if path in folded else values[path]
               for name, path in targets.items()}
        try:
            return expr.evaluate(env)
        except ExprError as exc:
            raise ReferenceProblem(f"{reference.text!r}: {unmangle(str(exc), written)}") from None

    return Resolved(Derived(inputs, compute, f"= {reference.text}"), folded)


def mangle(text: str) -> tuple[str, dict[str, str]]:
    """(`text` with dotted names as identifiers, identifier -> dotted name as written)."""
    written: dict[str, str] = {}

    def replace(match: re.Match) -> str:
        plain = match.group().replace(".", _MANGLE)
        written[plain] = match.group()
        return plain

    return _DOTTED.sub(replace, text), written


def unmangle(text: str, written: Mapping[str, str]) -> str:
    """Undo `mangle` in a message, so it shows the names as the user wrote them."""
    for plain in sorted(written, key=len, reverse=True):
        text = text.replace(plain, written[plain])
    return text
