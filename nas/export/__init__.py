"""Trained trials out of the store: export folders (`nas export`) and loading them back.

Light to import: torch and safetensors load only when a model is built or weights are read.
"""

from nas.export.exporter import FILES, ExportResult, export_trial, read_metrics
from nas.export.loading import load_model

__all__ = ["FILES", "ExportResult", "export_trial", "load_model", "read_metrics"]
