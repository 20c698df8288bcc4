"""One trial, as a worker process runs it: build, time, train, score.

Requests and results are plain frozen data (strings, dicts, numbers), so they pickle across
process and machine boundaries. Latency is measured first, on a copy of the untrained model: it
does not depend on the weights, it is then known even if training diverges, and whatever a
forward under inference_mode caches inside blocks (inference tensors that autograd would later
refuse) stays out of the model that is trained.

A request with `latency_only` trains nothing: it only times the latency entries, in
`latency_sessions` independent sessions (the separate measurement worker of `search.measure`,
and the end-of-search re-measurement of the front, send such requests).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from nas.blocks import build_model
from nas.evaluate.checkpoint import load_checkpoint, save_checkpoint
from nas.evaluate.device import describe_device, device_fingerprint, fingerprint_hash
from nas.evaluate.latency import SUPPORTED_PHASES
from nas.evaluate.measurement import METRICS, TIMED, TIMING_OPTIONS, metric_of, take
from nas.evaluate.training import CurvePoint, evaluate, train
from nas.spec import ArchSpec
from nas.tasks import make_task

TRAINING_REQUIRED = ("steps", "batch_size", "lr")
TRAINING_OPTIONAL = ("warmup_fraction", "weight_decay", "grad_clip", "schedule", "beta2",
                     "weight_decay_on")
LEGACY_SCHEDULE = "cosine"  # a training config without `schedule` was trained with this
LEGACY_BETA2 = 0.98  # and one without `beta2` with this
LEGACY_DECAY_ON = "matrices"  # and one without `weight_decay_on` with this
LATENCY_REQUIRED = ("name", "batch", "seq_len")
LATENCY_OPTIONAL = ("metric", "phase", *TIMING_OPTIONS)
RESERVED_METRICS = (
    "accuracy", "loss", "bits_per_byte", "perplexity", "params", "train_seconds", "steps",
)


@dataclass(frozen=True)
class TrialRequest:
    """Everything a worker needs to run one trial.

    `latency` entries (the measured objectives) look like ``{"name": "latency_ms", "batch": 1,
    "seq_len": 512, "phase": "prefill"}``, optionally with a `metric` (latency, throughput,
    peak_memory, state_bytes: nas.evaluate.measurement) and measure_latency's bounds (warmup,
    min_repeats, ...).
    """

    spec_json: str  # ArchSpec.to_json(); its `training` holds the recipe
    task: dict[str, Any]  # task config, e.g. {"kind": "mqar", "vocab_size": 64}
    latency: tuple[dict[str, Any], ...] = ()
    seed: int = 0
    num_threads: int | None = None  # torch.set_num_threads, if given
    device: str = "cpu"
    eval_examples: int = 1024
    weights_file: str | None = None  # where to save the trained weights (safetensors), if kept
    # Multi-fidelity segments: train up to `stop_step` of the schedule (None: to the end),
    # resuming from `checkpoint_in` if given (latency was measured by the first segment), and
    # leave a checkpoint at `checkpoint_out` when stopping before the end.
    stop_step: int | None = None
    checkpoint_in: str | None = None
    checkpoint_out: str | None = None
    # Earlier latency measurements of this architecture (the driver's latency cache), any
    # device: dicts with fingerprint_hash, phase, batch, seq_len, median_ms, spread, repeats.
    # One taken on this worker's fingerprint at the same shape is used instead of measuring.
    latency_cache: tuple[dict[str, Any], ...] = ()
    # Proxy tasks of the fidelity ladder ({"name", "task", "steps"}), each trained on a fresh
    # copy of the architecture after the target (on a trial's last segment): their held-out
    # scores are reported as metrics f"{name}_accuracy" and f"{name}_loss".
    proxies: tuple[dict[str, Any], ...] = ()
    # Time the latency entries and nothing else (no training, no scores): see `run_latency`.
    latency_only: bool = False
    latency_sessions: int = 1  # latency_only: independent sessions, each a full measurement
    # Seconds of training this segment may take (what is left of `search.trial_timeout`);
    # past it training raises TrialTimedOut. None: no limit.
    time_limit: float | None = None
    # weight inheritance (nas.evaluate.inherit): the parent trial's number, spec and weights
    parent: int | None = None
    parent_spec_json: str | None = None
    parent_weights: str | None = None
    # The user's permission to import and run the code the request names (a python task's
    # entrypoint, its proxies', a mixer given by import path): `--allow-code`, given to the
    # driver and carried here explicitly, so a worker never imports user code for a run that
    # was not allowed to (see `refuse_user_code`).
    allow_code: bool = False


@dataclass
class TrialResult:
    """Metrics: accuracy, loss, bits_per_byte, perplexity (all held-out), params, train_seconds,
    and per latency entry `name` (in its metric's unit: median ms for latency) and
    f"{name}_spread" (relative). The curve holds train_loss points plus val_accuracy and
    val_loss at the last step."""

    metrics: dict[str, float]
    curve: list[CurvePoint] = field(default_factory=list)
    device: str = ""
    wall_seconds: float = 0.0
    weights: tuple[int, str] | None = None  # (bytes, sha256) of request.weights_file, if saved
    fingerprint: dict[str, Any] = field(default_factory=dict)  # of the device that measured
    measured: list[dict[str, Any]] = field(default_factory=list)  # fresh latencies, for the cache
    # The architecture's analytic costs at the task's seq_len (params, seq_len, flops_per_token,
    # state_bytes), from the model the worker built: the driver stores them once per
    # architecture (nas_architectures) without building the model itself.
    costs: dict[str, float] | None = None


def run_trial(request: TrialRequest) -> TrialResult:
    """Run `request` to completion (only its latency when `latency_only`). Raises TrialDiverged
    if training diverges, ValueError on an invalid request (checked before any model is
    built)."""
    if request.latency_only:
        return run_latency(request)
    start = time.perf_counter()
    if request.num_threads is not None:
        torch.set_num_threads(request.num_threads)
    spec = ArchSpec.from_json(request.spec_json)
    refuse_user_code(request, spec)
    task = make_task(request.task, allow_code=request.allow_code)
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
    seq_len = int(request.task.get("seq_len", 128))
    costs = {"params": int(model.num_params()), "seq_len": seq_len,
             "flops_per_token": float(model.flops_per_token(seq_len)),
             "state_bytes": int(model.state_bytes(seq_len))}
    resume = None
    if request.checkpoint_in is not None:
        resume = load_checkpoint(request.checkpoint_in, model)
        timings = []  # measured by the trial's first segment

    fingerprint = device_fingerprint(request.device)
    found, measured = measure_entries(
        model, timings, vocab_size=spec.vocab_size, seed=request.seed,
        fingerprint_key=fingerprint_hash(fingerprint), cache_rows=request.latency_cache)
    metrics.update(found)
    if resume is None and request.parent_weights is not None:
        metrics.update(_inherit_from_parent(model, spec, request))

    trained = train(model, task, **recipe, seed=request.seed, stop_step=request.stop_step,
                    resume=resume, time_limit=request.time_limit)
    if trained.resume is not None and request.checkpoint_out is not None:
        save_checkpoint(request.checkpoint_out, model, trained.resume)
    scores = evaluate(model, task, n_examples=request.eval_examples, seed=request.seed)
    metrics.update(scores, train_seconds=trained.train_seconds, steps=float(trained.steps))
    curve = [
        *trained.curve,
        (trained.steps, "val_accuracy", scores["accuracy"]),
        (trained.steps, "val_loss", scores["loss"]),
    ]
    if trained.resume is None:
        for proxy in request.proxies:
            metrics.update(_train_proxy(spec, proxy, recipe, request))
    weights = None
    if request.weights_file is not None and trained.resume is None:  # fully trained only
        weights = _keep_weights(model, request.weights_file, spec)
    return TrialResult(
        metrics=metrics,
        curve=curve,
        device=describe_device(request.device),
        wall_seconds=time.perf_counter() - start,
        weights=weights,
        fingerprint=fingerprint,
        measured=measured,
        costs=costs,
    )


def run_latency(request: TrialRequest) -> TrialResult:
    """Time the request's latency entries on `request.device` and train nothing.

    Session 1 may be answered from `latency_cache` (this device's fingerprint, same shape);
    sessions 2.. always measure, each on a fresh copy of the model with its own input seed.
    `metrics` holds session 1's figures (`name`, `name_spread`); `measured` every fresh
    measurement, each tagged with its entry's `name` and its `session` (1-based).
    """
    start = time.perf_counter()
    if request.num_threads is not None:
        torch.set_num_threads(request.num_threads)
    if request.latency_sessions < 1:
        raise ValueError(f"latency_sessions must be >= 1, got {request.latency_sessions}")
    spec = ArchSpec.from_json(request.spec_json)
    refuse_user_code(request, spec, tasks=False)
    entries = [latency_options(entry) for entry in request.latency]  # validated before building
    model = build_model(spec, seed=request.seed, device=request.device)
    fingerprint = device_fingerprint(request.device)
    metrics: dict[str, float] = {}
    measured: list[dict[str, Any]] = []
    for session in range(1, request.latency_sessions + 1):
        found, fresh = measure_entries(
            model, entries, vocab_size=spec.vocab_size, seed=request.seed + session - 1,
            fingerprint_key=fingerprint_hash(fingerprint),
            cache_rows=request.latency_cache if session == 1 else ())
        measured += [{**m, "session": session} for m in fresh]
        if session == 1:
            metrics = found
    return TrialResult(metrics=metrics, device=describe_device(request.device),
                       wall_seconds=time.perf_counter() - start, fingerprint=fingerprint,
                       measured=measured)


def refuse_user_code(request: TrialRequest, spec: ArchSpec, tasks: bool = True) -> None:
    """ValueError (nothing imported) when running `request` would import user code — a mixer
    of `spec` named by import path, or (with `tasks`) a python task, its own or a proxy's —
    and the request does not carry the user's permission (`allow_code`). Checked before
    anything is built; `make_task` refuses a python task without it too."""
    if request.allow_code:
        return
    from nas.tasks import PYTHON_TASK
    from nas.tasks.custom import code_not_allowed
    from nas.usercode import spec_refusal

    problem = spec_refusal(spec, "the trial's architecture")
    if problem is not None:
        raise ValueError(problem)
    configs = [request.task, *(proxy.get("task") or {} for proxy in request.proxies)]
    for config in configs if tasks else ():
        if isinstance(config, Mapping) and config.get("kind") == PYTHON_TASK:
            raise ValueError(code_not_allowed(config.get("entrypoint"), config.get("path")))


def _inherit_from_parent(model: torch.nn.Module, spec: ArchSpec,
                         request: TrialRequest) -> dict[str, float]:
    """Start `model` from the parent's weights where layers match (nas.evaluate.inherit); the
    metrics that say so. A parent whose file is gone (pruned, another host) gives nothing."""
    from nas.evaluate.inherit import inherit

    metrics = {"inherited_from": float(request.parent)} if request.parent is not None else {}
    if request.parent_spec_json is None or not os.path.isfile(request.parent_weights):
        return {**metrics, "inherited_share": 0.0, "inherited_layers": 0.0}
    got = inherit(model, spec, ArchSpec.from_json(request.parent_spec_json),
                  request.parent_weights)
    return {**metrics, "inherited_share": got.share, "inherited_layers": float(len(got.layers))}


def _train_proxy(spec: ArchSpec, proxy: Mapping[str, Any], recipe: dict[str, Any],
                 request: TrialRequest) -> dict[str, float]:
    """Train the architecture afresh on a proxy task (its vocabulary widened where the proxy's
    is larger) and score it: {name_accuracy, name_loss}."""
    task = make_task(proxy["task"], allow_code=request.allow_code)
    proxy_spec = dataclasses.replace(spec, vocab_size=max(spec.vocab_size, task.vocab_size))
    model = build_model(proxy_spec, seed=request.seed, device=request.device)
    options = {**recipe, "steps": proxy.get("steps") or recipe["steps"]}
    train(model, task, **options, seed=request.seed)
    scores = evaluate(model, task, n_examples=request.eval_examples, seed=request.seed)
    name = proxy["name"]
    return {f"{name}_accuracy": scores["accuracy"], f"{name}_loss": scores["loss"]}


def measure_entries(model, entries: list[dict[str, Any]], *, vocab_size: int, seed: int,
                    fingerprint_key: str, cache_rows=()) -> tuple[dict[str, float], list]:
    """(metrics, fresh timings) of the measurement `entries` (validated latency entries):
    metrics[name] in the entry's metric's unit and metrics[name_spread]. A copy of the
    untrained `model` is measured where neither `cache_rows` (latency-cache rows) nor an earlier
    entry holds this fingerprint and shape; each fresh timing carries its entry's `name` and
    `value`, once per timed entry that used it. A timed entry also gets
    metrics[name_contended], 1.0 when other work competed with its timing (0.0 when none did;
    absent where that is not known)."""
    cache = {(c["fingerprint_hash"], c["phase"], c["batch"], c["seq_len"]): c
             for c in cache_rows}
    metrics: dict[str, float] = {}
    measured, spent, fresh = [], None, set()
    for entry in entries:
        options = dict(entry)
        name = options.pop("name")
        spent = spent if spent is not None else copy.deepcopy(model)
        taken = take(spent, options, vocab_size=vocab_size, seed=seed,
                     fingerprint_key=fingerprint_key, cache=cache)
        shape = (fingerprint_key, options.get("phase") or "prefill", options["batch"],
                 options["seq_len"])
        if taken.timing is not None:  # timed now: later entries of this shape reuse it
            cache[shape] = taken.timing
            fresh.add(shape)
        if shape in fresh and metric_of(options) in TIMED:
            measured.append({**cache[shape], "name": name, "value": taken.value})
        metrics[name] = taken.value
        metrics[f"{name}_spread"] = taken.spread
        if taken.contended is not None:
            metrics[f"{name}_contended"] = float(taken.contended)
    return metrics, measured


def _keep_weights(model: torch.nn.Module, path: str, spec: ArchSpec) -> tuple[int, str] | None:
    """Save the trained weights; None (with a warning on the worker's stderr) when they cannot
    be written, e.g. a full disk: the trial's results count all the same, only without
    weights to export."""
    from nas.export.weights import save_weights

    try:
        return save_weights(model, path, metadata={"arch_hash": spec.arch_hash, "format": "pt"})
    except Exception as exc:  # noqa: BLE001 - OSError, or safetensors' own error for one
        warnings.warn(f"weights not kept ({path}): {exc}", RuntimeWarning, stacklevel=2)
        try:
            os.remove(path)
        except OSError:
            pass
        return None


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
    options["schedule"] = str(config.get("schedule", LEGACY_SCHEDULE))
    options["beta2"] = float(config.get("beta2", LEGACY_BETA2))
    options["weight_decay_on"] = str(config.get("weight_decay_on", LEGACY_DECAY_ON))
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
    metric = metric_of(entry)
    if metric not in METRICS:
        raise ValueError(f"latency entry {name!r}: unknown metric {metric!r}; "
                         f"supported: {', '.join(METRICS)}")
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
