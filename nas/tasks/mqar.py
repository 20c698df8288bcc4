"""MQAR: multi-query associative recall (Zoology, Arora et al. 2023).

Each row binds N keys to values, then asks for them back in a random order::

    k1 v1 k2 v2 ... kN vN | 0 0 kσ1 0 ... kσ2 0 0 ... kσN 0     (σ: random order)
    <-- context, 2N -----> <-- query region, T - 2N, N keys at random distinct positions -->

Token 0 is padding; keys are distinct tokens from ``[1, V//2)``, values are drawn with replacement
from ``[V//2, V)``. The target at a query key's position is the value bound to that key (the model
predicts it at the key, next-token style); every other target is IGNORE_INDEX. Generation is
vectorized over the batch (top-k of uniform noise, scatter): on one CPU thread it makes about
4e5 examples/s at the defaults and 1.5e4 at V=8192, T=512, N=64, far above any training rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from nas.tasks.base import IGNORE_INDEX, Task

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class MQARTask(Task):
    """MQAR with vocabulary `vocab_size`, length `seq_len` and `num_kv_pairs` pairs per row."""

    vocab_size: int = 64
    seq_len: int = 64
    num_kv_pairs: int = 8

    def __post_init__(self) -> None:
        for key in ("vocab_size", "seq_len", "num_kv_pairs"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"mqar: {key} must be a positive integer, got {value!r}")
        n, v, t = self.num_kv_pairs, self.vocab_size, self.seq_len
        if v < 4:
            raise ValueError(
                f"mqar: vocab_size={v} leaves no room for padding, keys and values; "
                "fix: set vocab_size >= 4"
            )
        if n > self.num_keys:
            raise ValueError(
                f"mqar: num_kv_pairs={n} needs {n} distinct keys but vocab_size={v} has only "
                f"{self.num_keys} (keys are tokens 1..{v // 2 - 1}); fix: set num_kv_pairs <= "
                f"{self.num_keys} or vocab_size >= {2 * n + 2}"
            )
        if 3 * n > t:
            raise ValueError(
                f"mqar: seq_len={t} is too short for num_kv_pairs={n}: the context takes "
                f"2N={2 * n} positions and the queries N={n} more; fix: set seq_len >= {3 * n} or "
                f"num_kv_pairs <= {t // 3}"
            )

    @property
    def num_keys(self) -> int:
        """How many distinct key tokens the vocabulary offers: ``[1, V//2)``."""
        return self.vocab_size // 2 - 1

    def sample(
        self, batch_size: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """See Task.sample. Exactly `num_kv_pairs` positions per row are scored, all at or after
        position 2N."""
        import torch  # deferred: importing nas.tasks stays torch-free

        if batch_size < 1:
            raise ValueError(f"mqar: batch_size must be >= 1, got {batch_size}")
        b, t, n, half = batch_size, self.seq_len, self.num_kv_pairs, self.vocab_size // 2

        # N distinct keys per row: the N largest of K uniform draws, in decreasing order, are the
        # first N entries of a uniformly random permutation of [1, V//2) (topk: cheaper than a
        # full argsort when K is large).
        noise = torch.rand(b, self.num_keys, generator=generator)  # (B, K)
        keys = noise.topk(n, dim=1).indices + 1  # (B, N)
        values = torch.randint(half, self.vocab_size, (b, n), generator=generator)  # (B, N)

        inputs = torch.zeros(b, t, dtype=torch.long)  # (B, T), all padding
        inputs[:, 0 : 2 * n : 2] = keys
        inputs[:, 1 : 2 * n : 2] = values

        # N distinct query positions in [2N, T), the same way. They come out in random order, so
        # placing key i at positions[:, i] already visits the keys in a uniformly random order.
        noise = torch.rand(b, t - 2 * n, generator=generator)  # (B, T - 2N)
        positions = noise.topk(n, dim=1).indices + 2 * n  # (B, N)
        inputs.scatter_(1, positions, keys)

        targets = torch.full((b, t), IGNORE_INDEX, dtype=torch.long)  # (B, T)
        targets.scatter_(1, positions, values)
        return inputs, targets


LEVEL_KEYS = ("num_kv_pairs", "seq_len")  # required in every level; vocab_size is optional
LEVEL = "{num_kv_pairs, seq_len[, vocab_size]}"
DEFAULT_LEVELS = (
    {"num_kv_pairs": 4, "seq_len": 64},
    {"num_kv_pairs": 8, "seq_len": 128},
    {"num_kv_pairs": 16, "seq_len": 256},
)


@dataclass(frozen=True)
class MQARSweepTask(Task):
    """MQAR at several levels of difficulty as one task (Zoology's sweeps over keys, length
    and vocabulary): `levels` is a list of MQAR settings (`num_kv_pairs`, `seq_len`, and
    optionally `vocab_size`, default the task's). Row r of every batch is level r mod L, padded
    on the right to the longest level (padding is token 0 and unscored), so every batch mixes
    all levels evenly; evaluation reports the overall accuracy and one per level,
    f"accuracy_{name}" with names like "kv8_t128".
    """

    levels: tuple = DEFAULT_LEVELS
    vocab_size: int = 256

    def __post_init__(self) -> None:
        if not isinstance(self.levels, (list, tuple)) or not self.levels:
            raise ValueError(f"mqar_sweep: levels must be a non-empty list of {LEVEL} mappings; "
                             f"fix: write e.g. levels: [{{num_kv_pairs: 4, seq_len: 64}}]")
        parts = [self._level(i, level) for i, level in enumerate(self.levels)]
        object.__setattr__(self, "levels", tuple(dict(level) for level in self.levels))
        object.__setattr__(self, "_parts", tuple(parts))

    def _level(self, i: int, level: object) -> MQARTask:
        """The MQARTask of levels[i], checked: a mapping with num_kv_pairs and seq_len."""
        if not isinstance(level, dict):
            raise ValueError(f"mqar_sweep: levels[{i}] must be a mapping, got {level!r}; fix: "
                             f"write it as {LEVEL}")
        unknown = sorted(set(level) - {*LEVEL_KEYS, "vocab_size"})
        if unknown:
            raise ValueError(f"mqar_sweep: levels[{i}] has unknown key(s) {unknown}; fix: use "
                             "only num_kv_pairs, seq_len, vocab_size")
        for key in LEVEL_KEYS:
            if key not in level:
                raise ValueError(f"mqar_sweep: levels[{i}].{key} is missing: a level is {LEVEL}; "
                                 f"fix: add {key} to levels[{i}], e.g. {{num_kv_pairs: 4, "
                                 "seq_len: 64}")
        vocab = level.get("vocab_size", self.vocab_size)
        if not isinstance(vocab, int) or isinstance(vocab, bool) or vocab > self.vocab_size:
            raise ValueError(f"mqar_sweep: levels[{i}].vocab_size={vocab!r} must be an int "
                             f"<= the task's vocab_size={self.vocab_size}; fix: lower it, or "
                             "raise the task's vocab_size")
        try:
            return MQARTask(vocab_size=vocab, **{k: level[k] for k in LEVEL_KEYS})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"mqar_sweep: levels[{i}]: {exc}") from None

    @property
    def seq_len(self) -> int:  # type: ignore[override]
        return max(part.seq_len for part in self._parts)

    @property
    def group_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(
            f"kv{p.num_kv_pairs}_t{p.seq_len}" + (f"_v{p.vocab_size}"
                                                  if p.vocab_size != self.vocab_size else "")
            for p in self._parts
        )

    def row_groups(self, batch_size: int) -> list[int]:
        return [row % len(self._parts) for row in range(batch_size)]

    def sample(
        self, batch_size: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """See Task.sample: each level's rows drawn by its own MQARTask, in level order."""
        import torch  # deferred: importing nas.tasks stays torch-free

        groups = self.row_groups(batch_size)
        inputs = torch.zeros(batch_size, self.seq_len, dtype=torch.long)  # (B, T), padding
        targets = torch.full((batch_size, self.seq_len), IGNORE_INDEX, dtype=torch.long)
        for level, part in enumerate(self._parts):
            rows = [r for r, g in enumerate(groups) if g == level]
            if rows:
                x, y = part.sample(len(rows), generator)  # (b, T_level) each
                inputs[rows, : part.seq_len] = x
                targets[rows, : part.seq_len] = y
        return inputs, targets
