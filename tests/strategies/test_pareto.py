import random

from nas.strategies.pareto import dominates, pareto_mask

MAXMIN = ["maximize", "minimize"]


def test_dominates_mixed_directions():
    assert dominates((0.9, 1.0), (0.8, 2.0), MAXMIN)
    assert not dominates((0.9, 3.0), (0.8, 2.0), MAXMIN)
    assert not dominates((0.9, 1.0), (0.9, 1.0), MAXMIN)  # equal points do not dominate


def test_pareto_mask_small_example():
    points = [(0.9, 5.0), (0.5, 1.0), (0.4, 2.0), (0.95, 6.0), (0.9, 5.0)]
    assert pareto_mask(points, MAXMIN) == [True, True, False, True, True]


def test_pareto_mask_matches_brute_force_definition():
    rng = random.Random(0)
    points = [(rng.random(), rng.random(), rng.random()) for _ in range(60)]
    dirs = ["maximize", "minimize", "minimize"]
    mask = pareto_mask(points, dirs)
    for p, on_front in zip(points, mask, strict=True):
        beaten = any(q[0] >= p[0] and q[1] <= p[1] and q[2] <= p[2] and q != p for q in points)
        assert on_front == (not beaten)
    assert 0 < sum(mask) < len(points)


def test_points_off_the_front_within_measurement_noise():
    from nas.strategies.pareto import robustly_dominates, within_noise_of_front

    directions = ("maximize", "minimize")  # accuracy (exact), latency (spread)
    points = [(0.9, 10.0), (0.9, 10.5), (0.9, 20.0), (0.5, 5.0), (0.4, 5.2)]
    spreads = [(0, 0.05), (0, 0.05), (0, 0.05), (0, 0.01), (0, 0.01)]
    # 1 is dominated by 0 (10 < 10.5) but 10·1.05 > 10.5·0.95: within noise
    # 2 is dominated by 0 beyond the spreads; 4 by 3 (accuracy is exact)
    assert within_noise_of_front(points, spreads, directions) == [False, True, False, False, False]
    assert robustly_dominates(points[0], spreads[0], points[2], spreads[2], directions)
    assert not robustly_dominates(points[0], spreads[0], points[1], spreads[1], directions)
    exact = [(0, 0)] * 5  # without spreads it is plain dominance: nothing is within noise
    assert not any(within_noise_of_front(points, exact, directions))


def test_a_trial_beaten_by_its_own_architecture_is_not_within_noise():
    """Two trials of one architecture share its latency (same true value, one measurement):
    the less accurate one is beaten for certain, whatever the latency spread."""
    from nas.strategies.pareto import within_noise_of_front

    directions = ("maximize", "minimize")
    points = [(0.9, 10.0), (0.8, 10.0), (0.85, 10.2)]
    spreads = [(0, 0.5)] * 3
    assert within_noise_of_front(points, spreads, directions) == [False, True, True]
    assert within_noise_of_front(points, spreads, directions, ["a", "a", "b"]) == [
        False, False, True]
    # one architecture measured twice, the latencies apart: still a tie on latency
    assert within_noise_of_front([(0.9, 9.0), (0.8, 11.0)], [(0, 0.5)] * 2, directions,
                                 ["a", "a"]) == [False, False]
