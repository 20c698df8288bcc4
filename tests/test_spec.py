import json
import subprocess
import sys
from pathlib import Path

from nas.spec import ArchSpec, LayerSpec, ModuleSpec


def make_spec(lr=1e-3, heads=4) -> ArchSpec:
    attn = ModuleSpec.make("attention", heads=heads, kv_heads=1, rope=True, rope_base=10000.0)
    conv = ModuleSpec.make("short_conv", kernel_size=4)
    mlp = ModuleSpec.make("swiglu", expansion=2)
    return ArchSpec(d_model=32, vocab_size=16, layers=(LayerSpec(conv, mlp), LayerSpec(attn, mlp)),
                    training={"steps": 10, "lr": lr, "batch_size": 4})


def test_json_round_trip_is_exact():
    spec = make_spec()
    again = ArchSpec.from_json(spec.to_json())
    assert again == spec
    assert again.to_json() == spec.to_json()
    data = json.loads(spec.to_json())
    assert data["layers"][1]["mixer"] == {"kind": "attention", "heads": 4, "kv_heads": 1,
                                          "rope": True, "rope_base": 10000.0}
    assert data["training"]["lr"] == 1e-3


def test_arch_hash_ignores_training_but_config_hash_does_not():
    assert make_spec(lr=1e-3).arch_hash == make_spec(lr=3e-3).arch_hash
    assert make_spec(lr=1e-3).config_hash != make_spec(lr=3e-3).config_hash
    assert make_spec(heads=4).arch_hash != make_spec(heads=2).arch_hash


def test_knob_order_does_not_change_identity():
    a = ModuleSpec.make("attention", heads=2, kv_heads=1)
    b = ModuleSpec.from_dict({"kv_heads": 1, "kind": "attention", "heads": 2})
    assert a == b


def test_arch_hash_is_stable_across_processes():
    code = ("from tests.test_spec import make_spec; print(make_spec().arch_hash)")
    hashes = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={"PYTHONHASHSEED": seed, "PATH": ""},
                       cwd=Path(__file__).parents[1]).stdout.strip()
        for seed in ("1", "2")
    }
    assert hashes == {make_spec().arch_hash}


def test_short_form():
    assert make_spec().short_form() == "C-A"


def test_domain_errors_pickle():
    """Errors cross process boundaries (worker -> driver) intact."""
    import pickle

    from nas.errors import SpaceError
    from nas.evaluate.errors import TrialDiverged
    from nas.orchestrator.executor import TrialFailed

    for exc in (SpaceError("a.yaml", "model.x", "bad", "fix it"), TrialDiverged(10, float("nan")),
                TrialFailed("ValueError: x", "Traceback ...")):
        again = pickle.loads(pickle.dumps(exc))
        assert type(again) is type(exc) and str(again) == str(exc)
