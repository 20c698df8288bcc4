"""A real finished search whose front kept its trained weights, shared by the export and report
tests (one search per session: it trains three tiny models)."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

KEPT_SPACE = textwrap.dedent("""\
    name: kept
    task: {kind: mqar, vocab_size: 16, seq_len: 24, num_kv_pairs: 3}
    model:
      d_model: {choice: [16, 32]}
      n_layers: 2
      token_mixers:
        attention: {heads: 2}
        short_conv: {kernel_size: 3}
      hybrid:
        full_attention_ratio: {choice: [0, 0.5, 1]}
      channel_mixer: {kind: {choice: [mlp, swiglu]}, expansion: 2}
    training: {steps: 30, batch_size: 8, lr: {loguniform: [2.0e-3, 1.0e-2]}}
    constraints: ["count(attention) <= 1"]
    objectives:
      - {name: accuracy, goal: maximize}
      - {name: latency_ms, goal: minimize, batch: 1, seq_len: 24, phase: prefill}
    search: {strategy: random, seed: 3}
""")


@dataclass(frozen=True)
class KeptRun:
    url: str
    root: Path  # the folder of the database (and of nas-artifacts/)
    name: str


@pytest.fixture(scope="session")
def kept_run(tmp_path_factory) -> KeptRun:
    from nas.budget import parse_budget
    from nas.orchestrator.progress import NullReporter
    from nas.orchestrator.search import SearchOptions, run_search
    from nas.searchspace import load

    root = tmp_path_factory.mktemp("kept")
    (root / "kept.yaml").write_text(KEPT_SPACE)
    url = f"sqlite:///{root}/results.db"
    options = SearchOptions(budget=parse_budget("3trials"), storage=url, name="k", threads=1)
    outcome = run_search(load(root / "kept.yaml"), options, NullReporter())
    assert outcome.status == "finished", outcome.message
    return KeptRun(url, root, "k")
