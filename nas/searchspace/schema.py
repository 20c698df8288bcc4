"""The structure of a space file, validated with pydantic.

Searchable values are kept raw here (`Any`) and parsed into domains by the compiler, which knows
the block registry and can name the key in every error. Every model forbids unknown keys, so a
typo is an error that lists the keys that are allowed, never silently ignored.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nas.errors import brief, did_you_mean
from nas.searchspace.domains import FIX, split_fix, type_fault
from nas.spec import NAME_PATTERN

# Bounds no real search comes near, which keep loading and searching bounded in time and memory
# (a typo such as `seq_len: 1e9` fails here, not hours into a search).
MAX_BATCH = 65_536  # sequences in one batch
MAX_SEQ_LEN = 1_048_576  # tokens in one sequence
MAX_STEPS = 10_000_000  # training steps of one trial
MAX_SEED = 2**32 - 1  # the seeds Optuna, numpy and SQLite all accept
MAX_THREADS = 1024
MAX_POPULATION = 10_000
MAX_RETRIES = 100
MAX_REMEASURE = 1000
MAX_REPLICATE_SEEDS = 100  # trainings of one candidate, the first one counted
MAX_REDUCTION = 1000
MAX_DEVICES_PER_TRIAL = 1024
MAX_TRIAL_TIMEOUT = 365 * 86_400.0  # seconds: a year
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|sec|m|min|h|hr)?\s*$", re.IGNORECASE)
_DURATION_SECONDS = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}
MAX_NAME = 64  # characters of a space, proxy or objective name

LATENCY_PHASES = ("prefill", "decode", "train_step")
KNOWN_METRICS = {
    "accuracy": "maximize",
    "loss": "minimize",
    "bits_per_byte": "minimize",  # loss / ln 2 (bits per token; per byte for the lm task)
    "perplexity": "minimize",  # exp(loss)
    "params": "minimize",
}


# Defaults of the model-wide choices and of the lr schedule (issue #17 measured them; see
# BENCHMARKS.md, "Learning speed"). A space that leaves them at these keeps its space_hash.
MODEL_OPTION_DEFAULTS: dict[str, Any] = {"init": "torch", "tie_head": False, "positions": "none",
                                         "max_positions": None}
TRAINING_SCHEDULE_DEFAULT = "constant"
TRAINING_DECAY_ON_DEFAULT = "all"  # weight decay on every parameter (or: matrices)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HybridConfig(_Strict):
    full_attention_ratio: Any = None
    placement: Any = "interleave"
    other: Any = None


class LayoutConfig(_Strict):
    """Which mixer each layer gets, when not by `hybrid:`: a `pattern` of mixer letters
    (`repeat`ed, letters rebound by `letters`) or a `free` choice per layer (with optional
    per-depth `priors`). The compiler checks which keys go together."""

    pattern: Any = None
    repeat: Any = None
    letters: dict[str, str] | None = None
    free: list[str] | None = None
    priors: dict[str, Any] | None = None


class ModelConfig(_Strict):
    d_model: Any
    n_layers: Any = None  # required, except where a layout pattern implies it
    norm: Any = "rmsnorm"
    token_mixers: dict[str, dict[str, Any] | None] = Field(min_length=1)
    hybrid: HybridConfig | None = None
    layout: LayoutConfig | None = None
    channel_mixer: dict[str, Any] = Field(default_factory=lambda: {"kind": "swiglu"})
    # model-wide choices (nas.spec.ArchSpec); each searchable like norm, except max_positions
    init: Any = MODEL_OPTION_DEFAULTS["init"]  # torch | gpt2
    tie_head: Any = MODEL_OPTION_DEFAULTS["tie_head"]  # true | false
    positions: Any = MODEL_OPTION_DEFAULTS["positions"]  # none | learned | sinusoidal
    max_positions: Any = None  # learned only; default: the longest sequence the space uses


class TrainingConfig(_Strict):
    steps: Any
    batch_size: Any
    lr: Any
    warmup_fraction: Any = 0.0
    schedule: Any = TRAINING_SCHEDULE_DEFAULT  # after warmup: constant | cosine to 10%
    weight_decay: Any = 0.01
    grad_clip: Any = 1.0
    beta2: Any = 0.999  # AdamW's second-moment decay
    weight_decay_on: Any = TRAINING_DECAY_ON_DEFAULT  # all | matrices


class ObjectiveConfig(_Strict):
    """One objective. Measured objectives (latency, throughput, peak memory, decode state) name
    a `metric` (or start with its name), a phase and a shape; the others are trained metrics."""

    name: str = Field(max_length=MAX_NAME)
    goal: Literal["maximize", "minimize"] | None = None
    metric: Literal["latency", "throughput", "peak_memory", "state_bytes"] | None = None
    phase: Literal["prefill", "decode", "train_step"] | None = None
    batch: int = Field(default=1, ge=1, le=MAX_BATCH)
    seq_len: int | None = Field(default=None, ge=1, le=MAX_SEQ_LEN)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        """No spaces, tabs or invisible characters: `latency_ms` and `"latency_ms "` must not
        be two objectives."""
        if not value or any(ch.isspace() or not ch.isprintable() for ch in value):
            shown = "".join(ch if ch.isprintable() and not ch.isspace() else "·" for ch in value)
            raise ValueError(f"an objective name has no spaces or invisible characters, got "
                             f"{shown!r} (· marks them){FIX}write it without them, e.g. "
                             f"{shown.replace('·', '')!r}")
        return value

    @property
    def measured_metric(self) -> str | None:
        """The hardware metric this objective measures (None for a trained metric): `metric`,
        else the one its name starts with, else latency if it names a phase."""
        if self.metric:
            return self.metric
        for prefix in ("throughput", "peak_memory", "state_bytes", "latency"):
            if self.name.startswith(prefix):
                return prefix
        return "latency" if self.phase is not None else None

    @property
    def is_measured(self) -> bool:
        return self.measured_metric is not None

    @property
    def known_before_training(self) -> bool:
        """Whether the untrained model already has this objective's value (a hardware
        measurement, or the parameter count): training does not change it."""
        return self.is_measured or self.name == "params"

    @property
    def direction(self) -> str:
        if self.goal:
            return self.goal
        if self.name.startswith("accuracy_"):  # one part of a task of several (mqar_sweep)
            return "maximize"
        if self.measured_metric == "throughput":
            return "maximize"
        return KNOWN_METRICS.get(self.name, "minimize")


class FidelityConfig(_Strict):
    """Multi-fidelity (asynchronous successive halving over training steps): rungs at
    min_steps · reduction^k up to training.steps."""

    min_steps: int = Field(ge=1, le=MAX_STEPS)
    reduction: int = Field(default=3, ge=2, le=MAX_REDUCTION)


class MeasureConfig(_Strict):
    """Where latency objectives are timed when not in the training workers: one dedicated
    measurement process on `device` with `threads` torch threads."""

    device: str = "cpu"
    threads: int = Field(default=1, ge=1, le=MAX_THREADS)

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not re.fullmatch(r"cpu|cuda(:\d+)?", value):
            raise ValueError(f"unknown measurement device {brief(value)}{FIX}use cpu, cuda or "
                             "cuda:N")
        return value


class ReplicatesConfig(_Strict):
    """Accuracy replicates (`search.replicates`): when a search ends normally, the completed
    trials on the front (`for: front`), on it and within noise of it (`for: near_front`, the
    default), or all of them (`for: all`), are trained again with other seeds, `seeds`
    trainings in all (the original counted), and their trained objectives become the mean with
    a 95 % interval (nas.orchestrator.replicates)."""

    seeds: int = Field(ge=2, le=MAX_REPLICATE_SEEDS)
    # `for` is a Python keyword: the field is `scope`, written `for:` in the YAML
    scope: Literal["front", "near_front", "all"] = Field(default="near_front", alias="for")


class EvaluateConfig(_Strict):
    """How trials are evaluated (`search.evaluate`): by training (the default, no section), or
    replayed from a tabular benchmark, `table: PATH` (relative to the space file; a file
    written by nas.tabular): nas.orchestrator.replay_executor."""

    table: str = Field(min_length=1, max_length=4096)
    # what a replayed trial costs: the device-seconds its training recorded, or the steady
    # cost `nas table measure` timed (train_seconds_steady: steps x the undisturbed step time)
    charge: Literal["recorded", "steady"] = "recorded"


class SearchConfig(_Strict):
    # a registered strategy (nas.strategies.list_strategies: nsga2, tpe, random, gp, yours);
    # checked against the registry when the space compiles
    strategy: str | None = Field(default=None, pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$",
                                 max_length=64)
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    population_size: int = Field(default=16, ge=2, le=MAX_POPULATION)
    keep_weights: Literal["front", "all", "none"] = "front"  # trained weights kept as files
    fidelity: FidelityConfig | None = None
    # restarts of a trial whose worker process was lost
    retries: int = Field(default=1, ge=0, le=MAX_RETRIES)
    ray_address: str | None = None  # run trials on this Ray cluster (or --ray-address)
    num_cpus_per_trial: float = Field(default=1, gt=0, le=MAX_DEVICES_PER_TRIAL)  # Ray only
    num_gpus_per_trial: float = Field(default=0, ge=0, le=MAX_DEVICES_PER_TRIAL)  # Ray only
    measure: MeasureConfig | None = None  # time latency there, not in the training workers
    # fresh latency sessions for the final front
    remeasure: int = Field(default=2, ge=0, le=MAX_REMEASURE)
    # seconds of training one trial may take (all its segments), written 90s, 10m, 2h or a
    # number of seconds; past it the trial fails with failure class `timeout`. None: no limit
    trial_timeout: float | None = Field(default=None, gt=0, le=MAX_TRIAL_TIMEOUT)
    # retrain the final front with other seeds: mean and interval of the trained objectives
    replicates: ReplicatesConfig | None = None
    # answer trials from a tabular benchmark instead of training them
    evaluate: EvaluateConfig | None = None
    # a child of a trained candidate (evolution, local, predictor) starts from its parent's
    # weights where layers match (nas.evaluate.inherit)
    inherit: bool = False

    @field_validator("trial_timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"cannot read the duration {brief(value)}{FIX}write it as 90s, 10m, "
                             "2h or a number of seconds")
        return float(match[1]) * _DURATION_SECONDS[(match[2] or "").lower() or None]


class TaskConfig(BaseModel):
    """`kind` plus the task's own keys, which the task itself validates."""

    model_config = ConfigDict(extra="allow", frozen=True)
    kind: str


class ProxyConfig(_Strict):
    """A cheap proxy task trained beside the target by every trial, so the search can report
    how well it ranks the candidates (the fidelity ladder)."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=32)
    task: TaskConfig
    steps: int | None = Field(default=None, ge=1, le=MAX_STEPS)  # default: training.steps


class SpaceFile(_Strict):
    name: str = Field(pattern=f"^{NAME_PATTERN}$", max_length=MAX_NAME)
    description: str = ""
    task: TaskConfig
    model: ModelConfig
    training: TrainingConfig
    objectives: list[ObjectiveConfig] = Field(min_length=1)
    search: SearchConfig = Field(default_factory=SearchConfig)
    constraints: list[str] = Field(default_factory=list)  # nas.expr conditions on each candidate
    proxies: list[ProxyConfig] = Field(default_factory=list)
    budget: str | None = None
    storage: str | None = None


def describe_validation_error(error: ValidationError) -> tuple[str, str, str]:
    """(key, problem, fix) for the first error pydantic found, in a user's words.

    `key` is the dotted path of the offending value (list items by index), ready to be located
    in the YAML; the problem says what was found, the fix what to write instead."""
    found = error.errors()
    # a misspelt key also makes the right one "missing": name the misspelling first
    first = next((e for e in found if e["type"] == "extra_forbidden"), found[0])
    loc = [str(part) for part in first["loc"] if part != "[key]"]
    key = ".".join(loc) or "(top level)"
    kind, got = first["type"], first.get("input")
    if kind == "extra_forbidden":
        known = _known_keys(loc[:-1])
        fix = "remove it or fix its spelling"
        if known:
            fix += f"; keys allowed here: {', '.join(known)}"
        return key, f"unknown key {brief(loc[-1])}{did_you_mean(loc[-1], known)}", fix
    if kind == "missing":
        parent = ".".join(loc[:-1]) or "the top level"
        return key, "required key is missing", f"add `{loc[-1]}:` under {parent}"
    if key.startswith("name") and kind == "string_pattern_mismatch":
        return key, (f"{brief(got)} is no space name: a name may use letters, digits, '_', "
                     "'-' and '.', and starts with a letter, digit or '_'"), "rename it"
    if kind == "literal_error":
        allowed = re.findall(r"'([^']*)'", str(first.get("ctx", {}).get("expected", "")))
        return (key, f"unknown value {brief(got)}{did_you_mean(got, allowed)}",
                f"use one of {', '.join(allowed)}")
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return key, f"expected a mapping (key: value lines), got {_kind_of(got)}", (
            "write `key: value` pairs under it, or `{key: value, ...}`")
    if kind == "list_type":
        return key, f"expected a list, got {_kind_of(got)}", "write `[a, b]` or `- a` lines"
    if kind in ("string_type", "str_type"):
        return key, f"expected text, got {_kind_of(got)}", "quote it: \"...\""
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return key, f"expected a whole number, got {brief(got)}", type_fault(got, int)[1]
    if kind in ("float_type", "float_parsing"):
        return key, f"expected a number, got {brief(got)}", type_fault(got, float)[1]
    if kind == "too_short":
        return key, "must not be empty", "give at least one entry"
    if kind in _BOUNDS:
        limit = next(iter(first.get("ctx", {}).values()), "?")
        bound = f"{_BOUNDS[kind]} {limit}"
        return key, f"must be {bound}, got {brief(got)}", f"use a value {bound}"
    if kind == "string_too_long":
        return key, first["msg"].replace("String should", "must"), "shorten it"
    message = str(first["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return key, *split_fix(message)


_BOUNDS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=",
           "less_than": "<"}  # pydantic's error types for Field(ge=...) and the like


def _kind_of(value: Any) -> str:
    """'a list', 'the text 'mqar'', 'nothing' — what a user wrote, in words."""
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, str):
        return f"the text {brief(value)}"
    if isinstance(value, bool):
        return f"the boolean {value}"
    if isinstance(value, int | float):
        return f"the number {brief(value)}"
    return {"list": "a list", "dict": "a mapping"}.get(type(value).__name__,
                                                       type(value).__name__)


def _known_keys(loc: list[str]) -> list[str]:
    """The field names of the model found by walking `loc` down from SpaceFile, if any."""
    model: Any = SpaceFile
    for part in loc:
        if part.isdigit():
            continue  # a list index: the item type is the list's
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = _model_in(field.annotation)
        if model is None:
            return []
    return [field.alias or name for name, field in getattr(model, "model_fields", {}).items()]


def _model_in(annotation: Any) -> Any:
    """The BaseModel class inside an annotation such as `X | None` or `list[X]`, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
