import pytest

from nas.budget import parse_budget
from nas.errors import BudgetError
from nas.formatting import format_seconds


@pytest.mark.parametrize("text,unit,amount,kind", [
    ("100gpuh", "device_seconds", 360000, "gpu"),
    ("2cpuh", "device_seconds", 7200, "cpu"),
    ("0.5gpuh", "device_seconds", 1800, "gpu"),
    ("30m", "wall_seconds", 1800, None),
    ("2h", "wall_seconds", 7200, None),
    ("90s", "wall_seconds", 90, None),
    ("50trials", "trials", 50, None),
    ("1 trial", "trials", 1, None),
    ("6M", "wall_seconds", 360, None),
    ("5cpum", "device_seconds", 300, "cpu"),
    ("30 GPUm", "device_seconds", 1800, "gpu"),
])
def test_parse_budget(text, unit, amount, kind):
    budget = parse_budget(text)
    assert (budget.unit, budget.amount, budget.device_kind) == (unit, amount, kind)


@pytest.mark.parametrize("text", ["", "100", "gpuh", "10 parsecs", "-3m", "0m", "2.5trials"])
def test_bad_budget_names_the_accepted_forms(text):
    with pytest.raises(BudgetError):
        parse_budget(text)


def test_describe():
    assert parse_budget("6m").describe(190) == "3m 10s of 6m 00s wall clock"
    assert parse_budget("10trials").describe(4) == "4 of 10 trials"
    assert parse_budget("2cpuh").describe(3600) == "1 of 2 cpuh"
    assert parse_budget("6m").describe_left(190) == "2m 50s"
    assert parse_budget("10trials").describe_left(4) == "6 trials"
    assert parse_budget("2cpuh").describe_left(9000) == "0 cpuh"
    assert parse_budget("5cpum").describe(90) == "1.5 of 5 cpum"
    assert parse_budget("5cpum").describe_left(90) == "3.5 cpum"


def test_format_seconds():
    assert format_seconds(42) == "42s"
    assert format_seconds(0.44) == "0.4s"
    assert format_seconds(185) == "3m 05s"
    assert format_seconds(7800) == "2h 10m"
