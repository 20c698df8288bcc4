"""The corpus of malformed spaces: each file says, on its first line, the message it must give.

    # expect: FILE:LINE:COL: KEY: PROBLEM

The expectation is a prefix of the error's one line; ` … ` in it skips any text (the fragments
must appear in that order). Every file must fail with a SpaceError — never another exception —
that names its position, its key and a fix. `corpus_tasks.py` holds the user tasks of the
`task_python_*` files, loaded with allow_code (tests/hostile/ covers untrusted code).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nas.cli import app
from nas.errors import SpaceError, did_you_mean
from nas.searchspace import load, loads
from nas.searchspace.domains import type_fault, yaml_float
from nas.searchspace.locate import locate, parse

CORPUS = Path(__file__).parent / "malformed"
FILES = sorted(CORPUS.glob("*.yaml"))
SECTIONS = ("top", "yaml", "encoding", "name", "task", "proxy", "model",
            "domain", "choice", "fixed", "mixers", "mixer", "knob", "hybrid", "channel",
            "training", "objective", "objectives", "search", "constraint", "constraints",
            "budget", "storage")


def expectation(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode("utf-8")
    assert first.startswith("# expect: "), f"{path.name}: first line must be '# expect: ...'"
    return first[len("# expect: "):]


def matches(message: str, expected: str) -> bool:
    pattern = ".*".join(re.escape(part) for part in expected.split(" … "))
    return re.match(pattern, message) is not None


def test_corpus_is_large_and_covers_every_section():
    assert len(FILES) >= 40
    prefixes = {p.name.split("_")[0] for p in FILES}
    for section in ("top", "yaml", "name", "task", "model", "mixer", "knob", "hybrid", "channel",
                    "training", "objective", "search", "constraint", "budget", "storage"):
        assert section in prefixes, section
    assert prefixes <= set(SECTIONS), prefixes - set(SECTIONS)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_malformed_space_gives_its_message(path, monkeypatch):
    monkeypatch.chdir(CORPUS)
    expected = expectation(path)
    with pytest.raises(SpaceError) as info:  # the corpus's own user tasks are trusted
        load(path.name, allow_code=path.name.startswith("task_python"))
    message = str(info.value)
    assert "\n" not in message
    assert matches(message, expected), f"\n got:      {message}\n expected: {expected}"
    error = info.value
    assert error.line is not None and error.column is not None, message
    assert message.startswith(f"{path.name}:{error.line}:{error.column}: ")
    assert error.fix and " — fix: " in message, f"no fix: {message}"


@pytest.mark.parametrize("name", ["mixer_typo", "yaml_duplicate_key", "top_empty",
                                  "encoding_not_utf8", "constraint_unknown_name",
                                  "task_sweep_level_no_seq_len", "training_lr_text_exponent"])
def test_cli_prints_one_line_and_exits_2(name, monkeypatch):
    monkeypatch.chdir(CORPUS)
    path = CORPUS / f"{name}.yaml"
    for args in (["validate", path.name], ["space", "show", path.name]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, result.output
        assert result.stdout == ""
        line = result.stderr
        assert line.count("\n") == 1 and line.startswith("error: "), line
        assert "Traceback" not in line
        assert matches(line.removeprefix("error: ").strip(), expectation(path)), line


# -- the pieces ----------------------------------------------------------------------------------

def test_did_you_mean():
    known = ["attention", "linear_attention", "short_conv"]
    assert did_you_mean("atention", known) == " (did you mean 'attention'?)"
    assert did_you_mean("Short_Conv", known) == " (did you mean 'short_conv'?)"
    assert did_you_mean("zebra", known) == ""
    assert did_you_mean("attention", known) == ""  # a known word is not a typo
    assert did_you_mean(3, known) == ""


@pytest.mark.parametrize("text,spelled", [
    ("1e-3", "1.0e-3"), ("1.0e3", "1.0e+3"), ("1E+4", "1.0e+4"), ("-2e-5", "-2.0e-5"),
])
def test_yaml_float_spells_what_yaml_reads_as_a_float(text, spelled):
    import yaml

    assert yaml_float(text) == spelled
    assert isinstance(yaml.safe_load(text), str) and yaml.safe_load(spelled) == float(text)


def test_type_fault_says_what_to_write():
    assert type_fault("1e3", int) == ("must be an integer, got '1e3'",
                                      "YAML reads 1e3 as text; write 1000")
    assert type_fault(4.0, int)[1] == "write 4"
    assert type_fault(False, int, 4) == ("must be an integer, got false (a boolean)",
                                         "write a whole number such as 4")
    assert type_fault("yes please", bool) == ("must be true or false, got 'yes please'",
                                              "write true or false")


TEXT = """\
name: x
model:
  token_mixers:
    pkg.mod.Mixer: {heads: 2}
    attention: {heads: 4}
objectives:
  - {name: accuracy}
  - name: latency_ms
    phase: prefill
"""


@pytest.mark.parametrize("key,where", [
    ("model.token_mixers.attention.heads", (5, 17)),  # the key itself
    ("model.token_mixers.pkg.mod.Mixer.heads", (4, 21)),  # a key with dots in it
    ("objectives.1.phase", (9, 5)),
    ("objectives.0", (7, 5)),  # a list item
    ("model.hybrid.placement", (2, 1)),  # missing: the nearest parent that exists
    ("objectives.7.name", (6, 1)),  # an index past the end: the list's key
    ("", (1, 1)),
])
def test_locate(key, where):
    _, root = parse(TEXT)
    assert locate(root, key) == where


def test_duplicate_keys_name_both_positions():
    with pytest.raises(SpaceError, match=r"^d\.yaml:3:3: model\.d_model: key given twice "
                       r"\(first at 2:3, again at 3:3\)"):
        loads("model:\n  d_model: 1\n  d_model: 2\n", "d.yaml")


def test_same_key_in_different_mappings_is_fine():
    data, _ = parse("a: {x: 1}\nb: {x: 2}\nc: &y {x: 3}\nd: *y\n")
    assert data == {"a": {"x": 1}, "b": {"x": 2}, "c": {"x": 3}, "d": {"x": 3}}


def test_error_pickles_with_its_position():
    import pickle

    error = SpaceError("s.yaml", "model.x", "bad", "fix it", 3, 7)
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error) == "s.yaml:3:7: model.x: bad — fix: fix it"
    assert (again.line, again.column) == (3, 7)
