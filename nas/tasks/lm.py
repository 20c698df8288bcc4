"""Byte-level language modelling on real text that ships with Python (or any local file).

    make_task({"kind": "lm"})                                    # the stdlib's .py files
    make_task({"kind": "lm", "source": "corpus.txt", "seq_len": 256})

The corpus is a byte string; tokens are its bytes, so the vocabulary is the 256 byte values
(`vocab_size` is fixed at 256). Sources:

* ``stdlib`` (default): the ``.py`` files under ``sysconfig.get_paths()["stdlib"]`` (installed
  third-party packages in ``site-packages`` / ``dist-packages`` left out), read in sorted order of
  their relative paths and joined with SEPARATOR, stopping once `max_bytes` are read (the rest
  of the last file read is cut). The validation split is the last `val_fraction` of that text,
  moved to the nearest file boundary, so validation is files the model never trained on.
* a path to any file (relative paths are taken from the working directory of the process): its
  first `max_bytes` bytes. A text file is its bytes; a ``.bin`` file is read as uint8 tokens,
  which for a 256-token vocabulary is the same thing. The validation split is the last
  `val_fraction` of the bytes, cut at that exact byte.

A batch is `batch_size` windows of ``seq_len + 1`` bytes at uniformly random offsets inside one
split (windows never cross the train/val boundary); inputs are the first ``seq_len`` bytes and
targets the last ``seq_len``, so every position is scored. Loss is therefore nats per byte, and
``loss / ln 2`` is bits per byte (8 = uniform over bytes).

Nothing is read when a task is made (a config is validated from file metadata only); the corpus
is read on the first `sample` and cached for the life of the process, keyed by the resolved
source and the settings that shape it, so a worker running many trials reads it once (8 MB of
the stdlib in about 0.1 s).
"""

from __future__ import annotations

import os
import sysconfig
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.tasks.base import SPLITS, Task

if TYPE_CHECKING:
    import torch

STDLIB = "stdlib"
BYTE_VOCAB = 256
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


_CACHE: dict[tuple, Corpus] = {}
_CACHE_LOCK = threading.Lock()


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
    key = _cache_key(source, max_bytes, val_fraction)
    with _CACHE_LOCK:
        corpus = _CACHE.get(key)
        if corpus is None:
            corpus = _read(source, max_bytes, val_fraction)
            _CACHE[key] = corpus
    return corpus


def clear_cache() -> None:
    """Forget every loaded corpus (tests; a changed file is re-read anyway, see _cache_key)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _cache_key(source: str, max_bytes: int, val_fraction: float) -> tuple:
    if source == STDLIB:
        return (STDLIB, str(stdlib_dir()), max_bytes, val_fraction)
    path = _resolve(source)
    stat = path.stat()  # a rewritten file gets a new key
    return (str(path), stat.st_size, stat.st_mtime_ns, max_bytes, val_fraction)


def _resolve(source: str) -> Path:
    return Path(source).expanduser().resolve()


def _read(source: str, max_bytes: int, val_fraction: float) -> Corpus:
    if source != STDLIB:
        path = _resolve(source)
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


@dataclass(frozen=True)
class LMTask(Task):
    """Next-byte prediction on windows of `seq_len` bytes of `source` (see the module docs)."""

    source: str = STDLIB
    seq_len: int = 128
    val_fraction: float = 0.05
    max_bytes: int = 8_000_000
    vocab_size: int = BYTE_VOCAB

    def __post_init__(self) -> None:
        if isinstance(self.vocab_size, bool) or self.vocab_size != BYTE_VOCAB:
            raise ValueError(
                f"lm: vocab_size={self.vocab_size!r} is not supported: the task is byte-level, "
                f"so its vocabulary is the {BYTE_VOCAB} byte values; fix: set vocab_size: "
                f"{BYTE_VOCAB} or leave it out"
            )
        for key in ("seq_len", "max_bytes"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"lm: {key} must be a positive integer, got {value!r}; "
                    f"fix: set {key} to an integer >= 1"
                )
        fraction = self.val_fraction
        if (
            isinstance(fraction, bool)
            or not isinstance(fraction, int | float)
            or not 0.0 < fraction < 1.0
        ):
            raise ValueError(
                f"lm: val_fraction must be a number strictly between 0 and 1, got {fraction!r}; "
                "fix: set val_fraction to e.g. 0.05 (the last 5% of the corpus)"
            )
        if not isinstance(self.source, str) or not self.source:
            raise ValueError(
                f"lm: source must be {STDLIB!r} or a file path, got {self.source!r}; "
                f"fix: set source: {STDLIB} or the path of a text or .bin file"
            )
        if self.source == STDLIB:
            if not stdlib_dir().is_dir():
                raise ValueError(
                    f"lm: source={STDLIB!r}: this Python has no standard library directory at "
                    f"{stdlib_dir()}; fix: set source to the path of a text or .bin file"
                )
            self._check_size(self.max_bytes, STDLIB)
            return
        path = _resolve(self.source)
        if not path.is_file():
            what = "is not a file" if path.exists() else "does not exist"
            raise ValueError(
                f"lm: source={self.source!r} {what} (resolved to {path}); fix: give the path of "
                f"an existing text or .bin file (relative to the working directory), or "
                f"source: {STDLIB}"
            )
        self._check_size(min(path.stat().st_size, self.max_bytes), str(path))

    def _check_size(self, n_bytes: int, origin: str, split: int | None = None) -> None:
        """Both splits must hold at least one window of seq_len + 1 bytes."""
        if split is None:
            split = n_bytes - round(self.val_fraction * n_bytes)
        need = self.seq_len + 1
        if split < need or n_bytes - split < need:
            raise ValueError(
                f"lm: the corpus from {origin} ({n_bytes} bytes, {split} for training, "
                f"{n_bytes - split} for validation) is too small for seq_len={self.seq_len}: "
                f"each split needs at least {need} bytes; fix: use a larger source or max_bytes, "
                "a smaller seq_len, or a val_fraction nearer 0.5"
            )

    # -- data ----------------------------------------------------------------------------------
    @property
    def corpus(self) -> Corpus:
        """The loaded corpus (read on first use, then cached per process)."""
        corpus = load_corpus(self.source, self.max_bytes, self.val_fraction)
        self._check_size(len(corpus), corpus.origin, corpus.split)
        return corpus

    def split_range(self, split: str = "train") -> tuple[int, int]:
        """[start, end) byte offsets of `split` in the corpus."""
        _check_split(split)
        corpus = self.corpus
        return (0, corpus.split) if split == "train" else (corpus.split, len(corpus))

    def window_starts(
        self, batch_size: int, generator: torch.Generator, split: str = "train"
    ) -> torch.Tensor:
        """(batch_size,) int64 corpus offsets of windows of seq_len + 1 bytes inside `split`,
        uniform over every offset that fits; drawn only from `generator`."""
        import torch  # deferred: importing nas.tasks stays torch-free

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"lm: batch_size must be >= 1, got {batch_size!r}")
        start, end = self.split_range(split)
        last = end - (self.seq_len + 1)  # the last offset whose window fits in the split
        return start + torch.randint(0, last - start + 1, (batch_size,), generator=generator)

    def sample(
        self, batch_size: int, generator: torch.Generator, split: str = "train"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """See Task.sample; `split` picks the train or val bytes. Every target is scored:
        ``targets[:, t] == inputs[:, t + 1]`` and the last target is the byte after the window."""
        import torch

        starts = self.window_starts(batch_size, generator, split)  # (B,)
        offsets = torch.arange(self.seq_len + 1)  # (T + 1,)
        windows = self.corpus.tensor()[starts[:, None] + offsets].long()  # (B, T + 1)
        return windows[:, :-1].contiguous(), windows[:, 1:].contiguous()

    def sample_split(
        self, batch_size: int, generator: torch.Generator, split: str = "train"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """See Task.sample_split: the val split is held-out text, not just another stream."""
        return self.sample(batch_size, generator, split)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
