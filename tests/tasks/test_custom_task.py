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
                      "length": 5, "digits": 7}, allow_code=True)
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
        make_task({"kind": "python", "path": str(tmp_path), **config}, allow_code=True)
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
    task = make_task({"kind": "python", "entrypoint": f"{module}:make", "path": str(tmp_path)},
                     allow_code=True)
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
         "--storage", "sqlite:///nas.db", "--name", "custom-sort", "--allow-code"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    trials = subprocess.run(
        [sys.executable, "-m", "nas", "trials", "custom-sort", "--storage", "sqlite:///nas.db",
         "--format", "json"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert trials.returncode == 0, trials.stderr
    assert trials.stdout.count('"COMPLETE"') == 2, trials.stdout


def test_without_allow_code_nothing_is_imported_and_search_refuses(tmp_path):
    """validate reads the task's source only; search stops before anything runs, naming the
    key and the file to trust; NAS_ALLOW_CODE=1 is the switch too."""
    for name in ("sorting.py", "space.yaml"):
        (tmp_path / name).write_text((EXAMPLE / name).read_text())
    (tmp_path / "sorting.py").write_text("open('IMPORTED', 'w').close()\n"
                                         + (EXAMPLE / "sorting.py").read_text())
    env = {k: v for k, v in os.environ.items() if k != "NAS_ALLOW_CODE"}
    env["OMP_NUM_THREADS"] = "1"

    def nas(*args):
        return subprocess.run([sys.executable, "-m", "nas", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)

    assert nas("validate", "space.yaml").returncode == 0
    refused = nas("search", "space.yaml", "--budget", "1trials", "--storage", "sqlite:///n.db")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert refused.stderr.count("\n") == 1 and "task.entrypoint" in refused.stderr
    assert "if you trust" in refused.stderr and "--allow-code" in refused.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sorting.py", "space.yaml"]


def test_workers_import_a_user_task_only_when_the_request_allows_it(tmp_path, tiny_space_text):
    """The permission travels with each trial request (never from the environment): without
    it the factory, run_trial (a task's or a proxy's python task) and a local worker process
    refuse, naming the module's file, and nothing is imported; with it the worker imports the
    module and trains."""
    from dataclasses import replace

    import optuna

    from nas.evaluate.trial import TrialRequest, run_trial
    from nas.orchestrator.executor import LocalExecutor
    from nas.orchestrator.executor_base import TrialFailed
    from nas.searchspace import loads

    module = "usertask_" + re.sub(r"\W", "_", tmp_path.name)
    marker = tmp_path / "IMPORTED"
    write_module(tmp_path, module, f"""
        open({str(marker)!r}, "a").close()
        from nas.tasks import MQARTask
        def make():
            return MQARTask(vocab_size=16, seq_len=24, num_kv_pairs=3)
    """)
    config = {"kind": "python", "entrypoint": f"{module}:make", "path": str(tmp_path)}
    refusal = rf"{module}:make: running code from {re.escape(str(tmp_path))}/{module}\.py " \
              r"needs your permission.*rerun with --allow-code"
    with pytest.raises(ValueError, match=refusal):
        make_task(config)
    space = loads(tiny_space_text)
    spec = space.sample(optuna.create_study().ask())
    request = TrialRequest(spec_json=spec.to_json(), task=config, num_threads=1,
                           eval_examples=16)
    proxied = replace(request, task=space.task,
                      proxies=({"name": "p", "task": config, "steps": 2},))
    for each in (request, proxied):
        with pytest.raises(ValueError, match=refusal):
            run_trial(each)
    assert module not in sys.modules and not marker.exists()
    executor = LocalExecutor(1, threads=1)
    try:
        with pytest.raises(TrialFailed, match=refusal):
            executor.submit(request).result(timeout=300)
        assert not marker.exists()
        done = executor.submit(replace(request, allow_code=True)).result(timeout=300)
        assert "accuracy" in done.result.metrics and marker.exists()
    finally:
        executor.shutdown()
    assert module not in sys.modules  # the worker imported it, not this process


@pytest.mark.parametrize("entrypoint", ["os:system", "yaml:unsafe_load", "nas.cli:app"])
def test_the_import_itself_refuses_what_no_space_may_name(entrypoint):
    """The floor under --allow-code: whoever calls it, load_entrypoint never imports the
    standard library, an installed package or nas itself as a task."""
    from nas.tasks.custom import load_entrypoint

    with pytest.raises(ValueError, match="standard library|installed package|nas itself"):
        load_entrypoint(entrypoint)
