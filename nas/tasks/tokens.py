"""Token ids of a corpus: a byte-level BPE trained on its train split, or a uint16 ``.bin`` file.

Both are made once per process and cached beside the corpus (nas.tasks.corpus). See nas.tasks.lm
for what the `lm` task does with them.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nas.tasks.corpus import cache_key, cached, load_corpus, resolve

if TYPE_CHECKING:
    import torch

CHUNK_CHARS = 1 << 16  # text is fed to the tokenizer in pieces of about this many characters
# A newline right after a non-space character is always a boundary of GPT-2's pre-tokenizer
# regex (no piece holds both), so cutting the text there tokenizes exactly like the whole.
_CUT = re.compile(r"(?<=\S)\n")


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
        train = corpus.data[: corpus.split].decode("utf-8", errors="replace")
        val = corpus.data[corpus.split :].decode("utf-8", errors="replace")
        tokenizer = train_bpe(train, vocab_size)
        train_ids, val_ids = encode(tokenizer, train), encode(tokenizer, val)
        ids = torch.tensor(train_ids + val_ids, dtype=torch.int32)  # (n_train + n_val,)
        return TokenCorpus(
            ids, len(train_ids), f"{corpus.origin}, BPE {vocab_size}",
            bytes_per_token=(len(corpus) - corpus.split) / max(1, len(val_ids)),
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


