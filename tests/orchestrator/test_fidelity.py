"""The multi-objective successive-halving rule, on its own."""

from __future__ import annotations

import math
import random

import pytest

from nas.orchestrator.fidelity import Fidelity, SuccessiveHalving
from nas.strategies.pareto import crowding_distances, nondominated_ranks, preference_order

ACC_LAT = ("maximize", "minimize")


def test_rungs_grow_by_the_reduction_and_end_at_max_steps():
    assert Fidelity(100, 2700, 3).rungs == (100, 300, 900, 2700)
    assert Fidelity(100, 1000, 3).rungs == (100, 300, 900, 1000)
    assert Fidelity(50, 50, 2).rungs == (50,)
    for bad in ({"min_steps": 0, "max_steps": 5}, {"min_steps": 9, "max_steps": 5},
                {"min_steps": 1, "max_steps": 5, "reduction": 1}):
        with pytest.raises(ValueError, match="fidelity"):
            Fidelity(**bad)


def test_ranks_and_crowding():
    points = [(0.9, 5.0), (0.8, 1.0), (0.7, 6.0), (0.85, 3.0), (0.6, 0.5)]
    assert nondominated_ranks(points, ACC_LAT) == [0, 0, 1, 0, 0]
    front = [points[i] for i in (0, 1, 3, 4)]
    distances = crowding_distances(front)
    assert distances[0] == distances[3] == math.inf  # extremes of accuracy and latency
    assert 0 < distances[1] < math.inf and 0 < distances[2] < math.inf
    order = preference_order(points, ACC_LAT)
    assert order[-1] == 2 and set(order[:2]) == {0, 4}  # the dominated point last, extremes first


def test_a_dominated_trial_pauses_and_a_new_tradeoff_continues():
    sh = SuccessiveHalving(Fidelity(10, 90, 3), ACC_LAT)
    assert sh.report("a", 0, (0.5, 2.0)) == "continue"  # 1 of 1: ceil(1/3) = 1 goes on
    assert sh.report("b", 0, (0.4, 3.0)) == "pause"  # dominated by a; quota still 1
    assert sh.report("c", 0, (0.3, 2.5)) == "pause"
    assert sh.report("d", 0, (0.9, 1.0)) == "continue"  # dominates all; quota is now 2
    assert sh.next_promotion() is None  # quota 2 = {d, a}, both already promoted
    assert sh.paused() == ["b", "c"]
    assert sh.report("d", 1, (0.95, 1.0)) == "continue"
    assert sh.report("d", 2, (0.97, 1.0)) == "done"


def test_paused_trials_are_promoted_when_the_quota_grows_highest_rung_first():
    sh = SuccessiveHalving(Fidelity(1, 4, 2), ("maximize",))  # rungs 1, 2, 4; keep half
    decisions = [sh.report(t, 0, (v,)) for t, v in enumerate([0.2, 0.1])]
    assert decisions == ["continue", "pause"]  # n=2: quota 1 = {0}
    assert sh.report(2, 0, (0.05,)) == "pause"  # n=3: quota 2 = {0, 1}: 1 may go on now
    assert sh.next_promotion() == (1, 0)
    assert sh.next_promotion() is None
    assert sh.report(3, 0, (0.9,)) == "continue"  # n=4: quota 2 = {3, 0}
    assert [sh.report(t, 0, (v,)) for t, v in [(4, 0.01), (5, 0.001)]] == ["pause", "pause"]
    assert sh.next_promotion() is None  # n=6: quota 3 = {3, 0, 1}, all promoted already
    assert sh.report(0, 1, (0.3,)) == "continue"
    assert sh.report(1, 1, (0.2,)) == "pause"  # rung 1, n=2: quota 1 = {0}
    assert sh.report(3, 1, (0.1,)) == "pause"  # n=3: quota 2 = {0, 1}: 1 may go on
    assert sh.report(6, 0, (0.0001,)) == "pause"  # rung 0, n=7: quota 4 adds 2
    assert sh.next_promotion() == (1, 1)  # the higher rung first
    assert sh.next_promotion() == (2, 0)
    assert sh.next_promotion() is None
    assert sorted(sh.paused()) == [3, 4, 5, 6]  # 3 waits at rung 1; 4, 5, 6 at rung 0


@pytest.mark.parametrize("seed", range(5))
def test_every_promotion_is_inside_its_rungs_quota(seed):
    """Single objective, random arrival order: whenever a trial goes on (told to continue or
    handed out by next_promotion), its value is among the best ceil(n / 3) at its rung."""
    rng = random.Random(seed)
    fidelity = Fidelity(1, 27, 3)
    sh = SuccessiveHalving(fidelity, ("maximize",))
    seen: list[dict] = [{} for _ in fidelity.rungs]  # rung -> trial -> value

    def in_quota(trial, rung) -> bool:
        values = sorted(seen[rung].values(), reverse=True)
        return seen[rung][trial] >= values[math.ceil(len(values) / 3) - 1]

    waiting, finished = [], 0
    for trial in range(80):
        waiting.append((trial, 0))
        while waiting:
            t, rung = waiting.pop(rng.randrange(len(waiting)))
            seen[rung][t] = rng.random()
            decision = sh.report(t, rung, (seen[rung][t],))
            if decision == "continue":
                assert in_quota(t, rung)
                waiting.append((t, rung + 1))
            finished += decision == "done"
            if rng.random() < 0.5 and (promoted := sh.next_promotion()):
                assert in_quota(*promoted)
                waiting.append((promoted[0], promoted[1] + 1))
    assert finished >= 1  # someone reached max_steps
    assert len(seen[1]) < len(seen[0]) / 2  # and most stopped at the first rung
