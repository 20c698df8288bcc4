"""Standalone model file of an exported nas trial: rebuilds the model with only PyTorch.

    import model                         # this file, from the export folder
    net = model.load_model()             # the architecture in arch.json + model.safetensors
    logits = net(tokens)                 # tokens: (B, T) int64 -> logits (B, T, vocab_size)

The nas source this model needs (its blocks, kernels' PyTorch paths and the spec) is embedded
below, frozen at export time, and imported under a private package name, so neither nas nor
safetensors needs to be installed, and an installed nas of another version does not interfere.
Run `python model.py` for a quick check: it loads the weights and runs one forward pass.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import json
import linecache
import struct
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}


class _BundleImporter(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the embedded modules `_PACKAGE.*` from `_SOURCES` (name -> (is_package, code))."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != _PACKAGE and not fullname.startswith(_PACKAGE + "."):
            return None
        relative = fullname[len(_PACKAGE):].lstrip(".")
        if relative not in _SOURCES:
            return None
        is_package = _SOURCES[relative][0]
        return importlib.util.spec_from_loader(fullname, self, is_package=is_package)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        relative = module.__name__[len(_PACKAGE):].lstrip(".")
        module.__file__ = f"{__file__}/{relative or '__init__'}.py"
        source = _SOURCES[relative][1]
        # Tracebacks show the embedded lines.
        linecache.cache[module.__file__] = (len(source), None, source.splitlines(True),
                                            module.__file__)
        exec(compile(source, module.__file__, "exec"), module.__dict__)


def _install() -> None:
    if not any(isinstance(finder, _BundleImporter) and getattr(finder, "package", None) == _PACKAGE
               for finder in sys.meta_path):
        finder = _BundleImporter()
        finder.package = _PACKAGE
        sys.meta_path.insert(0, finder)


def _bundled(name: str):
    return importlib.import_module(f"{_PACKAGE}.{name}")


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a .safetensors file (8-byte header length, JSON header, raw data)."""
    data = Path(path).read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    header.pop("__metadata__", None)
    base = 8 + length
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        dtype = _DTYPES[entry["dtype"]]
        raw = bytearray(data[base + begin:base + end])
        flat = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        tensors[name] = flat.reshape(entry["shape"])
    return tensors


def spec():
    """The ArchSpec of the exported model (nas.spec.ArchSpec, from the bundle)."""
    return _bundled("spec").ArchSpec.from_json(ARCH_JSON)


def build_model(seed: int = 0) -> torch.nn.Module:
    """The architecture, freshly initialised (as nas.build_model(spec, seed) would)."""
    for name in _BLOCK_MODULES:  # importing them registers the blocks
        _bundled(name)
    return _bundled("blocks.model").build_model(spec(), seed=seed)


def load_model(weights: str | Path | None = None, device: str = "cpu") -> torch.nn.Module:
    """The model with its trained weights (default: model.safetensors beside this file), in
    eval mode. Tied parameters stored once are tied again by construction."""
    model = build_model()
    state = read_safetensors(weights or HERE / "model.safetensors")
    missing, unexpected = model.load_state_dict(state, strict=False)
    params = dict(model.named_parameters(remove_duplicate=False))
    loaded = {id(params[name]) for name in state if name in params}
    untied = [name for name in missing if name not in params or id(params[name]) not in loaded]
    if unexpected or untied:
        raise RuntimeError(f"weights do not fit the architecture: missing {untied}, "
                           f"unexpected {unexpected}")
    return model.to(device).eval()


# -- generated below: the package name, the ArchSpec and the bundled sources ----------------------
_PACKAGE = "_nas_bundle"
ARCH_JSON = "{}"
_BLOCK_MODULES: tuple[str, ...] = ()
_SOURCES: dict[str, tuple[bool, str]] = {}
