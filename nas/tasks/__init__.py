"""Tasks for the accuracy and loss objectives, built from plain config dicts.

    make_task({"kind": "mqar", "vocab_size": 64, "seq_len": 64, "num_kv_pairs": 8})
    make_task({"kind": "lm", "source": "stdlib", "seq_len": 128})   # bytes of real text
    make_task({"kind": "mad"})          # the six MAD synthetic tasks mixed (see nas.tasks.mad)
    make_task({"kind": "python", "entrypoint": "mytasks:make_task", ...},
              allow_code=True)  # user code: nas.tasks.custom; refused without allow_code

Importing this package does not import torch (only `Task.sample` needs it), so an orchestrator
can validate task configs and read their vocabulary size cheaply.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from nas.errors import brief, did_you_mean
from nas.tasks.base import IGNORE_INDEX, SPLITS, Task
from nas.tasks.custom import PythonTask, make_python_task
from nas.tasks.lm import LMTask
from nas.tasks.mad import SUBTASKS as MAD_SUBTASKS
from nas.tasks.mad import (
    MADCompressionTask,
    MADFuzzyRecallTask,
    MADInContextRecallTask,
    MADMemorizationTask,
    MADNoisyRecallTask,
    MADSelectiveCopyTask,
    MADTask,
)
from nas.tasks.mqar import MQARSweepTask, MQARTask

PYTHON_TASK = "python"  # a user task by entrypoint: its options are the factory's own
MAX_OPTION = 10_000_000  # no count or size option of a built-in task goes beyond this
MAX_SEQ_LEN = 1_048_576  # tokens in one sequence

TASK_KINDS: dict[str, type[Task]] = {
    "mqar": MQARTask,
    "mqar_sweep": MQARSweepTask,
    "lm": LMTask,
    **MAD_SUBTASKS,
    "mad": MADTask,
    PYTHON_TASK: PythonTask,
}


def task_options(kind: str) -> dict[str, Any] | None:
    """The config keys a task kind accepts (besides "kind") and their defaults; None for a
    python task, whose keys are its factory's to check."""
    if kind == PYTHON_TASK:
        return None
    return {f.name: f.default for f in dataclasses.fields(_task_class(kind))}


def make_task(config: Mapping[str, Any], *, allow_code: bool = False) -> Task:
    """Build the task a config describes; raises ValueError on an unknown kind or key, and for
    a python task unless `allow_code` (the user's permission to import and run its entrypoint:
    `--allow-code`, carried to workers by TrialRequest.allow_code)."""
    options = dict(config)
    if "kind" not in options:
        raise ValueError(f"task config needs a 'kind'; fix: add kind: one of the known kinds: "
                         f"{', '.join(TASK_KINDS)}")
    kind = options.pop("kind")
    if kind == PYTHON_TASK:
        return make_python_task(options, allow_code=allow_code)
    accepted = task_options(kind)
    _check_bounded(kind, options)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"task {kind!r}: unknown config key(s) {', '.join(map(repr, unknown))}"
            f"{did_you_mean(unknown[0], accepted)}; fix: use only the accepted keys: kind, "
            f"{', '.join(accepted)}"
        )
    return _task_class(kind)(**options)


def _check_bounded(kind: object, options: Mapping[str, Any]) -> None:
    """Every number among a built-in task's options (nested ones too, e.g. `levels`) is finite
    and within MAX_OPTION (seq_len within MAX_SEQ_LEN): a typo such as `seq_len: 1e9` must fail
    when the space loads, not exhaust memory in a trial. ValueError naming the option."""
    stack: list[tuple[str, Any]] = list(options.items())
    while stack:
        where, value = stack.pop()
        if isinstance(value, Mapping):
            stack += [(f"{where}.{k}", v) for k, v in value.items()]
        elif isinstance(value, list | tuple):
            stack += [(f"{where}[{i}]", v) for i, v in enumerate(value)]
        elif isinstance(value, int | float) and not isinstance(value, bool):
            limit = MAX_SEQ_LEN if where.endswith("seq_len") else MAX_OPTION
            if not abs(value) <= limit:  # also NaN
                raise ValueError(f"{kind}: {where} = {brief(value)} is beyond what nas builds "
                                 f"(at most {limit:,}); fix: check for a typo")


def task_vocab_size(config: Mapping[str, Any], *, allow_code: bool = False) -> int:
    """The vocabulary size a task config implies (validates it; samples nothing)."""
    return make_task(config, allow_code=allow_code).vocab_size


def _task_class(kind: str) -> type[Task]:
    cls = TASK_KINDS.get(kind)
    if cls is None:
        raise ValueError(f"unknown task kind {kind!r}{did_you_mean(kind, TASK_KINDS)}; fix: use "
                         f"one of the known kinds: {', '.join(TASK_KINDS)}")
    return cls


__all__ = [
    "IGNORE_INDEX",
    "SPLITS",
    "TASK_KINDS",
    "LMTask",
    "MADCompressionTask",
    "MADFuzzyRecallTask",
    "MADInContextRecallTask",
    "MADMemorizationTask",
    "MADNoisyRecallTask",
    "MADSelectiveCopyTask",
    "MADTask",
    "MQARSweepTask",
    "MQARTask",
    "PYTHON_TASK",
    "PythonTask",
    "Task",
    "make_task",
    "task_options",
    "task_vocab_size",
]
