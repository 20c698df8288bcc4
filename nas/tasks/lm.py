"""Language modelling on real text that ships with Python (or any local file).

    make_task({"kind": "lm"})                                    # the stdlib's .py files
    make_task({"kind": "lm", "source": "corpus.txt", "seq_len": 256})
    make_task({"kind": "lm", "tokenizer": "bpe", "vocab_size": 1024})      # BPE tokens
    make_task({"kind": "lm", "source": "train.bin", "token_dtype": "uint16", "vocab_size": 50304})

The corpus is a byte string. Sources:

* ``stdlib`` (default): the ``.py`` files under ``sysconfig.get_paths()["stdlib"]`` (installed
  third-party packages in ``site-packages`` / ``dist-packages`` left out), read in sorted order of
  their relative paths and joined with SEPARATOR, stopping once `max_bytes` are read (the rest
  of the last file read is cut). The validation split is the last `val_fraction` of that text,
  moved to the nearest file boundary, so validation is files the model never trained on.
* a path to any file (relative paths are taken from the working directory of the process): its
  first `max_bytes` bytes. A text file is its bytes; a ``.bin`` file is token ids, uint8 by
  default (for a 256-token vocabulary the same thing as bytes) or, with ``token_dtype: uint16``,
  little-endian uint16 (nanoGPT's format; `max_bytes` rounded down to an even count; a
  `vocab_size` above the largest id is required, checked when the task is made). The
  validation split is the last `val_fraction` of the bytes (of the tokens for uint16), cut there.

Tokens (`tokenizer`):

* ``byte`` (default): the corpus bytes, so `vocab_size` is 256.
* ``bpe``: a byte-level BPE of `vocab_size` tokens (default 1024, at most that many are used)
  trained with Hugging Face's ``tokenizers`` library (widely used and well maintained; Rust) on
  the train split only, so validation text never shapes the vocabulary. Text is decoded as
  UTF-8 (an invalid byte becomes U+FFFD; the stdlib's files are UTF-8), then the
  ByteLevel pre-tokenizer (GPT-2's regex) and BPE merges apply. Training is deterministic with
  no settings needed (the trainer breaks count ties by the pair's token ids, not by hash order):
  the same text and vocab_size give the same tokenizer in every process and at any
  RAYON_NUM_THREADS (tested). Each split is encoded on its own, so windows never cross it. Not
  for a ``.bin`` source, which holds ids already.

A batch is `batch_size` windows of ``seq_len + 1`` tokens at uniformly random offsets inside one
split (windows never cross the train/val boundary); inputs are the first ``seq_len`` tokens and
targets the last ``seq_len``, so every position is scored. Loss is therefore nats per token.
`bytes_per_token` turns it into bits per byte (``loss / ln 2 / bytes_per_token``, 8 = uniform
over bytes): 1.0 for bytes (and a uint8 .bin), val bytes / val tokens for bpe (about 2.3 on the
stdlib at vocab 1024), None for a uint16 .bin, whose bits_per_byte is bits per token. Perplexity
is always per token.

Little is read when a task is made (a config is validated from file metadata, and a uint16
.bin's largest id through a memory map: milliseconds for 8 MB); the corpus is read on the first
`sample` and cached for the life of the process, keyed by the resolved source and the settings
that shape it (plus the tokenizer and vocab_size for bpe), so a worker running many trials
reads it once (8 MB of the stdlib in about 0.1 s). A BPE is trained once and kept on disk with
its ids (nas.tasks.tokens.bpe_cache_dir), so other processes reload it:
for the default 8 MB stdlib corpus at vocab 1024, training takes 2-4 s and encoding both splits
(3.1M tokens) 5 s more, 7-10 s in all (a busy 2-core CPU VM; the encoding, the GPT-2
pre-tokenizer mostly, runs in parallel where there are more cores); a reload 1.7 s, torch's
import included.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nas.tasks.base import SPLITS, Task
from nas.tasks.corpus import STDLIB, Corpus, load_corpus, resolve, stdlib_dir
from nas.tasks.tokens import TokenCorpus, load_bpe_tokens, load_uint16_tokens, uint16_max_id

if TYPE_CHECKING:
    import torch

BYTE_VOCAB = 256
TOKENIZERS = ("byte", "bpe")
TOKEN_DTYPES = ("uint8", "uint16")
BPE_VOCAB = 1024  # default vocab_size with tokenizer: bpe
BPE_VOCAB_RANGE = (BYTE_VOCAB + 1, 65535)
UINT16_VOCAB_MAX = 65536


@dataclass(frozen=True)
class LMTask(Task):
    """Next-token prediction on windows of `seq_len` tokens of `source` (see the module docs)."""

    source: str = STDLIB
    seq_len: int = 128
    val_fraction: float = 0.05
    max_bytes: int = 8_000_000
    vocab_size: int | None = None  # None: 256 for bytes, BPE_VOCAB for bpe; needed for uint16
    tokenizer: str = "byte"
    token_dtype: str = "uint8"

    def __post_init__(self) -> None:
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
        self._check_tokens()
        if self.source == STDLIB:
            if not stdlib_dir().is_dir():
                raise ValueError(
                    f"lm: source={STDLIB!r}: this Python has no standard library directory at "
                    f"{stdlib_dir()}; fix: set source to the path of a text or .bin file"
                )
            self._check_size(self.max_bytes, STDLIB)  # tokens <= bytes: a bound for bpe too
            return
        path = resolve(self.source)
        if not path.is_file():
            what = "is not a file" if path.exists() else "does not exist"
            raise ValueError(
                f"lm: source={self.source!r} {what} (resolved to {path}); fix: give the path of "
                f"an existing text or .bin file (relative to the working directory), or "
                f"source: {STDLIB}"
            )
        n_bytes = min(path.stat().st_size, self.max_bytes)
        if self.token_dtype == "uint16":
            self._check_size(n_bytes // 2, str(path), unit="uint16 tokens")
            self._check_ids(uint16_max_id(path, n_bytes // 2), str(path))
        else:
            self._check_size(n_bytes, str(path))

    def _check_tokens(self) -> None:
        """tokenizer, token_dtype and vocab_size agree; sets the default vocab_size."""
        if self.tokenizer not in TOKENIZERS:
            raise ValueError(
                f"lm: tokenizer={self.tokenizer!r} is not one of {', '.join(TOKENIZERS)}; "
                "fix: set tokenizer: byte (bytes are tokens, the default) or bpe (a byte-level "
                "BPE trained on the train split)"
            )
        if self.token_dtype not in TOKEN_DTYPES:
            raise ValueError(
                f"lm: token_dtype={self.token_dtype!r} is not one of {', '.join(TOKEN_DTYPES)}; "
                "fix: set token_dtype: uint8 (the default) or uint16 (nanoGPT's .bin files)"
            )
        is_bin = self.source != STDLIB and self.source.endswith(".bin")
        if self.token_dtype == "uint16" and not is_bin:
            raise ValueError(
                f"lm: token_dtype='uint16' only applies to a .bin file of token ids, not "
                f"source={self.source!r}; fix: leave token_dtype out for text, or give a .bin file"
            )
        if self.tokenizer == "bpe" and is_bin:
            raise ValueError(
                f"lm: tokenizer='bpe' does not apply to source={self.source!r}: a .bin file "
                "holds token ids already; fix: leave tokenizer out (token_dtype: uint8 or uint16 "
                "says how the ids are stored), or give a text file"
            )
        vocab = self.vocab_size
        if vocab is not None and (isinstance(vocab, bool) or not isinstance(vocab, int)):
            raise ValueError(
                f"lm: vocab_size must be an integer, got {vocab!r}; fix: set vocab_size to an "
                "integer or leave it out"
            )
        if self.token_dtype == "uint16":
            if vocab is None or not 1 <= vocab <= UINT16_VOCAB_MAX:
                raise ValueError(
                    f"lm: vocab_size={vocab!r}: a uint16 .bin file needs vocab_size, above its "
                    f"largest token id; fix: set vocab_size to that id + 1 (at most "
                    f"{UINT16_VOCAB_MAX}), e.g. 50304 for GPT-2 tokens"
                )
        elif self.tokenizer == "bpe":
            low, high = BPE_VOCAB_RANGE
            if vocab is None:
                object.__setattr__(self, "vocab_size", BPE_VOCAB)
            elif not low <= vocab <= high:
                raise ValueError(
                    f"lm: vocab_size={vocab!r} is out of range for tokenizer: bpe; fix: set "
                    f"vocab_size between {low} and {high}, or leave it out ({BPE_VOCAB})"
                )
            if importlib.util.find_spec("tokenizers") is None:
                raise ValueError(
                    "lm: tokenizer: bpe needs the tokenizers library, which is not installed; "
                    "fix: pip install tokenizers"
                )
        elif vocab is None:
            object.__setattr__(self, "vocab_size", BYTE_VOCAB)
        elif vocab != BYTE_VOCAB:
            raise ValueError(
                f"lm: vocab_size={vocab!r} is not supported: the task is byte-level, "
                f"so its vocabulary is the {BYTE_VOCAB} byte values; fix: set vocab_size: "
                f"{BYTE_VOCAB} or leave it out (or set tokenizer: bpe for a larger vocabulary)"
            )

    def _check_ids(self, max_id: int, origin: str) -> None:
        """Every token id of a .bin file must lie below vocab_size."""
        if max_id >= self.vocab_size:
            raise ValueError(
                f"lm: vocab_size={self.vocab_size} is too small for {origin}: its largest token "
                f"id is {max_id}; fix: set vocab_size to at least {max_id + 1}"
            )

    def _check_size(
        self, n_tokens: int, origin: str, split: int | None = None, unit: str = "bytes"
    ) -> None:
        """Both splits must hold at least one window of seq_len + 1 tokens."""
        if split is None:
            split = n_tokens - round(self.val_fraction * n_tokens)
        need = self.seq_len + 1
        if split < need or n_tokens - split < need:
            raise ValueError(
                f"lm: the corpus from {origin} ({n_tokens} {unit}, {split} for training, "
                f"{n_tokens - split} for validation) is too small for seq_len={self.seq_len}: "
                f"each split needs at least {need} {unit}; fix: use a larger source or "
                "max_bytes, a smaller seq_len, or a val_fraction nearer 0.5"
            )

    # -- data ----------------------------------------------------------------------------------
    @property
    def corpus(self) -> Corpus:
        """The loaded corpus bytes (read on first use, then cached per process); for a uint16
        .bin file, its bytes split at the byte (windows come from `tokens`)."""
        corpus = load_corpus(self.source, self.max_bytes, self.val_fraction)
        self._check_size(len(corpus), corpus.origin, corpus.split)
        return corpus

    @property
    def tokens(self) -> Corpus | TokenCorpus:
        """What windows are cut from: the corpus itself for bytes, else its token ids (a BPE is
        trained on first use; both cached per process). Both have len, split and tensor()."""
        if self.token_dtype == "uint16":
            tokens = load_uint16_tokens(self.source, self.max_bytes, self.val_fraction)
            self._check_ids(tokens.max_id, tokens.origin)  # again: the file may have changed
        elif self.tokenizer == "bpe":
            tokens = load_bpe_tokens(
                self.source, self.max_bytes, self.val_fraction, self.vocab_size
            )
        else:
            return self.corpus
        self._check_size(len(tokens), tokens.origin, tokens.split, unit="tokens")
        return tokens

    @property
    def bytes_per_token(self) -> float | None:
        """Validation bytes per token (see Task): 1.0 for bytes, measured on the val split for
        bpe (trains the tokenizer if not yet done), None for a uint16 .bin (bits per token)."""
        if self.token_dtype == "uint16":
            return None
        if self.tokenizer == "bpe":
            return self.tokens.bytes_per_token
        return 1.0

    def split_range(self, split: str = "train") -> tuple[int, int]:
        """[start, end) token offsets of `split` in `tokens`."""
        _check_split(split)
        tokens = self.tokens
        return (0, tokens.split) if split == "train" else (tokens.split, len(tokens))

    def window_starts(
        self, batch_size: int, generator: torch.Generator, split: str = "train"
    ) -> torch.Tensor:
        """(batch_size,) int64 offsets into `tokens` of windows of seq_len + 1 tokens inside
        `split`, uniform over every offset that fits; drawn only from `generator`."""
        import torch  # deferred: importing nas.tasks stays torch-free

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"lm: batch_size must be >= 1, got {batch_size!r}")
        start, end = self.split_range(split)
        last = end - (self.seq_len + 1)  # the last offset whose window fits in the split
        return start + torch.randint(0, last - start + 1, (batch_size,), generator=generator)

    def sample(
        self, batch_size: int, generator: torch.Generator, split: str = "train"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """See Task.sample; `split` picks the train or val tokens. Every target is scored:
        ``targets[:, t] == inputs[:, t + 1]`` and the last target is the token after the
        window."""
        import torch

        starts = self.window_starts(batch_size, generator, split)  # (B,)
        offsets = torch.arange(self.seq_len + 1)  # (T + 1,)
        windows = self.tokens.tensor()[starts[:, None] + offsets].long()  # (B, T + 1)
        return windows[:, :-1].contiguous(), windows[:, 1:].contiguous()

    def sample_split(
        self, batch_size: int, generator: torch.Generator, split: str = "train"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """See Task.sample_split: the val split is held-out text, not just another stream."""
        return self.sample(batch_size, generator, split)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
