"""A paused trial's training checkpoint: the weights plus where training stopped.

Multi-fidelity pauses a trial at a rung and may resume it later, in another worker process: the
checkpoint carries the model's state_dict and the `ResumeState` (next step, optimizer state,
data-generator state), so the resumed run continues exactly as if never stopped. Written to a
temporary name and renamed, so a worker killed mid-write leaves no half file under the name.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from nas.evaluate.training import ResumeState


def save_checkpoint(path: str | Path, model: nn.Module, resume: ResumeState) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save({"model": model.state_dict(), "step": resume.step,
                "optimizer": resume.optimizer, "generator": resume.generator}, partial)
    os.replace(partial, path)


def load_checkpoint(path: str | Path, model: nn.Module) -> ResumeState:
    """Load the weights into `model` (in place) and return where training resumes."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(saved["model"])
    return ResumeState(saved["step"], saved["optimizer"], saved["generator"])
