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
MAX_VALUES = 100_000  # values a file may hold once its aliases are expanded
MAX_DEPTH = 64  # mappings and lists nested in one another
MAX_DIGITS = 100  # digits of a number: no setting needs more, and Python refuses beyond 4300
_INT_TAG = "tag:yaml.org,2002:int"


@dataclass(frozen=True)
class Duplicate:
    """A key written twice in one mapping: its path and both (line, column) positions."""

    key: str
    first: tuple[int, int]
    again: tuple[int, int]


class TooLargeError(ValueError):
    """The document expands to too many values, nests too deeply or refers to itself (YAML
    aliases: a few lines of `&a` / `*a` can stand for billions of values). `key` is where it
    happens, `position` its (line, column)."""

    def __init__(self, problem: str, fix: str, key: str, position: tuple[int, int]) -> None:
        super().__init__(problem)
        self.problem, self.fix, self.key, self.position = problem, fix, key, position


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
        check_size(root)
        duplicate = find_duplicate(root)
        if duplicate is not None:
            raise DuplicateKeyError(duplicate)
        return loader.construct_document(root), root
    finally:
        loader.dispose()


def check_size(root: yaml.Node) -> None:
    """Refuse a node tree that would construct more than MAX_VALUES values, nest deeper than
    MAX_DEPTH, or contain itself (TooLargeError naming the first key where that happens).

    Aliases make the tree a graph that shares nodes, so composing it is cheap while
    constructing it (and anything that walks the data: pydantic, repr) is not; the expanded
    size is counted on the shared graph, each node once, so this check is linear in the file."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    # (node, key path, depth, children pushed?)
    stack: list[tuple[yaml.Node, tuple[str, ...], int, bool]] = [(root, (), 0, False)]
    while stack:
        node, path, depth, expanded = stack.pop()
        ident = id(node)
        if expanded:
            on_path.discard(ident)
            size = 1 + sum(sizes[id(child)] for _, child in _children(node))
            sizes[ident] = size
            if size > MAX_VALUES:
                raise TooLargeError(
                    f"expands to more than {MAX_VALUES:,} values (YAML aliases *name repeat "
                    "what &name marks, and nested aliases multiply)",
                    "write the values out, or use fewer aliases", _dotted(path),
                    _position(node))
            continue
        if ident in sizes:
            continue
        if node.tag == _INT_TAG and len(node.value) > MAX_DIGITS:
            raise TooLargeError(f"a number of {len(node.value):,} digits is beyond any setting",
                                "check for a typo", _dotted(path), _position(node))
        if ident in on_path:
            raise TooLargeError("refers to itself through an alias (*name inside the &name "
                                "it repeats)", "remove the alias", _dotted(path),
                                _position(node))
        if depth > MAX_DEPTH:
            raise TooLargeError(f"nested more than {MAX_DEPTH} levels deep",
                                "flatten the file", _dotted(path), _position(node))
        on_path.add(ident)
        stack.append((node, path, depth, True))
        for name, child in _children(node):
            if id(child) not in sizes:
                stack.append((child, (*path, name), depth + 1, False))


def _children(node: yaml.Node) -> list[tuple[str, yaml.Node]]:
    """(key-path step, node) of each key and value of a mapping, each item of a list."""
    if isinstance(node, yaml.MappingNode):
        out = []
        for key_node, value_node in node.value:
            name = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
            out += [(str(name), key_node), (str(name), value_node)]
        return out
    if isinstance(node, yaml.SequenceNode):
        return [(str(i), item) for i, item in enumerate(node.value)]
    return []


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(path)


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
