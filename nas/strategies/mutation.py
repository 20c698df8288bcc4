"""Moves on the compiled decision graph: random samples, decoding, and mutations of a candidate.

nas's own strategies (evolution, local search, predictor-guided) search the space the way the
space file describes it, not as Optuna's flat list of parameters. They work on a candidate's
*values* — every active decision's value as the architecture means it (`model.layers.2.mixer:
attention`, `model.d_model: 64`) — and turn values back into the *params* a trial records (what
the graph's suggest calls return; for a categorical with priors that is the uniform draw `u`
that picks the option, see `nas.searchspace.domains.WeightedChoice`).

`walk(space, choose)` is the one sampler here: it visits the decisions in the graph's order, skips
inactive ones, computes derived ones, and asks `choose(name, domain, values)` for the rest, so a
mutated value for a decision that the mutation deactivated is simply never asked for, and a
decision it activated (a new layer's mixer, the knobs of a mixer that appears) is drawn at
random. The result is checked against the space by construction: every value lies in its domain.

Mutations (`mutate`), one per child, chosen uniformly among those the space allows:

- `decision`: one sampled decision takes another value; a number moves to a neighbouring value
  of its domain (widen or narrow, one more or one less head) more often than it jumps;
- `swap`: two layers of a free layout exchange their per-layer decisions (moves an attention
  layer to another depth without changing the mix);
- `insert` / `remove`: a free layout's depth goes to the next larger (smaller) value of its
  domain; the new layer copies a neighbour (or the removed one is dropped) and the rest shift.

In a `hybrid` or `pattern` layout, moving attention is a change of `placement` or of the
pattern, so `decision` covers it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nas.searchspace.domains import (
    Choice,
    ContextChoice,
    Domain,
    Fixed,
    FloatRange,
    IntRange,
    WeightedChoice,
)
from nas.searchspace.layout import N_LAYERS

if TYPE_CHECKING:
    from nas.searchspace import SearchSpace
    from nas.spec import ArchSpec, Scalar

Values = dict[str, Any]  # decision name -> value as the architecture means it
Chooser = Callable[[str, Domain, Values], Any]  # (name, domain, values so far) -> value

MUTATIONS = ("decision", "swap", "insert", "remove")
NEIGHBOUR_PROBABILITY = 0.75  # an ordered decision steps to a neighbouring value this often
LAYER_PREFIX = "model.layers."


@dataclass(frozen=True)
class Candidate:
    """A point of the space: `values` (meaning), `params` (what a trial records; replaying them
    through `space.sample` gives `spec`), and `spec`."""

    values: Values
    params: dict[str, Any]
    spec: ArchSpec

    @property
    def config(self) -> str:
        return self.spec.config_hash


def walk(space: SearchSpace, choose: Chooser) -> Candidate:
    """A candidate sampled by `choose`, which is asked only for active, sampled decisions
    (a Choice of one option, a Fixed value and a Derived one are filled in here) and must
    return a value of the domain it is given (a ContextChoice arrives resolved)."""
    params: dict[str, Any] = {}

    def ask(name: str, domain: Domain, values: Values) -> Any:
        if isinstance(domain, Fixed | Choice | WeightedChoice) and domain.size == 1:
            return next(iter(domain.values()))  # the graph asks nothing: not recorded
        value = choose(name, domain, values)
        params[name] = _param(domain, value)
        return value

    values = space.walk(ask)
    return Candidate(values, params, space.assemble(values))


def _param(domain: Domain, value: Any) -> Any:
    """What the graph records for `value`: the value itself, or for a weighted choice the
    middle of the option's share of [0, 1) (`WeightedChoice.pick` gives the option back)."""
    if not isinstance(domain, WeightedChoice):
        return value
    total, running = sum(domain.weights), 0.0
    for option, weight in zip(domain.options, domain.weights, strict=True):
        if option == value and weight > 0:
            return (running + weight / 2) / total
        running += weight
    raise ValueError(f"{value!r} has no weight among {domain.options}")


def in_domain(domain: Domain, value: Any) -> bool:
    """Whether `value` is one the domain can take (a weighted option needs weight > 0)."""
    if isinstance(domain, FloatRange):
        return isinstance(value, int | float) and domain.low <= value <= domain.high
    if isinstance(domain, IntRange):
        return (isinstance(value, int) and domain.low <= value <= domain.high
                and (value - domain.low) % domain.step == 0)
    if isinstance(domain, WeightedChoice):
        return any(o == value and w > 0 for o, w in zip(domain.options, domain.weights,
                                                        strict=True))
    return any(o == value and type(o) is type(value) for o in domain.values())


def random_value(domain: Domain, rng: random.Random) -> Any:
    """A draw from `domain` as a random search makes it (weighted options by weight, log ranges
    log-uniformly)."""
    if isinstance(domain, FloatRange):
        if domain.log:
            return math.exp(rng.uniform(math.log(domain.low), math.log(domain.high)))
        return rng.uniform(domain.low, domain.high)
    if isinstance(domain, WeightedChoice):
        return domain.pick(rng.random())
    if isinstance(domain, IntRange):
        if not domain.log:
            return domain.low + domain.step * rng.randrange(int(domain.size))
        value = int(math.exp(rng.uniform(math.log(domain.low), math.log(domain.high + 1))))
        return min(domain.high, domain.low + (value - domain.low) // domain.step * domain.step)
    return rng.choice(list(domain.values()))


def sample(space: SearchSpace, rng: random.Random) -> Candidate:
    """A random candidate (every decision drawn as `random_value` draws it)."""
    return walk(space, lambda name, domain, values: random_value(domain, rng))


def decode(space: SearchSpace, params: Mapping[str, Scalar]) -> Candidate:
    """The candidate a trial's recorded params stand for. KeyError if they lack a decision the
    graph asks for (an interrupted sampling)."""

    def recorded(name: str, domain: Domain, values: Values) -> Any:
        value = params[name]
        return domain.pick(float(value)) if isinstance(domain, WeightedChoice) else value

    return walk(space, recorded)


def realize(space: SearchSpace, wanted: Mapping[str, Any], rng: random.Random) -> Candidate:
    """The candidate closest to `wanted` (values): each active decision keeps its wanted value
    where its domain allows it, and is drawn at random where it has none (newly active)."""

    def keep(name: str, domain: Domain, values: Values) -> Any:
        value = wanted.get(name)
        return value if value is not None and in_domain(domain, value) else \
            random_value(domain, rng)

    return walk(space, keep)


# -- mutations ----------------------------------------------------------------------------------
def mutable_decisions(space: SearchSpace, candidate: Candidate) -> list[str]:
    """The candidate's sampled decisions that have another value to take."""
    names = []
    for name in candidate.params:
        domain = space.domain(name)
        if isinstance(domain, ContextChoice):
            domain = domain.given(candidate.values)
        if isinstance(domain, FloatRange) or sum(1 for _ in domain.values()) > 1:
            names.append(name)
    return names


def layers_of(values: Mapping[str, Any]) -> int:
    """How many per-layer decision groups (`model.layers.<i>.*`) the values hold."""
    found = -1
    for name in values:
        if name.startswith(LAYER_PREFIX):
            found = max(found, int(name[len(LAYER_PREFIX):].split(".", 1)[0]))
    return found + 1


def depth_options(space: SearchSpace, candidate: Candidate) -> list[int]:
    """The depths a free layout's `model.n_layers` can take ([] when depth is not a sampled
    decision of a free layout)."""
    if N_LAYERS not in candidate.params or not layers_of(candidate.values):
        return []
    return sorted(int(v) for v in space.domain(N_LAYERS).values())


def allowed_mutations(space: SearchSpace, candidate: Candidate) -> list[str]:
    """The mutation kinds that can change this candidate."""
    kinds = []
    if mutable_decisions(space, candidate):
        kinds.append("decision")
    layers = layers_of(candidate.values)
    if layers >= 2 and len({_layer(candidate.values, i) for i in range(layers)}) > 1:
        kinds.append("swap")
    depths = depth_options(space, candidate)
    depth = candidate.values.get(N_LAYERS)
    if depths and depth is not None:
        if any(d > depth for d in depths):
            kinds.append("insert")
        if any(d < depth for d in depths):
            kinds.append("remove")
    return kinds


def mutate(space: SearchSpace, candidate: Candidate, rng: random.Random,
           kind: str | None = None) -> tuple[str, Candidate]:
    """(the mutation applied, the child). `kind` None picks one of the allowed kinds uniformly.
    The child may equal the parent's configuration (a change the graph made inactive): callers
    that need a new configuration try again."""
    kinds = allowed_mutations(space, candidate)
    if not kinds:
        return "none", candidate
    kind = kind if kind in kinds else rng.choice(kinds)
    wanted = dict(candidate.values)
    if kind == "decision":
        name = rng.choice(mutable_decisions(space, candidate))
        domain = space.domain(name)
        if isinstance(domain, ContextChoice):
            domain = domain.given(candidate.values)
        wanted[name] = _other_value(domain, candidate.values[name], rng)
    elif kind == "swap":
        layers = layers_of(candidate.values)
        while True:
            i, j = rng.sample(range(layers), 2)
            if _layer(candidate.values, i) != _layer(candidate.values, j):
                break
        wanted = _relayer(candidate.values, [*_swapped(range(layers), i, j)])
    else:
        depth = int(candidate.values[N_LAYERS])
        depths = depth_options(space, candidate)
        new = min(d for d in depths if d > depth) if kind == "insert" else \
            max(d for d in depths if d < depth)
        order = list(range(depth))
        if kind == "insert":
            for _ in range(new - depth):  # copy a layer into the place after it
                at = rng.randrange(len(order))
                order.insert(at + 1, order[at])
        else:
            for _ in range(depth - new):
                order.pop(rng.randrange(len(order)))
        wanted = _relayer(candidate.values, order)
        wanted[N_LAYERS] = new
    return kind, realize(space, wanted, rng)


def _other_value(domain: Domain, current: Any, rng: random.Random) -> Any:
    """Another value of `domain`: a neighbour of an ordered domain's `current` with
    NEIGHBOUR_PROBABILITY (a float moves by a tenth of its range, in log space if log), else
    a uniform draw among the others."""
    if isinstance(domain, FloatRange):
        log = domain.log and domain.low > 0
        low, high, x = ((math.log(domain.low), math.log(domain.high), math.log(current)) if log
                        else (domain.low, domain.high, current))
        moved = min(high, max(low, x + rng.gauss(0.0, (high - low) / 10)))
        return math.exp(moved) if log else moved
    if isinstance(domain, IntRange):  # may hold a million values: never listed
        if rng.random() < NEIGHBOUR_PROBABILITY:
            near = [v for v in (current - domain.step, current + domain.step)
                    if domain.low <= v <= domain.high]
            if near:
                return rng.choice(near)
        value = random_value(domain, rng)
        return value if value != current or domain.size == 1 else _other_value(domain, current,
                                                                              rng)
    options = [v for v in domain.values() if in_domain(domain, v)]
    others = [v for v in options if v != current]
    if not others:
        return current
    ordered = all(isinstance(v, int | float) and not isinstance(v, bool) for v in options)
    if ordered and current in options and rng.random() < NEIGHBOUR_PROBABILITY:
        ranked = sorted(options)
        at = ranked.index(current)
        near = [ranked[k] for k in (at - 1, at + 1) if 0 <= k < len(ranked)]
        return rng.choice(near)
    return rng.choice(others)


def _layer(values: Mapping[str, Any], index: int) -> tuple[tuple[str, Any], ...]:
    """Layer `index`'s own decisions, as (part, value) pairs."""
    prefix = f"{LAYER_PREFIX}{index}."
    return tuple(sorted((k[len(prefix):], v) for k, v in values.items() if k.startswith(prefix)))


def _swapped(indices: range, i: int, j: int) -> list[int]:
    order = list(indices)
    order[i], order[j] = order[j], order[i]
    return order


def _relayer(values: Mapping[str, Any], order: list[int]) -> Values:
    """`values` with the per-layer decisions rearranged: new layer k takes old layer
    `order[k]`'s decisions; layers past len(order) are dropped."""
    out = {k: v for k, v in values.items() if not k.startswith(LAYER_PREFIX)}
    for new, old in enumerate(order):
        for part, value in _layer(values, old):
            out[f"{LAYER_PREFIX}{new}.{part}"] = value
    return out
