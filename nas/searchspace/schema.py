"""The structure of a space file, validated with pydantic.

Searchable values are kept raw here (`Any`) and parsed into domains by the compiler, which knows
the block registry and can name the key in every error. Every model forbids unknown keys, so a
typo is an error that lists the keys that are allowed, never silently ignored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

LATENCY_PHASES = ("prefill", "decode", "train_step")
KNOWN_METRICS = {
    "accuracy": "maximize",
    "loss": "minimize",
    "bits_per_byte": "minimize",  # loss / ln 2 (bits per token; per byte for the lm task)
    "perplexity": "minimize",  # exp(loss)
    "params": "minimize",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HybridConfig(_Strict):
    full_attention_ratio: Any = None
    placement: Any = "interleave"
    other: Any = None


class ModelConfig(_Strict):
    d_model: Any
    n_layers: Any
    norm: Any = "rmsnorm"
    token_mixers: dict[str, dict[str, Any] | None] = Field(min_length=1)
    hybrid: HybridConfig | None = None
    channel_mixer: dict[str, Any] = Field(default_factory=lambda: {"kind": "swiglu"})


class TrainingConfig(_Strict):
    steps: Any
    batch_size: Any
    lr: Any
    warmup_fraction: Any = 0.1
    weight_decay: Any = 0.0
    grad_clip: Any = 1.0


class ObjectiveConfig(_Strict):
    """One objective. Latency objectives name a phase and a shape; the others are metrics."""

    name: str
    goal: Literal["maximize", "minimize"] | None = None
    phase: Literal["prefill", "decode", "train_step"] | None = None
    batch: int = Field(default=1, ge=1)
    seq_len: int | None = Field(default=None, ge=1)

    @property
    def is_latency(self) -> bool:
        return self.phase is not None or self.name.startswith("latency")

    @property
    def direction(self) -> str:
        return self.goal or KNOWN_METRICS.get(self.name, "minimize")


class SearchConfig(_Strict):
    strategy: Literal["nsga2", "tpe", "random"] | None = None
    seed: int = 0
    population_size: int = Field(default=16, ge=2)


class TaskConfig(BaseModel):
    """`kind` plus the task's own keys, which the task itself validates."""

    model_config = ConfigDict(extra="allow", frozen=True)
    kind: str


class SpaceFile(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$", max_length=64)
    description: str = ""
    task: TaskConfig
    model: ModelConfig
    training: TrainingConfig
    objectives: list[ObjectiveConfig] = Field(min_length=1)
    search: SearchConfig = Field(default_factory=SearchConfig)
    constraints: list[str] = Field(default_factory=list)  # nas.expr conditions on each candidate
    budget: str | None = None
    storage: str | None = None


def describe_validation_error(error: ValidationError) -> tuple[str, str, str]:
    """(key, problem, fix) for the first error pydantic found, in a user's words."""
    first = error.errors()[0]
    loc = [str(part) for part in first["loc"]]
    key = ".".join(loc) or "(top level)"
    kind = first["type"]
    if kind == "extra_forbidden":
        known = _known_keys(loc[:-1])
        fix = "remove it or fix its spelling"
        if known:
            fix += f"; keys allowed here: {', '.join(known)}"
        return key, "unknown key", fix
    if kind == "missing":
        parent = ".".join(loc[:-1]) or "the top level"
        return key, "required key is missing", f"add `{loc[-1]}:` under {parent}"
    if key.startswith("name") and kind == "string_pattern_mismatch":
        return key, "a space name may use letters, digits, '_', '-' and '.'", "rename it"
    return key, first["msg"], ""


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
    return list(getattr(model, "model_fields", {}))


def _model_in(annotation: Any) -> Any:
    """The BaseModel class inside an annotation such as `X | None` or `list[X]`, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
