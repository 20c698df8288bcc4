"""The MAD synthetic suite: shapes, determinism, layouts checked row by row, validation."""

from __future__ import annotations

import pytest
import torch

from nas.tasks import (
    IGNORE_INDEX,
    TASK_KINDS,
    MADFuzzyRecallTask,
    MADInContextRecallTask,
    MADMemorizationTask,
    MADNoisyRecallTask,
    MADSelectiveCopyTask,
    MADTask,
    make_task,
    task_options,
    task_vocab_size,
)
from nas.tasks.mad import SUBTASKS

KINDS = [*SUBTASKS, "mad"]


def sample(task, batch_size: int, seed: int = 0):
    return task.sample(batch_size, torch.Generator().manual_seed(seed))


def rows(inputs, targets):
    return zip(inputs.tolist(), targets.tolist(), strict=True)


@pytest.mark.parametrize("kind", KINDS)
def test_builds_shapes_vocab_and_determinism(kind):
    assert kind in TASK_KINDS
    task = make_task({"kind": kind})
    assert task_vocab_size({"kind": kind}) == task.vocab_size
    assert task_vocab_size({"kind": kind, "vocab_size": 48}) == 48
    inputs, targets = sample(task, 12, seed=3)
    assert inputs.shape == targets.shape == (12, task.seq_len)
    assert inputs.dtype == targets.dtype == torch.long
    assert inputs.min() >= 0 and inputs.max() < task.vocab_size
    scored = targets[targets != IGNORE_INDEX]
    assert scored.numel() > 0 and scored.min() >= 0 and scored.max() < task.vocab_size
    again = sample(task, 12, seed=3)
    assert torch.equal(inputs, again[0]) and torch.equal(targets, again[1])
    other = sample(task, 12, seed=4)
    assert not torch.equal(inputs, other[0])


def check_recall_rows(task, inputs, targets):
    """Replay the stream motif by motif: a repeated key span is scored with its first value."""
    k, v, nk, m = task._k, task._v, task.num_keys, task.motif
    t = task.seq_len
    lead = t - (t // m) * m
    for row_in, row_tg in rows(inputs, targets):
        assert row_in[:lead] == [task.vocab_size - 1] * lead
        expected = [IGNORE_INDEX] * t
        bound: dict[tuple, tuple] = {}
        keys_in_order = []
        for start in range(lead, t, m):
            motif = row_in[start : start + m]
            if all(2 * nk <= tok < 2 * nk + task.noise_vocab_size for tok in motif):
                continue  # a noise slot
            key, value = tuple(motif[:k]), tuple(motif[k:])
            assert all(0 <= tok < nk for tok in key) and len(set(key)) == k
            assert all(nk <= tok < 2 * nk for tok in value) and len(set(value)) == v
            if key in bound:
                assert bound[key] == value, "a key keeps its value within a row"
                for i, tok in enumerate(value):
                    expected[start + k + i - 1] = tok
            bound[key] = value
            keys_in_order.append(key)
        assert row_tg == expected
        assert keys_in_order[-1] in keys_in_order[:-1], "the last motif probes an earlier key"
        assert row_in[t - m : t - v] == list(keys_in_order[-1]), "the last motif is no noise"


def test_in_context_recall_targets():
    task = MADInContextRecallTask(vocab_size=12, seq_len=20)
    check_recall_rows(task, *sample(task, 32, seed=1))


def test_noisy_recall_targets_and_noise_share():
    task = MADNoisyRecallTask(vocab_size=16, seq_len=24, noise_vocab_size=6, frac_noise=0.3)
    inputs, targets = sample(task, 32, seed=2)
    check_recall_rows(task, inputs, targets)
    noise = (inputs >= 2 * task.num_keys).float().mean().item()
    assert 0.1 < noise < 0.45  # about frac_noise of the slots, the probe slot never noise
    big = sample(MADNoisyRecallTask(), 256)[0]
    assert ((big >= 2 * MADNoisyRecallTask().num_keys).any(dim=1)).float().mean() > 0.9


def test_fuzzy_recall_targets():
    task = MADFuzzyRecallTask(vocab_size=9, seq_len=23, k_motif_size=2, v_motif_size=3)
    check_recall_rows(task, *sample(task, 64, seed=3))
    noisy = MADFuzzyRecallTask(vocab_size=12, seq_len=30, noise_vocab_size=3, frac_noise=0.3,
                               k_motif_size=2, v_motif_size=2)
    check_recall_rows(noisy, *sample(noisy, 64, seed=4))


def test_selective_copy_targets():
    task = MADSelectiveCopyTask(vocab_size=7, seq_len=15, num_tokens_to_copy=4)
    blank, copy = 5, 6
    for row_in, row_tg in rows(*sample(task, 32, seed=5)):
        region = 15 - 4 - 1
        data = [tok for tok in row_in[:region] if tok != blank]
        assert len(data) == 4 and all(0 <= tok < 5 for tok in data)
        assert row_in[region] == copy and row_in[region + 1 :] == [blank] * 4
        assert row_tg == [IGNORE_INDEX] * (region + 1) + data


def test_compression_targets():
    task = make_task({"kind": "mad_compression", "vocab_size": 6, "seq_len": 11})
    for row_in, row_tg in rows(*sample(task, 16, seed=6)):
        seq = row_in[:5]
        assert all(0 <= tok < 4 for tok in seq)
        assert row_in[5:] == [5] + [4] * 5
        assert row_tg == [IGNORE_INDEX] * 5 + seq + [IGNORE_INDEX]


def test_memorization_map_is_fixed_and_seeded():
    task = MADMemorizationTask(vocab_size=11, seq_len=12, map_seed=7)
    mapping: dict[int, int] = {}
    for seed in range(3):
        for row_in, row_tg in rows(*sample(task, 16, seed=seed)):
            for pos in range(0, 12, 2):
                key = row_in[pos]
                assert 0 <= key < 5 and row_in[pos + 1] == 10 and row_tg[pos] == IGNORE_INDEX
                assert 5 <= row_tg[pos + 1] < 10
                assert mapping.setdefault(key, row_tg[pos + 1]) == row_tg[pos + 1]
    assert len(set(mapping.values())) == len(mapping), "distinct keys, distinct values"
    other = MADMemorizationTask(vocab_size=11, seq_len=12, map_seed=8)
    assert not torch.equal(task.value_map(), other.value_map())


def test_mad_mix_modes():
    task = MADTask(vocab_size=24, seq_len=40)
    generator = torch.Generator().manual_seed(0)
    kinds = set()
    for _ in range(30):
        state = generator.get_state()
        which = int(torch.randint(0, 6, (1,), generator=generator))
        generator.set_state(state)
        got = task.sample(4, generator)
        sub = task.subtasks()[which]
        generator.set_state(state)
        torch.randint(0, 6, (1,), generator=generator)
        want = sub.sample(4, generator)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
        task.sample(4, torch.Generator())  # other generators leave this one alone
        kinds.add(which)
    assert kinds == set(range(6))

    split = MADTask(vocab_size=24, seq_len=40, mix="split")
    inputs, targets = sample(split, 8)
    assert inputs.shape == (8, 40)
    generator = torch.Generator().manual_seed(0)
    parts = [sub.sample(n, generator) for sub, n in zip(split.subtasks(), [2, 2, 1, 1, 1, 1],
                                                          strict=True)]
    assert torch.equal(inputs, torch.cat([x for x, _ in parts]))
    assert torch.equal(targets, torch.cat([y for _, y in parts]))
    assert sample(split, 3)[0].shape == (3, 40)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"kind": "mad_in_context_recall", "seq_len": 21}, "seq_len.*fix: set seq_len to 22"),
        ({"kind": "mad_in_context_recall", "seq_len": 2}, "seq_len"),
        ({"kind": "mad_in_context_recall", "vocab_size": 1}, "vocab_size"),
        ({"kind": "mad_in_context_recall", "frac_noise": 0.2}, "noise_vocab_size"),
        ({"kind": "mad_noisy_recall", "frac_noise": 1.0}, "frac_noise"),
        ({"kind": "mad_noisy_recall", "vocab_size": 17}, "vocab_size"),
        ({"kind": "mad_fuzzy_recall", "vocab_size": 6}, "vocab_size.*fix: set vocab_size >= 7"),
        ({"kind": "mad_fuzzy_recall", "seq_len": 11}, "seq_len.*>= 12"),
        ({"kind": "mad_fuzzy_recall", "k_motif_size": 0}, "k_motif_size"),
        ({"kind": "mad_selective_copy", "seq_len": 17}, "seq_len.*num_tokens_to_copy"),
        ({"kind": "mad_selective_copy", "vocab_size": 2}, "vocab_size"),
        ({"kind": "mad_compression", "seq_len": 1}, "seq_len"),
        ({"kind": "mad_memorization", "seq_len": 31}, "seq_len"),
        ({"kind": "mad_memorization", "vocab_size": 64.0}, "vocab_size"),
        ({"kind": "mad", "mix": "mean"}, "mix"),
        ({"kind": "mad", "vocab_size": 16}, "sub-task mad_noisy_recall: vocab_size"),
        ({"kind": "mad", "seq_len": 17}, "sub-task mad_in_context_recall: seq_len"),
    ],
)
def test_config_validation(config, message):
    with pytest.raises(ValueError, match=message) as info:
        make_task(config)
    assert "must" in str(info.value) or "fix" in str(info.value)
    assert "\n" not in str(info.value)


def test_options_are_the_documented_knobs():
    assert task_options("mad_fuzzy_recall") == {
        "vocab_size": 16, "seq_len": 64, "noise_vocab_size": 0, "frac_noise": 0.0,
        "k_motif_size": 3, "v_motif_size": 3,
    }
    assert task_options("mad") == {"vocab_size": 32, "seq_len": 64, "mix": "batch"}
    with pytest.raises(ValueError, match="'num_kv_pairs'"):
        make_task({"kind": "mad_in_context_recall", "num_kv_pairs": 4})


def test_batch_size_validation():
    with pytest.raises(ValueError, match="batch_size"):
        sample(MADSelectiveCopyTask(), 0)
