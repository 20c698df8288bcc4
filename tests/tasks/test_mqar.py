"""MQAR generation: layout, bindings, determinism, validation and speed."""

from __future__ import annotations

import time

import pytest
import torch

from nas.tasks import IGNORE_INDEX, MQARTask


def sample(task: MQARTask, batch_size: int, seed: int = 0):
    return task.sample(batch_size, torch.Generator().manual_seed(seed))


def test_shapes_and_dtypes():
    task = MQARTask(vocab_size=32, seq_len=40, num_kv_pairs=5)
    inputs, targets = sample(task, 7)
    assert inputs.shape == targets.shape == (7, 40)
    assert inputs.dtype == targets.dtype == torch.long
    assert inputs.min() >= 0 and inputs.max() < 32


def test_same_seed_same_batch_different_seed_different_batch():
    task = MQARTask()
    a, b, c = sample(task, 16, seed=3), sample(task, 16, seed=3), sample(task, 16, seed=4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_every_scored_target_is_the_value_bound_to_the_key_there():
    task = MQARTask(vocab_size=20, seq_len=30, num_kv_pairs=4)
    inputs, targets = sample(task, 16, seed=1)
    n, half = task.num_kv_pairs, task.vocab_size // 2
    for row_in, row_tg in zip(inputs.tolist(), targets.tolist(), strict=True):
        keys, values = row_in[0 : 2 * n : 2], row_in[1 : 2 * n : 2]
        assert len(set(keys)) == n, "keys are distinct within a row"
        assert all(1 <= k < half for k in keys)
        assert all(half <= v < task.vocab_size for v in values)
        binding = dict(zip(keys, values, strict=True))
        assert row_tg[: 2 * n] == [IGNORE_INDEX] * (2 * n), "the context is never scored"
        queried = []
        for pos in range(2 * n, task.seq_len):
            token, target = row_in[pos], row_tg[pos]
            if target == IGNORE_INDEX:
                assert token == 0, "unscored query-region positions are padding"
            else:
                assert target == binding[token]
                queried.append(token)
        assert sorted(queried) == sorted(keys), "each key is queried exactly once"


def test_exactly_n_scored_positions_per_row_all_in_the_query_region():
    task = MQARTask(vocab_size=64, seq_len=64, num_kv_pairs=8)
    _, targets = sample(task, 256, seed=2)
    scored = targets != IGNORE_INDEX  # (B, T)
    assert (scored.sum(dim=1) == 8).all()
    assert not scored[:, :16].any()


def test_query_positions_and_order_vary():
    task = MQARTask(vocab_size=64, seq_len=64, num_kv_pairs=8)
    inputs, targets = sample(task, 512, seed=5)
    scored = targets != IGNORE_INDEX
    assert scored[:, 16:].any(dim=0).all(), "every query-region position gets used"
    # order of the queried keys relative to the context: not always the same permutation
    orders = set()
    for row_in, row_sc in zip(inputs[:64].tolist(), scored[:64].tolist(), strict=True):
        keys = row_in[0:16:2]
        queried = [tok for tok, s in zip(row_in, row_sc, strict=True) if s]
        orders.add(tuple(keys.index(k) for k in queried))
    assert len(orders) > 50


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"vocab_size": 3}, "vocab_size"),
        ({"vocab_size": 16, "num_kv_pairs": 8}, "num_kv_pairs"),  # only 7 keys in [1, 8)
        ({"seq_len": 23, "num_kv_pairs": 8}, "seq_len"),  # needs 3N = 24
        ({"num_kv_pairs": 0}, "num_kv_pairs"),
        ({"seq_len": 64.0}, "seq_len"),
    ],
)
def test_config_validation(config, message):
    with pytest.raises(ValueError, match=message) as info:
        MQARTask(**config)
    assert "must" in str(info.value) or "fix" in str(info.value)


def test_smallest_valid_configs():
    MQARTask(vocab_size=4, seq_len=3, num_kv_pairs=1)  # one key (1), values {2, 3}
    MQARTask(vocab_size=16, seq_len=21, num_kv_pairs=7)


def test_generation_is_fast():
    task = MQARTask()  # defaults: V=64, T=64, N=8
    generator = torch.Generator().manual_seed(0)
    task.sample(256, generator)
    start, made = time.perf_counter(), 0
    while made < 20_000:
        task.sample(256, generator)
        made += 256
    rate = made / (time.perf_counter() - start)
    print(f"MQAR defaults: {rate:,.0f} examples/s")
    assert rate > 20_000  # ~4e5/s measured on one thread; generous for loaded CI machines
