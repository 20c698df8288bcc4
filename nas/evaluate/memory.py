"""Peak memory of one pass of a phase: what the phase holds plus the most its pass allocates.

``peak = resident + transient``, in bytes, where `resident` is the storage of the tensors the
phase keeps between passes (weights and buffers; train_step adds gradients and AdamW state,
decode its KV caches / recurrent state at the context length) and `transient` is the high-water
mark of what one pass allocates on top of them (activations, saved tensors, workspaces).

How `transient` is read:

- CUDA: the caching allocator's own counter (``max_memory_allocated`` after a reset, minus
  what was allocated before the pass), so kernel workspaces count.
- CPU: torch keeps no allocation statistics for the CPU, and the process's RSS mixes in the
  interpreter, the allocator's free lists and other models. So every tensor storage an operator
  returns during the pass is tracked through a ``TorchDispatchMode`` and a finalizer on the
  storage: the peak of the bytes alive at once. Scratch memory an operator frees before it
  returns is not seen; everything a model keeps for its next operator or for backward is.

The pass is run once untimed before (lazy state such as AdamW's moments exists then), and the
tracked pass is never timed: tracking slows every operator.
"""

from __future__ import annotations

import weakref

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from nas.evaluate.device import model_device, synchronize
from nas.evaluate.latency import SUPPORTED_PHASES, open_phase

MIB = 1 << 20


def measure_peak_memory(model: nn.Module, *, batch: int, seq_len: int, vocab_size: int,
                        phase: str = "prefill", seed: int = 0) -> int:
    """Peak bytes of one pass of `phase` on `model`'s device (module docstring); restores the
    model's train/eval mode. ValueError on an unsupported phase."""
    if phase not in SUPPORTED_PHASES:
        raise ValueError(
            f"unsupported memory phase {phase!r}; supported: {', '.join(SUPPORTED_PHASES)}"
        )
    device = model_device(model)
    was_training = model.training
    try:
        with open_phase(model, phase, batch=batch, seq_len=seq_len, vocab_size=vocab_size,
                        seed=seed) as running:
            running.draw()()  # untimed first pass: lazily created state exists from here
            work = running.draw()
            synchronize(device)
            resident = storage_bytes(running.resident())
            transient = (_cuda_transient(work, device) if device.type == "cuda"
                         else _tracked_transient(work))
    finally:
        model.train(was_training)
    return resident + transient


def storage_bytes(tensors: list[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind `tensors` (views of one storage count once)."""
    seen: dict[int, int] = {}
    for tensor in tensors:
        storage = tensor.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def _cuda_transient(work, device: torch.device) -> int:
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    work()
    synchronize(device)
    return max(torch.cuda.max_memory_allocated(device) - before, 0)


def _tracked_transient(work) -> int:
    with _StorageTracker() as tracker:
        work()
    return tracker.peak


class _StorageTracker(TorchDispatchMode):
    """Bytes of the storages created by operators while active, and their peak."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}  # storage key -> bytes
        self.current = 0
        self.peak = 0

    def _freed(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if not isinstance(tensor, torch.Tensor) or tensor.device.type == "meta":
                continue
            storage = tensor.untyped_storage()
            key = id(storage)  # one Python object per live storage (torch preserves it)
            if key in self.live or storage.data_ptr() in self._inputs(args, kwargs):
                continue  # in-place and view results reuse a storage already counted or held
            self.live[key] = storage.nbytes()
            self.current += storage.nbytes()
            self.peak = max(self.peak, self.current)
            weakref.finalize(storage, self._freed, key)
        return out

    @staticmethod
    def _inputs(args, kwargs) -> set[int]:
        return {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0]
                if isinstance(t, torch.Tensor) and t.device.type != "meta"}
