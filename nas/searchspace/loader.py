"""Read a space file safely: YAML (safe loader only) -> pydantic -> compiled SearchSpace."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from nas.errors import SpaceError
from nas.searchspace.compile import SearchSpace, compile_space
from nas.searchspace.schema import SpaceFile, describe_validation_error


def load(path: str | Path) -> SearchSpace:
    """Load, validate and compile the space at `path`.

    Raises SpaceError (one line: file, key, problem, fix) for anything wrong with the file.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpaceError(str(path), "", "file not found", "check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpaceError(str(path), "", f"cannot read the file ({exc})") from None
    return loads(text, str(path))


def loads(text: str, path: str = "<string>") -> SearchSpace:
    """Like `load`, from the YAML text itself; `path` is only used in messages."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpaceError(path, where, f"not valid YAML: {problem}",
                         "check indentation, colons and brackets there") from None
    if not isinstance(raw, dict):
        raise SpaceError(path, "", "the file must be a YAML mapping (name:, task:, model:, ...)",
                         "see examples/quickstart.yaml")
    try:
        config = SpaceFile.model_validate(raw)
    except ValidationError as exc:
        key, problem, fix = describe_validation_error(exc)
        raise SpaceError(path, key, problem, fix) from None
    return compile_space(path, text, config)
