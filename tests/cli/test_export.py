"""Kept weights and `nas export`: the front's files exist and match their rows, an export
reloads in nas with the accuracy the search stored, and its model.py rebuilds the same model in
a Python where nas is not importable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import nas
from nas.errors import NasError
from nas.evaluate.training import evaluate
from nas.export import FILES, export_trial, read_metrics
from nas.store import COMPLETE, Store
from nas.store.artifacts import digest
from nas.tasks import make_task


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas", *args], capture_output=True, text=True,
                          timeout=300)


def test_only_the_front_keeps_weights(kept_run):
    store = Store(kept_run.url, create=False)
    front = {t.number for t in store.pareto(kept_run.name)}
    complete = {t.number for t in store.trials(kept_run.name, states=[COMPLETE])}
    artifacts = store.artifacts(kept_run.name)
    assert front and {a.number for a in artifacts} == front
    folder = kept_run.root / "nas-artifacts" / "results.db" / "k"  # beside the database, its own
    for artifact in artifacts:
        assert artifact.file == folder / f"{artifact.number}.safetensors"
        assert digest(artifact.file) == (artifact.bytes, artifact.sha256)
    on_disk = {int(p.stem) for p in folder.iterdir()}
    assert on_disk == front, f"files of trials off the front {on_disk - front} remain"
    off_front = sorted(complete - front)
    if off_front:
        with pytest.raises(NasError, match="kept no weights"):
            export_trial(store, kept_run.name, off_front[0], kept_run.root / "nope")


@pytest.fixture(scope="module")
def exported(kept_run, tmp_path_factory):
    store = Store(kept_run.url, create=False)
    best = max(store.pareto(kept_run.name), key=lambda t: t.values["accuracy"])
    out = tmp_path_factory.mktemp("export") / "best"
    proc = cli("export", f"{kept_run.name}/{best.number}", "--out", str(out),
               "--storage", kept_run.url)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return out, best


def test_export_writes_the_four_files(exported):
    out, best = exported
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert nas.ArchSpec.from_json((out / "arch.json").read_text()).arch_hash == best.arch_hash
    info = read_metrics(out)
    assert info["values"] == best.values and info["trial"] == best.number
    assert info["task"]["kind"] == "mqar" and info["training"]["steps"] == 30
    assert info["latency"]["requests"][0]["phase"] == "prefill"
    assert any(p["name"] == "val_accuracy" for p in info["curve"])


def test_load_model_reproduces_the_stored_accuracy(exported):
    out, best = exported
    info = read_metrics(out)
    model = nas.load_model(out)
    scores = evaluate(model, make_task(info["task"]), n_examples=info["evaluation"]["examples"],
                      seed=info["evaluation"]["seed"])
    assert scores["accuracy"] == pytest.approx(best.values["accuracy"], abs=1e-3)
    assert scores["loss"] == pytest.approx(best.metrics["loss"], rel=1e-4)
    untrained = nas.build_model(nas.ArchSpec.from_json((out / "arch.json").read_text()))
    before = evaluate(untrained, make_task(info["task"]), n_examples=256, seed=0)
    assert before["loss"] > scores["loss"]  # the weights really are the trained ones


def test_model_py_runs_with_only_torch(exported, tmp_path):
    out, _ = exported
    tokens = torch.randint(0, 16, (3, 24), generator=torch.Generator().manual_seed(1))
    torch.save(tokens, tmp_path / "tokens.pt")
    site = str(Path(torch.__file__).resolve().parents[1])
    script = f"""
import sys
sys.path[:] = [{site!r}, {str(out)!r}] + [p for p in sys.path if 'python3' in p and
                                          'site-packages' not in p]
sys.modules['safetensors'] = None  # model.py must read the weights itself
try:
    import nas
except ImportError:
    pass
else:
    raise SystemExit('nas is importable: the test proves nothing')
import torch
import model
net = model.load_model()
with torch.no_grad():
    torch.save(net(torch.load({str(tmp_path / 'tokens.pt')!r})), {str(tmp_path / 'out.pt')!r})
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    with torch.no_grad():
        expected = nas.load_model(out)(tokens)
    assert torch.allclose(torch.load(tmp_path / "out.pt"), expected, atol=1e-6, rtol=0)


def test_export_errors_are_one_line(kept_run, tmp_path):
    proc = cli("export", "k/99", "--out", str(tmp_path / "x"), "--storage", kept_run.url)
    assert proc.returncode == 2 and "no trial 99" in proc.stderr
    with pytest.raises(NasError, match="not a nas export"):
        nas.load_model(tmp_path)


def test_export_json_is_plain(exported):
    out, _ = exported
    json.loads((out / "arch.json").read_text())


def test_model_py_builds_a_block_named_by_its_nas_import_path(tmp_path):
    """A space may name one of nas's own mixers by import path: model.py builds it from its
    bundled copy (was: 'not a subclass of TokenMixer', checked against an installed nas)."""
    from nas.export.bundle import model_source
    from nas.spec import LayerSpec, ModuleSpec

    layer = LayerSpec(ModuleSpec.make("nas.blocks.controls.MeanPool"), ModuleSpec.make("mlp"))
    spec = nas.ArchSpec(d_model=16, vocab_size=16, layers=(layer,))
    (tmp_path / "model.py").write_text(model_source(spec))
    script = "import model; print(sum(p.numel() for p in model.build_model().parameters()))"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)  # nas itself importable, as for the user
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) == sum(p.numel() for p in nas.build_model(spec).parameters())


@pytest.mark.parametrize("options", [
    {},  # the defaults: PyTorch init, untied head
    {"init": "gpt2", "tie_head": True},  # how nas built every model before these options
    {"positions": "learned", "max_positions": 24},
    {"positions": "sinusoidal", "tie_head": True},
])
def test_model_py_and_load_model_rebuild_each_model_option(tmp_path, options):
    """The spec's model-wide options travel in arch.json: model.py and nas.load_model build the
    same model (untied head and position table loaded, a tied head tied again)."""
    from nas.export.bundle import model_source
    from nas.export.weights import save_weights
    from nas.spec import LayerSpec, ModuleSpec

    layers = (LayerSpec(ModuleSpec.make("short_conv"), ModuleSpec.make("swiglu")),
              LayerSpec(ModuleSpec.make("attention", heads=2), ModuleSpec.make("swiglu")))
    spec = nas.ArchSpec(d_model=16, vocab_size=16, layers=layers, **options)
    trained = nas.build_model(spec, seed=3)
    with torch.no_grad():  # weights no fresh build has: a loader that skips one is caught
        for p in trained.parameters():
            p.add_(0.1 * torch.randn_like(p))
    save_weights(trained, tmp_path / "model.safetensors")
    (tmp_path / "arch.json").write_text(spec.to_json())
    (tmp_path / "model.py").write_text(model_source(spec))
    tokens = torch.randint(0, 16, (2, 24), generator=torch.Generator().manual_seed(1))
    torch.save(tokens, tmp_path / "tokens.pt")
    script = ("import torch, model; net = model.load_model(); torch.set_grad_enabled(False); "
              "torch.save(net(torch.load('tokens.pt')), 'out.pt')")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with torch.no_grad():
        expected = trained.eval()(tokens)
        loaded = nas.load_model(tmp_path)
        assert torch.allclose(loaded(tokens), expected, atol=1e-5, rtol=1e-6)
    # float32 rounding: outputs reach |20|, where one ulp is 2e-6
    assert torch.allclose(torch.load(tmp_path / "out.pt"), expected, atol=1e-5, rtol=1e-6)
    assert (loaded.head.weight is loaded.embed.weight) == spec.tie_head


def test_load_model_imports_no_mixer_an_export_names_without_allow_code(exported, tmp_path):
    """An export may come from someone else: a mixer its arch.json names by import path is user
    code. load_model refuses it (one line naming the module's file) unless allow_code=True,
    and even then the import itself refuses the standard library and installed packages."""
    import json
    import shutil

    out, _ = exported
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (tmp_path / "sideeffect_mixer.py").write_text(
        "open(__file__.replace('sideeffect_mixer.py', 'IMPORTED'), 'w').close()\n")
    arch = json.loads((copy / "arch.json").read_text())
    arch["layers"][0]["mixer"]["kind"] = "sideeffect_mixer.Mixer"
    (copy / "arch.json").write_text(json.dumps(arch))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        with pytest.raises(nas.NasError, match="allow_code=True") as info:
            nas.load_model(copy)
        assert "\n" not in str(info.value) and "sideeffect_mixer.py" in str(info.value)
        assert not (tmp_path / "IMPORTED").exists()
        for kind in ("os.path.Mixer", "yaml.Mixer"):  # stdlib, installed: never imported
            arch["layers"][0]["mixer"]["kind"] = kind
            (copy / "arch.json").write_text(json.dumps(arch))
            with pytest.raises(Exception, match="standard library|installed package"):
                nas.load_model(copy, allow_code=True)
