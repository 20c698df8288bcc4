"""Bridges from nas to other tools. Each submodule imports its tool; this package imports none.

- `nas.integrations.tune`: a nas space in your own Ray Tune `Tuner` (needs `ray[tune]`).
"""
