"""Where trained weights live on disk, and keeping only the ones the run's policy wants.

Files go under an artifacts root beside the database: `<db folder>/nas-artifacts/` for a SQLite
file, `./nas-artifacts/` otherwise, or `$NAS_ARTIFACTS` when set. A run's files are in its run
folder, `<root>/<database>/<run name>/` (`<database>` is the SQLite file's name, e.g. `nas.db`,
or the server and database name): several databases share one root without their runs' folders
meeting, though run names repeat across databases. Weights are
`<run folder>/<trial number>.safetensors`; the store records the path relative to the root, so
a database moved together with its `nas-artifacts` folder still finds them.

Policies (`search.keep_weights`): `front` keeps the weights of the run's Pareto front (files of
trials that leave it are deleted), `all` keeps every completed trial's, `none` saves nothing.
No torch here: workers write the files, this module only names, checks and deletes them.

A database may come from someone else, so a path it names is data, not an instruction: nothing
is read, copied or deleted by a path from a row unless, with every link resolved, it lies inside
the run's own folder (`confine`), and the run's folder itself must be a plain folder under the
root (`run_directory`), not a link to elsewhere.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from nas.errors import StoreError
from nas.spec import RUN_NAME
from nas.store.engine import sqlite_path
from nas.store.untrusted import shown

KEEP_POLICIES = ("front", "all", "none")
WEIGHTS = "weights"
ROOT_NAME = "nas-artifacts"


@dataclass(frozen=True)
class ArtifactFile:
    """A file a worker wrote: its path relative to the artifacts root, size and checksum."""

    path: str
    bytes: int
    sha256: str
    kind: str = WEIGHTS


def artifacts_root(url: str) -> Path:
    """The folder holding the artifacts of the database at `url`."""
    override = os.environ.get("NAS_ARTIFACTS")
    if override:
        return Path(override).expanduser().resolve()
    db = sqlite_path(url)
    return (db.parent if db is not None else Path.cwd()) / ROOT_NAME


MAX_STORED_PATH = 4096  # characters: longer than any path nas writes, or an OS accepts


class OutsideFolder(ValueError):
    """A path from the database that does not stay inside its run's folder (or cannot be a path
    at all); the message says which and why."""


def run_folder(url: str, run_name: str) -> str:
    """The folder of run `run_name` of the database at `url`, relative to the root. StoreError
    for a name that is not a plain folder name (RUN_NAME): a run stored by hand under such a
    name has no folder, so nothing of it is read or deleted by path."""
    if not isinstance(run_name, str) or not RUN_NAME.fullmatch(run_name):
        raise StoreError(f"run name {shown(run_name)} is not a plain folder name, so the run has "
                         "no artifacts folder; the database was edited by hand")
    return f"{database_key(url)}/{run_name}"


def run_directory(root: Path, folder: str) -> Path:
    """The real folder of a run (`folder` relative to `root`, see run_folder). The root may be
    a link (it is where the user keeps artifacts); below it, nothing may be: a run's folder that
    is a link, or sits under one, could lead anywhere. OutsideFolder when it does."""
    base = Path(os.path.realpath(root))
    lexical = base / folder
    real = Path(os.path.realpath(lexical))
    if real != lexical or real == base or not real.is_relative_to(base):
        raise OutsideFolder(f"the run's folder {shown(str(lexical))} is a link (to "
                            f"{shown(str(real))}), not a folder of the artifacts root")
    return real


def confine(root: Path, folder: str, stored: str) -> Path:
    """The file an artifact row names (`stored`: relative to `root`, or absolute), checked to
    be inside the run's folder once every link, `..` and the final name are resolved.

    Returns the path with its folders resolved and its last name kept, so deleting it removes
    a link itself, never what the link points to. OutsideFolder for a path that leaves the run's
    folder (absolute elsewhere, `..`, a link to outside, the run's folder being a link), names
    the folder itself, holds a NUL byte or is longer than any real path."""
    if not isinstance(stored, str) or not stored or "\0" in stored:
        raise OutsideFolder(f"path {shown(stored)} is not a file name")
    if len(stored) > MAX_STORED_PATH:
        raise OutsideFolder(f"path {shown(stored)} is {len(stored):,} characters long")
    run_dir = run_directory(root, folder)
    candidate = Path(stored)
    if not candidate.is_absolute():
        candidate = Path(os.path.realpath(root)) / candidate
    try:
        parent = Path(os.path.realpath(candidate.parent))
        located = parent / candidate.name
        target = Path(os.path.realpath(located))
    except (OSError, ValueError) as exc:
        raise OutsideFolder(f"path {shown(stored)} cannot be resolved ({exc})") from None
    if candidate.name in ("", ".", "..") or not parent.is_relative_to(run_dir):
        raise OutsideFolder(f"path {shown(stored)} is outside the run's folder "
                            f"{shown(str(run_dir))}")
    if target == run_dir or not target.is_relative_to(run_dir):
        raise OutsideFolder(f"path {shown(stored)} is a link to {shown(str(target))}, outside the "
                            f"run's folder {shown(str(run_dir))}")
    return located


class OtherDatabase(OutsideFolder):
    """A path written under another database's folder of the root (`<other key>/<run>/...`):
    the database was copied or renamed without its artifacts folder; the message says so and
    how to bring the files along."""


def rebased(folder: str, stored: str) -> str | None:
    """`stored` moved into this database's folder when it names a file of the same run under
    another database's folder of the root (`<other key>/<run name>/<file>`, nothing absolute,
    no `.` or `..`: what nas wrote before the database file was copied or renamed); else None.
    The result still goes through `confine`."""
    key, _, run = folder.partition("/")
    if not isinstance(stored, str) or "\0" in stored or "\\" in stored:
        return None
    parts = stored.split("/")
    if (len(parts) < 3 or parts[0] == key or parts[1] != run
            or any(p in ("", ".", "..") for p in parts)):
        return None
    return "/".join((key, *parts[1:]))


def locate(root: Path, folder: str, stored: str) -> Path:
    """`confine`, also finding the file of a database that was copied or renamed: a path it
    stored under its old name's folder (`rebased`) is looked up in this database's folder.
    OtherDatabase when it is not there yet (with the fix), OutsideFolder as confine."""
    try:
        return confine(root, folder, stored)
    except OutsideFolder:
        moved = rebased(folder, stored)
        if moved is None:
            raise
    file = confine(root, folder, moved)  # inside this run's folder, or OutsideFolder
    if os.path.lexists(file):
        return file
    old, key = stored.split("/", 1)[0], folder.partition("/")[0]
    base = Path(os.path.realpath(root))
    raise OtherDatabase(
        f"it was written under the artifacts folder of database {shown(old)} "
        f"({shown(str(base / old))}), and this database is {shown(key)} (a copy, or renamed) "
        f"— fix: copy or rename that folder to {shown(str(base / key))}, or use the original "
        f"database {shown(old)}")


def database_key(url: str) -> str:
    """A folder name that tells databases sharing an artifacts root apart: the SQLite file's
    name, else backend-host-port-database."""
    from sqlalchemy.engine import make_url

    db = sqlite_path(url)
    if db is not None:
        return db.name
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return "sqlite-memory"
    parts = (parsed.get_backend_name(), parsed.host or "local", parsed.port, parsed.database)
    return re.sub(r"[^A-Za-z0-9._-]", "_", "-".join(str(p) for p in parts if p))


def weights_path(folder: str, number: int) -> str:
    """Where trial `number` of the run in `folder` (see run_folder) keeps its weights, relative
    to the root."""
    return f"{folder}/{number}.safetensors"


def digest(path: Path) -> tuple[int, str]:
    """(size in bytes, SHA-256 hex) of a file."""
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sha.update(chunk)
    return path.stat().st_size, sha.hexdigest()


def remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def sweep_orphans(root: Path, run_folder: str, kept: set[str]) -> list[Path]:
    """Delete files in the run's folder that no artifact row names (left by a crash, a killed
    worker or a trial that did not make the front); returns what was deleted. Nothing outside
    the run's folder is ever touched: a run folder that is a link is left alone, a link inside
    it is deleted itself (never what it points to), sub-folders are left as they are."""
    try:
        folder = run_directory(root, run_folder)
    except OutsideFolder:
        return []
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.iterdir():
        if (path.is_symlink() or path.is_file()) and f"{run_folder}/{path.name}" not in kept:
            remove_quietly(path)
            removed.append(path)
    remove_if_empty(root, run_folder)
    return removed


def remove_if_empty(root: Path, run_folder: str) -> None:
    """Remove the run's folder if it is a real folder (not a link) holding nothing."""
    try:
        folder = run_directory(root, run_folder)
    except OutsideFolder:
        return
    try:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    except OSError:  # filled meanwhile, or not ours to remove: leave it
        pass
