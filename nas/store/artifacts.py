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
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from nas.store.store import sqlite_path

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


def run_folder(url: str, run_name: str) -> str:
    """The folder of run `run_name` of the database at `url`, relative to the root."""
    return f"{database_key(url)}/{run_name}"


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


def resolve(root: Path, path: str) -> Path:
    """The file an artifact row names (absolute paths are kept as they are)."""
    candidate = Path(path)
    return candidate if candidate.is_absolute() else root / candidate


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
    the root is ever touched (a run folder that would lead out of it is left alone)."""
    folder, base = root / run_folder, root.resolve()
    if not folder.is_dir() or folder.resolve() == base or not folder.resolve().is_relative_to(base):
        return []
    removed = []
    for path in folder.iterdir():
        if path.is_file() and f"{run_folder}/{path.name}" not in kept:
            remove_quietly(path)
            removed.append(path)
    if not any(folder.iterdir()):
        folder.rmdir()
    return removed
