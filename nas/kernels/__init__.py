"""Fused ops for the hot paths of the blocks: one folder per op, each a Triton kernel beside the
plain-PyTorch reference it is tested against.

Every op exposes one public function (re-exported here lazily) that dispatches through
`use_triton(tensor)`: the Triton kernel when the tensor is on CUDA and Triton imports, the
reference otherwise. Tests force either path with `force_backend("triton")` — on the CPU that
runs the kernels under `TRITON_INTERPRET=1`, which must be set before Triton is first imported.
Triton is imported only by the `triton_*.py` modules, and only when a kernel is launched, so
`import nas.kernels` stays cheap and works without Triton installed.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import os
import threading
from collections.abc import Iterator

import torch

BACKENDS = ("triton", "reference")
_forced = threading.local()

# public function -> the op folder that defines it (swiglu is not here: `nas.kernels.swiglu` is its
# folder, so import the function as `from nas.kernels.swiglu import swiglu`)
OPS = {
    "chunk_gla": "gla",
    "chunk_delta_rule": "delta_rule",
    "rms_norm": "rmsnorm",
    "causal_conv1d": "short_conv",
    "causal_conv1d_update": "short_conv",
}


def __getattr__(name: str):
    """The ops' public functions, imported on first use (`from nas.kernels import swiglu`)."""
    if name in OPS:
        module = importlib.import_module(f"{__name__}.{OPS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def triton_available() -> bool:
    """True when the `triton` package can be imported (not whether a GPU is present). Asked on
    every op call on CUDA, so the answer is looked up once per process."""
    return importlib.util.find_spec("triton") is not None


def interpreting() -> bool:
    """True when Triton kernels run in the CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@contextlib.contextmanager
def force_backend(backend: str | None) -> Iterator[None]:
    """Within the block, every op uses `backend` ('triton' or 'reference'; None = automatic).

    Forcing 'triton' on CPU tensors needs TRITON_INTERPRET=1; it is the tests' switch.
    """
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"unknown kernel backend {backend!r}; known: {', '.join(BACKENDS)}")
    previous = getattr(_forced, "backend", None)
    _forced.backend = backend
    try:
        yield
    finally:
        _forced.backend = previous


def forced_backend() -> str | None:
    """The backend `force_backend` set for this thread, or None when dispatch is automatic."""
    return getattr(_forced, "backend", None)


def use_triton(x: torch.Tensor) -> bool:
    """Whether an op called on `x` should run its Triton kernel."""
    forced = forced_backend()
    if forced is not None:
        return forced == "triton"
    if not x.is_cuda:  # the common CPU case first: no environment lookups per op
        return False
    if os.environ.get("NAS_KERNELS", "auto") == "reference":  # user switch, e.g. to debug
        return False
    return triton_available()


_poisoned = threading.local()


@contextlib.contextmanager
def poison_outputs() -> Iterator[None]:
    """Within the block, `new_empty` fills new buffers with NaN, so a kernel that leaves part of
    its output (or of a gradient) unwritten fails the tests instead of passing on stale memory."""
    previous = getattr(_poisoned, "on", False)
    _poisoned.on = True
    try:
        yield
    finally:
        _poisoned.on = previous


def new_empty(shape, like: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """An uninitialised buffer on `like`'s device (NaN-filled under `poison_outputs`). Kernel
    wrappers allocate every output and gradient through this."""
    dtype = dtype or like.dtype
    if getattr(_poisoned, "on", False):
        return torch.full(shape, float("nan"), dtype=dtype, device=like.device)
    return torch.empty(shape, dtype=dtype, device=like.device)
