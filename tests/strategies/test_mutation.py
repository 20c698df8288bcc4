"""Moves on the decision graph (nas.strategies.mutation): every candidate is a point of the space
whose params replay to it, and each mutation changes what it says it changes."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from nas.searchspace import loads
from nas.searchspace.layout import N_LAYERS
from nas.strategies.base import Replay
from nas.strategies.mutation import decode, layers_of, mutate, sample

FREE = """\
name: free
task: {kind: mqar, vocab_size: 16, seq_len: 16, num_kv_pairs: 2}
model:
  d_model: {choice: [16, 32, 48]}
  n_layers: {choice: [2, 3, 5]}
  token_mixers:
    attention: {heads: {choice: [1, 2]}}
    short_conv: {kernel_size: {int: [2, 4]}}
    linear_attention: {heads: 2}
  layout: {free: [attention, short_conv, linear_attention]PRIORS}
  channel_mixer: {kind: swiglu, expansion: 2}
training: {steps: 4, batch_size: 4, lr: {loguniform: [1.0e-4, 1.0e-2]}}
objectives: [{name: accuracy}, {name: params, goal: minimize}]
"""
HYBRID = """\
name: hybrid
task: {kind: mqar, vocab_size: 16, seq_len: 16, num_kv_pairs: 2}
model:
  d_model: {choice: [16, 32]}
  n_layers: {choice: [2, 4]}
  hybrid: {full_attention_ratio: {choice: [0, 0.5, 1]}, placement: {choice: [first, last]},
           other: {choice: [short_conv, linear_attention]}}
  token_mixers: {attention: {heads: 2}, short_conv: {kernel_size: 3},
                 linear_attention: {heads: 2}}
  channel_mixer: {kind: {choice: [mlp, swiglu]}, expansion: 2}
training: {steps: 4, batch_size: 4, lr: 1.0e-3}
objectives: [{name: accuracy}]
"""
SPACES = {"free": FREE.replace("PRIORS", ""),
          "priors": FREE.replace("PRIORS", ", priors: {attention: [0.1, 0.5]}"),
          "hybrid": HYBRID}


@pytest.fixture(params=sorted(SPACES), scope="module")
def space(request):
    return loads(SPACES[request.param], f"{request.param}.yaml")


def test_samples_replay_to_themselves_and_decode_back(space):
    rng = random.Random(0)
    for _ in range(40):
        candidate = sample(space, rng)
        assert space.sample(Replay(candidate.params)).config_hash == candidate.config
        again = decode(space, candidate.params)
        assert again.values == candidate.values and again.params == candidate.params


def test_children_are_points_of_the_space(space):
    rng = random.Random(1)
    kinds = Counter()
    parent = sample(space, rng)
    for _ in range(200):
        kind, child = mutate(space, parent, rng)
        kinds[kind] += 1
        assert space.sample(Replay(child.params)).config_hash == child.config
        parent = child
    assert kinds["decision"] > 0
    if space.name != "hybrid":  # a free layout has layer moves too
        assert kinds["swap"] and kinds["insert"] and kinds["remove"]


def _mixers(candidate):
    return list(candidate.spec.mixer_kinds)


@pytest.mark.parametrize("seed", range(20))
def test_each_mutation_does_what_it_says(seed):
    space = loads(SPACES["free"], "free.yaml")
    rng = random.Random(seed)
    parent = sample(space, rng)
    while parent.values[N_LAYERS] != 3 or len(set(_mixers(parent))) < 2:
        parent = sample(space, rng)
    kind, child = mutate(space, parent, rng, "swap")
    assert kind == "swap"
    assert sorted(_mixers(child)) == sorted(_mixers(parent)) and \
        _mixers(child) != _mixers(parent)
    assert child.values["model.d_model"] == parent.values["model.d_model"]

    kind, child = mutate(space, parent, rng, "insert")
    assert child.values[N_LAYERS] == 5 and layers_of(child.values) == 5
    left = _mixers(child)
    for mixer in _mixers(parent):  # the parent's layers, in order, with two copies added
        left = left[left.index(mixer) + 1:] if mixer in left else None
        assert left is not None

    kind, child = mutate(space, parent, rng, "remove")
    assert child.values[N_LAYERS] == 2
    assert Counter(_mixers(child)) <= Counter(_mixers(parent))

    kind, child = mutate(space, parent, rng, "decision")
    changed = {k for k in parent.params.keys() & child.params.keys()
               if child.params[k] != parent.params[k]}
    assert len(changed) == 1  # one decision (knobs it switched on or off come and go)


def test_a_number_mostly_moves_to_a_neighbour():
    space = loads(SPACES["free"], "free.yaml")
    rng = random.Random(3)
    parent = sample(space, rng)
    while parent.values["model.d_model"] != 16:
        parent = sample(space, rng)
    widths = Counter()
    for _ in range(400):
        kind, child = mutate(space, parent, rng, "decision")
        if child.values["model.d_model"] != 16:
            widths[child.values["model.d_model"]] += 1
    assert widths[32] > 2 * widths[48] > 0  # a step more often than a jump
