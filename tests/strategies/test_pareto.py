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
