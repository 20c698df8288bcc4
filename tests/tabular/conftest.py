"""A grid run with replicates, built once per session, that the tabular tests export."""

from __future__ import annotations

import pytest

from nas.budget import parse_budget
from nas.orchestrator.progress import NullReporter
from nas.orchestrator.search import SearchOptions, run_search
from nas.searchspace import loads
from nas.store import Store

GRID = """\
name: table
task: {kind: mqar, vocab_size: 16, seq_len: 16, num_kv_pairs: 2}
model:
  d_model: 16
  n_layers: 1
  token_mixers: {short_conv: {kernel_size: {choice: [2, 3]}}}
  channel_mixer: {kind: {choice: [mlp, swiglu]}, expansion: 2}
training: {steps: 6, batch_size: 4, lr: 3.0e-3}
objectives: [{name: accuracy}, {name: params, goal: minimize}]
search: {strategy: grid, seed: 5, replicates: {seeds: 2, for: all}}
"""


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("table")
    url = f"sqlite:///{folder}/nas.db"
    options = SearchOptions(budget=parse_budget("100trials"), storage=url, threads=1)
    outcome = run_search(loads(GRID, "space.yaml"), options, NullReporter())
    return Store(url), outcome.run_name, folder


