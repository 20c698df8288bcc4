"""Pickle Optuna objects whatever their sampler holds.

Ray Tune pickles a searcher when a Tuner is built and when it checkpoints the experiment. An
Optuna study pickles with its storage and sampler, and a sampler may hold thread locks (Optuna
5.1's NSGAIISampler keeps a `threading.Lock` for its generation cache), which `pickle` refuses.

`dumps` writes a lock as "a new lock" and keeps everything else exactly (the sampler's random
state, its caches, the in-memory trials), so a study restored by `loads` continues the same
sequence of suggestions. A lock held while pickling is restored released: pickle between calls
into Optuna, never during one (Tune does).
"""

from __future__ import annotations

import io
import pickle
import threading
from typing import Any

_LOCKS = {type(threading.Lock()): threading.Lock, type(threading.RLock()): threading.RLock}


class _FreshLockPickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        factory = _LOCKS.get(type(obj))
        if factory is not None:
            return factory, ()
        return NotImplemented


def dumps(obj: Any) -> bytes:
    """Pickle `obj`, writing every thread lock inside it as a new, released lock."""
    buffer = io.BytesIO()
    _FreshLockPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buffer.getvalue()


def loads(data: bytes) -> Any:
    """The object `dumps` wrote. Only for bytes this process or its own checkpoint wrote: like
    any pickle, it runs code named in the data."""
    return pickle.loads(data)  # noqa: S301 - our own checkpoint, never user input
