"""docs/space.md cannot rot: every whole space in it validates, and its knob tables are the
block registry's.

Regenerate the knob tables after adding or changing a block:

    python tests/searchspace/test_docs.py --write
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

DOC = Path(__file__).resolve().parents[2] / "docs" / "space.md"
BEGIN, END = "<!-- knob tables: begin (generated) -->", "<!-- knob tables: end -->"


def yaml_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, body) of every ```yaml block."""
    return [(text[:m.start()].count("\n") + 2, m.group(1))
            for m in re.finditer(r"^```yaml\n(.*?)^```", text, re.M | re.S)]


def whole_spaces(text: str) -> list[tuple[int, str]]:
    """The yaml blocks that are a whole space: a mapping with `name:` at the top level."""
    out = []
    for line, body in yaml_blocks(text):
        try:
            data = yaml.safe_load(body)
        except yaml.YAMLError:
            continue
        if isinstance(data, dict) and "name" in data:
            out.append((line, body))
    return out


def knob_tables() -> str:
    """One markdown table per role: block, letter, knobs with type, default and allowed values."""
    from nas.blocks import get_block, list_blocks
    from nas.spec import mixer_letter

    parts = []
    for role, title in (("token_mixer", "Token mixers"), ("channel_mixer", "Channel mixers")):
        header = "| mixer | letter | knob | type | default | allowed |" if role == "token_mixer" \
            else "| channel mixer | knob | type | default | allowed |"
        rule = "|" + "---|" * (header.count("|") - 1)
        rows = [f"**{title}**", "", header, rule]
        for name in [n for n in list_blocks(role=role) if "." not in n]:  # not user mixers
            info = get_block(name, role)
            lead = [f"`{name}`"] + ([f"`{mixer_letter(name)}`"] if role == "token_mixer" else [])
            knobs = info.knobs or [None]
            for i, knob in enumerate(knobs):
                cells = lead if i == 0 else [""] * len(lead)
                if knob is None:
                    rows.append("| " + " | ".join([*cells, "—", "", "", ""]) + " |")
                    continue
                allowed = (", ".join(f"`{_yaml(c)}`" for c in knob.choices) if knob.choices
                           else f">= {knob.minimum:g}" if knob.minimum is not None else "")
                rows.append("| " + " | ".join([*cells, f"`{knob.name}`", knob.type.__name__,
                                                f"`{_yaml(knob.default)}`", allowed]) + " |")
        parts.append("\n".join(rows))
    parts.append(preset_table())
    return "\n\n".join(parts)


def preset_table() -> str:
    """The presets: name, letter, block, the knobs it sets, the paper it follows."""
    from nas.blocks import get_preset, list_presets

    rows = ["**Presets** (token mixers by their literature names; a model records the block)", "",
            "| preset | letter | block | sets | follows |", "|---|---|---|---|---|"]
    for name in list_presets():
        preset = get_preset(name)
        rows.append(f"| `{name}` | `{preset.letter}` | `{preset.block}` | {preset.settings()} | "
                    f"{preset.paper} |")
    return "\n".join(rows)


def _yaml(value) -> str:
    """A value as YAML spells it: null, true, 4, elu."""
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip()


def test_doc_exists_and_readme_links_it():
    assert DOC.exists()
    assert "docs/space.md" in (DOC.parents[1] / "README.md").read_text()


def test_knob_tables_match_the_registry():
    text = DOC.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    assert text[start:end].strip() == knob_tables().strip(), (
        "the knob tables are stale: run `python tests/searchspace/test_docs.py --write`")


def _spaces():
    return whole_spaces(DOC.read_text()) if DOC.exists() else []


def test_doc_has_many_whole_spaces():
    assert len(_spaces()) >= 8


@pytest.mark.parametrize("line,body", _spaces(), ids=[f"line{n}" for n, _ in _spaces()])
def test_every_whole_space_in_the_doc_validates(line, body):
    from nas.searchspace import loads

    space = loads(body, f"docs/space.md:{line}")
    assert space.order  # compiled into a decision graph


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        text = DOC.read_text()
        start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
        DOC.write_text(text[:start] + "\n" + knob_tables() + "\n" + text[end:])
    else:
        print(knob_tables())
