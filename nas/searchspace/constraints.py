"""Constraints of a space file: conditions every candidate must meet before it is trained.

    constraints:
      - "params <= 2e6"
      - "state_bytes(seq_len=4096) <= 4MiB"
      - "count(attention) >= 1"

Each entry is an expression of `nas.expr` over the quantities of one ArchSpec:

    params                      parameters (tied embedding / head once): num_params()
    n_layers, d_model           depth and width
    flops_per_token(seq_len=N)  forward FLOPs per token at context N
    state_bytes(seq_len=N)      fp32 decode state (KV cache, recurrent state) per sequence
                                after N tokens
    count(KIND)                 layers whose token mixer is KIND, e.g. count(attention)

The quantities come from the blocks' own analytic cost methods on the model built on PyTorch's
meta device (no memory, no weights, nothing trained), cached per arch_hash.

Measured quantities, taken on the untrained model before it trains (latency does not depend on
the weights) by the search loop, through the latency cache, on the device that times latency:

    latency_ms                  prefill latency, batch 1, the task's seq_len (ms)
    decode_ms                   one decode step at a context of the task's seq_len (ms)
    peak_memory_mb              peak memory of that prefill pass (MiB)
    latency_ms(seq_len=N, batch=B), decode_ms(...), peak_memory_mb(...)   at another shape
    OBJECTIVE                   a measured objective of the space, by its name, as measured
                                for that objective (a space whose objective is named
                                `latency_ms` gets that objective's shape for `latency_ms`)

A constraint naming one (`Constraint.measurements`) is not checked when a candidate is
sampled (`violation` skips it) but by `measured_violation` once the measurements exist; a
candidate failing it is INFEASIBLE and never trains.

Everything is checked at load time: a constraint that does not parse, is not a yes-or-no
condition, or names an unknown quantity or mixer is a SpaceError at `constraints.<i>`.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nas.errors import SpaceError, brief
from nas.expr import CallInfo, Expr, ExprError, parse
from nas.spec import ArchSpec

NAMES = ("params", "n_layers", "d_model")
FUNCTIONS = ("flops_per_token", "state_bytes", "count")
_SEQ_LEN_FUNCTIONS = ("flops_per_token", "state_bytes")
# Measured quantities: name -> (measurement metric, phase); see the module docstring.
MEASURED = {"latency_ms": ("latency", "prefill"), "decode_ms": ("latency", "decode"),
            "peak_memory_mb": ("peak_memory", "prefill")}
_SHAPE_KEYWORDS = ("seq_len", "batch")
KNOWN = ("params, n_layers, d_model, flops_per_token(seq_len=N), state_bytes(seq_len=N), "
         "count(KIND), latency_ms, decode_ms, peak_memory_mb (each also as "
         "NAME(seq_len=N, batch=B)), a measured objective's name")
_CACHE_SIZE = 128  # meta models kept, by arch_hash


@dataclass(frozen=True)
class Constraint:
    """One checked entry of `constraints:`, by its position in the list."""

    index: int
    expr: Expr
    # What it needs measured: latency entries ({"name": key, "metric", "phase", "batch",
    # "seq_len"}), keyed by `measured_key`; empty for an analytic constraint.
    measurements: tuple[dict[str, Any], ...] = ()

    @property
    def text(self) -> str:
        return self.expr.text

    @property
    def key(self) -> str:
        return f"constraints.{self.index}"


def measured_key(name: str, shape: Mapping[str, Any] | None = None) -> str:
    """The name a measured quantity's value goes by: `latency_ms`, or with a shape given
    `latency_ms(batch=4,seq_len=4096)` (keywords sorted, whatever order they were written)."""
    if not shape:
        return name
    return f"{name}({','.join(f'{k}={int(v)}' for k, v in sorted(shape.items()))})"


def compile_constraints(path: str, texts: Sequence[str], *,
                        objectives: Mapping[str, Mapping[str, Any]] | None = None,
                        seq_len: int = 128) -> tuple[Constraint, ...]:
    """Parse and check every constraint; SpaceError naming `constraints.<i>` for the first bad
    one. `objectives`: the space's measured objectives' entries by name (usable as names);
    `seq_len`: the task's, the default shape of the measured quantities."""
    from nas.blocks import list_blocks

    objectives = objectives or {}
    mixers = list_blocks(role="token_mixer")
    out = []
    for index, text in enumerate(texts):
        key = f"constraints.{index}"
        try:
            expr = parse(text)
        except ExprError as exc:
            raise SpaceError(path, key, f"{exc}", "write a condition such as `params <= 2e6` "
                             f"over {KNOWN}") from None
        if not expr.is_condition:
            raise SpaceError(path, key, f"{brief(text)} is not a condition",
                             "compare it with a limit, e.g. `params <= 2e6`")
        for name in expr.names:
            if name not in NAMES and name not in MEASURED and name not in objectives:
                hint = (f" ({name} needs a context length: {name}(seq_len=N))"
                        if name in _SEQ_LEN_FUNCTIONS else "")
                raise SpaceError(path, key, f"unknown name {brief(name)}{hint}",
                                 f"known names: {KNOWN}")
        both = sorted(set(expr.names) & {c.name for c in expr.calls} & set(MEASURED))
        if both:
            raise SpaceError(path, key, f"{both[0]} is used both bare and with a shape",
                             f"write {both[0]}(seq_len=N) at every use, or split the "
                             "condition into two constraints")
        for call in expr.calls:
            preset = _preset_counted(call)
            if preset is not None:
                raise SpaceError(path, key, f"{call.text}: {preset.name} is a preset of "
                                 f"{preset.block}, and a model records the block, not the name",
                                 f"write count({preset.block}); it counts every {preset.block} "
                                 f"layer, {preset.name} or not")
            problem = _check_call(call, mixers)
            if problem:
                fix = ("spell the mixer as in `nas blocks list`" if "unknown token mixer" in problem
                       else f"known names: {KNOWN}")
                raise SpaceError(path, key, problem, fix)
        _check_constant(path, key, expr)
        out.append(Constraint(index, expr, _measurements(expr, objectives, seq_len)))
    return tuple(out)


def _measurements(expr: Expr, objectives: Mapping[str, Mapping[str, Any]],
                  seq_len: int) -> tuple[dict[str, Any], ...]:
    """The latency entries `expr`'s measured names and calls need, one per distinct key."""
    found: dict[str, dict[str, Any]] = {}
    for name in expr.names:
        if name in objectives:
            found[name] = {**objectives[name], "name": name}
        elif name in MEASURED:
            found[name] = _entry(name, {}, seq_len)
    for call in expr.calls:
        if call.name in MEASURED:
            shape = call.kwargs_dict
            found[measured_key(call.name, shape)] = _entry(call.name, shape, seq_len)
    return tuple(found.values())


def _entry(name: str, shape: Mapping[str, Any], seq_len: int) -> dict[str, Any]:
    metric, phase = MEASURED[name]
    return {"name": measured_key(name, shape), "metric": metric, "phase": phase,
            "batch": int(shape.get("batch", 1)), "seq_len": int(shape.get("seq_len", seq_len))}


def _check_constant(path: str, key: str, expr: Expr) -> None:
    """A constraint without names or functions has one value for every candidate: it must
    evaluate (no division by zero, no overflow) and hold, or no candidate could ever pass."""
    if expr.names or expr.calls:
        return
    try:
        holds = bool(expr.evaluate({}))
    except ExprError as exc:
        raise SpaceError(path, key, f"cannot be evaluated: {exc}",
                         "write a condition over the candidate, e.g. `params <= 2e6`") from None
    if not holds:
        raise SpaceError(path, key, f"{brief(expr.text)} is always false: no candidate can meet "
                         "it", "remove it, or write a condition over the candidate, e.g. "
                         "`params <= 2e6`")


def _preset_counted(call: CallInfo) -> Any:
    """The preset (nas.blocks.registry.Preset) `count(PRESET)` names, else None."""
    from nas.blocks import get_preset

    if call.name != "count" or call.kwargs or len(call.args) != 1:
        return None
    return get_preset(str(call.args[0]))


def _check_call(call: CallInfo, mixers: Sequence[str]) -> str | None:
    if call.name in MEASURED:
        return _check_shape_call(call)
    if call.name not in FUNCTIONS:
        return f"unknown function {brief(call.name)} in {call.text}"
    if call.name == "count":
        if call.kwargs or len(call.args) != 1:
            return f"{call.text}: count takes one token mixer, e.g. count(attention)"
        if call.args[0] not in mixers:
            return (f"{call.text}: unknown token mixer {brief(call.args[0])}; known: "
                    f"{', '.join(mixers)}")
        return None
    kwargs = call.kwargs_dict
    seq_len = kwargs.get("seq_len")
    if call.args or set(kwargs) != {"seq_len"}:
        return f"{call.text}: {call.name} takes one keyword, e.g. {call.name}(seq_len=4096)"
    if isinstance(seq_len, bool) or not isinstance(seq_len, int | float) or seq_len < 1 \
            or int(seq_len) != seq_len:
        return f"{call.text}: seq_len must be a positive integer, got {brief(seq_len)}"
    return None


def _check_shape_call(call: CallInfo) -> str | None:
    """`latency_ms(seq_len=N, batch=B)`: keywords only, each a positive integer."""
    kwargs = call.kwargs_dict
    if call.args or not kwargs or not set(kwargs) <= set(_SHAPE_KEYWORDS):
        return (f"{call.text}: {call.name} takes seq_len= and/or batch=, e.g. "
                f"{call.name}(seq_len=4096, batch=1)")
    for keyword, value in kwargs.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 1 \
                or int(value) != value:
            return f"{call.text}: {keyword} must be a positive integer, got {brief(value)}"
    return None


# ------------------------------------------------------------------------------------------------
# quantities of one ArchSpec
# ------------------------------------------------------------------------------------------------

_MODELS: OrderedDict[str, Any] = OrderedDict()


def meta_model(spec: ArchSpec):
    """The LanguageModel of `spec` on the meta device (shapes only, no memory), cached by
    arch_hash. Its cost methods are analytic, so they need no real weights."""
    key = spec.arch_hash
    model = _MODELS.get(key)
    if model is not None:
        _MODELS.move_to_end(key)
        return model
    import torch

    from nas.blocks.model import build_model

    with torch.device("meta"):
        model = build_model(spec, device="meta")
    _MODELS[key] = model
    while len(_MODELS) > _CACHE_SIZE:
        _MODELS.popitem(last=False)
    return model


_PARAMS: dict[str, int] = {}  # arch_hash -> parameter count (ints: a few MB at the cap)
_PARAMS_CAP = 200_000


def param_count(spec: ArchSpec) -> int:
    """The parameter count of `spec`'s model, remembered by arch_hash for the process (a
    strategy scoring thousands of candidates builds each architecture once)."""
    key = spec.arch_hash
    count = _PARAMS.get(key)
    if count is None:
        count = int(meta_model(spec).num_params())
        if len(_PARAMS) >= _PARAMS_CAP:
            _PARAMS.clear()
        _PARAMS[key] = count
    return count


def quantities(spec: ArchSpec) -> dict[str, Any]:
    """The environment constraints are evaluated in: names to values, functions to callables.
    The model is built (on the meta device) only when a constraint needs it."""

    def model():
        return meta_model(spec)

    def params() -> int:
        return param_count(spec)

    def flops_per_token(seq_len: int) -> float:
        return float(model().flops_per_token(int(seq_len)))

    def state_bytes(seq_len: int) -> int:
        import torch

        return int(model().state_bytes(int(seq_len), torch.float32))

    def count(kind: str) -> int:
        return sum(1 for k in spec.mixer_kinds if k == kind)

    return {"params": _Lazy(params), "n_layers": spec.n_layers, "d_model": spec.d_model,
            "flops_per_token": flops_per_token, "state_bytes": state_bytes, "count": count}


class _Lazy:
    """A value computed on first use (`params` needs the model; `n_layers` does not)."""

    def __init__(self, compute: Callable[[], Any]) -> None:
        self.compute = compute


def _resolve(env: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    out = dict(env)
    for name in names:
        if isinstance(out.get(name), _Lazy):
            out[name] = out[name].compute()
    return {k: v for k, v in out.items() if not isinstance(v, _Lazy)}


def violation(constraints: Sequence[Constraint], spec: ArchSpec) -> str | None:
    """None if `spec` meets every analytic constraint; else the first one it fails, with the
    values, e.g. 'params <= 2e6: params = 3.1M'. Measured constraints are skipped: see
    `measured_violation`."""
    return _first_violation([c for c in constraints if not c.measurements], quantities(spec))


def measured_violation(constraints: Sequence[Constraint], spec: ArchSpec,
                       measured: Mapping[str, float]) -> str | None:
    """None if `spec` meets every constraint that needs measurements, given `measured`
    (values by `measured_key`, as the entries of `Constraint.measurements` name them); else
    the first one it fails, e.g. 'latency_ms <= 5: latency_ms = 7.21'."""
    base = quantities(spec)
    # A measured name is a number where a constraint writes it bare (`latency_ms`), a function
    # of the shape where it calls it (`latency_ms(seq_len=4096)`; one constraint never does
    # both: compile_constraints refuses it).
    plain = {name: float(value) for name, value in measured.items() if "(" not in name}
    shaped = {name: functools.partial(_shaped, name, measured) for name in MEASURED}
    return _first_violation([c for c in constraints if c.measurements], base,
                            lambda c: {**shaped, **{n: plain[n] for n in c.expr.names
                                                    if n in plain}})


def _shaped(name: str, measured: Mapping[str, float], **shape: Any) -> float:
    return float(measured[measured_key(name, shape)])


def _first_violation(constraints: Sequence[Constraint], base: dict[str, Any],
                     extra: Callable[[Constraint], dict[str, Any]] = lambda c: {}
                     ) -> str | None:
    """The first of `constraints` that fails in `base` plus `extra(constraint)`, with the
    values; None if all hold."""
    for constraint in constraints:
        try:
            env = {**_resolve(base, constraint.expr.names), **extra(constraint)}
            holds = bool(constraint.expr.evaluate(env))
        except (ExprError, ValueError, ArithmeticError) as exc:  # e.g. 1 / (n_layers - 4)
            return f"{constraint.text}: cannot be evaluated for this candidate ({exc})"
        if not holds:
            return f"{constraint.text}: {describe_values(constraint.expr, env)}"
    return None


def describe_values(expr: Expr, env: dict[str, Any]) -> str:
    """'params = 3.1M, count(attention) = 0': every quantity the expression uses."""
    parts = [f"{name} = {format_quantity(name, env[name])}" for name in expr.names]
    for call in expr.calls:
        parts.append(f"{call.text} = {format_quantity(call.name, call.evaluate(env))}")
    return ", ".join(parts)


def format_quantity(name: str, value: Any) -> str:
    """Bytes in KiB / MiB / GiB, large counts with k / M / G, three significant digits (and
    the exact integer beside a rounded one, so '1MiB' never hides 1,050,624 bytes)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return repr(value)
    if name == "state_bytes":
        for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if abs(value) >= size:
                short = f"{value / size:.3g}{unit}"
                return short if value % size == 0 else f"{short} ({int(value):,} bytes)"
        return f"{int(value)}B"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:g}" if isinstance(value, float) else str(value)
