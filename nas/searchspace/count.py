"""How many distinct architectures a space can produce — counted exactly, or not at all.

Domain sizes multiplied together over-count: a decision exists only where its conditions hold
(attention's knobs only where some layers are attention, `placement` only for a true hybrid),
and different assignments can assemble to the same canonical ArchSpec (n=2 at ratio 0.5:
`interleave` and `last` both give X-A; `kv_heads: full` equals `kv_heads: heads`). So the count
is made in two passes over the decision DAG, both walking `space.order` and branching only over
the decisions that are active given their parents' values:

1. `_count_assignments`: the exact number of *active assignments* (the distinct value sets
   `space.sample` can ask a trial for), by dynamic programming — the count from a position on
   depends only on the values of decisions that later decisions are conditioned on, so it is
   memoized on those; a decision nobody depends on contributes a factor of its domain size.
   Cheap even for huge spaces; it says whether enumeration fits within `limit`.
2. `_assignments`: a lazy enumeration of those assignments; each is assembled into its
   canonical ArchSpec, and their identities (equal exactly when the `arch_hash`es are) are
   collected in a set.

A computed decision (`{expr: ...}`, `{same_as: ...}`, a pattern's implied depth) has one value
given its inputs, so it adds no assignments; its inputs are kept in the state until it is
computed.

Training decisions (`training.*`) do not change `arch_hash`, so they are left out of the
architecture count and counted separately. A continuous (`uniform`/`loguniform`) decision that
can be active makes enumeration impossible: the count is then None, with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache

import networkx as nx

from nas.searchspace.compile import SearchSpace
from nas.searchspace.domains import Domain, FloatRange
from nas.spec import ArchSpec, Scalar, canonical_json

TRAINING_PREFIX = "training."
DEFAULT_LIMIT = 200_000  # about 10-40 s of assembling and hashing at most


@dataclass(frozen=True)
class CountResult:
    """The outcome of `count_architectures`.

    distinct: the exact number of distinct architectures (distinct `arch_hash`), or None when it
        was not established (see `reason`): the assignments exceed `limit`, or a continuous
        decision makes them uncountable.
    exact: True only when `distinct` is the exact count.
    assignments: active assignments of the architecture decisions — all of them, exactly, when
        countable (also when there are more than `limit`, then none were enumerated); 0 when a
        continuous decision makes them infinite.
    reason: why `distinct` is None; None when exact.
    continuous: the continuous architecture decisions that can be active.
    training: the number of training configurations (active assignments of the `training.*`
        decisions), or None when one of them is continuous (see `training_continuous`).
    """

    distinct: int | None
    exact: bool
    assignments: int
    reason: str | None = None
    continuous: tuple[str, ...] = ()
    training: int | None = None
    training_continuous: tuple[str, ...] = ()
    limit: int = DEFAULT_LIMIT


def count_architectures(space: SearchSpace, limit: int = DEFAULT_LIMIT) -> CountResult:
    """Count the distinct architectures of `space` by enumerating at most `limit` assignments."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    arch, training = split_decisions(space)
    training_count, training_continuous = _count_assignments(space, training)
    training_fields = {
        "training": None if training_continuous else training_count,
        "training_continuous": training_continuous,
        "limit": limit,
    }
    total, continuous = _count_assignments(space, arch)
    if continuous:
        return CountResult(
            None, False, 0,
            reason=f"continuous decision(s) {', '.join(continuous)}: assignments are infinite, "
                   "not enumerated",
            continuous=continuous, **training_fields,
        )
    if total > limit:
        return CountResult(
            None, False, total,
            reason=f"{total:,} assignments exceed the limit of {limit:,}: not enumerated",
            **training_fields,
        )
    hashes = set()
    enumerated = 0
    for values in _assignments(space, arch):
        enumerated += 1
        if enumerated > limit:  # pragma: no cover - the count above says this cannot happen
            return CountResult(None, False, enumerated - 1,
                               reason=f"more than {limit:,} assignments", **training_fields)
        hashes.add(identity(space.assemble(values)))
    if enumerated != total:  # pragma: no cover - both walks apply the same conditions
        raise AssertionError(f"enumerated {enumerated} assignments, counted {total}")
    return CountResult(len(hashes), True, enumerated, **training_fields)


def configurations(space: SearchSpace, limit: int = DEFAULT_LIMIT) -> list[dict[str, Scalar]]:
    """Every distinct configuration of `space` (architecture and training decisions), each as
    the decision values of its first assignment in enumeration order; two assignments are one
    configuration when their ArchSpecs have one `config_hash`. ValueError(problem, fix) when a
    decision is continuous or there are more than `limit` assignments."""
    names = tuple(space.order)
    total, continuous = _count_assignments(space, names)
    if continuous:
        raise ValueError(f"continuous decision(s) {', '.join(continuous)} cannot be enumerated",
                         "give them as {choice: [...]} or {int: [lo, hi]}")
    if total > limit:
        raise ValueError(f"its {total:,} assignments exceed the limit of {limit:,}",
                         "narrow the space, or use another strategy")
    seen: dict[str, dict[str, Scalar]] = {}
    for values in _assignments(space, names):
        seen.setdefault(space.assemble(values).config_hash, values)
    return list(seen.values())


def identity(spec: ArchSpec) -> str:
    """What makes two architectures one: the canonical JSON of the architecture. The layer
    graph that `arch_hash` digests is built from exactly these fields, so equal identities mean
    equal hashes and (barring a SHA-256 collision) the converse; the JSON is ~10x cheaper."""
    return canonical_json(spec.architecture_dict())


def split_decisions(space: SearchSpace) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(architecture decisions, training decisions), each in `space.order`.

    Architecture decisions are every decision outside `training.*`, plus any training decision
    one of them is conditioned on (none today): it would decide which architecture comes out.
    """
    arch = {name for name in space.order if not name.startswith(TRAINING_PREFIX)}
    for name in list(arch):
        arch |= nx.ancestors(space.graph, name)
    training = {name for name in space.order if name not in arch}
    for name in list(training):  # gated by an architecture decision (none today): counted
        training |= nx.ancestors(space.graph, name)  # jointly with the decisions gating it
    return (tuple(n for n in space.order if n in arch),
            tuple(n for n in space.order if n in training))


def is_continuous(domain: Domain) -> bool:
    return isinstance(domain, FloatRange) and domain.low != domain.high


def _size(domain: Domain) -> int:
    size = domain.size
    return 1 if math.isinf(size) and not is_continuous(domain) else int(size)


def _count_assignments(space: SearchSpace, names: Iterable[str]) -> tuple[int, tuple[str, ...]]:
    """(number of active assignments of `names`, the continuous decisions among them that can
    be active — if any, the count is 0 and means infinite). `names` must be closed under
    ancestors and listed in `space.order`."""
    names = tuple(names)
    # needed[i]: the decisions at positions >= i are conditioned on these decisions' values
    needed: list[frozenset[str]] = [frozenset()] * (len(names) + 1)
    for i in range(len(names) - 1, -1, -1):
        needed[i] = needed[i + 1] | frozenset(space.graph.predecessors(names[i]))
    continuous = _find_continuous(space, names, needed)
    if continuous:
        return 0, continuous

    @cache
    def count(i: int, state: frozenset[tuple[str, Scalar]]) -> int:
        if i == len(names):
            return 1
        name, values = names[i], dict(state)
        if not space.is_active(name, values):
            return count(i + 1, _keep(values, needed[i + 1]))
        domain = space.domain(name)
        if name not in needed[i + 1]:  # nothing later depends on it: a factor of its size
            return _size(domain) * count(i + 1, _keep(values, needed[i + 1]))
        return sum(count(i + 1, _keep({**values, name: v}, needed[i + 1]))
                   for v in space.node_values(name, values))

    return count(0, frozenset()), ()


def _find_continuous(space: SearchSpace, names: tuple[str, ...],
                     needed: list[frozenset[str]]) -> tuple[str, ...]:
    """The continuous decisions among `names` that are active in some assignment."""
    found: set[str] = set()
    seen: set[tuple[int, frozenset]] = set()

    def walk(i: int, values: frozenset[tuple[str, Scalar]]) -> None:
        if i == len(names) or (i, values) in seen:
            return
        seen.add((i, values))
        name, current = names[i], dict(values)
        if not space.is_active(name, current):
            walk(i + 1, _keep(current, needed[i + 1]))
            return
        domain = space.domain(name)
        if is_continuous(domain):
            found.add(name)
        if name not in needed[i + 1]:
            walk(i + 1, _keep(current, needed[i + 1]))
            return
        for v in space.node_values(name, current):  # a continuous parent: its bounds stand
            walk(i + 1, _keep({**current, name: v}, needed[i + 1]))

    walk(0, frozenset())
    return tuple(n for n in names if n in found)


def _keep(values: Mapping[str, Scalar], names: frozenset[str]) -> frozenset:
    return frozenset((k, v) for k, v in values.items() if k in names)


def _assignments(space: SearchSpace, names: tuple[str, ...]) -> Iterator[dict[str, Scalar]]:
    """Every active assignment of `names` (no continuous ones among them), lazily, depth first."""
    values: dict[str, Scalar] = {}

    def walk(i: int) -> Iterator[dict[str, Scalar]]:
        if i == len(names):
            yield dict(values)
            return
        name = names[i]
        if not space.is_active(name, values):
            yield from walk(i + 1)
            return
        for v in space.node_values(name, values):
            values[name] = v
            yield from walk(i + 1)
        del values[name]

    yield from walk(0)
