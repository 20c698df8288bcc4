"""nas.stats: the paired signed-rank test (the t-intervals are tested with the replicates,
tests/orchestrator/test_replicates.py)."""

from __future__ import annotations

import itertools

import pytest

from nas.stats import signed_rank_test


def brute_force_p(differences: list[float]) -> float:
    """The two-sided exact p-value by enumerating every sign pattern (midranks for ties)."""
    nonzero = [d for d in differences if d != 0]
    magnitudes = sorted(abs(d) for d in nonzero)
    rank = {m: statistics_midrank(magnitudes, m) for m in magnitudes}
    ranks = [rank[abs(d)] for d in nonzero]
    observed = sum(r for r, d in zip(ranks, nonzero, strict=True) if d > 0)
    sums = [sum(r for r, s in zip(ranks, signs, strict=True) if s)
            for signs in itertools.product((False, True), repeat=len(ranks))]
    below = sum(w <= observed + 1e-9 for w in sums)
    above = sum(w >= observed - 1e-9 for w in sums)
    return min(1.0, 2 * min(below, above) / len(sums))


def statistics_midrank(ordered: list[float], value: float) -> float:
    first = ordered.index(value)
    last = len(ordered) - 1 - ordered[::-1].index(value)
    return (first + last) / 2 + 1


def test_all_positive_differences_give_the_smallest_exact_p():
    assert signed_rank_test([1, 2, 3, 4, 5]).p_value == pytest.approx(2 / 32)
    assert signed_rank_test([-1, -2, -3, -4, -5, -6]).p_value == pytest.approx(2 / 64)
    assert signed_rank_test([3, 1, 2, 5, 4]).statistic == 15


def test_the_textbook_paired_example():
    # Hollander & Wolfe's depression scores (R: wilcox.test(x, y, paired = TRUE): V = 40,
    # p-value = 0.03906)
    x = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]
    y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29]
    result = signed_rank_test([a - b for a, b in zip(x, y, strict=True)])
    assert result.statistic == 40 and result.method == "exact"
    assert result.p_value == pytest.approx(0.0390625)


@pytest.mark.parametrize("differences", [
    [0.5, -0.5, 1.0, 1.0, 2.0, -3.0, 0.0, 4.0, 4.0, -4.0],  # ties and a zero
    [1, 2, 2, 2, -3, 5, 5, 6, 7, -8, 9, 10],
    [-1, -1, -1, -1, 2],
])
def test_exact_p_matches_enumerating_every_sign_pattern(differences):
    result = signed_rank_test(differences)
    assert result.n == sum(d != 0 for d in differences)
    assert result.p_value == pytest.approx(brute_force_p(differences))


def test_no_differences_or_only_zeros_is_no_evidence():
    assert signed_rank_test([]).p_value == 1.0
    assert signed_rank_test([0.0, 1e-15, -1e-13]).p_value == 1.0
    assert signed_rank_test([0.0, 0.0, 2.0, 2.0, 2.0]).n == 3


def test_the_normal_approximation_is_close_to_the_exact_p_and_symmetric():
    differences = [((i * 37) % 23 - 9.5) * (1 + i % 3) for i in range(40)]  # ties included
    exact = signed_rank_test(differences)
    normal = signed_rank_test(differences, exact_max=0)
    assert exact.method == "exact" and normal.method == "normal"
    assert normal.p_value == pytest.approx(exact.p_value, abs=0.01)
    assert signed_rank_test([-d for d in differences], exact_max=0).p_value == pytest.approx(
        normal.p_value)
    shifted = signed_rank_test([d + 6 for d in differences], exact_max=0)
    assert shifted.p_value < 0.01 < normal.p_value
