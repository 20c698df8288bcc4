"""`nas blocks list`: the registry as a user reads it."""

from __future__ import annotations

import subprocess
import sys


def nas(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas", *args], capture_output=True, text=True,
                          timeout=120)


def test_blocks_list_shows_every_block_with_its_knobs():
    proc = nas("blocks", "list")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for name in ("attention", "linear_attention", "short_conv", "identity", "mean_pool", "mlp",
                 "swiglu"):
        assert f" {name} " in out, name
    assert "token_mixer" in out and "channel_mixer" in out
    assert "decay: str = 'none' {none, fixed, gla}" in out
    assert "normalize: str = 'denominator' {denominator, rmsnorm, none}" in out
    assert "output_gate: bool = False" in out
    assert "kernel_size: int = 4 (>= 2)" in out
    assert "Causal running mean over time" in out  # the block's one-line doc


def test_blocks_list_pattern_and_role():
    proc = nas("blocks", "list", "*attention")
    assert proc.returncode == 0, proc.stderr
    assert " linear_attention " in proc.stdout and " short_conv " not in proc.stdout
    proc = nas("blocks", "list", "--role", "channel_mixer")
    assert proc.returncode == 0, proc.stderr
    assert " mlp " in proc.stdout and " mean_pool " not in proc.stdout
    proc = nas("blocks", "list", "atten")  # a plain word matches anywhere in the name
    assert proc.returncode == 0, proc.stderr
    assert " linear_attention " in proc.stdout and " attention " in proc.stdout


def test_blocks_list_errors_are_one_line():
    proc = nas("blocks", "list", "--role", "mixer")
    assert proc.returncode == 2
    assert "unknown --role 'mixer'" in proc.stderr and "Traceback" not in proc.stderr
    proc = nas("blocks", "list", "nonexistent*")
    assert proc.returncode == 2
    assert "no block matches 'nonexistent*'; known: attention" in proc.stderr


def test_blocks_list_shows_the_presets_and_what_they_resolve_to():
    proc = nas("blocks", "list")
    assert proc.returncode == 0, proc.stderr
    for name in ("gla", "retnet", "gated_deltanet", "swa", "gqa", "mqa"):
        assert f" {name} " in proc.stdout, name
    proc = nas("blocks", "list", "gla")  # a preset by its name: its block and what it fixes
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert "presets matching" in out and " gla " in out and "linear_attention" in out
    assert "decay: gla" in out and "(fixed)" in out and "yours to set: heads" in out
    proc = nas("blocks", "list", "attention")  # a block's presets come with it
    assert proc.returncode == 0, proc.stderr
    for name in ("swa", "gqa", "mqa", "gla", "retnet"):
        assert f" {name} " in proc.stdout, name
    assert " gated_deltanet " not in proc.stdout
    proc = nas("blocks", "list", "--role", "channel_mixer")
    assert "presets" not in proc.stdout and " gla " not in proc.stdout
