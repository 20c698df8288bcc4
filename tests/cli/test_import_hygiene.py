"""The query commands start fast because they import nothing heavy: no torch, Optuna, Ray,
matplotlib, pandas or numpy (issue #20: `nas runs`, `nas trials`, `nas pareto` under 1 s).
Checked by the modules loaded, not by timing: a fresh interpreter imports the CLI, runs each
command in-process and lists what `sys.modules` holds (benchmarks/cli_startup.py times them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from nas.store import Store
from tests.cli.test_plot import OBJECTIVES, new_run, spec

HEAVY = ("torch", "optuna", "ray", "matplotlib", "pandas", "numpy", "triton", "scipy")

SCRIPT = textwrap.dedent("""\
    import json, sys
    from typer.testing import CliRunner
    import nas.cli
    commands = json.loads(sys.argv[1])
    url = sys.argv[2]
    loaded = {}
    for args in commands:
        result = CliRunner().invoke(nas.cli.app, [*args, "--storage", url] if args else ["--help"])
        assert result.exit_code == 0, (args, result.output)
        loaded[" ".join(args) or "--help"] = sorted(
            {name.split(".")[0] for name in sys.modules})
    print(json.dumps(loaded))
""")


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('hygiene')}/nas.db"
    store = Store(url)
    run = new_run(store, "demo", OBJECTIVES)
    for number, (acc, lat) in enumerate([(0.5, 2.0), (0.9, 3.0), (0.4, 2.5)]):
        store.start_trial(run.id, number, spec("C-A", 32), worker="w")
        values = {"accuracy": acc, "latency_ms": lat}
        store.complete_trial(run.id, number, values=values, metrics=values,
                             curve=[(10, "loss", 1.0)], device="cpu", device_seconds=1.0,
                             wall_seconds=1.0)
    store.finish_run(run.id, "finished")
    other = new_run(store, "other", OBJECTIVES)  # to compare with demo
    store.start_trial(other.id, 0, spec("A-A", 32), worker="w")
    values = {"accuracy": 0.7, "latency_ms": 1.5}
    store.complete_trial(other.id, 0, values=values, metrics=values, curve=[], device="cpu",
                         device_seconds=2.0, wall_seconds=2.0)
    store.close()
    return url


def test_import_nas_cli_is_light():
    code = "import sys, nas.cli; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    loaded = set(proc.stdout.split())
    assert "nas" in loaded and "typer" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_query_commands_import_nothing_heavy(url):
    commands = [[], ["runs"], ["runs", "--format", "json"], ["trials", "demo"],
                ["trials", "demo", "--format", "csv", "--sort", "latency_ms"],
                ["pareto", "demo"], ["pareto", "demo", "--format", "json"],
                ["show", "demo/1"], ["compare", "demo/0", "demo/1"],
                ["pareto", "demo", "other"], ["compare", "demo", "other", "--format", "json"]]
    env = {k: v for k, v in os.environ.items() if k != "NAS_STORAGE"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(commands), url],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(loaded) == len(commands)
    for command, modules in loaded.items():
        heavy = set(modules) & set(HEAVY)
        assert not heavy, f"`nas {command}` imported {sorted(heavy)}"
