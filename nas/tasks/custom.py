"""User tasks: ``task: {kind: python, entrypoint: "pkg.module:make_task", ...}``.

The entrypoint is a callable that takes the config's other keys as keyword arguments and returns
an object following the Task protocol (nas.tasks.base.Task; subclassing it is optional):

- ``vocab_size: int`` and ``seq_len: int``;
- ``sample(batch_size, generator) -> (inputs, targets)``: int64 tensors (batch_size, seq_len)
  drawn only from `generator`; inputs in [0, vocab_size), targets too or IGNORE_INDEX (-100)
  where a position is not scored. The model's logits at position t are scored against
  ``targets[:, t]`` (cross-entropy for the loss, argmax for accuracy);
- optionally ``sample_split(batch_size, generator, split)`` with split "train" or "val" for a
  fixed held-out set; without it both splits call ``sample`` (evaluation then draws from a
  differently seeded generator).

The module is imported from the normal Python path plus the current directory and, if given,
``path:`` (a folder, relative to the current directory), so a ``mytasks.py`` beside the space
file works when `nas search` runs from that folder. Every process (driver and workers) imports
it the same way, and only with the user's permission (`make_python_task(..., allow_code=True)`:
`--allow-code`, which each trial request carries to its worker). `examples/custom_task/` holds
a worked example.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from types import ModuleType
from typing import Any

from nas.errors import did_you_mean
from nas.tasks.base import IGNORE_INDEX, SPLITS, Task

REQUIRED = ("vocab_size", "seq_len", "sample")
SPELLING = "write entrypoint: \"MODULE:FUNCTION\", e.g. \"mytasks:make_task\""


def load_entrypoint(entrypoint: str, path: str | None = None):
    """The callable named by "module:attribute" (ValueError, with the fix, if it cannot be)."""
    module_name, sep, attribute = str(entrypoint).partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(
            f"python task: entrypoint {entrypoint!r} must look like 'package.module:function'; "
            f"fix: {SPELLING}"
        )
    for folder in (path, os.getcwd()):
        if folder and os.path.abspath(folder) not in map(os.path.abspath, sys.path):
            sys.path.insert(0, os.path.abspath(folder))
    from nas import usercode

    refused = usercode.import_refusal(module_name.strip(), path)
    if refused is not None:
        raise ValueError(f"python task: {refused}; fix: name a function of your own (a module "
                         "beside the space, or in the task's `path:`)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(
            f"python task: cannot import {module_name!r} ({exc}); fix: run nas from the folder "
            "that holds it, set `path:` in the task, or install it"
        ) from None
    target = getattr(module, attribute, None)
    if not callable(target):
        names = callables(module)
        fix = (f"name one of its callables: {', '.join(f'{module_name}:{n}' for n in names)}"
               if names else f"define the function in {module_name}, then {SPELLING}")
        raise ValueError(f"python task: {module_name!r} has no callable {attribute!r}"
                         f"{did_you_mean(attribute, names)}; fix: {fix}")
    return target


def code_not_allowed(entrypoint: object, path: object = None) -> str:
    """Why a python task is not built without the user's permission: 'PROBLEM; fix: FIX',
    naming the entrypoint module's file (found on disk, not imported) where it can be."""
    from nas import usercode

    where = usercode.module_location(str(entrypoint).partition(":")[0].strip(),
                                     path if isinstance(path, str) else None)
    return (f"python task {entrypoint}: running code from {where} needs your permission, and "
            f"it was not given; fix: if you trust {where}, rerun with --allow-code (in Python: "
            "allow_code=True)")


def callables(module: ModuleType, limit: int = 10) -> list[str]:
    """The public functions and classes `module` defines itself (not those it imports), sorted;
    at most `limit`."""
    return sorted(name for name, value in vars(module).items()
                  if not name.startswith("_") and callable(value)
                  and getattr(value, "__module__", None) == module.__name__)[:limit]


def make_python_task(options: dict[str, Any], *, allow_code: bool = False) -> Task:
    """Build a user task from its config keys (entrypoint, optional path, the factory's own).

    This imports and runs user code, so it needs `allow_code` (the user's permission,
    `--allow-code`): without it, ValueError naming the module's file and the fix, and nothing
    is imported."""
    options = dict(options)
    entrypoint = options.pop("entrypoint", None)
    if entrypoint is None:
        raise ValueError(f"python task needs `entrypoint: 'package.module:function'`; "
                         f"fix: {SPELLING}")
    path = options.pop("path", None)
    if not allow_code:
        raise ValueError(code_not_allowed(entrypoint, path))
    factory = load_entrypoint(entrypoint, path)
    task = _call(factory, entrypoint, options)
    missing = [name for name in REQUIRED if not hasattr(task, name)]
    if missing:
        raise ValueError(
            f"python task {entrypoint}: the object it returned lacks {', '.join(missing)}; "
            "a task needs vocab_size, seq_len and sample(batch_size, generator)"
        )
    for name in ("vocab_size", "seq_len"):
        value = getattr(task, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"python task {entrypoint}: {name} must be a positive int, got "
                             f"{value!r}")
    return PythonTask(task, entrypoint)


def _call(factory: Any, entrypoint: str, options: dict[str, Any]) -> Any:
    """`factory(**options)`; ValueError (one line, with the fix) when the options do not fit its
    signature or it raises."""
    name = entrypoint.partition(":")[2]
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as exc:  # an option the factory does not take, or one it needs
        raise ValueError(f"python task {entrypoint}: {exc}; fix: give the task only the keys "
                         f"{name} takes: {inspect.signature(factory)}") from None
    except ValueError:  # no signature to read (a builtin): the call says
        pass
    try:
        return factory(**options)
    except Exception as exc:  # noqa: BLE001 - anything the user's code raises is their error
        said = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        given = ", ".join(f"{k}={v!r}" for k, v in options.items()) or "no arguments"
        raise ValueError(f"{name} raised {said}; fix: correct the task's keys ({given}) or "
                         f"{entrypoint} itself") from None


class PythonTask(Task):
    """A user task behind the Task contract: adds the default `sample_split` where the user's
    object has none, and checks each split's first batch (shape, dtype, range) so a wrong
    batch fails its trial with a message instead of an obscure error inside training."""

    def __init__(self, inner: Any, entrypoint: str) -> None:
        self.inner, self.entrypoint = inner, entrypoint
        self.vocab_size, self.seq_len = inner.vocab_size, inner.seq_len
        self._checked: set[str] = set()

    def sample(self, batch_size, generator):
        return self.sample_split(batch_size, generator, "train")

    def sample_split(self, batch_size, generator, split="train"):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        if hasattr(self.inner, "sample_split"):
            batch = self.inner.sample_split(batch_size, generator, split)
        else:
            batch = self.inner.sample(batch_size, generator)
        if split not in self._checked:
            self._check(batch, batch_size)
            self._checked.add(split)
        return batch

    def _check(self, batch: Any, batch_size: int) -> None:
        import torch  # deferred: importing nas.tasks stays torch-free

        def fail(problem: str) -> None:
            raise ValueError(f"python task {self.entrypoint}: sample() {problem}")

        if not (isinstance(batch, tuple | list) and len(batch) == 2):
            fail("must return (inputs, targets)")
        expected = (batch_size, self.seq_len)
        for name, t in zip(("inputs", "targets"), batch, strict=True):
            if not isinstance(t, torch.Tensor) or t.dtype != torch.long:
                fail(f"{name} must be int64 tensors, got {getattr(t, 'dtype', type(t).__name__)}")
            if tuple(t.shape) != expected:
                fail(f"{name} have shape {tuple(t.shape)}, expected (batch_size, seq_len) = "
                     f"{expected}")
        inputs, targets = batch
        if inputs.min() < 0 or inputs.max() >= self.vocab_size:
            fail(f"inputs must lie in [0, vocab_size={self.vocab_size})")
        scored = targets[targets != IGNORE_INDEX]
        if scored.numel() == 0:
            fail(f"targets score no position (all are IGNORE_INDEX={IGNORE_INDEX})")
        if scored.min() < 0 or scored.max() >= self.vocab_size:
            fail(f"targets must lie in [0, vocab_size={self.vocab_size}) or be {IGNORE_INDEX}")
