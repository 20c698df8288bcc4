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
    from nas.orchestrator.executor_base import TrialFailed

    for exc in (SpaceError("a.yaml", "model.x", "bad", "fix it"), TrialDiverged(10, float("nan")),
                TrialFailed("ValueError: x", "Traceback ...")):
        again = pickle.loads(pickle.dumps(exc))
        assert type(again) is type(exc) and str(again) == str(exc)


# Written by nas before the model-wide options (init, tie_head, positions) existed: GPT-2 init,
# tied head, no absolute positions. Its JSON and hashes as that version computed them.
OLD_JSON = ('{"d_model":32,"layers":[{"channel_mixer":{"expansion":2,"kind":"swiglu"},"mixer":'
            '{"kernel_size":4,"kind":"short_conv"}},{"channel_mixer":{"expansion":2,"kind":'
            '"swiglu"},"mixer":{"heads":4,"kind":"attention","kv_heads":1,"rope":true,'
            '"rope_base":10000.0}}],"norm":"rmsnorm","training":{"batch_size":4,"lr":0.001,'
            '"steps":10},"vocab_size":16}')
OLD_ARCH_HASH, OLD_CONFIG_HASH = "6d6bc7ca97815422", "30167ee15c94b4f1"


def test_old_specs_read_back_as_they_were_built_and_keep_their_hashes():
    import dataclasses

    old = ArchSpec.from_json(OLD_JSON)
    assert (old.init, old.tie_head, old.positions, old.max_positions) == (
        "gpt2", True, "none", None)
    assert old.to_json() == OLD_JSON
    assert (old.arch_hash, old.config_hash) == (OLD_ARCH_HASH, OLD_CONFIG_HASH)
    assert dataclasses.replace(make_spec(), init="gpt2", tie_head=True) == old


def test_new_specs_default_to_torch_init_and_an_untied_head():
    spec = make_spec()
    assert (spec.init, spec.tie_head, spec.positions) == ("torch", False, "none")
    data = json.loads(spec.to_json())
    assert data["init"] == "torch" and data["tie_head"] is False and "positions" not in data
    assert ArchSpec.from_json(spec.to_json()) == spec
    assert spec.arch_hash != OLD_ARCH_HASH


def test_every_model_option_is_serialized_and_hashed():
    import dataclasses

    import pytest

    base = make_spec()
    variants = [dataclasses.replace(base, **change) for change in (
        {"init": "gpt2"}, {"tie_head": True}, {"positions": "sinusoidal"},
        {"positions": "learned", "max_positions": 64},
        {"positions": "learned", "max_positions": 128})]
    hashes = {s.arch_hash for s in [base, *variants]}
    assert len(hashes) == 1 + len(variants)
    for spec in variants:
        assert ArchSpec.from_json(spec.to_json()) == spec
    assert json.loads(variants[3].to_json())["max_positions"] == 64
    with pytest.raises(ValueError, match="max_positions"):
        dataclasses.replace(base, positions="learned")
    with pytest.raises(ValueError, match="learned positions only"):
        dataclasses.replace(base, max_positions=64)
    with pytest.raises(ValueError, match="unknown init"):
        dataclasses.replace(base, init="xavier")
    with pytest.raises(ValueError, match="unknown positions"):
        dataclasses.replace(base, positions="rope")
