"""The expression language: parsed by a whitelist, never executed; units, precedence, errors."""

from __future__ import annotations

import pytest

from nas.expr import CallInfo, ExprError, parse


def value(text, **env):
    return parse(text).evaluate(env)


@pytest.mark.parametrize("text, expected", [
    ("2e6", 2e6), ("2.5e-3", 2.5e-3), ("1_000", 1000), (".5", 0.5),
    ("3k", 3000), ("2M", 2_000_000), ("1G", 10**9), ("1.5k", 1500),
    ("512KiB", 512 * 1024), ("4MiB", 4 * 2**20), ("1GiB", 2**30), ("0.5MiB", 2**19),
    ("2e3k", 2_000_000),
])
def test_numbers_and_units(text, expected):
    assert value(text) == expected


def test_units_only_right_after_a_number():
    assert value("x1k + 1", x1k=2) == 3  # a name that merely contains digits and letters
    with pytest.raises(ExprError, match="unknown unit 'MB'.*known units: k, M, G, KiB"):
        parse("params < 4MB")
    with pytest.raises(ExprError, match="malformed number '2e'"):
        parse("2e + 1")
    with pytest.raises(ExprError, match="unknown unit 'x10'"):
        parse("0x10")


@pytest.mark.parametrize("text, expected", [
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("8 / 4 / 2", 1.0), ("10 - 4 - 3", 3),
    ("-2 * 3", -6), ("- (1 + 2)", -3), ("+4", 4), ("2 * 3k", 6000),
    ("1 < 2 < 3", True), ("1 < 3 < 2", False), ("3 > 2 >= 2", True), ("2 == 2.0", True),
    ("1 != 1", False), ("1 <= 1", True),
    ("1 < 2 and 2 < 1", False), ("1 < 2 or 2 < 1", True), ("not 1 < 2", False),
    ("not 1 > 2 and 3 > 2", True),  # not binds tighter than and
    ("1 > 2 and 3 > 2 or 1 < 2", True),  # and binds tighter than or
    ("1 > 2 and (3 > 2 or 1 < 2)", False),
    ("1 + 1 == 2 and not 2 * 2 == 5", True),  # arithmetic binds tighter than comparisons
    ("True and not False", True),
])
def test_precedence_and_logic(text, expected):
    assert value(text) == expected


def test_names_and_calls():
    expr = parse("accuracy > 0.9 and latency_ms < 2 and state_bytes(seq_len=4k) <= 4MiB "
                 "and count(attention) >= 1 and accuracy > 0.5")
    assert expr.names == ("accuracy", "latency_ms")
    assert expr.calls == (
        CallInfo("state_bytes", (), (("seq_len", 4000),), "state_bytes(seq_len=4000)"),
        CallInfo("count", ("attention",), (), "count(attention)"),
    )
    assert expr.functions == ("state_bytes", "count")
    seen = []

    def state_bytes(seq_len):
        seen.append(seq_len)
        return seq_len * 1024

    env = {"accuracy": 0.95, "latency_ms": 1.5, "state_bytes": state_bytes,
           "count": lambda kind: {"attention": 2}.get(kind, 0)}
    assert expr.evaluate(env) is True
    assert seen == [4000]
    assert expr.evaluate({**env, "latency_ms": 3}) is False
    assert value("f(a, b, scale=-2, mode=fast, on=True)",
                 f=lambda *a, **k: (a, k)) == (("a", "b"), {"scale": -2, "mode": "fast",
                                                             "on": True})


def test_and_or_short_circuit():
    def boom():
        raise AssertionError("evaluated")

    assert value("1 > 2 and boom() > 0", boom=boom) is False
    assert value("1 < 2 or boom() > 0", boom=boom) is True


def test_is_condition():
    assert parse("a < 1").is_condition and parse("not a").is_condition
    assert parse("a < 1 or b").is_condition and parse("True").is_condition
    assert not parse("a + 1").is_condition and not parse("a").is_condition


@pytest.mark.parametrize("text, match", [
    ("__import__('os')", "names may not start with '_'"),
    ("f('os')", "arguments of f\\(\\) must be bare names"),
    ("a.b > 1", "attribute access not allowed: 'a.b'"),
    ("().__class__", "attribute access not allowed"),
    ("lambda: 1", "lambda not allowed"),
    ("x[0] > 1", "subscripts not allowed: 'x\\[0\\]'"),
    ("'s' == a", "strings are not allowed"),
    ("2 ** 10", "operator '\\*\\*' is not allowed"),
    ("a in b", "operator 'in' is not allowed"),
    ("[1, 2]", "lists not allowed"),
    ("a if b else c", "if-else expressions not allowed"),
    ("(a := 1)", "assignment"),
    ("f(x=g(1))", "keyword arguments of f\\(\\) must be constants"),
    ("f(**k)", "unpacking"),
    ("f(*k)", "bare names"),
    ("a.b()", "only plain function names"),
    ("1 +", "invalid syntax"),
    ("", "empty expression"),
    ("a < 1\nb > 2", "one line"),
    ("~a", "'~'"),
])
def test_rejected(text, match):
    with pytest.raises(ExprError, match=match) as info:
        parse(text)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("text", [
    "params ‹ ²", "accuracy > ²", "accuracy > ²MiB", "accuracy > ٣", "x > 1²",
    "x > .²", "x > 1e²", "x > ①", "x > １", "x > 2³k",
])
def test_unicode_digits_are_one_error_not_a_crash(text):
    # str.isdigit() is true for superscripts and other scripts' digits; none is a NUMBER here
    with pytest.raises(ExprError) as info:
        parse(text)
    assert "\n" not in str(info.value)


def test_every_unicode_character_parses_or_is_an_expr_error():
    for code in range(0x80, 0x3000):
        char = chr(code)
        for text in (f"a > {char}", f"1{char}", f".{char}", f"a{char} > 1", f"2{char}MiB"):
            try:
                parse(text)
            except ExprError:
                pass


def test_deep_nesting_is_an_error_not_a_crash():
    with pytest.raises(ExprError):
        parse("(" * 5000 + "1" + ")" * 5000)
    with pytest.raises(ExprError, match="longer than"):
        parse("1 + " * 1000 + "1")


def test_evaluate_errors():
    with pytest.raises(ExprError, match="unknown name 'nope'; known: a"):
        value("nope > 1", a=1)
    with pytest.raises(ExprError, match="unknown function 'g'"):
        value("g(seq_len=1) > 1", a=1)
    with pytest.raises(ExprError, match="division by zero"):
        value("a / 0", a=1)
    with pytest.raises(ExprError, match="cannot compare None < 2"):
        value("a < 2", a=None)
    with pytest.raises(ExprError, match="arithmetic needs numbers"):
        value("a + 1", a=None)
    with pytest.raises(ExprError, match="f\\(bad=1\\)"):
        value("f(bad=1) > 0", f=lambda seq_len: seq_len)
    with pytest.raises(ExprError, match="unknown name 'f'"):
        value("f > 0", f=len)  # a function is not a value
