"""User tasks by entrypoint: the protocol, its error messages, and a real search over one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from nas.tasks import IGNORE_INDEX, PythonTask, make_task

EXAMPLE = Path(__file__).parents[2] / "examples" / "custom_task"


def write_module(folder: Path, name: str, body: str) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(body))


def test_the_example_task_follows_the_protocol():
    task = make_task({"kind": "python", "entrypoint": "sorting:make_task", "path": str(EXAMPLE),
                      "length": 5, "digits": 7})
    assert isinstance(task, PythonTask) and (task.vocab_size, task.seq_len) == (8, 11)
    inputs, targets = task.sample_split(4, torch.Generator().manual_seed(0), "val")
    scored = targets != IGNORE_INDEX
    assert scored.sum(dim=1).tolist() == [5] * 4
    # each scored target is the next input token, and the scored run is the sorted prefix
    assert torch.equal(targets[scored], inputs[:, 6:].reshape(-1))
    assert torch.equal(inputs[:, 6:], inputs[:, :5].sort(dim=1).values)


@pytest.mark.parametrize("config,message", [
    ({"entrypoint": "no_colon"}, "must look like 'package.module:function'"),
    ({"entrypoint": "surely_not_a_module_xyz:f"}, "cannot import 'surely_not_a_module_xyz'"),
    ({"entrypoint": "tasks_ok:missing"}, "has no callable 'missing'; fix: name one of its "
     "callables: tasks_ok:broken, tasks_ok:make, tasks_ok:not_a_task"),
    ({"entrypoint": "tasks_ok:mak"}, "has no callable 'mak' (did you mean 'make'?)"),
    ({"entrypoint": "tasks_ok:make", "colour": 3}, "unexpected keyword argument 'colour'; fix: "
     "give the task only the keys make takes: (length=4)"),
    ({"entrypoint": "tasks_ok:broken", "length": 3}, "broken raised RuntimeError: boom; fix: "
     "correct the task's keys (length=3) or tasks_ok:broken itself"),
    ({"entrypoint": "tasks_ok:not_a_task"}, "lacks vocab_size, seq_len, sample"),
    ({}, "needs `entrypoint:"),
])
def test_bad_python_tasks_say_what_is_wrong(tmp_path, config, message):
    write_module(tmp_path, "tasks_ok", """
        from collections import OrderedDict  # imported: not one of its own callables
        def make(length=4):
            raise AssertionError("not called in these cases")
        def broken(length=4):
            raise RuntimeError("boom")
        def not_a_task():
            return object()
    """)
    with pytest.raises(ValueError) as info:
        make_task({"kind": "python", "path": str(tmp_path), **config})
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)


@pytest.mark.parametrize("batch,message", [
    ("(x, y.float())", "targets must be int64"),
    ("(x[:, :-1], y)", r"inputs have shape \(2, 5\)"),
    ("(x + 10, y)", r"inputs must lie in \[0, vocab_size=4\)"),
    ("(x, torch.full_like(y, -100))", "score no position"),
    ("x", r"must return \(inputs, targets\)"),
])
def test_a_wrong_batch_fails_with_a_message(tmp_path, batch, message):
    module = "tasks_bad_" + re.sub(r"\W", "_", tmp_path.name)  # fresh per case: no import cache
    write_module(tmp_path, module, f"""
        import torch
        class Bad:
            vocab_size, seq_len = 4, 6
            def sample(self, batch_size, generator):
                x = torch.randint(0, 4, (batch_size, 6), generator=generator)
                y = x.clone()
                return {batch}
        def make():
            return Bad()
    """)
    task = make_task({"kind": "python", "entrypoint": f"{module}:make", "path": str(tmp_path)})
    with pytest.raises(ValueError, match=message):
        task.sample(2, torch.Generator().manual_seed(0))


def test_a_search_trains_on_a_user_task_from_the_current_folder(tmp_path):
    """The example's space, shortened, run by the CLI from the folder that holds sorting.py:
    the workers (spawned processes) import the user's module too."""
    for name in ("sorting.py", "space.yaml"):
        text = (EXAMPLE / name).read_text()
        if name == "space.yaml":
            text = text.replace("steps: 300", "steps: 30").replace("seq_len: 64", "seq_len: 16")
        (tmp_path / name).write_text(text)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "nas", "search", "space.yaml", "--budget", "2trials",
         "--storage", "sqlite:///nas.db", "--name", "custom-sort"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    trials = subprocess.run(
        [sys.executable, "-m", "nas", "trials", "custom-sort", "--storage", "sqlite:///nas.db",
         "--format", "json"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert trials.returncode == 0, trials.stderr
    assert trials.stdout.count('"COMPLETE"') == 2, trials.stdout
