"""Rank agreement (the fidelity ladder's statistics) against published values, and a search that
trains a proxy task beside the target."""

from __future__ import annotations

import io
import json
import math
import random
from itertools import permutations

import pytest

from nas.evaluate.ranking import average_ranks, kendall, proxy_agreement, proxy_names, spearman


def test_against_scipys_documented_examples():
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(0.8207826816681233)
    assert kendall([12, 2, 1, 12, 2], [1, 4, 7, 1, 0]) == pytest.approx(-0.47140452079103173)


def test_ties_share_ranks_and_degenerate_inputs_are_nan():
    assert average_ranks([3.0, 1.0, 3.0, 2.0]) == [3.5, 1.0, 3.5, 2.0]
    assert math.isnan(spearman([1.0], [2.0])) and math.isnan(kendall([1, 1, 1], [1, 2, 3]))


def test_kendall_counts_pairs_like_the_definition():
    rng = random.Random(0)
    for _ in range(20):
        x = [rng.random() for _ in range(6)]
        y = [rng.random() for _ in range(6)]
        sign = [(x[i] - x[j]) * (y[i] - y[j]) for i in range(6) for j in range(i + 1, 6)]
        expected = (sum(s > 0 for s in sign) - sum(s < 0 for s in sign)) / len(sign)
        assert kendall(x, y) == pytest.approx(expected)
    for order in permutations(range(4)):  # a permutation against the identity: ρ = 1 - 6Σd²/(n³-n)
        d2 = sum((a - b) ** 2 for a, b in zip(order, range(4), strict=True))
        assert spearman(list(order), [0, 1, 2, 3]) == pytest.approx(1 - 6 * d2 / 60)


def test_a_search_scores_every_trial_on_its_proxy(tmp_path, tiny_space_text):
    from nas.budget import parse_budget
    from nas.orchestrator.progress import make_reporter
    from nas.orchestrator.search import SearchOptions, run_search
    from nas.searchspace import loads
    from nas.store import COMPLETE, Store

    text = tiny_space_text + (
        "proxies:\n  - {name: short, task: {kind: mqar, vocab_size: 16, seq_len: 12, "
        "num_kv_pairs: 2}, steps: 8}\n")
    url = f"sqlite:///{tmp_path}/nas.db"
    options = SearchOptions(budget=parse_budget("3trials"), storage=url, threads=1)
    log = io.StringIO()
    outcome = run_search(loads(text, "space.yaml"), options, make_reporter("jsonl", log))
    trials = Store(url).trials(outcome.run_name, states=[COMPLETE])
    assert len(trials) == 3 and proxy_names(trials) == ["short"]
    assert all(0 <= t.metrics["short_accuracy"] <= 1 and t.metrics["short_loss"] > 0
               for t in trials)
    [row] = proxy_agreement(trials, ["short"])
    assert row["n"] == 3 and -1 <= row["spearman"] <= 1
    stop = json.loads(log.getvalue().splitlines()[-1])  # --progress jsonl tells programs too
    assert stop["event"] == "stop" and stop["proxies"] == [
        {k: (None if v != v else v) for k, v in row.items()}]
