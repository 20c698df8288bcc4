"""Token ids of a corpus: a byte-level BPE trained on its train split, or a uint16 ``.bin`` file.

Both are made once per process and cached beside the corpus (nas.tasks.corpus). A trained BPE
and its ids are also kept on disk (`bpe_cache_dir`: ``$NAS_CACHE_DIR``, default
``~/.cache/nas``; an empty NAS_CACHE_DIR turns it off), so the other workers of a search, a
resumed search and the next run load them in well under a second instead of training again
(7-10 s for 8 MB). See nas.tasks.lm for what the `lm` task does with them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.tasks.corpus import cache_key, cached, load_corpus, resolve

if TYPE_CHECKING:
    import torch

CHUNK_CHARS = 1 << 16  # text is fed to the tokenizer in pieces of about this many characters
# A newline right after a non-space character is always a boundary of GPT-2's pre-tokenizer
# regex (no piece holds both), so cutting the text there tokenizes exactly like the whole.
_CUT = re.compile(r"(?<=\S)\n")
_CACHE_FORMAT = 1  # bump when what bpe_cache_dir's folders hold changes


@dataclass
class TokenCorpus:
    """A corpus as token ids: `ids` (n,) int32, train = ``ids[:split]``, val = ``ids[split:]``."""

    ids: torch.Tensor
    split: int
    origin: str  # where it came from, for messages
    bytes_per_token: float | None  # val bytes / val tokens; None where tokens are not text
    max_id: int  # the largest id in `ids`
    tokenizer: Any = field(default=None, repr=False)  # the trained tokenizers.Tokenizer (bpe)

    def __len__(self) -> int:
        return int(self.ids.numel())

    def tensor(self) -> torch.Tensor:
        """The (len,) int32 ids."""
        return self.ids


def load_bpe_tokens(
    source: str, max_bytes: int, val_fraction: float, vocab_size: int
) -> TokenCorpus:
    """The corpus as ids of a byte-level BPE of `vocab_size` trained on its train split, each
    split encoded on its own; made once per process (training dominates; see the module docs)."""
    import torch

    def make() -> TokenCorpus:
        corpus = load_corpus(source, max_bytes, val_fraction)
        folder = bpe_cache_dir(corpus.data, corpus.split, vocab_size)
        found = _read_cached_bpe(folder) if folder is not None else None
        if found is not None:
            tokenizer, ids, split = found
        else:
            train = corpus.data[: corpus.split].decode("utf-8", errors="replace")
            val = corpus.data[corpus.split :].decode("utf-8", errors="replace")
            tokenizer = train_bpe(train, vocab_size)
            train_ids, val_ids = encode(tokenizer, train), encode(tokenizer, val)
            ids = torch.tensor(train_ids + val_ids, dtype=torch.int32)  # (n_train + n_val,)
            split = len(train_ids)
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)  # a damaged one, if any
                _write_cached_bpe(folder, tokenizer, ids, split)
        return TokenCorpus(
            ids, split, f"{corpus.origin}, BPE {vocab_size}",
            bytes_per_token=(len(corpus) - corpus.split) / max(1, len(ids) - split),
            max_id=int(ids.max()) if len(ids) else -1, tokenizer=tokenizer,
        )

    return cached((*cache_key(source, max_bytes, val_fraction), "bpe", vocab_size), make)


def load_uint16_tokens(source: str, max_bytes: int, val_fraction: float) -> TokenCorpus:
    """A ``.bin`` file's first ``max_bytes // 2`` little-endian uint16 ids, split by token;
    read once per process."""
    import torch

    n_bytes = max_bytes - max_bytes % 2

    def make() -> TokenCorpus:
        path = resolve(source)
        with path.open("rb") as handle:
            data = bytearray(handle.read(n_bytes))
        data = data[: len(data) - len(data) % 2]  # a file of odd length: drop the last byte
        if sys.byteorder == "big":
            data[0::2], data[1::2] = data[1::2], data[0::2]
        raw = torch.frombuffer(data, dtype=torch.int16) if data else torch.zeros(0)  # (n,)
        ids = raw.to(torch.int32) & 0xFFFF  # (n,) int32, the uint16 values
        split = len(ids) - round(val_fraction * len(ids))
        return TokenCorpus(ids, split, str(path), bytes_per_token=None,
                           max_id=int(ids.max()) if len(ids) else -1)

    return cached((*cache_key(source, n_bytes, val_fraction), "uint16"), make)


def uint16_max_id(path: Path, n_tokens: int) -> int:
    """The largest of the first `n_tokens` little-endian uint16 ids of `path` (-1 if none), read
    through a memory map (milliseconds for 8 MB); cached per process while the file is
    unchanged, so checking a config again costs nothing."""
    stat = path.stat()
    return _uint16_max_id(str(path), n_tokens, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _uint16_max_id(path: str, n_tokens: int, size: int, mtime_ns: int) -> int:
    import numpy as np  # deferred, like torch: only a uint16 .bin needs it

    count = min(n_tokens, size // 2)
    if count == 0:
        return -1
    return int(np.memmap(path, dtype="<u2", mode="r", shape=(count,)).max())


def bpe_cache_dir(data: bytes, split: int, vocab_size: int) -> Path | None:
    """Where the BPE of this corpus is kept on disk: a folder under ``$NAS_CACHE_DIR`` (default
    ``~/.cache/nas``) named by a hash of the bytes, the split, the vocabulary size and the
    tokenizers version; None when NAS_CACHE_DIR is set to an empty string (no disk cache)."""
    root = os.environ.get("NAS_CACHE_DIR", str(Path.home() / ".cache" / "nas"))
    try:
        import tokenizers
    except ImportError:  # train_bpe says what to install
        return None
    if not root:
        return None

    digest = hashlib.sha256(data)
    digest.update(f"|{split}|{vocab_size}|{tokenizers.__version__}|{_CACHE_FORMAT}".encode())
    return Path(root).expanduser() / "bpe" / digest.hexdigest()[:24]


def _read_cached_bpe(folder: Path) -> tuple[Any, torch.Tensor, int] | None:
    """(tokenizer, ids, split) from a cache folder; None when it is missing or unreadable (the
    caller then trains again)."""
    import torch
    from tokenizers import Tokenizer

    try:
        meta = json.loads((folder / "meta.json").read_text())
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        raw = bytearray((folder / "ids.bin").read_bytes())
        if len(raw) != 4 * meta["tokens"] or sys.byteorder != "little":
            return None
        ids = torch.frombuffer(raw, dtype=torch.int32) if raw else torch.zeros(0, dtype=torch.int32)
        return tokenizer, ids, int(meta["split"])
    except Exception:  # noqa: BLE001 - any unreadable cache (the library raises plain
        return None  # Exception on a bad tokenizer.json) means training again


def _write_cached_bpe(folder: Path, tokenizer: Any, ids: torch.Tensor, split: int) -> None:
    """Keep a trained BPE and its ids in `folder`, atomically (written beside it, then renamed
    into place; a concurrent writer's identical folder wins). A failure to write (read-only or
    full disk) only costs the next process the training."""
    if sys.byteorder != "little":
        return
    staging = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
    try:
        staging.mkdir(parents=True, exist_ok=True)
        tokenizer.save(str(staging / "tokenizer.json"))
        (staging / "ids.bin").write_bytes(ids.numpy().tobytes())
        (staging / "meta.json").write_text(json.dumps({"split": split, "tokens": len(ids)}))
        os.replace(staging, folder)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)


def train_bpe(text: str, vocab_size: int) -> Any:
    """A byte-level BPE ``tokenizers.Tokenizer`` of at most `vocab_size` tokens trained on `text`.

    Deterministic: the same text and vocab_size give the same merges in every process and at
    any thread count (RAYON_NUM_THREADS), because the trainer picks each merge by count, then
    by the pair's token ids, never by hash order. Raises ValueError when ``tokenizers`` is
    missing.
    """
    try:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    except ImportError:
        raise ValueError(
            "lm: tokenizer: bpe needs the tokenizers library, which is not installed; "
            "fix: pip install tokenizers"
        ) from None
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte is a token
        special_tokens=[],
        show_progress=False,
    )
    tokenizer.train_from_iterator(_chunks(text), trainer=trainer)
    return tokenizer


def encode(tokenizer: Any, text: str) -> list[int]:
    """The ids of `text` (the same as encoding it whole; in pieces for speed)."""
    return [i for piece in tokenizer.encode_batch_fast(_chunks(text)) for i in piece.ids]


def _chunks(text: str) -> list[str]:
    """`text` cut into pieces of about CHUNK_CHARS characters, only at _CUT boundaries."""
    pieces, start = [], 0
    while start < len(text):
        cut = _CUT.search(text, start + CHUNK_CHARS)
        end = cut.start() if cut else len(text)
        pieces.append(text[start:end])
        start = end
    return pieces


