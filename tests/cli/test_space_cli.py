"""`nas space show` and `nas space sample`: in process (typer's runner) to stay fast, and the
error path once through `python -m nas` as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from nas.cli import app
from nas.spec import ArchSpec

runner = CliRunner()


def test_show_prints_the_tree_and_the_count(tiny_space_file):
    result = runner.invoke(app, ["space", "show", str(tiny_space_file)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "space tiny" in out
    lines = out.splitlines()
    ratio = next(i for i, line in enumerate(lines) if "model.hybrid.full_attention_ratio:" in line)
    kernel = next(i for i, line in enumerate(lines)
                  if "model.token_mixers.short_conv.kernel_size: choice [2, 3]" in line)
    assert "when model.hybrid.other = short_conv" in lines[kernel]
    # nested: the kernel under `other`, `other` under the ratio — deeper indentation each
    other = next(i for i, line in enumerate(lines) if "model.hybrid.other:" in line)
    indent = [len(lines[i]) - len(lines[i].lstrip("│├└─ ")) for i in (ratio, other, kernel)]
    assert indent[0] < indent[1] < indent[2] and ratio < other < kernel
    assert "distinct architectures: 296 (exact; 344 assignments" in out
    assert "training configurations: infinite (continuous: training.lr)" in out


def test_show_over_the_limit(tiny_space_file):
    result = runner.invoke(app, ["space", "show", str(tiny_space_file), "--limit", "100"])
    assert result.exit_code == 0, result.output
    assert "more than 100 assignments (344) — not enumerated" in result.stdout


def test_sample_json_is_reproducible(tiny_space_file):
    args = ["space", "sample", str(tiny_space_file), "-n", "3", "--seed", "7", "--format", "json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    items = json.loads(first.stdout)
    assert len(items) == 3
    for item in items:
        spec = ArchSpec.from_dict(item)
        assert spec.arch_hash == item["arch_hash"] and spec.to_dict() == {
            k: v for k, v in item.items() if k != "arch_hash"}
        assert spec.vocab_size == 16 and spec.n_layers in (2, 3)
    assert runner.invoke(app, args).stdout == first.stdout
    other = runner.invoke(app, [*args[:-3], "8", "--format", "json"])
    assert other.exit_code == 0 and other.stdout != first.stdout


def test_sample_table(tiny_space_file):
    result = runner.invoke(app, ["space", "sample", str(tiny_space_file), "-n", "2", "--seed",
                                 "1"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for column in ("trial", "mixers", "d_model", "layers", "arch_hash"):
        assert column in out
    assert "2 architectures sampled from tiny (seed 1)" in out


def test_errors_are_one_line(tmp_path, tiny_space_file):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nmodel: [1, 2\n")
    for args in (["space", "show", str(bad)], ["space", "sample", str(bad)],
                 ["space", "sample", str(tiny_space_file), "--format", "xml"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, args
    proc = subprocess.run([sys.executable, "-m", "nas", "space", "show", str(tmp_path / "no.yaml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == f"error: {tmp_path / 'no.yaml'}: file not found — fix: check the path\n"



def test_validate_notes_a_mixer_no_layer_can_use(tmp_path, tiny_space_text):
    hybrid = ("  hybrid:\n    full_attention_ratio: {choice: [0, 0.5, 1]}\n"
              "    placement: {choice: [interleave, first, last]}\n")
    assert hybrid in tiny_space_text
    (tmp_path / "space.yaml").write_text(
        tiny_space_text.replace(hybrid, "  layout: {pattern: LA}\n").replace(
            "n_layers: {choice: [2, 3]}", "n_layers: 2"))
    result = runner.invoke(app, ["validate", str(tmp_path / "space.yaml")])
    assert result.exit_code == 0, result.output
    assert "note:" in result.output and "short_conv is declared but no layer" in result.output
