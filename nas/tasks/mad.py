"""The MAD synthetic suite (Poli et al. 2024, "Mechanistic Design and Scaling of Hybrid
Architectures"), as vectorized, seeded generators.

Layouts follow the reference generators of MAD (``mad/data/instances.py`` in athms/mad-lab),
adapted to the Task contract: the logits at position t are scored against ``targets[:, t]``,
so a token that MAD scores at stream position t+1 is the target at position t (MAD's
``inputs[:-1], targets[1:]`` shift), and everything MAD does not score is IGNORE_INDEX. Every
generator works on whole batches (no Python loop over rows or positions).

* ``mad_in_context_recall`` (defaults V=16, T=64): a stream of key-value pairs ``k v k v ...``;
  keys ``[0, K)`` with replacement, each key bound to one value from ``[K, 2K)`` per row
  (K = (V - noise_vocab_size) // 2). MAD's multi-query form: every value whose key already
  appeared earlier in the row is scored (target at the key's position). The last pair repeats
  the key of a random earlier pair, so every row has at least one scored position.
* ``mad_noisy_recall`` (V=32, T=64, noise_vocab_size=16, frac_noise=0.2): the same, but each
  pair slot is, with probability `frac_noise`, two noise tokens from their own vocabulary
  ``[2K, 2K + noise_vocab_size)`` (one random slot is always a pair, as in MAD).
* ``mad_fuzzy_recall`` (V=16, T=64, k_motif_size=3, v_motif_size=3): keys and values are spans
  of distinct tokens (MAD draws them as permutations of the key/value vocabularies); a key is
  "seen" when the same span appeared before. All value tokens of a seen key are scored. Rows
  are left-padded with token V-1 to a whole number of motifs. Difference from MAD: span lengths
  are fixed at the maximum (MAD's training draws each length from 1..max; its test split uses
  the maximum key length, as here).
* ``mad_selective_copy`` (V=16, T=64, num_tokens_to_copy=8): N tokens from ``[0, V-2)`` scattered
  among blanks (V-2) in the first T-N-1 positions, then the copy token (V-1), then N blanks;
  the i-th trailing blank's target is the i-th non-blank token (MAD's layout, unshifted as MAD's
  is). Token positions are uniform over the layouts (MAD uses ``np.insert`` at random indices).
* ``mad_compression`` (V=16, T=32): L = T // 2 tokens from ``[0, V-2)``, the compression token
  V-1, then blanks (V-2); the target at the compression token is x1 and at the i-th blank after
  it x(i+1): reproduce the sequence after the compression token. MAD trains an autoencoder whose
  decoder reads only the compression token's output; a single causal decoder cannot express that
  bottleneck, so this is the causal-decoder version (it is in effect MAD's plain copying task).
  MAD's optional noise is not implemented.
* ``mad_memorization`` (V=64, T=32, map_seed=12345): pairs ``k I``, keys from ``[0, K)`` with
  replacement (K = (V-1)//2), I = V-1 the insert token, the target at I the value of k under one
  fixed key→value map (an injection into ``[K, V-1)``) drawn from `map_seed` and shared by all
  rows and batches: the model has to hold the map in its weights. MAD's default is V=256.
* ``mad``: the six together with one vocabulary and length (V=32, T=64, each at its other
  defaults). ``mix: batch`` (default) draws one sub-task per batch from the generator (uniform);
  ``mix: split`` gives each sub-task an equal share of every batch (the first ``B mod 6`` get one
  row more), rows in sub-task order. Tokens mean different things in different sub-tasks; the
  model tells them apart by layout. Accuracy pools scored positions, so sub-tasks that score
  more positions per row (compression, selective copy, memorization) weigh more than fuzzy
  recall; it is not an unweighted mean of the six accuracies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from nas.tasks.base import IGNORE_INDEX, Task

if TYPE_CHECKING:
    import torch


def _check_int(kind: str, key: str, value: object, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{kind}: {key} must be an integer >= {minimum}, got {value!r}")


def _check_batch(kind: str, batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"{kind}: batch_size must be >= 1, got {batch_size!r}")


def _distinct(generator: torch.Generator, shape: tuple[int, ...], pool: int, k: int):
    """(*shape, k) distinct draws from range(pool), in random order, per leading index."""
    import torch

    return torch.rand(*shape, pool, generator=generator).topk(k, dim=-1).indices


@dataclass(frozen=True)
class _RecallBase(Task):
    """Shared generator of the three recall tasks (key spans of `_k` tokens, values of `_v`)."""

    vocab_size: int = 16
    seq_len: int = 64
    noise_vocab_size: int = 0
    frac_noise: float = 0.0

    kind: ClassVar[str] = "mad_in_context_recall"

    @property
    def _k(self) -> int:
        return 1

    @property
    def _v(self) -> int:
        return 1

    @property
    def _pad(self) -> int:
        return 0  # tokens reserved after noise (fuzzy: a padding token)

    @property
    def num_keys(self) -> int:
        """K: keys are ``[0, K)``, values ``[K, 2K)``, noise ``[2K, 2K + noise_vocab_size)``."""
        return (self.vocab_size - self._pad - self.noise_vocab_size) // 2

    @property
    def motif(self) -> int:
        return self._k + self._v

    def __post_init__(self) -> None:
        name = self.kind
        _check_int(name, "vocab_size", self.vocab_size)
        _check_int(name, "seq_len", self.seq_len)
        _check_int(name, "noise_vocab_size", self.noise_vocab_size, minimum=0)
        f = self.frac_noise
        if isinstance(f, bool) or not isinstance(f, int | float) or not 0 <= f < 1:
            raise ValueError(f"{name}: frac_noise must be a number in [0, 1), got {f!r}")
        if f > 0 and self.noise_vocab_size == 0:
            raise ValueError(
                f"{name}: frac_noise={f} needs noise tokens but noise_vocab_size=0; "
                "fix: set noise_vocab_size >= 1 or frac_noise: 0"
            )
        need = max(self._k, self._v)
        if self.num_keys < max(need, 1):
            least = 2 * max(need, 1) + self._pad + self.noise_vocab_size
            raise ValueError(
                f"{name}: vocab_size={self.vocab_size} leaves {self.num_keys} key tokens "
                f"(after {self.noise_vocab_size} noise tokens), fewer than the {max(need, 1)} "
                f"a span needs; fix: set vocab_size >= {least}"
            )
        if self.seq_len < 2 * self.motif:
            raise ValueError(
                f"{name}: seq_len={self.seq_len} is shorter than two key-value motifs of "
                f"{self.motif} tokens (one binding and its probe); fix: set seq_len >= "
                f"{2 * self.motif}"
            )

    def sample(
        self, batch_size: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """See Task.sample."""
        import torch

        _check_batch(self.kind, batch_size)
        b, t, k, v, m, nk = batch_size, self.seq_len, self._k, self._v, self.motif, self.num_keys
        p = t // m  # motifs per row; the last is the probe
        ar = torch.arange(p)

        # key spans: k distinct key tokens per motif; the probe copies a random earlier binding
        keys = _distinct(generator, (b, p), nk, k)  # (B, P, k)
        noise_slot = torch.rand(b, p, generator=generator) < self.frac_noise  # (B, P)
        keep = torch.randint(0, p - 1, (b, 1), generator=generator)  # always one binding
        noise_slot[:, p - 1] = False
        noise_slot.scatter_(1, keep, False)
        pick = torch.rand(b, p - 1, generator=generator).masked_fill(noise_slot[:, :-1], -1.0)
        src = pick.argmax(dim=1)  # (B,) a random earlier binding
        keys[:, p - 1] = keys[torch.arange(b), src]

        # key identity and first occurrence among bindings
        code = (keys * nk ** torch.arange(k)).sum(-1)  # (B, P)
        binding = ~noise_slot
        same = (code[:, :, None] == code[:, None, :]) & binding[:, None, :] & binding[:, :, None]
        first = same.float().argmax(dim=2)  # (B, P): first binding with this key (self if new)
        seen = binding & (first < ar)  # (B, P)

        fresh = _distinct(generator, (b, p), nk, v) + nk  # (B, P, v) value spans
        values = fresh.gather(1, first[:, :, None].expand(b, p, v))  # repeated keys: same value

        noise = torch.randint(
            2 * nk, 2 * nk + max(self.noise_vocab_size, 1), (b, p, m), generator=generator
        )
        motifs = torch.where(noise_slot[:, :, None], noise, torch.cat([keys, values], dim=2))
        scored = torch.zeros(b, p, m, dtype=torch.bool)
        scored[:, :, k:] = seen[:, :, None]

        lead = t - p * m  # left padding (fuzzy only; recall requires even T)
        stream = torch.full((b, t), self.vocab_size - 1, dtype=torch.long)
        stream[:, lead:] = motifs.reshape(b, p * m)
        mask = torch.zeros(b, t, dtype=torch.bool)
        mask[:, lead:] = scored.reshape(b, p * m)

        targets = torch.full((b, t), IGNORE_INDEX, dtype=torch.long)
        targets[:, :-1] = torch.where(mask[:, 1:], stream[:, 1:], IGNORE_INDEX)
        return stream, targets


@dataclass(frozen=True)
class MADInContextRecallTask(_RecallBase):
    """MAD in-context recall: ``k v k v ...``, repeated keys' values scored."""

    kind: ClassVar[str] = "mad_in_context_recall"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.seq_len % 2:
            raise ValueError(
                f"{self.kind}: seq_len={self.seq_len} must be even (pairs of key, value); "
                f"fix: set seq_len to {self.seq_len + 1}"
            )


@dataclass(frozen=True)
class MADNoisyRecallTask(MADInContextRecallTask):
    """MAD noisy in-context recall: pair slots replaced by noise with probability frac_noise."""

    vocab_size: int = 32
    seq_len: int = 64
    noise_vocab_size: int = 16
    frac_noise: float = 0.2

    kind: ClassVar[str] = "mad_noisy_recall"


@dataclass(frozen=True)
class MADFuzzyRecallTask(_RecallBase):
    """MAD fuzzy in-context recall: keys and values are spans of distinct tokens."""

    vocab_size: int = 16
    seq_len: int = 64
    noise_vocab_size: int = 0
    frac_noise: float = 0.0
    k_motif_size: int = 3
    v_motif_size: int = 3

    kind: ClassVar[str] = "mad_fuzzy_recall"

    @property
    def _k(self) -> int:
        return self.k_motif_size

    @property
    def _v(self) -> int:
        return self.v_motif_size

    @property
    def _pad(self) -> int:
        return 1  # token V-1 pads rows on the left

    def __post_init__(self) -> None:
        _check_int(self.kind, "k_motif_size", self.k_motif_size)
        _check_int(self.kind, "v_motif_size", self.v_motif_size)
        super().__post_init__()


@dataclass(frozen=True)
class MADSelectiveCopyTask(Task):
    """MAD selective copying: copy the non-blank tokens, in order, after the copy token."""

    vocab_size: int = 16
    seq_len: int = 64
    num_tokens_to_copy: int = 8

    kind: ClassVar[str] = "mad_selective_copy"

    def __post_init__(self) -> None:
        for key in ("vocab_size", "seq_len", "num_tokens_to_copy"):
            _check_int(self.kind, key, getattr(self, key))
        if self.vocab_size < 3:
            raise ValueError(
                f"{self.kind}: vocab_size={self.vocab_size} leaves no data tokens besides the "
                "blank and copy tokens; fix: set vocab_size >= 3"
            )
        n = self.num_tokens_to_copy
        if self.seq_len <= 2 * n + 1:
            raise ValueError(
                f"{self.kind}: seq_len={self.seq_len} must exceed 2*num_tokens_to_copy+1="
                f"{2 * n + 1} (MAD's rule: at least one blank); fix: set seq_len >= {2 * n + 2} "
                f"or num_tokens_to_copy <= {(self.seq_len - 2) // 2}"
            )

    def sample(
        self, batch_size: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """See Task.sample."""
        import torch

        _check_batch(self.kind, batch_size)
        b, t, n, vs = batch_size, self.seq_len, self.num_tokens_to_copy, self.vocab_size
        blank, copy = vs - 2, vs - 1
        region = t - n - 1
        tokens = torch.randint(0, vs - 2, (b, n), generator=generator)
        slots = _distinct(generator, (b,), region, n).sort(dim=1).values  # (B, N) increasing
        inputs = torch.full((b, t), blank, dtype=torch.long)
        inputs.scatter_(1, slots, tokens)
        inputs[:, region] = copy
        targets = torch.full((b, t), IGNORE_INDEX, dtype=torch.long)
        targets[:, region + 1 :] = tokens
        return inputs, targets


@dataclass(frozen=True)
class MADCompressionTask(Task):
    """Sequence, compression token, then reproduce the sequence (causal-decoder adaptation)."""

    vocab_size: int = 16
    seq_len: int = 32

    kind: ClassVar[str] = "mad_compression"

    def __post_init__(self) -> None:
        _check_int(self.kind, "vocab_size", self.vocab_size)
        _check_int(self.kind, "seq_len", self.seq_len)
        if self.vocab_size < 3:
            raise ValueError(
                f"{self.kind}: vocab_size={self.vocab_size} leaves no data tokens besides the "
                "blank and compression tokens; fix: set vocab_size >= 3"
            )
        if self.seq_len < 2:
            raise ValueError(f"{self.kind}: seq_len must be >= 2; fix: set seq_len >= 2")

    def sample(
        self, batch_size: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """See Task.sample. The sequence is the first ``seq_len // 2`` tokens."""
        import torch

        _check_batch(self.kind, batch_size)
        b, t, vs = batch_size, self.seq_len, self.vocab_size
        n = t // 2
        seq = torch.randint(0, vs - 2, (b, n), generator=generator)
        inputs = torch.full((b, t), vs - 2, dtype=torch.long)
        inputs[:, :n] = seq
        inputs[:, n] = vs - 1
        targets = torch.full((b, t), IGNORE_INDEX, dtype=torch.long)
        targets[:, n : 2 * n] = seq
        return inputs, targets


@dataclass(frozen=True)
class MADMemorizationTask(Task):
    """MAD memorization: ``k I k I ...``, the target at I the value of k under a fixed map."""

    vocab_size: int = 64
    seq_len: int = 32
    map_seed: int = 12345

    kind: ClassVar[str] = "mad_memorization"

    def __post_init__(self) -> None:
        _check_int(self.kind, "vocab_size", self.vocab_size)
        _check_int(self.kind, "seq_len", self.seq_len, minimum=2)
        _check_int(self.kind, "map_seed", self.map_seed, minimum=0)
        if self.vocab_size < 3:
            raise ValueError(
                f"{self.kind}: vocab_size={self.vocab_size} has no room for keys, values and the "
                "insert token; fix: set vocab_size >= 3"
            )
        if self.seq_len % 2:
            raise ValueError(
                f"{self.kind}: seq_len={self.seq_len} must be even (pairs of key, insert "
                f"token); fix: set seq_len to {self.seq_len + 1}"
            )

    @property
    def num_keys(self) -> int:
        return (self.vocab_size - 1) // 2

    def value_map(self) -> torch.Tensor:
        """(K,) the value of each key: the same for every batch, drawn from `map_seed`."""
        import torch

        g = torch.Generator().manual_seed(self.map_seed)
        nk, nv = self.num_keys, self.vocab_size - 1 - self.num_keys
        return torch.randperm(nv, generator=g)[:nk] + nk

    def sample(
        self, batch_size: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """See Task.sample."""
        import torch

        _check_batch(self.kind, batch_size)
        b, t = batch_size, self.seq_len
        keys = torch.randint(0, self.num_keys, (b, t // 2), generator=generator)
        inputs = torch.full((b, t), self.vocab_size - 1, dtype=torch.long)
        inputs[:, 0::2] = keys
        targets = torch.full((b, t), IGNORE_INDEX, dtype=torch.long)
        targets[:, 1::2] = self.value_map()[keys]
        return inputs, targets


SUBTASKS: dict[str, type[Task]] = {
    "mad_in_context_recall": MADInContextRecallTask,
    "mad_noisy_recall": MADNoisyRecallTask,
    "mad_fuzzy_recall": MADFuzzyRecallTask,
    "mad_selective_copy": MADSelectiveCopyTask,
    "mad_compression": MADCompressionTask,
    "mad_memorization": MADMemorizationTask,
}
MIX_MODES = ("batch", "split")


@dataclass(frozen=True)
class MADTask(Task):
    """All six MAD tasks at one vocabulary and length, mixed per batch or split in each batch."""

    vocab_size: int = 32
    seq_len: int = 64
    mix: str = "batch"

    kind: ClassVar[str] = "mad"

    def __post_init__(self) -> None:
        if self.mix not in MIX_MODES:
            raise ValueError(
                f"mad: mix must be one of {', '.join(MIX_MODES)}, got {self.mix!r}; "
                "fix: set mix: batch or mix: split"
            )
        _check_int("mad", "vocab_size", self.vocab_size)
        _check_int("mad", "seq_len", self.seq_len)
        self.subtasks()  # validates each at this vocabulary and length

    def subtasks(self) -> list[Task]:
        """The six tasks in SUBTASKS order; a ValueError names the sub-task that fails."""
        made = []
        for cls in SUBTASKS.values():
            try:
                made.append(cls(vocab_size=self.vocab_size, seq_len=self.seq_len))
            except ValueError as exc:
                raise ValueError(f"mad: sub-task {exc}") from None
        return made

    def sample(
        self, batch_size: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """See Task.sample."""
        import torch

        _check_batch("mad", batch_size)
        tasks = self.subtasks()
        if self.mix == "batch":
            which = int(torch.randint(0, len(tasks), (1,), generator=generator))
            return tasks[which].sample(batch_size, generator)
        base, extra = divmod(batch_size, len(tasks))
        parts = [
            task.sample(base + (i < extra), generator)
            for i, task in enumerate(tasks)
            if base + (i < extra) > 0
        ]
        return torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])
