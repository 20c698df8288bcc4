"""One trial, as a worker process runs it: build, time, train, score.

Requests and results are plain frozen data (strings, dicts, numbers), so they pickle across
process and machine boundaries. Latency is measured first, on a copy of the untrained model: it
does not depend on the weights, it is then known even if training diverges, and whatever a
forward under inference_mode caches inside blocks (inference tensors that autograd would later
refuse) stays out of the model that is trained.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from nas.blocks import build_model
from nas.evaluate.device import describe_device
from nas.evaluate.latency import SUPPORTED_PHASES, measure_latency
from nas.evaluate.training import CurvePoint, evaluate, train
from nas.spec import ArchSpec
from nas.tasks import make_task

TRAINING_REQUIRED = ("steps", "batch_size", "lr")
TRAINING_OPTIONAL = ("warmup_fraction", "weight_decay", "grad_clip")
LATENCY_REQUIRED = ("name", "batch", "seq_len")
LATENCY_OPTIONAL = (
    "phase", "warmup", "min_repeats", "max_repeats", "max_seconds", "target_rel_spread",
)
RESERVED_METRICS = (
    "accuracy", "loss", "bits_per_byte", "perplexity", "params", "train_seconds",
)


@dataclass(frozen=True)
class TrialRequest:
    """Everything a worker needs to run one trial.

    `latency` entries look like ``{"name": "latency_ms", "batch": 1, "seq_len": 512,
    "phase": "prefill"}``, optionally with measure_latency's bounds (warmup, min_repeats, ...).
    """

    spec_json: str  # ArchSpec.to_json(); its `training` holds the recipe
    task: dict[str, Any]  # task config, e.g. {"kind": "mqar", "vocab_size": 64}
    latency: tuple[dict[str, Any], ...] = ()
    seed: int = 0
    num_threads: int | None = None  # torch.set_num_threads, if given
    device: str = "cpu"
    eval_examples: int = 1024


@dataclass
class TrialResult:
    """Metrics: accuracy, loss, bits_per_byte, perplexity (all held-out), params, train_seconds,
    and per latency entry `name` (median ms) and f"{name}_spread". The curve holds train_loss
    points plus val_accuracy and val_loss at the last step."""

    metrics: dict[str, float]
    curve: list[CurvePoint] = field(default_factory=list)
    device: str = ""
    wall_seconds: float = 0.0


def run_trial(request: TrialRequest) -> TrialResult:
    """Run `request` to completion. Raises TrialDiverged if training diverges, ValueError on
    an invalid request (checked before any model is built)."""
    start = time.perf_counter()
    if request.num_threads is not None:
        torch.set_num_threads(request.num_threads)
    spec = ArchSpec.from_json(request.spec_json)
    task = make_task(request.task)
    recipe = training_options(spec.training_config)
    timings = [latency_options(entry) for entry in request.latency]
    names = [options["name"] for options in timings]
    if len(set(names)) < len(names):
        raise ValueError(f"latency entries need distinct names, got {names}")
    if spec.vocab_size < task.vocab_size:
        raise ValueError(
            f"spec vocab_size={spec.vocab_size} is smaller than the task's "
            f"vocab_size={task.vocab_size}; fix: set the spec's vocab_size >= {task.vocab_size}"
        )

    torch.manual_seed(request.seed)  # for any block that draws from the global generator
    model = build_model(spec, seed=request.seed, device=request.device)
    metrics: dict[str, float] = {"params": float(model.num_params())}

    if timings:
        timed = copy.deepcopy(model)
        for options in timings:
            name = options.pop("name")
            timing = measure_latency(
                timed, vocab_size=spec.vocab_size, seed=request.seed, **options
            )
            metrics[name] = timing.median_ms
            metrics[f"{name}_spread"] = timing.spread
        del timed

    trained = train(model, task, **recipe, seed=request.seed)
    scores = evaluate(model, task, n_examples=request.eval_examples, seed=request.seed)
    metrics.update(scores, train_seconds=trained.train_seconds)
    curve = [
        *trained.curve,
        (trained.steps, "val_accuracy", scores["accuracy"]),
        (trained.steps, "val_loss", scores["loss"]),
    ]
    return TrialResult(
        metrics=metrics,
        curve=curve,
        device=describe_device(request.device),
        wall_seconds=time.perf_counter() - start,
    )


def training_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """`train` keyword arguments from a spec's training config; ValueError on missing or
    unknown keys."""
    _check_keys("training config", config, TRAINING_REQUIRED, TRAINING_OPTIONAL)
    options: dict[str, Any] = {
        "steps": int(config["steps"]),
        "batch_size": int(config["batch_size"]),
        "lr": float(config["lr"]),
    }
    for key in ("warmup_fraction", "weight_decay"):
        if key in config:
            options[key] = float(config[key])
    if "grad_clip" in config:
        clip = config["grad_clip"]
        options["grad_clip"] = None if clip is None else float(clip)
    return options


def latency_options(entry: Mapping[str, Any]) -> dict[str, Any]:
    """`measure_latency` keyword arguments (plus "name") from one latency entry."""
    _check_keys("latency entry", entry, LATENCY_REQUIRED, LATENCY_OPTIONAL)
    name = entry["name"]
    if not isinstance(name, str) or not name or name in RESERVED_METRICS:
        raise ValueError(
            f"latency entry name {name!r} must be a non-empty string other than "
            f"{', '.join(RESERVED_METRICS)}"
        )
    phase = entry.get("phase", "prefill")
    if phase not in SUPPORTED_PHASES:
        raise ValueError(
            f"latency entry {name!r}: unsupported phase {phase!r}; "
            f"supported: {', '.join(SUPPORTED_PHASES)}"
        )
    return dict(entry)


def _check_keys(
    what: str, given: Mapping[str, Any], required: tuple[str, ...], optional: tuple[str, ...]
) -> None:
    missing = [key for key in required if key not in given]
    unknown = sorted(set(given) - set(required) - set(optional))
    if missing or unknown:
        problems = []
        if missing:
            problems.append(f"missing {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown {', '.join(unknown)}")
        raise ValueError(
            f"{what}: {'; '.join(problems)}; accepted keys: {', '.join(required + optional)}"
        )
