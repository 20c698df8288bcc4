"""Shared fixtures: small, valid space files that tests tweak."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import textwrap

import pytest
import torch

# Triton kernels run in its CPU interpreter when there is no GPU. Triton reads this when a
# kernel is first decorated, so it is set before any test imports nas.kernels' Triton modules.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Trained tokenizers are cached on disk; the suite keeps its own (shared by its worker
# processes, which inherit the variable) out of the user's ~/.cache.
if "NAS_CACHE_DIR" not in os.environ:  # worker processes importing this keep the parent's
    os.environ["NAS_CACHE_DIR"] = tempfile.mkdtemp(prefix="nas-test-cache-")
    atexit.register(shutil.rmtree, os.environ["NAS_CACHE_DIR"], True)

TINY_SPACE = textwrap.dedent("""\
    name: tiny
    task: {kind: mqar, vocab_size: 16, seq_len: 24, num_kv_pairs: 3}
    model:
      d_model: {choice: [16, 32]}
      n_layers: {choice: [2, 3]}
      token_mixers:
        attention: {heads: {choice: [2, 4]}, kv_heads: {choice: [1, full]}}
        linear_attention: {heads: 2}
        short_conv: {kernel_size: {choice: [2, 3]}}
      hybrid:
        full_attention_ratio: {choice: [0, 0.5, 1]}
        placement: {choice: [interleave, first, last]}
      channel_mixer: {kind: {choice: [mlp, swiglu]}, expansion: 2}
    training: {steps: 20, batch_size: 8, lr: {loguniform: [1.0e-3, 1.0e-2]}}
    objectives:
      - {name: accuracy, goal: maximize}
      - {name: latency_ms, goal: minimize, batch: 1, seq_len: 32, phase: prefill}
    search: {strategy: nsga2, seed: 0, population_size: 4}
""")


@pytest.fixture
def tiny_space_text() -> str:
    return TINY_SPACE


@pytest.fixture
def tiny_space_file(tmp_path, tiny_space_text):
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny_space_text)
    return path


def python_task_space(space_file, module: str) -> dict:
    """Rewrite `space_file` (the tiny space) so its task is a python task of module `module`,
    written beside it, whose import leaves a file IMPORTED there (so a test can tell whether
    anything imported it); returns the task config written."""
    import json

    folder = space_file.parent
    (folder / f"{module}.py").write_text(
        f"open(__file__.replace('{module}.py', 'IMPORTED'), 'w').close()\n"
        "from nas.tasks import MQARTask\n"
        "def make():\n    return MQARTask(vocab_size=16, seq_len=24, num_kv_pairs=3)\n")
    text = space_file.read_text()
    task_line = text.splitlines()[1]
    assert task_line.startswith("task:")
    task = {"kind": "python", "entrypoint": f"{module}:make", "path": str(folder)}
    space_file.write_text(text.replace(task_line, f"task: {json.dumps(task)}"))
    return task
