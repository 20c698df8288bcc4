"""Where a key of a space file is written: YAML nodes with their marks, and key paths to them.

`parse(text)` composes the YAML with the safe loader (no Python tags) and keeps the node tree, so
an error about `objectives.1.phase` can say `space.yaml:23:40`. It also refuses duplicate keys,
which PyYAML would otherwise resolve silently by keeping the last one.

Key paths are dotted, with list indices as numbers (`objectives.1.phase`). A mapping key may
itself contain dots (a user mixer named by its import path, `model.token_mixers.pkg.mod.Mixer`),
so each step matches the longest run of parts that is a key there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Duplicate:
    """A key written twice in one mapping: its path and both (line, column) positions."""

    key: str
    first: tuple[int, int]
    again: tuple[int, int]


class DuplicateKeyError(ValueError):
    def __init__(self, duplicate: Duplicate) -> None:
        super().__init__(duplicate.key)
        self.duplicate = duplicate


def parse(text: str) -> tuple[Any, yaml.Node | None]:
    """(data, root node) of YAML `text`. Raises yaml.YAMLError for bad syntax or unsafe tags,
    DuplicateKeyError for a key given twice in one mapping."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        duplicate = find_duplicate(root)
        if duplicate is not None:
            raise DuplicateKeyError(duplicate)
        return loader.construct_document(root), root
    finally:
        loader.dispose()


def find_duplicate(root: yaml.Node) -> Duplicate | None:
    """The first key written twice in the same mapping (merge keys `<<` aside), if any."""
    stack: list[tuple[yaml.Node, tuple[str, ...]]] = [(root, ())]
    seen_nodes: set[int] = set()  # aliases share nodes; visit each once
    while stack:
        node, path = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], yaml.Node] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                if isinstance(key_node, yaml.ScalarNode):
                    ident = (key_node.tag, key_node.value)
                    if ident in first:
                        return Duplicate(".".join((*path, key_node.value)),
                                         _position(first[ident]), _position(key_node))
                    first[ident] = key_node
                name = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                stack.append((value_node, (*path, str(name))))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*path, str(i))) for i, item in enumerate(node.value))
    return None


def locate(root: yaml.Node | None, key: str) -> tuple[int, int]:
    """(line, column), 1-based, of the deepest node on `key`'s path that the file has: the key
    itself where it exists (or the list item), else its nearest existing parent. (1, 1) for an
    empty path or an empty document."""
    if root is None:
        return 1, 1
    parts = [p for p in key.split(".") if p] if key else []
    node: yaml.Node | None = root
    where = _position(root)
    while parts and node is not None:
        if isinstance(node, yaml.MappingNode):
            found = _find_key(node, parts)
            if found is None:
                break
            key_node, node, used = found
            where, parts = _position(key_node), parts[used:]
        elif isinstance(node, yaml.SequenceNode) and parts[0].isdigit() \
                and int(parts[0]) < len(node.value):
            node = node.value[int(parts[0])]
            where, parts = _position(node), parts[1:]
        else:
            break
    return where


def _find_key(node: yaml.MappingNode, parts: list[str]):
    """(key node, value node, parts used) for the longest dotted prefix of `parts` that is a
    key of `node`; the last spelling wins, as in the loaded data."""
    pairs = [(k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)]
    for used in range(len(parts), 0, -1):
        name = ".".join(parts[:used])
        for key_node, value_node in reversed(pairs):
            if key_node.value == name:
                return key_node, value_node, used
    return None


def _position(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1
