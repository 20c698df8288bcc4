"""Compile a validated space file into a decision DAG, and sample ArchSpecs from it.

Every searchable value is a *decision*: a node of a networkx DiGraph named by its YAML path
(`model.d_model`, `model.token_mixers.attention.heads`, `training.lr`), which is also the Optuna
parameter name. An edge `parent -> child` carries a Condition on the parent's value: the child is
active only where every parent is active and every condition holds. So attention's knobs exist
only where some layers are attention, `hybrid.placement` only for a true hybrid, a mixer's knobs
only where that mixer fills the non-attention layers.

Sampling walks the DAG in a fixed topological order, asking an Optuna trial (define-by-run) for
each active decision, and assembles a canonical ArchSpec: every knob explicit (registry defaults
filled in, spellings such as `kv_heads: full` resolved), so equal architectures hash equally.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from nas.blocks import get_block, list_blocks
from nas.errors import SpaceError
from nas.searchspace.constraints import Constraint, compile_constraints, violation
from nas.searchspace.domains import Domain, DomainError, Suggester, parse_domain
from nas.searchspace.layout import PLACEMENTS, attention_count, attention_positions
from nas.searchspace.schema import KNOWN_METRICS, ObjectiveConfig, SpaceFile
from nas.spec import ArchSpec, LayerSpec, ModuleSpec, Scalar, canonical_json

ATTENTION = "attention"
RATIO, PLACEMENT, OTHER = (
    "model.hybrid.full_attention_ratio",
    "model.hybrid.placement",
    "model.hybrid.other",
)
CHANNEL_KIND = "model.channel_mixer.kind"
NORMS = ("rmsnorm", "layernorm")
_MAX_COMBINATIONS = 20_000  # knob combinations checked per block at load time
_TRAINING_BOUNDS = {  # key: (minimum, exclusive upper bound or None, integer?)
    "steps": (1, None, True),
    "batch_size": (1, None, True),
    "lr": (1e-12, None, False),
    "warmup_fraction": (0.0, 1.0, False),
    "weight_decay": (0.0, None, False),
    "grad_clip": (0.0, None, False),
}


@dataclass(frozen=True)
class Condition:
    """The values of a parent decision under which a child decision is active."""

    allowed: frozenset | None = None
    excluded: frozenset = frozenset()

    def holds(self, value: Any) -> bool:
        if self.allowed is not None and value not in self.allowed:
            return False
        return value not in self.excluded

    def describe(self, parent: str) -> str:
        """e.g. 'model.hybrid.other = short_conv' or 'ratio not in {0, 1}'."""
        parts = []
        if self.allowed is not None:
            shown = sorted(map(str, self.allowed))
            parts.append(f"{parent} = {shown[0]}" if len(shown) == 1
                         else f"{parent} in {{{', '.join(shown)}}}")
        if self.excluded:
            parts.append(f"{parent} not in {{{', '.join(sorted(map(str, self.excluded)))}}}")
        return " and ".join(parts)


@dataclass
class SearchSpace:
    """A loaded, validated, compiled space. `graph` nodes carry `domain`; edges `condition`."""

    path: str
    text: str
    config: SpaceFile
    graph: nx.DiGraph
    vocab_size: int
    order: tuple[str, ...] = field(default=())
    constraints: tuple[Constraint, ...] = field(default=())

    # -- facts about the space ---------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.config.name

    @property
    def task(self) -> dict[str, Any]:
        return self.config.task.model_dump()

    @property
    def objectives(self) -> list[ObjectiveConfig]:
        return list(self.config.objectives)

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.config.objectives]

    @property
    def strategy(self) -> str:
        chosen = self.config.search.strategy
        return chosen or ("nsga2" if len(self.config.objectives) > 1 else "tpe")

    @property
    def space_hash(self) -> str:
        """Identity of the validated content (comments and formatting do not count)."""
        content = self.config.model_dump()
        if not content["constraints"]:  # spaces without constraints keep their old hash
            del content["constraints"]
        return hashlib.sha256(canonical_json(content).encode()).hexdigest()[:16]

    def latency_requests(self) -> tuple[dict[str, Any], ...]:
        """What the worker must time: one entry per latency objective."""
        seq_default = self.task.get("seq_len", 128)
        return tuple(
            {"name": o.name, "batch": o.batch, "seq_len": o.seq_len or seq_default,
             "phase": o.phase or "prefill"}
            for o in self.config.objectives if o.is_latency
        )

    def domain(self, name: str) -> Domain:
        return self.graph.nodes[name]["domain"]

    def violation(self, spec: ArchSpec) -> str | None:
        """None if `spec` meets every constraint of the space; else the first one it fails,
        with the values, e.g. 'params <= 2e6: params = 3.1M'. Nothing is trained."""
        return violation(self.constraints, spec)

    # -- sampling ----------------------------------------------------------------------------
    def sample(self, trial: Suggester) -> ArchSpec:
        """Walk the DAG with `trial` (an optuna.Trial or anything with its suggest_* methods)."""
        values: dict[str, Scalar] = {}
        for name in self.order:
            if self.is_active(name, values):
                values[name] = self.domain(name).suggest(trial, name)
        return self.assemble(values)

    def is_active(self, name: str, values: Mapping[str, Scalar]) -> bool:
        """Whether decision `name` exists given the values chosen so far: every parent has a
        value and every edge condition holds."""
        for parent in self.graph.predecessors(name):
            if parent not in values:
                return False
            if not self.graph.edges[parent, name]["condition"].holds(values[parent]):
                return False
        return True

    def assemble(self, values: Mapping[str, Scalar]) -> ArchSpec:
        """The canonical ArchSpec for a full set of active decision values."""
        n_layers = int(values["model.n_layers"])
        d_model = int(values["model.d_model"])
        ratio = float(values[RATIO])
        count = attention_count(n_layers, ratio)
        positions = set(attention_positions(n_layers, count, values.get(PLACEMENT, "last")))
        channel = _module(values, "model.channel_mixer", str(values[CHANNEL_KIND]), "channel_mixer")
        attention = _module(values, "model.token_mixers", ATTENTION) if count else None
        other = (
            _module(values, "model.token_mixers", str(values[OTHER])) if count < n_layers else None
        )
        layers = tuple(
            LayerSpec(attention if i in positions else other, channel) for i in range(n_layers)
        )
        training = {
            key: values[f"training.{key}"]
            for key in _TRAINING_BOUNDS
            if f"training.{key}" in values
        }
        return ArchSpec(
            d_model=d_model,
            vocab_size=self.vocab_size,
            layers=layers,
            norm=str(values["model.norm"]),
            training=training,
        )


def _module(values: Mapping[str, Scalar], prefix: str, kind: str, role: str = "token_mixer"):
    """A ModuleSpec with every registered knob explicit: sampled, else the registry default."""
    info = get_block(kind, role)
    base = prefix if role == "channel_mixer" else f"{prefix}.{kind}"
    knobs = {k.name: values.get(f"{base}.{k.name}", k.default) for k in info.knobs}
    return ModuleSpec.make(kind, **_canonical_knobs(info.cls, knobs))


def _canonical_knobs(cls: type, knobs: dict[str, Scalar]) -> dict[str, Scalar]:
    """Resolve a block's equivalent spellings (e.g. kv_heads: full -> heads)."""
    return cls.canonicalize(dict(knobs))


# ------------------------------------------------------------------------------------------------
# compilation
# ------------------------------------------------------------------------------------------------


class _Compiler:
    """Builds the DAG from a SpaceFile; every problem becomes a SpaceError naming its key."""

    def __init__(self, path: str, text: str, config: SpaceFile) -> None:
        self.path, self.text, self.config = path, text, config
        self.graph = nx.DiGraph()
        self._declared: list[str] = []  # node names in declaration order, for a stable walk

    def error(self, key: str, problem: str, fix: str = "") -> SpaceError:
        return SpaceError(self.path, key, problem, fix)

    def decision(self, name: str, raw: Any, allowed: tuple | None = None) -> Domain:
        try:
            domain = parse_domain(raw)
        except DomainError as exc:
            raise self.error(name, str(exc)) from None
        if allowed is not None:
            bad = [v for v in domain.values() if v not in allowed]
            if bad:
                raise self.error(
                    name, f"{bad[0]!r} is not allowed", f"use one of {', '.join(map(str, allowed))}"
                )
        self.graph.add_node(name, domain=domain)
        self._declared.append(name)
        return domain

    def depends(self, child: str, parent: str, condition: Condition) -> None:
        self.graph.add_edge(parent, child, condition=condition)

    def compile(self) -> SearchSpace:
        vocab_size = self._task()
        model = self.config.model
        d_model = self.decision("model.d_model", model.d_model)
        self._positive_ints("model.d_model", d_model)
        self._positive_ints("model.n_layers", self.decision("model.n_layers", model.n_layers))
        self.decision("model.norm", model.norm, allowed=NORMS)
        self._token_mixers(list(d_model.values()))
        self._channel_mixer(list(d_model.values()))
        self._training()
        self._objectives()
        constraints = compile_constraints(self.path, self.config.constraints)
        if not nx.is_directed_acyclic_graph(self.graph):  # pragma: no cover - built acyclic
            raise self.error("model", "decisions depend on each other in a cycle")
        index = {name: i for i, name in enumerate(self._declared)}
        order = tuple(nx.lexicographical_topological_sort(self.graph, key=index.__getitem__))
        return SearchSpace(self.path, self.text, self.config, self.graph, vocab_size, order,
                           constraints)

    # -- sections ----------------------------------------------------------------------------
    def _task(self) -> int:
        from nas.tasks import make_task, task_vocab_size

        config = self.config.task.model_dump()
        try:
            make_task(config)
            return task_vocab_size(config)
        except ValueError as exc:
            raise self.error("task", str(exc)) from None

    def _positive_ints(self, key: str, domain: Domain) -> None:
        for value in domain.values():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise self.error(key, f"must be a positive integer, got {value!r}")

    def _token_mixers(self, d_models: list[Scalar]) -> None:
        mixers = self.config.model.token_mixers
        known = list_blocks(role="token_mixer")
        for kind in mixers:
            if kind not in known:
                raise self.error(
                    f"model.token_mixers.{kind}", "unknown token mixer",
                    f"use one of {', '.join(known)}",
                )
        others = [m for m in mixers if m != ATTENTION]
        hybrid = self.config.model.hybrid
        ratio_raw = hybrid.full_attention_ratio if hybrid else None
        if ratio_raw is None:
            if ATTENTION in mixers and others:
                raise self.error(
                    RATIO, "required when attention and other token mixers are both declared",
                    "add `hybrid: {full_attention_ratio: {choice: [0, 0.25, 0.5]}}` under model",
                )
            ratio_raw = 1.0 if ATTENTION in mixers else 0.0
        ratio = self.decision(RATIO, ratio_raw)
        ratios = list(ratio.values())
        for value in ratios:
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise self.error(RATIO, f"must be a number in [0, 1], got {value!r}")
            if value > 0 and ATTENTION not in mixers:
                raise self.error(RATIO, f"{value} needs attention", "declare `attention:` under "
                                 "model.token_mixers, or use ratio 0")
            if value < 1 and not others:
                raise self.error(RATIO, f"{value} leaves layers for a non-attention mixer, but "
                                 "only attention is declared", "declare another token mixer")
        if any(0 < v < 1 for v in ratios):
            self.decision(PLACEMENT, hybrid.placement if hybrid else "interleave", PLACEMENTS)
            self.depends(PLACEMENT, RATIO, Condition(excluded=frozenset({0, 1})))
        if others and any(v < 1 for v in ratios):
            other_raw = hybrid.other if hybrid and hybrid.other is not None else {"choice": others}
            other = self.decision(OTHER, other_raw, allowed=tuple(others))
            self.depends(OTHER, RATIO, Condition(excluded=frozenset({1})))
            for kind in set(other.values()):
                self._knobs("model.token_mixers", kind, mixers[kind] or {}, d_models,
                            parent=(OTHER, Condition(allowed=frozenset({kind}))))
        if ATTENTION in mixers and any(v > 0 for v in ratios):
            self._knobs("model.token_mixers", ATTENTION, mixers[ATTENTION] or {}, d_models,
                        parent=(RATIO, Condition(excluded=frozenset({0}))))

    def _channel_mixer(self, d_models: list[Scalar]) -> None:
        raw = dict(self.config.model.channel_mixer)
        kinds = self.decision(CHANNEL_KIND, raw.pop("kind", "swiglu"),
                              allowed=tuple(list_blocks(role="channel_mixer")))
        infos = {kind: get_block(str(kind), "channel_mixer") for kind in kinds.values()}
        for knob in raw:
            if not any(info.knob(knob) for info in infos.values()):
                known = sorted({k.name for info in infos.values() for k in info.knobs})
                raise self.error(f"model.channel_mixer.{knob}", "unknown knob",
                                 f"known knobs: {', '.join(known)}")
        for info in infos.values():
            own = {k: v for k, v in raw.items() if info.knob(k)}
            self._check_combinations("model.channel_mixer", info, own, d_models)
        for knob, value in raw.items():
            name = f"model.channel_mixer.{knob}"
            self.decision(name, value)
            users = frozenset(kind for kind, info in infos.items() if info.knob(knob))
            self.depends(name, CHANNEL_KIND, Condition(allowed=users))

    def _knobs(self, prefix: str, kind: str, raw: dict[str, Any], d_models: list[Scalar],
               parent: tuple[str, Condition]) -> None:
        info = get_block(kind, "token_mixer")
        key = f"{prefix}.{kind}"
        if not isinstance(raw, dict):
            raise self.error(key, "expected a mapping of knobs", "write e.g. `{heads: 4}` or `{}`")
        for knob in raw:
            if info.knob(knob) is None:
                known = ", ".join(k.name for k in info.knobs) or "(none)"
                raise self.error(
                    f"{key}.{knob}", f"unknown knob of {kind}", f"known knobs: {known}"
                )
        self._check_combinations(key, info, raw, d_models)
        for knob, value in raw.items():
            self.decision(f"{key}.{knob}", value)
            self.depends(f"{key}.{knob}", *parent)

    def _check_combinations(self, key: str, info, raw: dict[str, Any], d_models: list[Scalar]):
        """Every combination of d_model and knob values must be one the block accepts."""
        domains = {}
        for knob, value in raw.items():
            try:
                domains[knob] = parse_domain(value)
            except DomainError as exc:
                raise self.error(f"{key}.{knob}", str(exc)) from None
        names = list(domains)
        grid = itertools.product(d_models, *(list(domains[n].values()) for n in names))
        for combo in itertools.islice(grid, _MAX_COMBINATIONS):
            d_model, picked = combo[0], dict(zip(names, combo[1:], strict=True))
            knobs = _canonical_knobs(info.cls, {**info.defaults, **picked})
            for knob_name, value in knobs.items():
                knob = info.knob(knob_name)
                problem = knob.check(value) if knob else None
                if problem:
                    raise self.error(f"{key}.{knob_name}", problem)
            problems = info.cls.validate(int(d_model), **knobs)
            if problems:
                where = "" if "d_model" in problems[0] else f" at d_model={d_model}"
                raise self.error(key, f"{problems[0]}{where} (searched knobs {picked})",
                                 "choose values that work with every d_model in the space")

    def _training(self) -> None:
        raw = self.config.training.model_dump()
        for key, (minimum, upper, integer) in _TRAINING_BOUNDS.items():
            name = f"training.{key}"
            domain = self.decision(name, raw[key])
            for value in domain.values():
                ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
                if isinstance(value, bool) or not ok_type:
                    kind = "an integer" if integer else "a number"
                    raise self.error(name, f"must be {kind}, got {value!r}")
                if value < minimum or (upper is not None and value >= upper):
                    bound = f"in [{minimum}, {upper})" if upper is not None else f">= {minimum}"
                    raise self.error(name, f"must be {bound}, got {value!r}")

    def _objectives(self) -> None:
        seen = set()
        for i, objective in enumerate(self.config.objectives):
            key = f"objectives.{i}"
            if objective.name in seen:
                raise self.error(f"{key}.name", f"objective {objective.name!r} is listed twice")
            seen.add(objective.name)
            if not objective.is_latency and objective.name not in KNOWN_METRICS:
                raise self.error(
                    f"{key}.name", f"unknown objective {objective.name!r}",
                    f"use one of {', '.join(KNOWN_METRICS)}, or a latency objective "
                    "(a name starting with 'latency' and a `phase`: prefill, decode or "
                    "train_step)",
                )


def compile_space(path: str, text: str, config: SpaceFile) -> SearchSpace:
    """The SearchSpace of a validated file; raises SpaceError naming the key at fault."""
    return _Compiler(path, text, config).compile()
