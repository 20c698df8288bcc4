"""Text corpora for the `lm` task, read locally and cached per process (nothing downloaded).

Sources: ``stdlib`` — the running Python's standard library ``.py`` files (third-party packages
left out), joined in sorted path order with SEPARATOR up to `max_bytes`, the validation split
moved to the nearest file boundary — or any local file's first `max_bytes` bytes, split at the
byte. A corpus is read once per process, keyed by the resolved source and the settings that
shape it (a rewritten file gets a new key): 8 MB of the stdlib reads in about 0.1 s.
"""

from __future__ import annotations

import os
import sysconfig
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import torch

STDLIB = "stdlib"
SEPARATOR = b"\x1c"  # ASCII "file separator", between files of the stdlib corpus
EXCLUDED_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__"})


@dataclass
class Corpus:
    """A loaded corpus: `data` (all bytes), train = ``data[:split]``, val = ``data[split:]``."""

    data: bytes
    split: int
    files: int  # how many files it was read from (1 for a file source)
    origin: str  # where it came from, for messages
    _tensor: Any = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.data)

    def tensor(self) -> torch.Tensor:
        """The bytes as a (len,) uint8 tensor, made once."""
        if self._tensor is None:
            import torch

            self._tensor = torch.frombuffer(bytearray(self.data), dtype=torch.uint8)
        return self._tensor


T = TypeVar("T")
_CACHE: dict[tuple, Any] = {}
_CACHE_LOCK = threading.RLock()


def stdlib_dir() -> Path:
    """The running Python's standard library directory."""
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(root: Path) -> list[Path]:
    """The stdlib's ``.py`` files, in sorted order of their paths relative to `root`."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in EXCLUDED_DIRS]
        rel = Path(dirpath).relative_to(root)
        found.extend((rel / name).as_posix() for name in filenames if name.endswith(".py"))
    return [root / rel for rel in sorted(found)]


def load_corpus(source: str, max_bytes: int, val_fraction: float) -> Corpus:
    """The corpus a config describes, read once per process (see the module docstring)."""
    return cached(cache_key(source, max_bytes, val_fraction),
                  lambda: _read(source, max_bytes, val_fraction))


def cached(key: tuple, make: Callable[[], T]) -> T:
    """What is cached under `key` for the life of the process, made by `make` on first use
    (under one reentrant lock: a token corpus loads its text corpus while holding it)."""
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = make()
        return _CACHE[key]


def clear_cache() -> None:
    """Forget every loaded corpus and tokenizer (tests; a changed file is re-read anyway)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def cache_key(source: str, max_bytes: int, val_fraction: float) -> tuple:
    if source == STDLIB:
        return (STDLIB, str(stdlib_dir()), max_bytes, val_fraction)
    path = resolve(source)
    stat = path.stat()  # a rewritten file gets a new key
    return (str(path), stat.st_size, stat.st_mtime_ns, max_bytes, val_fraction)


def resolve(source: str) -> Path:
    return Path(source).expanduser().resolve()


def _read(source: str, max_bytes: int, val_fraction: float) -> Corpus:
    if source != STDLIB:
        path = resolve(source)
        with path.open("rb") as handle:
            data = handle.read(max_bytes)
        split = len(data) - round(val_fraction * len(data))
        return Corpus(data, split, files=1, origin=str(path))

    root = stdlib_dir()
    parts: list[bytes] = []
    starts: list[int] = []  # offset of each file's first byte in the joined text
    total = 0
    for path in stdlib_files(root):
        if total >= max_bytes:
            break
        try:
            text = path.read_bytes()
        except OSError:  # unreadable (permissions, a dangling link): skip it
            continue
        if parts:
            parts.append(SEPARATOR)
            total += len(SEPARATOR)
        starts.append(total)
        parts.append(text)
        total += len(text)
    data = b"".join(parts)[:max_bytes]
    target = len(data) - round(val_fraction * len(data))
    # the file boundary nearest the target (never 0: the train split must not be empty)
    boundaries = [s for s in starts if 0 < s < len(data)]
    split = min(boundaries, key=lambda s: abs(s - target)) if boundaries else target
    return Corpus(data, split, files=len(starts), origin=f"{STDLIB} ({root})")

