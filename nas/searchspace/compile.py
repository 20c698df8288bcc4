"""Compile a validated space file into a decision DAG, and sample ArchSpecs from it.

Every searchable value is a *decision*: a node of a networkx DiGraph named by its YAML path
(`model.d_model`, `model.token_mixers.attention.heads`, `training.lr`), which is also the Optuna
parameter name; per-layer decisions of a free layout are `model.layers.<i>.mixer` (and
`model.layers.<i>.channel_mixer` for a per-layer channel mixer).

Edges are of two kinds:

* a *gate* `parent -> child` carries a Condition on the parent's value. A child is active where
  its gates hold: all of them (the default), or any one of them where the node says
  `any=True` (a mixer's knobs in a free layout exist where *some* layer chose that mixer).
  So attention's knobs exist only where some layers are attention, `hybrid.placement` only for
  a true hybrid, per-layer decisions only below the sampled depth.
* an *input* `source -> derived` (edge attribute `input=True`) feeds a computed value
  (`{expr: ...}`, `{same_as: ...}`, a pattern's implied depth): a Derived node is never
  sampled; where active its value is computed from its inputs, which are active wherever it is.

Sampling walks the DAG in a fixed topological order, asking an Optuna trial (define-by-run) for
each active decision, and assembles a canonical ArchSpec: every knob explicit (registry defaults
filled in, whole-number floats of integer knobs made ints, spellings such as `kv_heads: full`
resolved), so equal architectures hash equally.

A token mixer's key (`model.token_mixers.<key>`) is its name everywhere in the space (layouts,
pattern letters, decision names); it is a block, a user mixer's import path, or a preset
(`gla`, `swa`: nas.blocks.presets), which the ArchSpec records as its block with every knob.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import yaml

from nas import usercode
from nas.blocks import get_block, list_blocks
from nas.blocks.presets import literature_hint
from nas.blocks.registry import (
    BlockImportError,
    BlockInfo,
    Knob,
    Preset,
    get_preset,
    is_import_path,
    list_presets,
    preset_letters,
)
from nas.errors import SpaceError, brief, did_you_mean
from nas.evaluate.measurement import TIMED
from nas.evaluate.training import DECAY_SCOPES, SCHEDULES
from nas.searchspace.constraints import (
    Constraint,
    compile_constraints,
    measured_violation,
    violation,
)
from nas.searchspace.domains import (
    Choice,
    ContextChoice,
    Derived,
    Domain,
    DomainError,
    Fixed,
    FloatRange,
    Reference,
    Suggester,
    number_as_text,
    parse_domain,
    parse_reference,
    split_fix,
    type_fault,
)
from nas.searchspace.layout import (
    ATTENTION,
    N_LAYERS,
    OTHER,
    PATTERN,
    PATTERN_SEPARATORS,
    PLACEMENT,
    PLACEMENTS,
    RATIO,
    REPEAT,
    PatternLayout,
    depth_weights,
    free_kinds,
    hybrid_kinds,
    layer_decision,
    letter_table,
    pattern_letters,
)
from nas.searchspace.references import NAMES_HELP, ReferenceProblem, resolve
from nas.searchspace.schema import (
    KNOWN_METRICS,
    MAX_BATCH,
    MAX_STEPS,
    MODEL_OPTION_DEFAULTS,
    TRAINING_DECAY_ON_DEFAULT,
    TRAINING_SCHEDULE_DEFAULT,
    ObjectiveConfig,
    SpaceFile,
)
from nas.spec import INITS, POSITIONS, ArchSpec, LayerSpec, ModuleSpec, Scalar, canonical_json
from nas.tasks.custom import SPELLING
from nas.usercode import UserCode

CHANNEL_KIND = "model.channel_mixer.kind"
NORMS = ("rmsnorm", "layernorm")
MAX_SIZE = 65_536  # largest d_model or pattern repeat a space may ask for
MAX_LAYERS = 1024  # most layers of one model: n_layers, len(pattern) x repeat
MAX_TASK_SIZE = 1 << 24  # largest vocabulary or sequence length of a task
_MAX_COMBINATIONS = 20_000  # knob combinations checked per block at load time
_TRAINING_BOUNDS = {  # key: (type, lowest value, excluded?, exclusive upper bound or None)
    "steps": (int, 1, False, MAX_STEPS + 1),
    "batch_size": (int, 1, False, MAX_BATCH + 1),
    "lr": (float, 0.0, True, None),
    "warmup_fraction": (float, 0.0, False, 1.0),
    "weight_decay": (float, 0.0, False, None),
    "grad_clip": (float, 0.0, False, None),
    "beta2": (float, 0.0, False, 1.0),
}
LEGACY_SCHEDULE = "cosine"  # what a spec's training without `schedule` trained with
LEGACY_DECAY_ON = "matrices"  # and without `weight_decay_on`
_TRAINING_EXAMPLES = {"steps": 600, "batch_size": 32, "lr": 3.0e-3, "warmup_fraction": 0.1,
                      "weight_decay": 0.01, "grad_clip": 1.0, "beta2": 0.999}
Gates = list[tuple[str, "Condition"]] | None  # None: always active


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
    """A loaded, validated, compiled space. `graph` nodes carry `domain` (and `any` where one
    gate suffices); edges `condition` (and `input` for a computed value's sources).
    `layer_mixers(values)` is the layout: the token mixer kind of each layer."""

    path: str
    text: str
    config: SpaceFile
    graph: nx.DiGraph
    vocab_size: int
    order: tuple[str, ...] = field(default=())
    constraints: tuple[Constraint, ...] = field(default=())
    layer_mixers: Callable[[Mapping[str, Scalar]], tuple[str, ...]] = hybrid_kinds
    channel_per_layer: bool = False
    notes: tuple[str, ...] = ()  # legal but probably unintended, e.g. a mixer no layer can use
    # user mixers read from their source, not imported (loaded without allow_code)
    static_blocks: Mapping[str, BlockInfo] = field(default_factory=dict)
    # why a search must not run this space as loaded: it needs user code that was not allowed
    # to load (loader.require_trusted raises it); None when it needs none or it was allowed
    code_refusal: SpaceError | None = None
    # loaded with the user's permission to import the code it names (`--allow-code`): the
    # trials a search sends carry it to their workers (TrialRequest.allow_code)
    allow_code: bool = False
    # token mixer key -> the block its layers record (a preset's block; else the key itself)
    mixer_blocks: Mapping[str, str] = field(default_factory=dict)

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
        if content["model"].get("layout") is None:  # nor do spaces without a layout
            content["model"].pop("layout", None)
        for key, default in MODEL_OPTION_DEFAULTS.items():  # nor those at these defaults
            if content["model"].get(key, default) == default and \
                    type(content["model"].get(key, default)) is type(default):
                content["model"].pop(key, None)
        if content["training"].get("schedule") == TRAINING_SCHEDULE_DEFAULT:
            content["training"].pop("schedule")
        if content["training"].get("weight_decay_on") == TRAINING_DECAY_ON_DEFAULT:
            content["training"].pop("weight_decay_on")
        for objective in content["objectives"]:  # nor spaces that name no metric
            if objective.get("metric") is None:
                objective.pop("metric", None)
        search = content["search"]
        if search.get("measure") is None and search.get("remeasure") == 2:  # nor these defaults
            search.pop("measure", None)
            search.pop("remeasure", None)
        if search.get("trial_timeout") is None:  # nor spaces without a trial timeout
            search.pop("trial_timeout", None)
        if search.get("replicates") is None:  # nor spaces without accuracy replicates
            search.pop("replicates", None)
        if search.get("evaluate") is None:  # nor spaces that train (no replay)
            search.pop("evaluate", None)
        elif search["evaluate"].get("charge") == "recorded":  # nor replays at the default
            search["evaluate"].pop("charge")
        if not search.get("inherit"):  # nor spaces without weight inheritance
            search.pop("inherit", None)
        return hashlib.sha256(canonical_json(content).encode()).hexdigest()[:16]

    def latency_requests(self, timed_only: bool = False) -> tuple[dict[str, Any], ...]:
        """What the worker must measure: one entry per measured objective (latency,
        throughput, peak_memory, state_bytes; only the timed ones, latency and throughput,
        with `timed_only`)."""
        entries = objective_entries(self.config.objectives,
                                    int(self.task.get("seq_len", DEFAULT_SEQ_LEN)))
        return tuple(e for e in entries if not timed_only or e["metric"] in TIMED)

    def constraint_measurements(self) -> tuple[dict[str, Any], ...]:
        """What the constraints need measured before a candidate trains (latency entries,
        one per distinct quantity); empty when every constraint is analytic."""
        found = {e["name"]: e for c in self.constraints for e in c.measurements}
        return tuple(found.values())

    def measured_violation(self, spec: ArchSpec, measured: dict[str, float]) -> str | None:
        """None if `spec` meets the constraints that need measurements, given their values
        (`constraint_measurements` names them); else the first it fails, with the values."""
        return measured_violation(self.constraints, spec, measured)

    def proxy_requests(self) -> tuple[dict[str, Any], ...]:
        """The proxy tasks every trial also trains on: name, task config, steps (None: the
        trial's own)."""
        return tuple({"name": p.name, "task": p.task.model_dump(), "steps": p.steps}
                     for p in self.config.proxies)

    def domain(self, name: str) -> Domain:
        return self.graph.nodes[name]["domain"]

    def describe_when(self, name: str) -> str:
        """The gates of decision `name` in words ('' when it is always active), e.g.
        'model.layers.0.mixer = attention or model.layers.1.mixer = attention'."""
        gates = [self.graph.edges[p, name]["condition"].describe(p)
                 for p in self.graph.predecessors(name)
                 if not self.graph.edges[p, name].get("input")]
        joiner = " or " if self.graph.nodes[name].get("any") else " and "
        return joiner.join(gates)

    def violation(self, spec: ArchSpec) -> str | None:
        """None if `spec` meets every analytic constraint of the space (the measured ones are
        checked by `measured_violation`); else the first one it fails, with the values, e.g.
        'params <= 2e6: params = 3.1M'. Nothing is trained."""
        return violation(self.constraints, spec)

    # -- sampling ----------------------------------------------------------------------------
    def sample(self, trial: Suggester) -> ArchSpec:
        """Walk the DAG with `trial` (an optuna.Trial or anything with its suggest_* methods)."""
        return self.assemble(self.walk(lambda name, domain, values: domain.suggest(trial, name)))

    def walk(self, choose: Callable[[str, Domain, dict[str, Scalar]], Scalar],
             ) -> dict[str, Scalar]:
        """Every active decision's value, in the graph's order: a derived one computed, the
        others `choose(name, domain, values so far)` — a ContextChoice resolved first. What
        `sample` and nas's own strategies (nas.strategies.mutation) sample with."""
        values: dict[str, Scalar] = {}
        for name in self.order:
            if not self.is_active(name, values):
                continue
            domain = self.domain(name)
            if isinstance(domain, Derived):
                values[name] = domain.compute(values)
                continue
            if isinstance(domain, ContextChoice):
                domain = domain.given(values)
            values[name] = choose(name, domain, values)
        return values

    def is_active(self, name: str, values: Mapping[str, Scalar]) -> bool:
        """Whether decision `name` exists given the values chosen so far: its inputs have
        values, and its gates hold (all of them, or one where the node is `any`)."""
        held = []
        for parent in self.graph.predecessors(name):
            edge = self.graph.edges[parent, name]
            if edge.get("input"):
                if parent not in values:
                    return False
                continue
            held.append(parent in values and edge["condition"].holds(values[parent]))
        if not held:
            return True
        return any(held) if self.graph.nodes[name].get("any") else all(held)

    def node_values(self, name: str, values: Mapping[str, Scalar]) -> tuple[Scalar, ...]:
        """The values decision `name` can take given the values of its inputs: its domain's
        values, or the one computed value of a Derived decision."""
        domain = self.domain(name)
        if isinstance(domain, Derived):
            return (domain.compute(values),)
        return tuple(domain.values())

    def assemble(self, values: Mapping[str, Scalar]) -> ArchSpec:
        """The canonical ArchSpec for a full set of active decision values."""
        kinds = self.layer_mixers(values)
        if self.channel_per_layer:
            channels = [str(values[layer_decision(i, "channel_mixer")]) for i in range(len(kinds))]
        else:
            channels = [str(values[CHANNEL_KIND])] * len(kinds)
        made: dict[tuple[str, str], ModuleSpec] = {}

        def module(kind: str, role: str) -> ModuleSpec:
            if (kind, role) not in made:
                made[kind, role] = _module(values, kind, role, self.static_blocks)
            return made[kind, role]

        layers = tuple(LayerSpec(module(kind, "token_mixer"), module(channel, "channel_mixer"))
                       for kind, channel in zip(kinds, channels, strict=True))
        training = {key: values[f"training.{key}"] for key in _TRAINING_BOUNDS
                    if f"training.{key}" in values}
        schedule = values.get("training.schedule", LEGACY_SCHEDULE)
        if schedule != LEGACY_SCHEDULE:  # written only when not cosine: old hashes hold
            training["schedule"] = schedule
        decay_on = values.get("training.weight_decay_on", LEGACY_DECAY_ON)
        if decay_on != LEGACY_DECAY_ON:  # likewise
            training["weight_decay_on"] = decay_on
        positions = str(values.get("model.positions", "none"))
        return ArchSpec(d_model=int(values["model.d_model"]), vocab_size=self.vocab_size,
                        layers=layers, norm=str(values["model.norm"]), training=training,
                        init=str(values.get("model.init", "torch")),
                        tie_head=bool(values.get("model.tie_head", False)),
                        positions=positions,
                        max_positions=(int(values["model.max_positions"])
                                       if positions == "learned" else None))


DEFAULT_SEQ_LEN = 128  # a task that names no seq_len: the shape measurements default to


def objective_entries(objectives: Sequence[Any], seq_len: int) -> tuple[dict[str, Any], ...]:
    """One measurement entry per measured objective (latency, throughput, peak_memory,
    state_bytes): name, metric, batch, seq_len (default: the task's `seq_len`) and phase."""
    return tuple(
        {"name": o.name, "metric": o.measured_metric, "batch": o.batch,
         "seq_len": o.seq_len or seq_len,
         **({} if o.measured_metric == "state_bytes" else {"phase": o.phase or "prefill"})}
        for o in objectives if o.is_measured
    )


def knob_prefix(kind: str, role: str) -> str:
    """Where a block's knobs live in the file: `model.token_mixers.<kind>` or
    `model.channel_mixer` (one channel mixer section, whatever its kind)."""
    return "model.channel_mixer" if role == "channel_mixer" else f"model.token_mixers.{kind}"


def block_info(kind: str, role: str, static: Mapping[str, BlockInfo]) -> BlockInfo:
    """The block a space's `kind` declares: a user mixer known from its source (`static`), a
    preset (its block, with the preset's values as knob defaults), or a registered block."""
    if kind in static:
        return static[kind]
    preset = get_preset(kind) if role == "token_mixer" else None
    return preset.info if preset is not None else get_block(kind, role)


def _module(values: Mapping[str, Scalar], kind: str, role: str,
            static: Mapping[str, BlockInfo]) -> ModuleSpec:
    """A ModuleSpec with every registered knob explicit: sampled, else the registry default
    (`static`: user mixers known from their source only); a preset becomes its block."""
    info = block_info(kind, role, static)
    base = knob_prefix(kind, role)
    knobs = {k.name: _coerce(k.type, values.get(f"{base}.{k.name}", k.default))
             for k in info.knobs}
    return ModuleSpec.make(info.name, **info.cls.canonicalize(knobs))


def _coerce(kind: type, value: Scalar) -> Scalar:
    """One spelling per number: 4.0 for an int knob is 4, 10000 for a float knob is 10000.0."""
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


# ------------------------------------------------------------------------------------------------
# compilation
# ------------------------------------------------------------------------------------------------


@dataclass
class _Pending:
    """A reference waiting for every decision to exist before it is resolved."""

    name: str
    reference: Reference
    gates: Gates


class _Compiler:
    """Builds the DAG from a SpaceFile; every problem becomes a SpaceError naming its key."""

    def __init__(self, path: str, text: str, config: SpaceFile, allow_code: bool = False) -> None:
        self.path, self.text, self.config, self.allow_code = path, text, config, allow_code
        self.user_code: list[tuple[str, UserCode]] = []  # (key, code) the space names
        self.static_blocks: dict[str, BlockInfo] = {}  # user mixers read, not imported
        self.graph = nx.DiGraph()
        self._declared: list[str] = []  # node names in declaration order, for a stable walk
        self.notes: list[str] = []  # see SearchSpace.notes
        self._pending: list[_Pending] = []
        self._constants: dict[str, Scalar] = {}  # registry defaults of knobs a file leaves out
        self._blocks: dict[tuple[str, str], dict[str, str]] = {}  # (kind, role) -> knob: node
        self.layer_mixers: Callable[[Mapping[str, Scalar]], tuple[str, ...]] = hybrid_kinds
        self.channel_per_layer = False
        self._seq_lens: list[tuple[str, int]] = []  # (key, length) of the sequences trained

    def error(self, key: str, problem: str, fix: str = "") -> SpaceError:
        return SpaceError(self.path, key, problem, fix)

    def error_of(self, key: str, exc: Exception, fix: str = "") -> SpaceError:
        """The error at `key` for an exception whose message is 'PROBLEM; fix: FIX' (or just
        PROBLEM: then `fix`)."""
        problem, found = split_fix(str(exc))
        return self.error(key, problem, found or fix)

    # -- decisions and gates -----------------------------------------------------------------
    def parse(self, name: str, raw: Any, allowed: tuple | None = None) -> Domain:
        """The domain written at `name`, checked against `allowed` values; no node is added."""
        if parse_reference_safe(raw) is not None:
            raise self.error(name, "expr and same_as are allowed for a mixer's knobs only",
                             "write a value or a domain such as {choice: [...]}")
        try:
            domain = parse_domain(raw)
        except DomainError as exc:
            raise self.error_of(name, exc) from None
        if allowed is not None:
            bad = [v for v in domain.values() if v not in allowed]
            if bad:
                raise self.error(
                    name, f"{brief(bad[0])} is not allowed{did_you_mean(bad[0], allowed)}",
                    f"use one of {', '.join(map(str, allowed))}",
                )
        return domain

    def decision(self, name: str, raw: Any, allowed: tuple | None = None) -> Domain:
        return self.node(name, self.parse(name, raw, allowed))

    def node(self, name: str, domain: Domain, gates: Gates = None) -> Domain:
        self.graph.add_node(name, domain=domain)
        if name not in self._declared:
            self._declared.append(name)
        self.gate(name, gates)
        return domain

    def gate(self, name: str, gates: Gates) -> None:
        """Make `name` active where one of `gates` holds (all of one gate list of length 1)."""
        for parent, condition in gates or ():
            self.graph.add_edge(parent, name, condition=condition)
        if gates and len(gates) > 1:
            self.graph.nodes[name]["any"] = True

    def depends(self, child: str, parent: str, condition: Condition) -> None:
        self.graph.add_edge(parent, child, condition=condition)

    def knob(self, name: str, raw: Any, gates: Gates) -> None:
        """A block's knob: a decision, or a reference resolved once every decision exists."""
        try:
            reference = parse_reference(raw)
        except DomainError as exc:
            raise self.error_of(name, exc) from None
        if reference is None:
            self.node(name, self.parse(name, raw), gates)
            return
        self._declared.append(name)
        self._pending.append(_Pending(name, reference, gates))

    # -- the whole file ----------------------------------------------------------------------
    def compile(self) -> SearchSpace:
        vocab_size = self._task()
        self._proxies()
        model = self.config.model
        d_model = self.decision("model.d_model", model.d_model)
        self._positive_ints("model.d_model", d_model)
        self._mixers_known()
        layout = model.layout
        if layout is not None and model.hybrid is not None:
            raise self.error("model.layout", "give either hybrid: (a share of attention layers) "
                             "or layout: (a pattern or a free choice per layer), not both",
                             "remove one of them")
        if layout is not None and layout.pattern is None and layout.free is None:
            raise self.error("model.layout", "a layout needs `pattern:` or `free:`",
                             "write e.g. `layout: {pattern: LLLA}` or "
                             "`layout: {free: [attention, short_conv]}`")
        if layout is not None and layout.pattern is not None:
            self.decision("model.norm", model.norm, allowed=NORMS)
            depths = self._pattern_layout()
        else:
            depths = self._n_layers()
            self.decision("model.norm", model.norm, allowed=NORMS)
            if layout is None:
                self._hybrid_layout()
            else:
                self._free_layout(depths)
        self._channel_mixer(depths)
        self._model_options()
        self._training()
        self._objectives()
        self._strategy()
        seq_len = int(self.config.task.model_dump().get("seq_len", DEFAULT_SEQ_LEN))
        constraints = compile_constraints(
            self.path, self.config.constraints, seq_len=seq_len,
            objectives={e["name"]: e for e in objective_entries(self.config.objectives,
                                                                 seq_len)})
        self._resolve_references()
        self._check_acyclic()
        self._spread_activity()
        for (kind, role), knobs in self._blocks.items():
            self._check_block(kind, role, knobs)
        index = {name: i for i, name in enumerate(self._declared)}
        order = tuple(nx.lexicographical_topological_sort(self.graph, key=index.__getitem__))
        return SearchSpace(self.path, self.text, self.config, self.graph, vocab_size, order,
                           constraints, self.layer_mixers, self.channel_per_layer,
                           tuple(self.notes), self.static_blocks, self._code_refusal(),
                           self.allow_code,
                           {kind: self.block(kind, "token_mixer").name
                            for kind in self.config.model.token_mixers})

    def _strategy(self) -> None:
        """search.strategy names a registered strategy (nas.strategies.register_strategy)."""
        from nas.strategies import list_strategies

        chosen = self.config.search.strategy
        if chosen is not None and chosen not in list_strategies():
            known = list_strategies()
            raise self.error("search.strategy", f"unknown strategy {brief(chosen)}"
                             f"{did_you_mean(chosen, known)}", f"use one of {', '.join(known)}")

    def _code_refusal(self) -> SpaceError | None:
        """The error a search gives for user code the space needs but was not allowed to
        load (the first piece), or None."""
        if self.allow_code or not self.user_code:
            return None
        key, code = self.user_code[0]
        return self.error(key, f"the space runs code from {code.file} ({code.module}:"
                          f"{code.attribute}), and running code from a space file needs your "
                          "permission", f"if you trust {code.file}, rerun with --allow-code")

    def block(self, kind: str, role: str) -> BlockInfo:
        """The registered block `kind`, a preset's block, or a user mixer as read from its
        source."""
        return block_info(kind, role, self.static_blocks)

    # -- sections ----------------------------------------------------------------------------
    def _task(self) -> int:
        from nas.tasks import PYTHON_TASK, make_task, task_vocab_size

        config = self.config.task.model_dump()
        if config.get("kind") == PYTHON_TASK:
            self._python_task("task", config)
            if not self.allow_code:  # its factory says; until then, the option or a stand-in
                vocab = config.get("vocab_size")
                return vocab if isinstance(vocab, int) and 1 <= vocab <= MAX_TASK_SIZE else 1
        try:
            task = make_task(config, allow_code=self.allow_code)
            vocab_size = task_vocab_size(config, allow_code=self.allow_code)
        except ValueError as exc:
            raise self.error_of("task", exc) from None
        self._seq_lens.append(("task", task.seq_len))
        for key, value in (("vocab_size", vocab_size), ("seq_len", task.seq_len)):
            if value > MAX_TASK_SIZE:
                where = f"task.{key}" if key in config else "task"
                raise self.error(where, f"{key}={value} is larger than nas builds (at most "
                                 f"{MAX_TASK_SIZE})", "check for a typo")
        return vocab_size

    def _task_parts(self) -> tuple[str, ...] | None:
        """The parts of the task (None: unknown until its user code runs)."""
        from nas.tasks import PYTHON_TASK, make_task

        if self.config.task.kind == PYTHON_TASK and not self.allow_code:
            return None
        return tuple(make_task(self.config.task.model_dump(),
                               allow_code=self.allow_code).group_names)

    def _python_task(self, key: str, config: Mapping[str, Any]) -> None:
        """Check a python task's entrypoint from its source (nothing imported or run) and
        record it as user code the space needs."""
        entrypoint, path = config.get("entrypoint"), config.get("path")
        where = f"{key}.entrypoint"
        if entrypoint is None:
            raise self.error(key, "a python task needs `entrypoint: 'package.module:function'`",
                             SPELLING)
        module, sep, attribute = entrypoint.partition(":") if isinstance(entrypoint, str) \
            else ("", "", "")
        if not (sep and module and attribute):
            raise self.error(where, f"{brief(entrypoint)} must look like "
                             "'package.module:function'", SPELLING)
        if path is not None and not isinstance(path, str):
            raise self.error(f"{key}.path", f"expected a folder name, got {brief(path)}",
                             "write e.g. `path: tasks` (relative to the current directory)")
        try:
            code, _ = usercode.locate(module.strip(), attribute.strip(),
                                      usercode.search_path(path), entrypoint,
                                      "run nas from the folder that holds it, set `path:` in "
                                      "the task, or install it")
        except usercode.UserCodeError as exc:
            raise self.error_of(where, exc) from None
        self.user_code.append((where, code))

    def _proxies(self) -> None:
        from nas.tasks import make_task

        seen = {o.name for o in self.config.objectives}
        for i, proxy in enumerate(self.config.proxies):
            if proxy.name in seen:
                raise self.error(f"proxies.{i}.name", f"the name {brief(proxy.name)} is taken",
                                 "give each proxy a name of its own")
            seen.add(proxy.name)
            config = proxy.task.model_dump()
            if config.get("kind") == "python":
                self._python_task(f"proxies.{i}.task", config)
                if not self.allow_code:
                    continue
            try:
                task = make_task(config, allow_code=self.allow_code)
            except ValueError as exc:
                raise self.error_of(f"proxies.{i}.task", exc) from None
            self._seq_lens.append((f"proxies.{i}.task", task.seq_len))

    def _positive_ints(self, key: str, domain: Domain) -> None:
        """Widths and depths: positive, and small enough to build (a typo such as 10**9 layers
        would otherwise exhaust memory while counting or building)."""
        for value in domain.values():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                fix = (type_fault(value, int)[1] if number_as_text(value) is not None else
                       "write a whole number >= 1")
                raise self.error(key, f"must be a positive integer, got {brief(value)}", fix)
            if value > MAX_SIZE:
                raise self.error(key, f"{value} is larger than nas builds (at most {MAX_SIZE})",
                                 "check for a typo")

    def _mixers_known(self) -> None:
        """Every declared token mixer is registered, a preset, or an import path that imports
        to one. An unknown name the literature uses says what nas has instead."""
        known = list_blocks(role="token_mixer")
        presets = list_presets(role="token_mixer")
        for kind, raw in self.config.model.token_mixers.items():
            key = f"model.token_mixers.{kind}"
            if is_import_path(kind):
                self._user_mixer(key, kind)
            elif kind not in known and kind not in presets:
                hint = literature_hint(kind)
                if hint is not None:
                    raise self.error(key, f"unknown token mixer {brief(kind)}: {hint[0]}",
                                     hint[1])
                raise self.error(
                    key,
                    f"unknown token mixer {brief(kind)}{did_you_mean(kind, known + presets)}",
                    f"use one of {', '.join(known)}, or a preset: {', '.join(presets)}",
                )
            if raw is not None and not isinstance(raw, dict):
                raise self.error(key, "expected a mapping of knobs",
                                 "write e.g. `{heads: 4}` or `{}`")

    def _user_mixer(self, key: str, kind: str) -> None:
        """A mixer named by its import path: checked from its source and recorded as user code;
        imported (and so checked fully) only with allow_code."""
        module, _, name = kind.rpartition(".")
        own = [n for n in list_blocks() if module.split(".")[0] == "nas"
               and not is_import_path(n)
               and (get_block(n).cls.__module__, get_block(n).cls.__name__) == (module, name)]
        if own:
            raise self.error(key, f"{kind} is nas's own block {own[0]!r}: nas's blocks are "
                             "named by their registry names, not import paths",
                             f"write `{own[0]}`")
        try:
            code, node = usercode.locate(module, name, usercode.search_path(), kind,
                                         "check the import path package.module.ClassName and "
                                         "that its folder is the current one or on sys.path")
        except usercode.UserCodeError as exc:
            raise self.error_of(key, exc) from None
        self.user_code.append((key, code))
        if self.allow_code:
            try:
                get_block(kind, "token_mixer")
            except (BlockImportError, KeyError) as exc:
                raise self.error(key, str(exc.args[0] if exc.args else exc),
                                 "check the import path package.module.ClassName and that "
                                 "its package is importable (on sys.path)") from None
            return
        defaults = usercode.literal_knobs(node)
        if defaults is None:  # knobs unknown until imported: accept those the file gives
            raw = self.config.model.token_mixers[kind] or {}
            knobs = tuple(Knob(str(k), object, None) for k in raw)
        else:
            knobs = tuple(Knob(k, object if v is None else type(v), v)
                          for k, v in defaults.items())
        self.static_blocks[kind] = BlockInfo(kind, "token_mixer", _SourceOnlyBlock, knobs,
                                             f"{code.module}.{code.attribute} (not imported)")

    def _n_layers(self) -> list[int]:
        """The `model.n_layers` decision of a hybrid or free layout; its possible values."""
        raw = self.config.model.n_layers
        if raw is None:
            raise self.error("model.n_layers", "required key is missing",
                             "add `n_layers:` under model, or use `layout: {pattern: ...}`, "
                             "which implies the depth")
        domain = self.decision(N_LAYERS, raw)
        self._positive_ints(N_LAYERS, domain)
        self._layers_bounded(N_LAYERS, max(domain.values()))
        return sorted(set(domain.values()))

    def _layers_bounded(self, key: str, layers: int, how: str = "") -> None:
        """Refuse a model deeper than MAX_LAYERS (`how`: where the depth comes from)."""
        if layers > MAX_LAYERS:
            raise self.error(key, f"{how}{layers:,} layers is more than nas builds (at most "
                             f"{MAX_LAYERS})", "check for a typo")

    def _hybrid_layout(self) -> None:
        """`hybrid:` (or nothing): a share of attention layers, placed; the rest one mixer."""
        mixers = self.config.model.token_mixers
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
                fix = type_fault(value, float)[1] if number_as_text(value) is not None else ""
                raise self.error(RATIO, f"must be a number in [0, 1], got {brief(value)}",
                                 fix or "write a share of the layers from 0 to 1, e.g. 0.25")
            if value > 0 and ATTENTION not in mixers:
                raise self.error(RATIO, f"{value} needs attention",
                                 "declare `attention:` under model.token_mixers, or use ratio 0"
                                 + _attention_presets(mixers))
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
            chosen = set(other.values())
            for kind in (m for m in others if m in chosen):
                self._mixer_knobs(kind, [(OTHER, Condition(allowed=frozenset({kind})))])
        if ATTENTION in mixers and any(v > 0 for v in ratios):
            self._mixer_knobs(ATTENTION, [(RATIO, Condition(excluded=frozenset({0})))])
        self.layer_mixers = hybrid_kinds

    def _pattern_layout(self) -> list[int]:
        """`layout: {pattern: LLLA, repeat: ...}`: letters bound to mixers, repeated."""
        layout = self.config.model.layout
        if layout.free is not None or layout.priors is not None:
            extra = "free" if layout.free is not None else "priors"
            raise self.error(f"model.layout.{extra}", "a layout is a pattern or free, not both",
                             f"remove `{extra}:` or `pattern:`")
        letters = self._letters()
        patterns = self.decision(PATTERN, layout.pattern)
        for pattern in patterns.values():
            if isinstance(pattern, str) and len(pattern) > 4 * MAX_LAYERS:
                raise self.error(PATTERN, f"a pattern of {len(pattern):,} characters is longer "
                                 f"than a model nas builds (at most {MAX_LAYERS} layers)",
                                 "shorten it, and use `repeat:` for repetition")
            self._check_pattern(pattern, letters)
        lengths = {p: len(pattern_letters(p)) for p in map(str, patterns.values())}
        repeats: list[Scalar] = [1]
        if layout.repeat is not None:
            repeat = self.decision(REPEAT, layout.repeat)
            self._positive_ints(REPEAT, repeat)
            repeats = list(repeat.values())
        for pattern, length in lengths.items():
            self._layers_bounded(PATTERN if layout.repeat is None else REPEAT,
                                 length * max(int(r) for r in repeats),
                                 f"pattern {brief(pattern)} x repeat gives ")
        fixed_depth = self._pattern_depth(lengths, repeats, layout.repeat is not None)
        depths = sorted({n * r for n in lengths.values() for r in repeats}) \
            if fixed_depth is None else [fixed_depth]
        pattern_layout = PatternLayout(letters, fixed_depth)
        if fixed_depth is None:
            inputs = (PATTERN, REPEAT) if layout.repeat is not None else (PATTERN,)
            self.node(N_LAYERS, Derived(inputs, pattern_layout.depth,
                                        "= len(pattern) x repeat"))
            for source in inputs:
                self.graph.add_edge(source, N_LAYERS, condition=Condition(), input=True)
        for kind in self.config.model.token_mixers:
            using = frozenset(p for p in lengths if kind in pattern_layout.kinds(
                {PATTERN: p, REPEAT: 1}))
            if using:
                self._mixer_knobs(kind, [(PATTERN, Condition(allowed=using))])
            else:
                self._unused_mixer(kind, "no letter of the pattern is bound to it")
        self.layer_mixers = pattern_layout.kinds
        return depths

    def domain_of(self, name: str) -> Domain:
        return self.graph.nodes[name]["domain"]

    def _letters(self) -> dict[str, str]:
        """Letter -> declared mixer: the defaults (nas.spec.MIXER_LETTERS, then the presets'
        letters) and `letters:`."""
        overrides = self.config.model.layout.letters or {}
        mixers = self.config.model.token_mixers
        for letter, kind in overrides.items():
            key = f"model.layout.letters.{letter}"
            if len(letter) != 1 or letter in PATTERN_SEPARATORS:
                raise self.error(key, f"a letter is one character, got {brief(letter)}",
                                 "write e.g. `letters: {X: deltanet}`")
            if kind not in mixers:
                raise self.error(key, f"{brief(kind)} is not declared under model.token_mixers"
                                 f"{did_you_mean(kind, mixers)}",
                                 f"declare it, or use one of {', '.join(mixers)}")
        return letter_table({**preset_letters(), **overrides})

    def _check_pattern(self, pattern: Scalar, letters: Mapping[str, str]) -> None:
        mixers = self.config.model.token_mixers
        usable = {ch: kind for ch, kind in letters.items() if kind in mixers}
        shown = ", ".join(f"{ch} ({kind})" for ch, kind in sorted(usable.items()))
        if not isinstance(pattern, str) or not pattern_letters(pattern):
            raise self.error(PATTERN, "a pattern is a string of mixer letters, got "
                             f"{brief(pattern)}",
                             f"write e.g. \"LLLA\"; letters of the declared mixers: {shown}")
        for ch in pattern_letters(pattern):
            if ch not in letters:
                raise self.error(PATTERN, f"unknown letter {brief(ch)} in pattern {brief(pattern)}",
                                 f"letters of the declared mixers: {shown}; or bind it with "
                                 f"`letters: {{{ch}: <mixer>}}`")
            if letters[ch] not in mixers:
                raise self.error(PATTERN, f"letter {brief(ch)} in pattern {brief(pattern)} means "
                                 f"{letters[ch]}, which is not declared under model.token_mixers",
                                 f"declare {letters[ch]}, or use {shown}")

    def _pattern_depth(self, lengths: Mapping[str, int], repeats: list[Scalar],
                       repeat_given: bool) -> int | None:
        """The fixed `n_layers` a pattern must fill, or None when the pattern implies it.

        With n_layers given (one number) and no repeat, each pattern repeats to fill it; with
        both, every pattern x repeat must equal it."""
        raw = self.config.model.n_layers
        if raw is None:
            return None
        domain = self.parse(N_LAYERS, raw)
        self._positive_ints(N_LAYERS, domain)
        if not isinstance(domain, Fixed):
            raise self.error(N_LAYERS, "a pattern implies the depth (len(pattern) x repeat); "
                             "n_layers may only be one number here",
                             "remove n_layers, or give one number the patterns fill")
        depth = int(domain.value)
        self._layers_bounded(N_LAYERS, depth)
        for pattern, length in lengths.items():
            if repeat_given:
                bad = [r for r in repeats if length * int(r) != depth]
                if bad:
                    raise self.error(N_LAYERS, f"n_layers {depth} disagrees with pattern "
                                     f"{brief(pattern)} x repeat {bad[0]} = {length * int(bad[0])}",
                                     "remove n_layers (the pattern implies it) or repeat")
            elif depth % length:
                raise self.error(N_LAYERS, f"pattern {brief(pattern)} ({length} layers) does not "
                                 f"divide n_layers {depth}",
                                 "use a pattern whose length divides n_layers, or remove "
                                 "n_layers and give `repeat:`")
        self.node(N_LAYERS, domain)
        return depth

    def _free_layout(self, depths: list[int]) -> None:
        """`layout: {free: [...]}`: each layer chooses among the listed mixers."""
        layout = self.config.model.layout
        for extra in ("repeat", "letters"):
            if getattr(layout, extra) is not None:
                raise self.error(f"model.layout.{extra}", f"{extra} belongs to a pattern layout",
                                 f"remove `{extra}:`")
        mixers = self.config.model.token_mixers
        free = list(layout.free)
        if not free:
            raise self.error("model.layout.free", "must list at least one mixer",
                             f"list some of {', '.join(mixers)}")
        for i, kind in enumerate(free):
            if kind not in mixers:
                raise self.error(f"model.layout.free.{i}", f"{brief(kind)} is not declared under "
                                 f"model.token_mixers{did_you_mean(kind, mixers)}",
                                 f"declare it, or use one of {', '.join(mixers)}")
            if free.index(kind) != i:
                raise self.error(f"model.layout.free.{i}", f"{brief(kind)} is listed twice",
                                 "list each mixer once")
        priors = self._priors(free)
        for i in range(max(depths)):
            below = frozenset(n for n in depths if n > i)
            gates = None if i < min(depths) else [(N_LAYERS, Condition(allowed=below))]
            self.node(layer_decision(i), self._layer_domain(free, priors, i, depths), gates)
        for kind in free:
            self._mixer_knobs(kind, [(layer_decision(i), Condition(allowed=frozenset({kind})))
                                     for i in range(max(depths))])
        for kind in mixers:
            if kind not in free:
                self._unused_mixer(kind, "it is not in model.layout.free")
        self.layer_mixers = free_kinds

    def _unused_mixer(self, kind: str, why: str) -> None:
        self.notes.append(f"model.token_mixers.{kind} is declared but no layer can use it "
                          f"({why}); its knobs are not searched")

    def _priors(self, free: list[str]) -> dict[str, tuple[float, float]]:
        """`priors: {kind: p | [bottom, top]}`, checked: in (0, 1], something left for the
        mixers without one."""
        raw = self.config.model.layout.priors or {}
        priors = {}
        for kind, value in raw.items():
            key = f"model.layout.priors.{kind}"
            if kind not in free:
                raise self.error(key, f"{brief(kind)} is not in the free list"
                                 f"{did_you_mean(kind, free)}", f"use one of {', '.join(free)}")
            pair = value if isinstance(value, list) else [value, value]
            if len(pair) != 2 or not all(isinstance(p, int | float) and not isinstance(p, bool)
                                         and 0 < p <= 1 for p in pair):
                raise self.error(key, f"a prior is a probability in (0, 1] or [bottom, top], "
                                 f"got {brief(value)}", "e.g. `attention: [0.1, 0.5]`; to keep a "
                                 "mixer out of some layers use a pattern")
            priors[kind] = (float(pair[0]), float(pair[1]))
        rest = [k for k in free if k not in priors]
        for end in (0, 1):
            total = sum(p[end] for p in priors.values())
            if rest and total >= 1 - 1e-9:
                raise self.error("model.layout.priors", f"the priors sum to {total:g} at the "
                                 f"{('bottom', 'top')[end]}, leaving nothing for "
                                 f"{', '.join(rest)}", "lower them, or give every mixer one")
        return priors

    @staticmethod
    def _layer_domain(free: list[str], priors: Mapping[str, tuple[float, float]], index: int,
                      depths: list[int]) -> Domain:
        if not priors or len(free) == 1:
            return Choice(tuple(free))
        by_depth = {n: depth_weights(free, priors, index, n) for n in depths if n > index}
        text = "; ".join(f"n_layers={n}: " + ", ".join(f"{k} {w:.2f}" for k, w in
                                                         zip(free, ws, strict=True))
                         for n, ws in by_depth.items())
        return ContextChoice(tuple(free), lambda values: by_depth[int(values[N_LAYERS])],
                             f"choice with priors ({text})")

    def _mixer_knobs(self, kind: str, gates: Gates) -> None:
        """The knobs of token mixer `kind`, active where `gates` say the mixer is used."""
        raw = self.config.model.token_mixers[kind] or {}
        info = self.block(kind, "token_mixer")
        key = knob_prefix(kind, "token_mixer")
        for knob in raw:
            if info.knob(knob) is None:
                known = ", ".join(k.name for k in info.knobs) or "(none)"
                raise self.error(
                    f"{key}.{knob}",
                    f"unknown knob of {kind}{did_you_mean(knob, [k.name for k in info.knobs])}",
                    f"known knobs: {known}",
                )
        preset = get_preset(kind) if kind not in self.static_blocks else None
        if preset is not None:
            self._preset_knobs(preset, key, raw)
        for knob in info.knobs:
            if knob.name in raw:
                self.knob(f"{key}.{knob.name}", raw[knob.name], gates)
            else:
                self._constants[f"{key}.{knob.name}"] = knob.default
        self._blocks[kind, "token_mixer"] = {k: f"{key}.{k}" for k in raw}

    def _preset_knobs(self, preset: Preset, key: str, raw: Mapping[str, Any]) -> None:
        """A preset's fixed knobs keep their values (written again, they must be the same
        single value), and its required knobs are given."""
        for name, value in preset.fixed.items():
            if name in raw and not _is_value(raw[name], preset.info.knob(name), value):
                block = {**preset.fixed, **raw}
                raise self.error(
                    f"{key}.{name}",
                    f"{preset.name} fixes {name} to {_flow(value)} ({preset.name} is "
                    f"{preset.block} with {_flow(preset.fixed)}), got {_flow(raw[name])}",
                    f"remove `{name}` here, or declare the block itself to choose it: "
                    f"`{preset.block}: {_flow(block)}`",
                )
        missing = [name for name in preset.required if name not in raw]
        if missing:
            example = {**{k: v for k, v in raw.items() if k not in preset.required},
                       **preset.required}
            raise self.error(key, f"{preset.name} needs {' and '.join(missing)}: the preset "
                             "has no default, as no value suits every task",
                             f"write e.g. `{preset.name}: {_flow(example)}`")

    def _channel_mixer(self, depths: list[int]) -> None:
        raw = dict(self.config.model.channel_mixer)
        per_layer = raw.pop("per_layer", False)
        if not isinstance(per_layer, bool):
            raise self.error("model.channel_mixer.per_layer", *type_fault(per_layer, bool))
        kinds = self.parse(CHANNEL_KIND, raw.pop("kind", "swiglu"),
                           allowed=tuple(list_blocks(role="channel_mixer")))
        infos = {kind: get_block(str(kind), "channel_mixer") for kind in kinds.values()}
        for knob in raw:
            if not any(info.knob(knob) for info in infos.values()):
                known = sorted({k.name for info in infos.values() for k in info.knobs})
                raise self.error(f"model.channel_mixer.{knob}",
                                 f"unknown knob {brief(knob)}{did_you_mean(knob, known)}",
                                 f"known knobs: {', '.join(known)}")
        if per_layer:
            self.channel_per_layer = True
            parents = []
            for i in range(max(depths)):
                below = frozenset(n for n in depths if n > i)
                gates = None if i < min(depths) else [(N_LAYERS, Condition(allowed=below))]
                self.node(layer_decision(i, "channel_mixer"), kinds, gates)
                parents.append(layer_decision(i, "channel_mixer"))
        else:
            self.node(CHANNEL_KIND, kinds)
            parents = [CHANNEL_KIND]
        for knob, value in raw.items():
            users = frozenset(kind for kind, info in infos.items() if info.knob(knob))
            self.knob(f"model.channel_mixer.{knob}", value,
                      [(p, Condition(allowed=users)) for p in parents])
        for kind, info in infos.items():
            self._blocks[str(kind), "channel_mixer"] = {
                k: f"model.channel_mixer.{k}" for k in raw if info.knob(k)}
            for knob in info.knobs:
                if knob.name not in raw:
                    self._constants.setdefault(f"model.channel_mixer.{knob.name}", knob.default)

    def _model_options(self) -> None:
        """init, tie_head, positions and (for learned positions) max_positions: model-wide
        decisions beside the layers, like norm."""
        model = self.config.model
        self.decision("model.init", model.init, allowed=INITS)
        tie = self.decision("model.tie_head", model.tie_head)
        for value in tie.values():
            if not isinstance(value, bool):
                raise self.error("model.tie_head", *type_fault(value, bool))
        positions = self.decision("model.positions", model.positions, allowed=POSITIONS)
        if "learned" not in set(positions.values()):
            if model.max_positions is not None:
                raise self.error("model.max_positions", "max_positions is the size of a "
                                 "learned position table, and positions is never learned",
                                 "remove it, or set positions: learned")
            return
        lengths = list(self._seq_lens)
        for i, o in enumerate(self.config.objectives):
            if o.is_measured:  # decode times the token after a seq_len context: one more
                seq_len = o.seq_len or self.config.task.model_dump().get("seq_len")
                if isinstance(seq_len, int):
                    lengths.append((f"objectives.{i}", seq_len + (o.phase == "decode")))
        longest = max(lengths, key=lambda item: item[1], default=None)
        rows = model.max_positions
        if rows is None:
            if longest is None:  # a python task not loaded yet: its length is unknown
                raise self.error("model.max_positions", "learned positions need a table "
                                 "size, and the task's sequence length is not known until "
                                 "its code runs", "set max_positions: to the longest "
                                 "sequence the model will see")
            rows = longest[1]
        elif not isinstance(rows, int) or isinstance(rows, bool) or rows < 1:
            raise self.error("model.max_positions", f"must be a whole number >= 1, got "
                             f"{brief(rows)}", "write the longest sequence the model will "
                             "see, e.g. 512")
        elif longest is not None and rows < longest[1]:
            raise self.error("model.max_positions", f"{rows} rows are fewer than the "
                             f"{longest[1]} positions of {longest[0]}",
                             f"set it to at least {longest[1]}, or leave it out (then it is "
                             "the longest sequence the space uses)")
        self.node("model.max_positions", Fixed(rows),
                  [("model.positions", Condition(allowed=frozenset({"learned"})))])

    def _training(self) -> None:
        raw = self.config.training.model_dump()
        for key in _TRAINING_BOUNDS:
            name = f"training.{key}"
            for value in self.decision(name, raw[key]).values():
                fault = _training_fault(key, value)
                if fault:
                    raise self.error(name, *fault)
        self.decision("training.schedule", raw["schedule"], allowed=SCHEDULES)
        self.decision("training.weight_decay_on", raw["weight_decay_on"], allowed=DECAY_SCOPES)
        fidelity = self.config.search.fidelity
        if fidelity is not None:
            steps = raw["steps"]
            if not isinstance(steps, int) or isinstance(steps, bool):
                raise self.error("search.fidelity", "multi-fidelity needs a fixed training.steps "
                                 f"(the last rung), got {brief(steps)}",
                                 "set training.steps to one number, or remove search.fidelity")
            if fidelity.min_steps >= steps:
                raise self.error("search.fidelity.min_steps", f"min_steps={fidelity.min_steps} "
                                 f"leaves no rung below training.steps={steps}",
                                 f"set min_steps below {steps}")

    def _objectives(self) -> None:
        seen = set()
        for i, objective in enumerate(self.config.objectives):
            key = f"objectives.{i}"
            if objective.name in seen:
                raise self.error(f"{key}.name",
                                 f"objective {brief(objective.name)} is listed twice",
                                 "list each objective once")
            seen.add(objective.name)
            part = objective.name.removeprefix("accuracy_")
            if part != objective.name:  # accuracy on one part of the task
                parts = self._task_parts()
                if parts is not None and part not in parts:
                    raise self.error(
                        f"{key}.name", f"the task has no part {brief(part)}"
                        f"{did_you_mean(part, parts)}",
                        f"its parts: {', '.join(parts)}" if parts else
                        "only tasks of several levels (mqar_sweep) have accuracy_<part>")
            elif not objective.is_measured and objective.name not in KNOWN_METRICS:
                raise self.error(
                    f"{key}.name", f"unknown objective {brief(objective.name)}"
                    f"{did_you_mean(objective.name, KNOWN_METRICS)}",
                    f"use one of {', '.join(KNOWN_METRICS)}, or a measured objective: a "
                    "`metric` (latency, throughput, peak_memory, state_bytes) or a name "
                    "starting with one, with a `phase` (prefill, decode or train_step)",
                )
            elif objective.measured_metric == "state_bytes" and objective.phase is not None:
                raise self.error(
                    f"{key}.phase", "state_bytes is the decode state at seq_len, computed "
                    "from the architecture: it has no phase", "remove `phase`")

    # -- references --------------------------------------------------------------------------
    def _resolve_references(self) -> None:
        pending = {p.name for p in self._pending}

        def exists(path: str) -> bool:
            return path in self.graph or path in pending

        for item in self._pending:
            try:
                resolved = resolve(item.reference, item.name, exists, self._constants)
            except ReferenceProblem as exc:
                raise self.error_of(item.name, exc, NAMES_HELP) from None
            self.node(item.name, resolved.domain, item.gates)
            for source in resolved.domain.inputs:
                self.graph.add_edge(source, item.name, condition=Condition(), input=True)

    def _check_acyclic(self) -> None:
        try:
            cycle = nx.find_cycle(self.graph)
        except nx.NetworkXNoCycle:
            return
        names = [edge[0] for edge in cycle]
        at = next((n for n in names if isinstance(self.domain_of(n), Derived)), names[0])
        raise self.error(at, "references form a cycle: " + " -> ".join([*names, names[0]]),
                         "make one of them a value or a domain")

    def _spread_activity(self) -> None:
        """Make the inputs of every computed value active wherever it is (consumers first)."""
        for name in reversed(list(nx.topological_sort(self.graph))):
            if not isinstance(self.domain_of(name), Derived):
                continue
            for source in self.domain_of(name).inputs:
                self._add_alternatives(source, self._gates_of(name))

    def _gates_of(self, name: str) -> Gates:
        gates = [(p, self.graph.edges[p, name]["condition"])
                 for p in self.graph.predecessors(name)
                 if not self.graph.edges[p, name].get("input")]
        return gates or None

    def _add_alternatives(self, name: str, alternatives: Gates) -> None:
        """Make `name` active also where one of `alternatives` holds."""
        current = self._gates_of(name)
        if current is None:
            return  # always active already
        if len(current) > 1 and not self.graph.nodes[name].get("any"):  # pragma: no cover
            raise AssertionError(f"{name}: cannot widen a node that needs several gates")
        if alternatives is None:
            for parent, _ in current:
                self.graph.remove_edge(parent, name)
            self.graph.nodes[name].pop("any", None)
            return
        for parent, condition in alternatives:
            if self.graph.has_edge(parent, name):
                old = self.graph.edges[parent, name]["condition"]
                values = self._possible(parent)
                condition = Condition(allowed=frozenset(
                    v for v in values if old.holds(v) or condition.holds(v)))
            self.graph.add_edge(parent, name, condition=condition)
        if len(self._gates_of(name) or ()) > 1:
            self.graph.nodes[name]["any"] = True

    def _possible(self, name: str) -> set[Scalar]:
        """Every value decision `name` can take (a Derived one's over its inputs' values)."""
        domain = self.domain_of(name)
        if isinstance(domain, FloatRange):
            raise self.error(name, "a continuous decision cannot gate a computed value",
                             "make it a choice or an int domain")
        if not isinstance(domain, Derived):
            return set(domain.values())
        roots = self._roots([name])
        grid = itertools.product(*(list(self.domain_of(r).values()) for r in roots))
        return {self._value(name, dict(zip(roots, combo, strict=True)))
                for combo in itertools.islice(grid, _MAX_COMBINATIONS)}

    def _roots(self, names: Iterable[str]) -> list[str]:
        """The sampled decisions the values of `names` depend on (through computed values)."""
        out: dict[str, None] = {}
        for name in names:
            domain = self.domain_of(name)
            if isinstance(domain, Derived):
                out.update(dict.fromkeys(self._roots(domain.inputs)))
            else:
                out[name] = None
        return list(out)

    def _value(self, name: str, values: dict[str, Scalar]) -> Scalar:
        """The value of `name` given its roots' values in `values` (filled in on the way)."""
        if name not in values:
            domain = self.domain_of(name)
            for source in domain.inputs:
                self._value(source, values)
            try:
                values[name] = domain.compute(values)
            except ReferenceProblem as exc:
                shown = {k: v for k, v in values.items() if k in domain.inputs}
                raise self.error(name, f"{exc} at {shown}", "choose values that work for "
                                 "every combination in the space") from None
        return values[name]

    # -- blocks ------------------------------------------------------------------------------
    def _check_block(self, kind: str, role: str, knobs: Mapping[str, str]) -> None:
        """Every combination of d_model and knob values must be one the block accepts."""
        info = self.block(kind, role)
        key = knob_prefix(kind, role)
        roots = self._roots(["model.d_model", *knobs.values()])
        grid = itertools.product(*(list(self.domain_of(r).values()) for r in roots))
        for combo in itertools.islice(grid, _MAX_COMBINATIONS):
            values = dict(zip(roots, combo, strict=True))
            d_model = self._value("model.d_model", values)
            picked = {k: self._value(node, values) for k, node in knobs.items()}
            chosen = {k: _coerce(info.knob(k).type, v) for k, v in picked.items()}
            full = info.cls.canonicalize({**info.defaults, **chosen})
            for knob_name, value in full.items():
                knob = info.knob(knob_name)
                fault = _knob_fault(knob, value) if knob else None
                if fault:
                    node = knobs.get(knob_name)
                    if node is not None and isinstance(self.domain_of(node), Derived) \
                            and knob.type is int and isinstance(value, float):
                        fault = fault[0], "make the expr give whole numbers: divide with //"
                    raise self.error(f"{key}.{knob_name}", *fault)
            problems = info.cls.validate(int(d_model), **full)
            if problems:
                where = "" if "d_model" in problems[0] else f" at d_model={d_model}"
                raise self.error(key, f"{problems[0]}{where} (searched knobs {picked})",
                                 "choose values that work with every d_model in the space")


def _is_value(raw: Any, knob: Knob | None, value: Scalar) -> bool:
    """Whether `raw`, as written in the file, is the single value `value` of `knob`."""
    try:
        if knob is None or parse_reference(raw) is not None:
            return False
        domain = parse_domain(raw)
    except DomainError:
        return False
    if not isinstance(domain, Fixed):
        return False
    written = _coerce(knob.type, domain.value)
    return written == value and type(written) is type(value)


def _flow(value: Any, limit: int = 200) -> str:
    """A value as one line of YAML flow style: `gla`, `true`, `{decay: none, heads: 4}`; a
    user's value too large for a message is summarised (errors.brief) instead."""
    shown = brief(value, limit)
    if len(shown) >= limit or shown.startswith("<"):
        return shown
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False,
                          width=1_000_000).removesuffix("\n...\n").strip()


def _attention_presets(mixers: Iterable[str]) -> str:
    """For a hybrid without `attention:`: how to make a declared attention preset its
    attention layers ('' when none is declared)."""
    for kind in mixers:
        preset = get_preset(kind)
        if preset is not None and preset.block == ATTENTION:
            knobs = {**preset.fixed, **preset.defaults, **preset.required}
            return (f" (the ratio counts `attention:` layers; {kind} is a mixer like any other "
                    f"here: to make the attention layers {kind}, declare `attention: "
                    f"{_flow(knobs)}` instead, or use `layout: {{pattern: ...}}` with its "
                    f"letter {preset.letter})")
    return ""


class _SourceOnlyBlock:
    """Stands in for a user mixer read from its source only: its own checks of knob values
    run when it is imported (nas search --allow-code)."""

    @staticmethod
    def canonicalize(knobs: Mapping[str, Scalar]) -> dict[str, Scalar]:
        return dict(knobs)

    @staticmethod
    def validate(d_model: int, **knobs: Scalar) -> list[str]:
        return []


def _of_type(value: Any, kind: type) -> bool:
    """Whether `value` is a `kind` as a knob reads it: an int is a float too, a bool no int."""
    if isinstance(value, bool):
        return kind is bool
    return isinstance(value, kind) or (kind is float and isinstance(value, int))


def _knob_fault(knob: Knob, value: Scalar) -> tuple[str, str] | None:
    """(problem, fix) when `value` is not one `knob` accepts (Knob.check), else None; an
    unknown value of a knob with choices gets a did-you-mean."""
    problem = knob.check(value)
    if problem is None:
        return None
    if knob.choices is not None and isinstance(value, knob.type) and value not in knob.choices:
        return (f"unknown value {brief(value)}{did_you_mean(value, knob.choices)}",
                f"use one of {', '.join(map(str, knob.choices))}")
    if not _of_type(value, knob.type):
        example = knob.default if knob.default is not None else knob.minimum
        return type_fault(value, knob.type, example)
    if knob.minimum is not None and value < knob.minimum:
        return problem, f"use a value >= {knob.minimum:g}"
    return problem, "use a smaller value"


def _training_fault(key: str, value: Any) -> tuple[str, str] | None:
    """(problem, fix) when `value` is no valid training.`key`, else None."""
    kind, low, open_low, upper = _TRAINING_BOUNDS[key]
    example = _TRAINING_EXAMPLES[key]
    if not _of_type(value, kind):
        return type_fault(value, kind, example)
    if open_low and value <= low:
        bound = f"> {low:g}"
    elif value < low:
        bound = f">= {low:g}"
    elif upper is not None and value >= upper:
        bound = (f"in [{low}, {upper})" if kind is float else f"<= {upper - 1:,}")
    else:
        return None
    return f"must be {bound}, got {brief(value)}", f"write a value {bound}, e.g. {brief(example)}"


def parse_reference_safe(raw: Any) -> Reference | None:
    """parse_reference, with a malformed reference counted as one (to refuse it by key)."""
    try:
        return parse_reference(raw)
    except DomainError:
        return Reference("expr", str(raw))


def compile_space(path: str, text: str, config: SpaceFile, allow_code: bool = False
                  ) -> SearchSpace:
    """The SearchSpace of a validated file; raises SpaceError naming the key at fault. User
    code it names (python tasks, mixers by import path) is imported only with `allow_code`."""
    return _Compiler(path, text, config, allow_code).compile()

