"""Train a model on a task, and score it on held-out data.

The recipe, fp32 throughout:

* AdamW, betas (0.9, ``beta2``), eps 1e-8; ``beta2`` defaults to PyTorch's 0.999 (a recipe
  written before the option trained with 0.98). Weight decay (default 0.01) applies, by
  ``weight_decay_on``, to every parameter (``"all"``, the default, as ``torch.optim.AdamW`` on
  ``model.parameters()`` does) or to matrices only (``"matrices"``: parameters with >= 2 dims,
  never biases or norm gains; what a recipe without the option trained with). Seed-paired runs
  (issue #17, BENCHMARKS.md) found the matrices-only rule slower to 0.99 on MQAR than the plain
  rule (5 of 10 seeds slower, none faster), and the plain rule level with a hand-written model.
* Learning rate: linear warmup over the first ``warmup_fraction`` of the steps (default 0: none),
  then, by ``schedule``, the peak held to the end (``"constant"``, the default) or cosine decay
  to 10% of the peak at the last step (``"cosine"``; what a recipe without a schedule, written
  before the option, trained with). Issue #17 chose these defaults by measurement: on MQAR a
  constant lr without warmup, beta2 0.999 and weight decay 0.01 reach 0.99 accuracy in fewer
  steps than the recipe before them (10% warmup, beta2 0.98, no decay); BENCHMARKS.md,
  "Learning speed".
* Gradient-norm clipping at ``grad_clip`` (default 1.0; None or 0 disables it).
* Batches are drawn from a ``torch.Generator`` seeded with ``seed``; held-out evaluation draws
  from one seeded with ``seed + EVAL_SEED_OFFSET``, a stream training never sees, and from the
  task's "val" split (``Task.sample_split``): the same distribution for synthetic tasks, held-out
  text for ``lm``.

Auxiliary losses: when the model has an ``aux_loss()`` method (LanguageModel does) and some of
its modules can set one (a mixture of experts' load-balancing loss), ``model.aux_loss()`` after
each forward is added to the task loss that is backpropagated. The recorded ``train_loss`` stays
the task loss alone, comparable across models with and without such modules. Models without
them take exactly the old path: no extra work per step.

The loss is read back from the device once per ``log_every`` steps, not every step; so a
non-finite loss is noticed at the end of its logging window and raised as TrialDiverged.

Segments (multi-fidelity): ``train(..., steps=S, stop_step=r)`` trains the first r steps of an
S-step schedule and returns the optimizer and data-generator state in ``result.resume``;
``train(..., steps=S, resume=that)`` carries on from step r. A run cut into segments this way
takes exactly the steps, batches and learning rates of one uninterrupted run (the tests check
the weights agree bit for bit on the CPU).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from nas.evaluate.device import model_device
from nas.evaluate.errors import TrialDiverged, TrialTimedOut
from nas.evaluate.scoring import count_correct, loss_metrics, masked_loss
from nas.tasks.base import Task

BETA1 = 0.9
BETA2 = 0.999  # the default second-moment decay (PyTorch's)
EPS = 1e-8
FINAL_LR_FRACTION = 0.1  # cosine decay ends at this share of the peak learning rate
DECAY_SCOPES = ("all", "matrices")  # weight_decay_on: every parameter, or matrices only
SCHEDULES = ("cosine", "constant")  # after the warmup: cosine decay, or the peak held
EVAL_SEED_OFFSET = 1_000_003  # held-out data: a generator stream disjoint from training's

CurvePoint = tuple[int, str, float]  # (step, metric name, value)


@dataclass
class ResumeState:
    """Where a segment of training stopped: the next step, the optimizer's state and the
    training-data generator's state (the model's weights travel separately)."""

    step: int
    optimizer: dict
    generator: torch.Tensor


@dataclass
class TrainResult:
    """What a training run produced. `final_loss` is the mean train loss of the last window;
    `steps` the step reached; `resume` the state to carry on from (None once all steps ran)."""

    curve: list[CurvePoint] = field(default_factory=list)
    steps: int = 0
    train_seconds: float = 0.0
    final_loss: float = math.nan
    resume: ResumeState | None = None


def warmup_steps_for(steps: int, warmup_fraction: float) -> int:
    """Number of warmup steps: `warmup_fraction` of `steps`, rounded."""
    return min(steps, round(warmup_fraction * steps))


def lr_factor(step: int, steps: int, warmup_steps: int, schedule: str = "cosine") -> float:
    """Multiplier of the peak lr used by 0-based `step`: reaches 1 at the last warmup step, then
    FINAL_LR_FRACTION at the last step ("cosine") or stays 1 ("constant")."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step + 1 - warmup_steps) / max(1, steps - warmup_steps)  # (0, 1]
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))  # 1 -> 0
    return FINAL_LR_FRACTION + (1.0 - FINAL_LR_FRACTION) * cosine


def make_optimizer(model: nn.Module, lr: float, weight_decay: float,
                   beta2: float = BETA2, decay_on: str = "all") -> torch.optim.AdamW:
    """AdamW over the trainable parameters, betas (BETA1, beta2); weight decay on every one
    (`decay_on` "all") or on matrices only ("matrices")."""
    params = [p for p in model.parameters() if p.requires_grad]
    if decay_on == "all":
        return torch.optim.AdamW(params, lr=lr, betas=(BETA1, beta2), eps=EPS,
                                 weight_decay=weight_decay)
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    return torch.optim.AdamW(groups, lr=lr, betas=(BETA1, beta2), eps=EPS)


def train(
    model: nn.Module,
    task: Task,
    steps: int,
    batch_size: int,
    lr: float,
    *,
    warmup_fraction: float = 0.0,
    schedule: str = "constant",
    weight_decay: float = 0.01,
    grad_clip: float | None = 1.0,
    beta2: float = BETA2,
    weight_decay_on: str = "all",
    seed: int = 0,
    log_every: int = 10,
    on_log: Callable[[int, str, float], None] | None = None,
    stop_step: int | None = None,
    resume: ResumeState | None = None,
    time_limit: float | None = None,
) -> TrainResult:
    """Train `model` in place for `steps` steps of `batch_size` examples from `task`: all of
    them, or from `resume.step` (default 0) up to `stop_step` (default `steps`) of that schedule.

    Records ``(step, "train_loss", mean loss since the previous record)`` every `log_every`
    steps and at the segment's last step (steps count from 1), also passing each to `on_log`.
    Raises TrialDiverged when a recorded loss is non-finite, TrialTimedOut when training has
    run longer than `time_limit` seconds (checked at each record, so it overruns by at most
    `log_every` steps), ValueError on invalid arguments.
    """
    _check_positive(steps=steps, batch_size=batch_size, lr=lr, log_every=log_every)
    if not 0.0 <= warmup_fraction <= 1.0:
        raise ValueError(f"warmup_fraction must be in [0, 1], got {warmup_fraction}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if not 0.0 <= beta2 < 1.0:
        raise ValueError(f"beta2 must be in [0, 1), got {beta2}")
    if weight_decay_on not in DECAY_SCOPES:
        raise ValueError(f"weight_decay_on must be one of {', '.join(DECAY_SCOPES)}, got "
                         f"{weight_decay_on!r}")
    if grad_clip is not None and grad_clip < 0:
        raise ValueError(f"grad_clip must be >= 0 (0 or None: no clipping), got {grad_clip}")

    first = resume.step if resume is not None else 0
    stop = steps if stop_step is None else stop_step
    if not 0 <= first < stop <= steps:
        raise ValueError(f"cannot train steps {first}..{stop} of a {steps}-step schedule")

    device = model_device(model)
    generator = torch.Generator().manual_seed(seed)
    optimizer = make_optimizer(model, lr, weight_decay, beta2, weight_decay_on)
    if resume is not None:
        generator.set_state(resume.generator)
        optimizer.load_state_dict(resume.optimizer)
    warmup = warmup_steps_for(steps, warmup_fraction)
    result = TrainResult()
    window_sum = torch.zeros((), device=device)  # losses since the last record, summed on device
    window_len = 0
    aux_loss = aux_loss_fn(model)  # None: no auxiliary loss to add

    model.train()
    start = time.perf_counter()
    for step in range(first, stop):
        for group in optimizer.param_groups:
            group["lr"] = lr * lr_factor(step, steps, warmup, schedule)
        inputs, targets = task.sample(batch_size, generator)  # (B, T) each, on CPU
        inputs = inputs.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)

        loss = masked_loss(model(inputs), targets)  # logits (B, T, V) -> scalar; the task loss
        optimizer.zero_grad(set_to_none=True)
        (loss if aux_loss is None else loss + aux_loss()).backward()
        if grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()

        window_sum += loss.detach()
        window_len += 1
        done = step + 1
        if done % log_every == 0 or done == stop:
            mean = (window_sum / window_len).item()  # the only host sync in the loop
            if not math.isfinite(mean):
                raise TrialDiverged(done, mean)
            if time_limit is not None and time.perf_counter() - start > time_limit:
                raise TrialTimedOut(done, time.perf_counter() - start, time_limit)
            result.curve.append((done, "train_loss", mean))
            if on_log is not None:
                on_log(done, "train_loss", mean)
            window_sum.zero_()
            window_len = 0
            result.final_loss = mean

    result.steps = stop
    if stop < steps:
        result.resume = ResumeState(stop, optimizer.state_dict(), generator.get_state())
    result.train_seconds = time.perf_counter() - start  # the .item() above has synced
    return result


def evaluate(
    model: nn.Module,
    task: Task,
    n_examples: int = 1024,
    batch_size: int = 256,
    seed: int = 0,
) -> dict[str, float]:
    """Accuracy and mean loss over the scored positions of `n_examples` held-out examples, with
    what the loss implies (`loss_metrics`: bits_per_byte, per byte of text where the task has a
    ``bytes_per_token``, else per token; perplexity, per token).

    The data come from the task's "val" split (``task.sample_split(..., split="val")``), drawn
    from a generator seeded with ``seed + EVAL_SEED_OFFSET``, so for the same `seed` they never
    coincide with `train`'s batches. Runs under inference_mode in eval mode,
    and puts the model back in the mode it was in.
    """
    _check_positive(n_examples=n_examples, batch_size=batch_size)
    device = model_device(model)
    generator = torch.Generator().manual_seed(seed + EVAL_SEED_OFFSET)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    scored = torch.zeros((), dtype=torch.long, device=device)
    groups = tuple(task.group_names)  # tasks of several parts: accuracy per part too
    part_correct = torch.zeros(len(groups), dtype=torch.long, device=device)
    part_scored = torch.zeros(len(groups), dtype=torch.long, device=device)

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for first in range(0, n_examples, batch_size):
                size = min(batch_size, n_examples - first)
                inputs, targets = task.sample_split(size, generator, split="val")
                inputs, targets = inputs.to(device), targets.to(device)  # (b, T) each
                logits = model(inputs)  # (b, T, V)
                loss_sum += masked_loss(logits, targets, reduction="sum")
                hits, count = count_correct(logits, targets)
                correct += hits
                scored += count
                if groups:
                    rows = torch.tensor(task.row_groups(size), device=device)  # (b,)
                    for g in range(len(groups)):
                        part_hits, part_count = count_correct(logits[rows == g],
                                                              targets[rows == g])
                        part_correct[g] += part_hits
                        part_scored[g] += part_count
    finally:
        model.train(was_training)

    n_scored = max(1, int(scored.item()))
    loss = loss_sum.item() / n_scored
    parts = {f"accuracy_{name}": part_correct[g].item() / max(1, part_scored[g].item())
             for g, name in enumerate(groups)}
    metrics = loss_metrics(loss, getattr(task, "bytes_per_token", None))
    return {"accuracy": correct.item() / n_scored, "loss": loss, **metrics, **parts}


def aux_loss_fn(model: nn.Module) -> Callable[[], torch.Tensor] | None:
    """The model's ``aux_loss`` method, or None when it has none or (a LanguageModel) none of
    its modules can set an auxiliary loss, so the training step skips it entirely."""
    aux_loss = getattr(model, "aux_loss", None)
    if not callable(aux_loss):
        return None
    modules = getattr(model, "aux_loss_modules", None)
    if callable(modules) and not modules():
        return None
    return aux_loss


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")
