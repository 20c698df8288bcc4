"""Where a model lives, and how to wait for it there."""

from __future__ import annotations

import torch
from torch import nn


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); CPU for a model with neither."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def synchronize(device: torch.device) -> None:
    """Wait for queued work on `device` (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def describe_device(device: torch.device | str) -> str:
    """Human-readable device, e.g. ``cpu (2 threads)`` or ``NVIDIA H100 80GB HBM3``."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        threads = torch.get_num_threads()
        return f"cpu ({threads} thread{'s' if threads != 1 else ''})"
    return str(device)


def device_fingerprint(device: torch.device | str, dtype: torch.dtype = torch.float32) -> dict:
    """Everything a latency figure depends on besides the architecture and the shape: the
    device (its name; on CUDA the driver's CUDA version and the capability), the software
    (torch, triton), the dtype and, on CPU, the processor and the intra-op threads.

    Two measurements are comparable only if their fingerprints are equal; `fingerprint_hash`
    condenses one into a short key (e.g. for a latency cache).
    """
    import platform

    device = torch.device(device)
    found: dict = {
        "device": describe_device(device),
        "torch": torch.__version__,
        "triton": _version_of("triton"),
        "dtype": str(dtype).removeprefix("torch."),
    }
    if device.type == "cuda":
        found["cuda"] = torch.version.cuda
        found["capability"] = ".".join(map(str, torch.cuda.get_device_capability(device)))
        found["timing"] = "cuda_graph"  # prefill and decode replayed from a graph (latency.py)
    else:
        found["processor"] = _cpu_model() or platform.processor() or platform.machine()
        found["threads"] = torch.get_num_threads()
    return found


def fingerprint_hash(fingerprint: dict) -> str:
    """A 16-hex-digit key for a fingerprint (stable across processes)."""
    import hashlib
    import json

    canonical = json.dumps(fingerprint, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _version_of(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str | None:
    """The processor's model name from /proc/cpuinfo (Linux), else None."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None
