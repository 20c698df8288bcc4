"""Read a space file safely: YAML (safe loader only) -> pydantic -> compiled SearchSpace.

Every mistake in the file is one SpaceError that names where it is written,
`FILE:LINE:COL: KEY: PROBLEM — fix: FIX`: the loader keeps the YAML node tree and maps the key
path of any error (from pydantic or from the compiler) to its line and column.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import ValidationError

from nas.errors import SpaceError, brief, did_you_mean
from nas.searchspace.compile import SearchSpace, compile_space
from nas.searchspace.locate import DuplicateKeyError, TooLargeError, locate, parse
from nas.searchspace.schema import SpaceFile, describe_validation_error

MAX_FILE_BYTES = 1 << 20  # a space file is a page of YAML; 1 MB is far beyond any real one


def load(path: str | Path, *, allow_code: bool = False) -> SearchSpace:
    """Load, validate and compile the space at `path`.

    Nothing in the file runs: a python task's module and a user mixer's module are located
    and their source is read, not imported, unless `allow_code` is true (the user's explicit
    trust, `nas search --allow-code`; a space file cannot grant it). Without it a space that
    needs user code loads, but `space.code_refusal` says so and a search refuses it.

    Raises SpaceError (one line: file, position, key, problem, fix) for anything wrong with it.
    """
    path = Path(path)
    try:
        size = path.stat().st_size if path.is_file() else 0
        if size > MAX_FILE_BYTES:
            raise SpaceError(str(path), "", f"space file is {size / 1e6:.1f} MB; the limit is "
                             "1 MB", "a space file is a page of YAML: remove what is not "
                             "part of the space", 1, 1)
        data = path.read_bytes()
    except FileNotFoundError:
        raise SpaceError(str(path), "", "file not found", "check the path") from None
    except IsADirectoryError:
        raise SpaceError(str(path), "", "is a directory, not a file",
                         "name the space's .yaml file") from None
    except OSError as exc:
        raise SpaceError(str(path), "", f"cannot read the file ({exc.strerror or exc})",
                         "check its permissions") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpaceError(str(path), "", f"not UTF-8 text (byte {data[exc.start]:#04x})",
                         "save the file as UTF-8", line, column) from None
    return loads(text, str(path), allow_code=allow_code)


def loads(text: str, path: str = "<string>", *, allow_code: bool = False) -> SearchSpace:
    """Like `load`, from the YAML text itself; `path` is only used in messages."""
    _check_text(text, path)
    try:
        raw, root = parse(text)
    except TooLargeError as exc:
        raise SpaceError(path, exc.key, exc.problem, exc.fix, *exc.position) from None
    except DuplicateKeyError as exc:
        dup = exc.duplicate
        raise SpaceError(path, dup.key, f"key given twice (first at {dup.first[0]}:"
                         f"{dup.first[1]}, again at {dup.again[0]}:{dup.again[1]})",
                         "keep one of them: YAML would silently use the last", *dup.again) from None
    except yaml.YAMLError as exc:
        raise _syntax_error(path, exc) from None
    except RecursionError:
        raise SpaceError(path, "", "nested too deeply to read", "flatten the file") from None
    if not isinstance(raw, dict):
        got = {type(None): "empty", list: "a list", str: f"the text {brief(raw)}"}.get(
            type(raw), f"a {type(raw).__name__}")
        raise SpaceError(path, "", f"the file must be a YAML mapping (name:, task:, model:, ...); "
                         f"it is {got}", "see examples/quickstart.yaml", 1, 1)
    try:
        config = SpaceFile.model_validate(raw)
    except ValidationError as exc:
        key, problem, fix = describe_validation_error(exc)
        raise SpaceError(path, key, problem, fix, *locate(root, key)) from None
    try:
        space = compile_space(path, text, config, allow_code=allow_code)
        _check_defaults(path, config)
    except SpaceError as exc:
        if exc.line is not None or exc.path != path:
            raise
        task = _task_at(raw, exc.key)
        if task is not None:
            exc = _task_error(exc, task, exc.key)
        raise exc.at(*locate(root, exc.key)) from None
    if space.code_refusal is not None:
        space.code_refusal = space.code_refusal.at(*locate(root, space.code_refusal.key))
    return space


def require_trusted(space: SearchSpace) -> None:
    """Raise `space.code_refusal` (a SpaceError naming the key and the module file) when the
    space needs user code that was not allowed to load; a search calls this before it starts
    anything."""
    if space.code_refusal is not None:
        raise space.code_refusal


def _check_text(text: str, path: str) -> None:
    """Refuse what is no space file before YAML reads it: too long, or holding a NUL byte
    (binary data, or a file saved as UTF-16)."""
    if len(text) > MAX_FILE_BYTES:
        raise SpaceError(path, "", f"space file is {len(text.encode()) / 1e6:.1f} MB; the limit "
                         "is 1 MB", "a space file is a page of YAML: remove what is not part "
                         "of the space", 1, 1)
    nul = text.find("\0")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        column = nul - (text.rfind("\n", 0, nul) + 1) + 1
        raise SpaceError(path, "", f"contains a NUL byte (\\0) at {line}:{column}",
                         "save it as plain text", line, column)


def _check_defaults(path: str, config: SpaceFile) -> None:
    """`budget:` and `storage:` are only used by `nas search`, but a typo in them is a mistake in
    the file, so it is reported when the file loads."""
    from nas.budget import parse_budget
    from nas.errors import BudgetError

    if config.budget is not None:
        try:
            parse_budget(config.budget)
        except BudgetError as exc:
            raise SpaceError(path, "budget", str(exc).split("; ")[0],
                             "write e.g. 100gpuh, 2cpuh, 90s, 30m, 2h or 50trials") from None
    if config.storage is not None:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(config.storage)
        except ArgumentError:
            raise SpaceError(path, "storage", f"{brief(config.storage)} is not a database URL",
                             "write e.g. sqlite:///nas.db or postgresql://user@host/db") from None


def _task_at(raw: dict, key: str) -> dict | None:
    """The task config written at `key` (`task` or `proxies.<i>.task`), or None when `key` is
    not a task's."""
    parts = key.split(".")
    if parts == ["task"]:
        return raw.get("task")
    if len(parts) == 3 and parts[0] == "proxies" and parts[2] == "task":
        return raw["proxies"][int(parts[1])]["task"]
    return None


def _task_error(exc: SpaceError, task: dict, at: str = "task") -> SpaceError:
    """Point a task's own complaint at the task key it is about (`task.kind`, `task.seq_len`;
    under `at`, e.g. `proxies.0.task`) and suggest the nearest known kind."""
    from nas.tasks import TASK_KINDS, task_options

    kind = task.get("kind")
    if kind not in TASK_KINDS:
        return SpaceError(exc.path, f"{at}.kind",
                          f"unknown task kind {brief(kind)}{did_you_mean(kind, TASK_KINDS)}",
                          f"use one of {', '.join(TASK_KINDS)}")
    accepted = task_options(kind)
    if accepted is None:  # a python task: its factory checks its own keys
        problem, _, fix = exc.problem.partition("; fix: ")
        about_entrypoint = problem.startswith("python task: ")  # not the factory's own words
        key = (f"{at}.entrypoint" if about_entrypoint and "entrypoint" in task
               else _task_key(problem, {k: v for k, v in task.items() if k != "entrypoint"}, at))
        return SpaceError(exc.path, key, problem, exc.fix or fix)
    unknown = [k for k in task if k != "kind" and k not in accepted]
    if unknown:
        return SpaceError(exc.path, f"{at}.{unknown[0]}",
                          f"unknown key {brief(unknown[0])} of task "
                          f"{brief(kind)}{did_you_mean(unknown[0], accepted)}",
                          f"keys allowed here: kind, {', '.join(accepted)}")
    problem, _, fix = exc.problem.partition("; fix: ")  # tasks put their fix in the message
    return SpaceError(exc.path, _task_key(problem.split(";")[0], task, at), problem,
                      exc.fix or fix)


def _task_key(said: str, task: dict, at: str = "task") -> str:
    """The task key a task's complaint names first, under `at`: `task.seq_len`;
    `task.levels.0.seq_len` for an item written `levels[0].seq_len`; `task` when it names
    none."""
    found = {}
    for k in task:
        match = re.search(rf"\b{re.escape(str(k))}\b(?:\[(\d+)\](?:\.(\w+))?)?", said)
        if k != "kind" and match:
            found[match.start()] = ".".join(p for p in (str(k), *match.groups()) if p)
    return f"{at}.{found[min(found)]}" if found else at


def _syntax_error(path: str, exc: yaml.YAMLError) -> SpaceError:
    """A YAML syntax (or unsafe tag) error at its own mark."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if "tag" in problem:
        fix = "plain YAML only: remove the !tag"
    elif "\\t" in problem or "tab" in problem:
        fix = "indent with spaces, not tabs"
    else:
        fix = "check indentation, colons, quotes and brackets there"
    line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
    return SpaceError(path, "", f"not valid YAML: {problem}", fix, line, column)
