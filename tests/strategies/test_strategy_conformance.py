"""The Strategy contract (nas.strategies.base), checked for every registered strategy: a new one
passes these by being registered (nas.strategies.register_strategy)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from nas.searchspace import loads
from nas.strategies import (
    Complete,
    Duplicate,
    Failed,
    Infeasible,
    Paused,
    Proposal,
    Pruned,
    SpaceExhausted,
    get_strategy,
    list_strategies,
    make_strategy,
    rebuild_strategy,
)
from nas.strategies.base import Replay
from tests.conftest import TINY_SPACE

NAMES = list_strategies()

# Small and discrete (a fixed learning rate): 2·2·... configurations, so duplicates come soon.
SMALL = """\
name: small
task: {kind: mqar, vocab_size: 16, seq_len: 16, num_kv_pairs: 2}
model:
  d_model: {choice: [16, 32]}
  n_layers: {choice: [1, 2]}
  token_mixers: {short_conv: {kernel_size: {choice: [2, 3]}}}
  channel_mixer: {kind: {choice: [mlp, swiglu]}, expansion: 2}
training: {steps: 4, batch_size: 4, lr: 1.0e-3}
objectives:
  - {name: accuracy, goal: maximize}
  - {name: latency_ms, goal: minimize, batch: 1, seq_len: 16, phase: prefill}
search: {seed: 0, population_size: 4}
"""


# The tiny space with its learning rate as a choice: for strategies that enumerate the space
# (`needs_finite_space`), which refuse a continuous decision.
TINY_FINITE = TINY_SPACE.replace("lr: {loguniform: [1.0e-3, 1.0e-2]}",
                                 "lr: {choice: [1.0e-3, 1.0e-2]}")
CONSTRAINED = TINY_FINITE.replace("objectives:", "constraints: ['params <= 9000']\nobjectives:")


@pytest.fixture(scope="module")
def tiny_spaces():
    return loads(TINY_SPACE), loads(TINY_FINITE)


@pytest.fixture
def tiny(name, tiny_spaces):
    """The tiny space (continuous learning rate), or its finite twin for a strategy that
    needs one."""
    return tiny_spaces[get_strategy(name).cls().needs_finite_space]


@pytest.fixture(scope="module")
def small():
    return loads(SMALL)


def fake_values(proposal: Proposal) -> tuple[float, float]:
    """Deterministic objective values for a candidate (a function of its configuration)."""
    digest = int(proposal.spec.config_hash[:8], 16)
    return (digest % 1000) / 1000, 1.0 + digest % 97


def drive(strategy, n: int) -> list[Proposal]:
    """Propose `n` times, telling each trained proposal an outcome that depends on its number
    only (complete, failed or pruned), as a search would."""
    proposals = []
    for _ in range(n):
        try:
            proposal = strategy.propose()
        except SpaceExhausted:  # an exhaustive strategy has proposed everything: it stays so
            with pytest.raises(SpaceExhausted):
                strategy.propose()
            break
        proposals.append(proposal)
        if proposal.answer is None:
            outcome = [Complete(fake_values(proposal)), Failed("error", "boom"),
                       Complete(fake_values(proposal)),
                       Pruned(2, fake_values(proposal))][proposal.number % 4]
            strategy.tell(proposal.number, outcome)
    return proposals


def shown(proposals: list[Proposal]) -> list[tuple[Any, ...]]:
    return [(p.number, p.spec.config_hash, type(p.answer).__name__) for p in proposals]


class Strict:
    """Answers from `params`, checking each suggestion is in the domain the graph asks for."""

    def __init__(self, params):
        self.params, self.used = params, set()

    def _take(self, name):
        assert name in self.params, f"the graph asks for {name}, which the proposal lacks"
        self.used.add(name)
        return self.params[name]

    def suggest_categorical(self, name, choices):
        value = self._take(name)
        assert value in list(choices), (name, value, choices)
        return value

    def suggest_int(self, name, low, high, step=1, log=False):
        value = self._take(name)
        assert isinstance(value, int) and low <= value <= high and (value - low) % step == 0
        return value

    def suggest_float(self, name, low, high, *, log=False):
        value = self._take(name)
        assert math.isfinite(value) and low <= value <= high, (name, value, low, high)
        return value


@pytest.mark.parametrize("name", NAMES)
def test_one_seed_proposes_one_sequence(name, tiny):
    first = drive(make_strategy(name, tiny, 7, population_size=4), 14)
    again = drive(make_strategy(name, tiny, 7, population_size=4), 14)
    assert shown(first) == shown(again)
    assert [p.params for p in first] == [p.params for p in again]
    other = drive(make_strategy(name, tiny, 8, population_size=4), 14)
    assert shown(other) != shown(first)  # the seed matters


@pytest.mark.parametrize("name", NAMES)
def test_proposals_are_in_the_space(name, tiny):
    strategy = make_strategy(name, tiny, 1, population_size=4)
    proposals = drive(strategy, 14)
    assert [p.number for p in proposals] == list(range(14))
    for proposal in proposals:
        checking = Strict(proposal.params)
        assert tiny.sample(checking) == proposal.spec  # the graph walk gives back the spec
        assert checking.used == set(proposal.params)  # and nothing beyond the active decisions


@pytest.mark.parametrize("name", NAMES)
def test_infeasible_candidates_come_back_answered(name):
    space = loads(CONSTRAINED)
    strategy = make_strategy(name, space, 0, population_size=4)
    proposals = drive(strategy, 14)
    answered = [p for p in proposals if isinstance(p.answer, Infeasible)]
    assert answered and all("params" in p.answer.reason for p in answered)
    assert all(space.violation(p.spec) is None for p in proposals if p.answer is None)
    with pytest.raises(ValueError, match="not open"):  # answered: nothing more to tell
        strategy.tell(answered[0].number, Complete((0.0, 1.0)))


@pytest.mark.parametrize("name", NAMES)
def test_every_outcome_kind_is_accepted(name, tiny):
    strategy = make_strategy(name, tiny, 2, population_size=4)
    outcomes = [
        [Complete((0.5, 2.0))],
        [Failed("error", "Traceback ...")], [Failed("lost")], [Failed("cancelled")],
        [Infeasible("out of memory: CUDA")],
        [Duplicate(0, (0.5, 2.0))], [Duplicate(0)],
        [Pruned(5, (0.1, 2.0))], [Pruned(5)],
        [Paused(5, (0.2, 2.0)), Paused(10, (0.3, 2.0)), Complete((0.4, 2.0))],
        [Paused(5, (0.2, 2.0)), Pruned(5, (0.2, 2.0))],
        [Paused(5, (0.2, 2.0)), Failed("lost")],
    ]
    for sequence in outcomes:
        proposal = strategy.propose()
        while proposal.answer is not None:
            proposal = strategy.propose()
        for outcome in sequence:
            assert proposal.number in strategy.open_trials()
            strategy.tell(proposal.number, outcome)
        assert proposal.number not in strategy.open_trials()
    with pytest.raises(ValueError, match="expected 2 objective values"):
        strategy.tell(strategy.propose().number, Complete((1.0,)))
    drive(strategy, 4)  # and it goes on proposing
    told = {t.number: t.outcome for t in strategy.history()}
    assert any(isinstance(o, Infeasible) for o in told.values())
    assert any(isinstance(o, Failed) and o.failure_class == "lost" for o in told.values())


@pytest.mark.parametrize("name", NAMES)
def test_a_rebuild_from_history_proposes_what_the_live_one_does(name, tiny):
    live = make_strategy(name, tiny, 3, population_size=4)
    drive(live, 13)
    rebuilt = rebuild_strategy(name, tiny, 3, live.history(), population_size=4)
    assert shown(drive(rebuilt, 6)) == shown(drive(live, 6))
    assert [(t.number, t.outcome) for t in rebuilt.history()] == \
        [(t.number, t.outcome) for t in live.history()]


@pytest.mark.parametrize("name", NAMES)
def test_an_open_trial_is_lost_on_rebuild(name, tiny):
    live = make_strategy(name, tiny, 4, population_size=4)
    drive(live, 3)
    proposal = live.propose()
    assert proposal.answer is None
    rebuilt = rebuild_strategy(name, tiny, 4, live.history(), population_size=4)
    assert rebuilt.open_trials() == []
    last = rebuilt.history()[proposal.number].outcome
    assert isinstance(last, Failed) and last.failure_class == "lost"


def check_no_retraining(proposals, trained: dict[str, int]) -> int:
    """Assert no proposal to train repeats a configuration trained before (or training), unless
    that trial failed (`drive` fails numbers 1 mod 4); returns the duplicates answered."""
    duplicates = 0
    for proposal in proposals:
        config = proposal.spec.config_hash
        earlier = trained.get(config)
        if proposal.answer is None:
            assert earlier is None or earlier % 4 == 1, f"{config} trained again after {earlier}"
            trained[config] = proposal.number
        elif isinstance(proposal.answer, Duplicate):
            assert proposal.answer.of_number == earlier and earlier % 4 != 1
            duplicates += 1
    return duplicates


@pytest.mark.parametrize("name", NAMES)
def test_a_finished_configuration_is_never_proposed_for_training_again(name, small):
    strategy = make_strategy(name, small, 5, population_size=4)
    trained: dict[str, int] = {}
    # 16 configurations, 40 samples: duplicates come, unless the strategy enumerates the space
    exhaustive = get_strategy(name).cls().needs_finite_space
    assert check_no_retraining(drive(strategy, 40), trained) or exhaustive
    rebuilt = rebuild_strategy(name, small, 5, strategy.history(), population_size=4)
    assert check_no_retraining(drive(rebuilt, 10), trained) or exhaustive  # the rebuild knows


@pytest.mark.parametrize("name", NAMES)
def test_a_duplicate_of_a_completed_trial_carries_its_values(name, small):
    strategy = make_strategy(name, small, 6, population_size=4)
    complete: dict[int, tuple] = {}
    for proposal in drive(strategy, 40):
        if proposal.answer is None and proposal.number % 4 in (0, 2):
            complete[proposal.number] = fake_values(proposal)
        if isinstance(proposal.answer, Duplicate):
            expected = complete.get(proposal.answer.of_number)
            assert proposal.answer.values == (None if expected is None else
                                              tuple(float(v) for v in expected))


@pytest.mark.parametrize("name", NAMES)
def test_enqueued_params_are_proposed_next(name, tiny):
    strategy = make_strategy(name, tiny, 9, population_size=4)
    first = strategy.propose()
    strategy.tell(first.number, Failed("lost"))
    strategy.enqueue(first.params, retrain_of=first.number)
    again = strategy.propose()
    assert again.retrain_of == first.number and again.answer is None
    assert again.spec == first.spec == tiny.sample(Replay(first.params))


@pytest.mark.parametrize("name", NAMES)
def test_an_interrupt_while_sampling_fails_the_trial(name, tiny, monkeypatch):
    strategy = make_strategy(name, tiny, 0, population_size=4)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(type(tiny), "violation", interrupted)
        with pytest.raises(KeyboardInterrupt):
            strategy.propose()
    [told] = strategy.history()
    assert isinstance(told.outcome, Failed) and told.outcome.failure_class == "interrupted"
    assert strategy.propose().number == 1
