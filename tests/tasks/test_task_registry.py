"""make_task / task_vocab_size: config dicts to tasks, with helpful errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nas.tasks import TASK_KINDS, MQARTask, make_task, task_options, task_vocab_size


def test_make_mqar_with_defaults_and_overrides():
    assert make_task({"kind": "mqar"}) == MQARTask()
    task = make_task({"kind": "mqar", "vocab_size": 32, "seq_len": 48, "num_kv_pairs": 4})
    assert (task.vocab_size, task.seq_len, task.num_kv_pairs) == (32, 48, 4)


def test_unknown_kind_lists_known_kinds():
    with pytest.raises(ValueError, match="known kinds: mqar"):
        make_task({"kind": "copying"})
    with pytest.raises(ValueError, match="needs a 'kind'"):
        make_task({"vocab_size": 32})


def test_unknown_key_lists_accepted_keys():
    with pytest.raises(ValueError, match="'num_pairs' .did you mean 'num_kv_pairs'.*; fix: use "
                                         "only the accepted keys: kind, vocab_size"):
        make_task({"kind": "mqar", "num_pairs": 4})


def test_invalid_values_surface_as_value_error():
    with pytest.raises(ValueError, match="num_kv_pairs"):
        make_task({"kind": "mqar", "vocab_size": 8, "num_kv_pairs": 8})


def test_registry_and_options():
    assert "mqar" in TASK_KINDS
    assert task_options("mqar") == {"vocab_size": 64, "seq_len": 64, "num_kv_pairs": 8}


def test_task_vocab_size_validates_and_needs_no_torch():
    assert task_vocab_size({"kind": "mqar"}) == 64
    assert task_vocab_size({"kind": "mqar", "vocab_size": 128}) == 128
    code = (
        "import sys; from nas.tasks import task_vocab_size; "
        "config = {'kind': 'mqar', 'vocab_size': 16, 'seq_len': 24, 'num_kv_pairs': 3}; "
        "assert task_vocab_size(config) == 16; "
        "assert 'torch' not in sys.modules, 'nas.tasks imported torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
