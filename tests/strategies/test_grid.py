"""The exhaustive `grid` strategy (nas.strategies.grid): every distinct configuration once, in a
seeded order, then SpaceExhausted; a rebuild continues with the rest."""

from __future__ import annotations

import pytest

from nas.errors import SpaceError
from nas.searchspace import loads
from nas.searchspace.count import configurations, count_architectures
from nas.strategies import Complete, SpaceExhausted, make_strategy, rebuild_strategy
from tests.conftest import TINY_SPACE

FINITE = TINY_SPACE.replace("lr: {loguniform: [1.0e-3, 1.0e-2]}", "lr: {choice: [1.0e-3, 1.0e-2]}")


@pytest.fixture(scope="module")
def space():
    return loads(FINITE)


def proposals_until_exhausted(strategy, limit: int = 10_000) -> list:
    out = []
    for _ in range(limit):
        try:
            proposal = strategy.propose()
        except SpaceExhausted as exc:
            assert "configurations has been proposed" in str(exc)
            return out
        out.append(proposal)
        if proposal.answer is None:
            strategy.tell(proposal.number, Complete((0.5, 1.0)))
    raise AssertionError("the grid never ran out")


def test_every_configuration_once_then_exhausted(space):
    count = count_architectures(space)
    assert count.exact and count.training == 2  # two learning rates per architecture
    proposals = proposals_until_exhausted(make_strategy("grid", space, 0))
    hashes = [p.spec.config_hash for p in proposals]
    assert len(hashes) == len(set(hashes)) == count.distinct * 2  # distinct, all of them
    assert all(p.answer is None for p in proposals)  # never a duplicate to answer
    assert [p.number for p in proposals] == list(range(len(proposals)))


def test_layouts_that_coincide_are_one_configuration(space):
    # at 2 layers, placement interleave and last both give X-A: assignments > configurations
    configs = configurations(space)
    assert len(configs) == count_architectures(space).distinct * 2
    assert count_architectures(space).assignments * 2 > len(configs)


def test_the_seed_decides_the_order(space):
    def first(seed):
        strategy = make_strategy("grid", space, seed)
        return [strategy.propose().spec.config_hash for _ in range(6)]

    assert first(1) == first(1)
    assert first(1) != first(2)


def test_a_rebuild_proposes_the_rest(space):
    live = make_strategy("grid", space, 3)
    seen = [live.propose() for _ in range(10)]
    for p in seen[:7]:
        live.tell(p.number, Complete((0.1, 1.0)))
    # trials 7..9 are open when the driver dies: lost, and not proposed again by the grid
    rebuilt = rebuild_strategy("grid", space, 3, live.history())
    rest = proposals_until_exhausted(rebuilt)
    assert rest[0].number == 10
    together = [p.spec.config_hash for p in seen + rest]
    assert len(together) == len(set(together)) == len(configurations(space))


def test_enqueued_retraining_comes_first(space):
    live = make_strategy("grid", space, 4)
    first = live.propose()
    live.tell(first.number, Complete((0.2, 1.0)))
    live.enqueue(first.params, retrain_of=first.number)
    again = live.propose()
    assert again.retrain_of == first.number and again.spec == first.spec


def test_a_continuous_space_is_refused_with_the_fix():
    with pytest.raises(SpaceError) as caught:
        make_strategy("grid", loads(TINY_SPACE), 0)
    assert str(caught.value) == (
        "<string>: search.strategy: grid needs a finite space: continuous decision(s) "
        "training.lr cannot be enumerated — fix: give them as {choice: [...]} or {int: [lo, hi]}")
