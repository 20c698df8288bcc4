"""MQAR at several levels of difficulty as one task, scored per level."""

from __future__ import annotations

import pytest
import torch

from nas.tasks import IGNORE_INDEX, MQARSweepTask, MQARTask, make_task

LEVELS = [{"num_kv_pairs": 2, "seq_len": 12}, {"num_kv_pairs": 4, "seq_len": 20},
          {"num_kv_pairs": 3, "seq_len": 16, "vocab_size": 16}]


def test_rows_cycle_through_the_levels_each_a_valid_mqar_row_padded_right():
    task = make_task({"kind": "mqar_sweep", "vocab_size": 32, "levels": LEVELS})
    assert isinstance(task, MQARSweepTask) and task.seq_len == 20
    assert task.group_names == ("kv2_t12", "kv4_t20", "kv3_t16_v16")
    inputs, targets = task.sample(7, torch.Generator().manual_seed(0))
    assert inputs.shape == targets.shape == (7, 20)
    for row, level in enumerate(task.row_groups(7)):
        n, length = LEVELS[level]["num_kv_pairs"], LEVELS[level]["seq_len"]
        vocab = LEVELS[level].get("vocab_size", 32)
        x, y = inputs[row], targets[row]
        assert (x[length:] == 0).all() and (y[length:] == IGNORE_INDEX).all()  # padding
        assert int((y != IGNORE_INDEX).sum()) == n and int(x.max()) < vocab
        pairs = dict(zip(x[0:2 * n:2].tolist(), x[1:2 * n:2].tolist(), strict=True))
        for t in torch.nonzero(y != IGNORE_INDEX).flatten().tolist():  # the recall is right
            assert y[t].item() == pairs[x[t].item()]


def test_a_level_row_equals_that_level_sampled_alone():
    """One level: the sweep is plain MQAR (same generator, same rows)."""
    sweep = MQARSweepTask(levels=({"num_kv_pairs": 3, "seq_len": 18},), vocab_size=24)
    alone = MQARTask(vocab_size=24, seq_len=18, num_kv_pairs=3)
    a = sweep.sample(5, torch.Generator().manual_seed(4))
    b = alone.sample(5, torch.Generator().manual_seed(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("levels,message", [
    ([], "non-empty list"),
    ([{"num_kv_pairs": 2, "seqlen": 8}], "unknown key"),
    ([{"num_kv_pairs": 9, "seq_len": 12}], r"levels\[0\]: mqar: seq_len=12 is too short"),
    ([{"num_kv_pairs": 2, "seq_len": 12, "vocab_size": 64}], "<= the task's vocab_size=32"),
    # a level names both: no silent seq_len 64 or 8 pairs from MQAR's defaults
    ([{"num_kv_pairs": 2}], r"levels\[0\]\.seq_len is missing.*fix: add seq_len to levels\[0\]"),
    ([{"num_kv_pairs": 2, "seq_len": 12}, {"seq_len": 12}],
     r"levels\[1\]\.num_kv_pairs is missing.*fix: add num_kv_pairs"),
])
def test_bad_levels_say_which(levels, message):
    with pytest.raises(ValueError, match=message):
        make_task({"kind": "mqar_sweep", "vocab_size": 32, "levels": levels})


def test_evaluation_reports_accuracy_per_level(tmp_path):
    from nas.budget import parse_budget
    from nas.orchestrator.progress import NullReporter
    from nas.orchestrator.search import SearchOptions, run_search
    from nas.searchspace import loads
    from nas.store import Store

    text = """\
name: sweep
task:
  kind: mqar_sweep
  vocab_size: 32
  levels: [{num_kv_pairs: 2, seq_len: 16}, {num_kv_pairs: 4, seq_len: 24}]
model:
  d_model: 16
  n_layers: 2
  token_mixers: {attention: {heads: 2}}
training: {steps: 10, batch_size: 8, lr: 3.0e-3}
objectives: [{name: accuracy_kv4_t24}, {name: accuracy}]
"""
    url = f"sqlite:///{tmp_path}/nas.db"
    options = SearchOptions(budget=parse_budget("1trials"), storage=url, threads=1)
    outcome = run_search(loads(text, "sweep.yaml"), options, NullReporter())
    [trial] = Store(url).trials(outcome.run_name)
    m = trial.metrics
    assert 0 <= m["accuracy_kv2_t16"] <= 1 and m["accuracy_kv4_t24"] == trial.values[
        "accuracy_kv4_t24"]
    # the overall accuracy weights each level by its scored positions (2 vs 4 per row)
    overall = (2 * m["accuracy_kv2_t16"] + 4 * m["accuracy_kv4_t24"]) / 6
    assert m["accuracy"] == pytest.approx(overall, abs=1e-9)
