"""User code a space file names — a python task's entrypoint, a mixer's import path — checked
without running any of it.

A space file may come from someone else, so loading it never imports a module: the module's
file is found by walking the search path the way the import system would (without executing
any package's `__init__.py` on the way), its source is parsed with `ast`, and the named
function or class must be defined at its top level. Only `nas search --allow-code` (the user's
trust, never the file's) imports it.

Modules of Python's standard library and of nas itself are refused outright: a space has no
business running `os:system` or `shutil:rmtree`, and nas's own blocks are named by their
registry names (`attention`), not by import paths.
"""

from __future__ import annotations

import ast
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from nas.errors import brief, did_you_mean

MAX_SOURCE_BYTES = 4 << 20  # a user module larger than this is not parsed
MAX_IMPORT_PATH = 200  # characters of a module path and attribute
_IDENTIFIER_PARTS = "a module path is names joined by dots, e.g. mypkg.tasks"


class UserCodeError(ValueError):
    """User code that cannot be used: the message is 'PROBLEM; fix: FIX'."""


@dataclass(frozen=True)
class UserCode:
    """One piece of user code a space names: `module`'s `attribute`, defined in `file`."""

    module: str
    attribute: str
    file: Path


def refusal(module: str) -> str | None:
    """Why `module` may never be named by a space file (standard library, nas), or None."""
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return f"{module!r} is part of Python's standard library"
    if top == "nas":
        return f"{module!r} is part of nas itself"
    return None


INSTALLED_FOLDERS = ("site-packages", "dist-packages")


def installed_package(file: Path) -> bool:
    """Whether `file` lies inside a folder of installed packages (a site-packages or
    dist-packages folder, sysconfig's purelib or platlib, the user site): third-party code such
    as `yaml:unsafe_load` or `numpy:load`, whose functions run whatever their input says."""
    try:
        real = Path(os.path.realpath(file))
    except (OSError, ValueError):
        return True
    if any(part in INSTALLED_FOLDERS for part in (*file.absolute().parts, *real.parts)):
        return True
    import site
    import sysconfig

    roots = [sysconfig.get_paths().get(key) for key in ("purelib", "platlib")]
    try:
        roots.append(site.getusersitepackages())
    except AttributeError:  # a virtual environment's stripped-down site module
        pass
    for root in filter(None, roots):
        if real.is_relative_to(os.path.realpath(root)):
            return True
    return False


def import_refusal(module: str, extra: str | None = None, nas_allowed: bool = False) -> str | None:
    """Why `module` must not be imported as user code, checked at the import itself (whoever
    asked for it: a space, a stored spec, an export's arch.json), or None. Refused: the standard
    library, nas itself (unless `nas_allowed`: a nas block named by its import path is nas's
    own code) and installed packages (found as files on the search path, `extra` first).
    Permission (--allow-code) is the caller's to check; this is the floor under it."""
    if nas_allowed and module.split(".")[0] == "nas":
        return None
    why = refusal(module)
    if why is not None:
        return why
    file = find_module_file(module, search_path(extra))
    if file is not None and installed_package(file):  # not found: the import will say so
        return f"{brief(module)} ({file}) is an installed package, not the user's own code"
    return None


def search_path(extra: str | None = None) -> list[Path]:
    """Folders a user module is looked up in, in order: `extra` (a task's `path:`), the current
    directory, then sys.path's folders (zip archives and missing entries skipped)."""
    folders = [extra] if extra else []
    folders += [os.getcwd(), *sys.path]
    out: list[Path] = []
    for folder in folders:
        candidate = Path(folder or os.getcwd()).absolute()
        if candidate not in out and candidate.is_dir():
            out.append(candidate)
    return out


def find_module_file(module: str, folders: list[Path]) -> Path | None:
    """The source file of `module` (`a.b.c` -> `a/b/c.py` or `a/b/c/__init__.py`) in the first
    of `folders` that has it, found by looking at files only: nothing is imported."""
    parts = module.split(".")
    for folder in folders:
        base = folder.joinpath(*parts[:-1])
        try:
            if not base.is_dir():
                continue
            for candidate in (base / f"{parts[-1]}.py", base / parts[-1] / "__init__.py"):
                if candidate.is_file():
                    return candidate
        except OSError:  # a name too long for the file system, a folder we may not read
            continue
    return None


def top_level_names(file: Path) -> tuple[dict[str, ast.AST], list[str]]:
    """(every name bound at the top level of `file` -> its node, the public functions and
    classes it defines itself, sorted). Raises UserCodeError when it cannot be read or
    parsed."""
    try:
        if file.stat().st_size > MAX_SOURCE_BYTES:
            raise UserCodeError(f"{file} is larger than {MAX_SOURCE_BYTES >> 20} MB; fix: "
                                "point the space at a smaller module")
        tree = ast.parse(file.read_bytes(), filename=str(file))
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise UserCodeError(f"{file} is not valid Python ({type(exc).__name__}); fix: correct "
                            "the module") from None
    except OSError as exc:
        raise UserCodeError(f"cannot read {file} ({exc.strerror or exc}); fix: check its "
                            "permissions") from None
    bound: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound[node.name] = node
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            bound.update((t.id, node) for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            bound.update(((a.asname or a.name).split(".")[0], node) for a in node.names)
    defined = sorted(name for name, node in bound.items() if not name.startswith("_")
                     and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef))
    return bound, defined


def locate(module: str, attribute: str, folders: list[Path], spelled: str,
           missing_fix: str) -> tuple[UserCode, ast.AST]:
    """Check that `module` is a user's module on `folders` whose top level binds `attribute`;
    (the UserCode, the node binding it). `spelled` is how the file names it, for messages;
    `missing_fix` the fix when the module is not found. Raises UserCodeError."""
    if len(module) + len(attribute) > MAX_IMPORT_PATH or not attribute.isidentifier() \
            or not all(part.isidentifier() for part in module.split(".")):
        raise UserCodeError(f"{brief(spelled)} is not an import path; fix: "
                            f"{_IDENTIFIER_PARTS}")
    why = refusal(module)
    if why is not None:
        raise UserCodeError(f"{why}: a space may only name the user's own code; fix: write "
                            "the function in a module of your own beside the space")
    file = find_module_file(module, folders)
    if file is None:
        raise UserCodeError(f"cannot find module {module!r} (looked in the task's path:, the "
                            f"current directory and sys.path); fix: {missing_fix}")
    if installed_package(file):
        raise UserCodeError(f"{module!r} ({file}) is an installed package, not the user's own "
                            "code: a space may only name the user's own code; fix: name a "
                            "function of your own (a module beside the space, or in the task's "
                            "`path:`)")
    bound, defined = top_level_names(file)
    node = bound.get(attribute)
    if node is None:
        fix = (f"name one of its functions: {', '.join(f'{module}:{n}' for n in defined[:10])}"
               if defined else f"define {attribute} in {file}")
        raise UserCodeError(f"{module!r} ({file}) defines no {attribute!r}"
                            f"{did_you_mean(attribute, defined)}; fix: {fix}")
    return UserCode(module, attribute, file), node


def literal_knobs(node: ast.AST) -> dict[str, object] | None:
    """The knobs a user mixer class declares by its `__init__` keyword defaults, read from the
    source: name -> default. None when they cannot be read without running it (a `knobs`
    attribute, a default that is not a literal, no `__init__` of its own)."""
    if not isinstance(node, ast.ClassDef):
        return None
    init = None
    for item in node.body:
        if isinstance(item, ast.Assign | ast.AnnAssign):
            targets = item.targets if isinstance(item, ast.Assign) else [item.target]
            if any(isinstance(t, ast.Name) and t.id == "knobs" for t in targets):
                return None
        if isinstance(item, ast.FunctionDef) and item.name == "__init__":
            init = item
    if init is None:
        return None
    args = init.args
    positional = [*args.posonlyargs, *args.args][3:]  # self, d_model, layer_idx
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    knobs: dict[str, object] = {}
    for arg, default in [*zip(positional, defaults, strict=True),
                         *zip(args.kwonlyargs, args.kw_defaults, strict=True)]:
        if default is None:
            return None  # a knob without a default: the import says so, with --allow-code
        try:
            knobs[arg.arg] = ast.literal_eval(default)
        except (ValueError, TypeError, SyntaxError, RecursionError):
            return None
    return knobs


def spec_blocks(spec: object) -> list[str]:
    """The blocks of an ArchSpec named by import path outside nas (`mypkg.mixers.MyMixer`):
    building its model imports their modules, which is running user code. Sorted."""
    kinds = set()
    for layer in getattr(spec, "layers", ()):
        kinds.update(module.kind for module in (layer.mixer, layer.channel_mixer))
    return sorted(kind for kind in kinds
                  if isinstance(kind, str) and "." in kind and kind.split(".")[0] != "nas")


def spec_refusal(spec: object, what: str = "the architecture") -> str | None:
    """'PROBLEM; fix: FIX' saying that building `spec`'s model would run user code (a mixer
    named by import path) and needs the user's permission, naming the module's file (found on
    disk, nothing imported); None when it names no user block."""
    blocks = spec_blocks(spec)
    if not blocks:
        return None
    where = module_location(blocks[0].rpartition(".")[0])
    return (f"{what} uses the mixer {brief(blocks[0])}, which runs code from {where}, and "
            "running code needs your permission; fix: if you trust "
            f"{where}, rerun with --allow-code")


def module_location(module: str, extra: str | None = None) -> str:
    """Where user code `module` lives, for a message asking permission to run it: its file,
    found on disk (`extra` first; nothing imported), else "module 'NAME'"."""
    file = None
    if module and all(part.isidentifier() for part in module.split(".")) \
            and len(module) <= MAX_IMPORT_PATH:
        file = find_module_file(module, search_path(extra))
    return str(file) if file is not None else f"module {brief(module)}"
