"""`nas.load_model(DIR)`: an exported trial back as a nas model, weights loaded, in eval mode."""

from __future__ import annotations

from pathlib import Path

from nas.errors import NasError
from nas.spec import ArchSpec


def load_model(folder: str | Path, device: str = "cpu", allow_code: bool = False):
    """The model of an export folder (arch.json + model.safetensors) on `device`, eval mode
    (a nas.blocks.LanguageModel). An export may come from someone else: a mixer its arch.json
    names by import path is user code, imported only with `allow_code=True` (NasError
    otherwise, naming the module's file)."""
    from nas.blocks import build_model
    from nas.export.weights import load_weights

    folder = Path(folder)
    arch, weights = folder / "arch.json", folder / "model.safetensors"
    for path in (arch, weights):
        if not path.is_file():
            raise NasError(f"{folder} is not a nas export: {path.name} is missing (make one "
                           "with `nas export RUN/NUMBER --out DIR`)")
    spec = ArchSpec.from_json(arch.read_text())
    if not allow_code:
        from nas.usercode import spec_refusal

        refused = spec_refusal(spec, f"{arch}")
        if refused is not None:
            raise NasError(refused.replace("rerun with --allow-code",
                                           "call load_model(..., allow_code=True)"))
    model = build_model(spec, seed=0)
    load_weights(model, weights)
    return model.to(device).eval()
