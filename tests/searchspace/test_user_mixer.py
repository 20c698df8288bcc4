"""A user's own token mixer, named by its import path under `token_mixers:`: read from its source
when the space loads (never imported without allow_code), imported at compile time with
allow_code, checked against the TokenMixer contract and its declared knobs, and trained through
the normal search path (a spawned worker imports it again)."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from nas.blocks import get_block
from nas.budget import parse_budget
from nas.errors import SpaceError
from nas.orchestrator.progress import NullReporter
from nas.orchestrator.search import SearchOptions, run_search
from nas.searchspace import count_architectures, loads
from nas.store import COMPLETE, Store
from tests.searchspace.spaces import sample_specs, space_text

MODULE = "nas_test_user_mixers"
MIXER_SOURCE = '''
import torch
import torch.nn as nn

from nas.blocks.base import TokenMixer


class PrefixMean(TokenMixer):
    """Causal running mean of a projection, scaled."""

    def __init__(self, d_model, layer_idx, scale=1.0, hidden=2):
        super().__init__(d_model, layer_idx)
        self.scale, self.hidden = scale, hidden
        self.proj = nn.Linear(d_model, d_model * hidden, bias=False)
        self.out = nn.Linear(d_model * hidden, d_model, bias=False)

    def forward(self, x):
        h = self.proj(x)  # (B, T, D*hidden)
        steps = torch.arange(1, x.shape[1] + 1, device=x.device).view(1, -1, 1)
        return self.out(self.scale * h.cumsum(1) / steps)

    def step(self, x, state=None):
        total, count = (torch.zeros_like(self.proj(x)), 0) if state is None else state
        total, count = total + self.proj(x), count + 1
        return self.out(self.scale * total / count), (total, count)

    def flops_per_token(self, seq_len):
        return 4.0 * self.d_model * self.d_model * self.hidden

    def state_bytes(self, seq_len, dtype=torch.float32):
        return self.d_model * self.hidden * torch.tensor([], dtype=dtype).element_size()


class NotAMixer:
    def __init__(self, d_model, layer_idx):
        pass


class NeedsAValue(TokenMixer):
    def __init__(self, d_model, layer_idx, width):
        super().__init__(d_model, layer_idx)
'''

MODEL = f"""\
    d_model: 16
    n_layers: {{choice: [1, 2]}}
    token_mixers:
      {MODULE}.PrefixMean: {{scale: {{choice: [0.5, 1.0]}}, hidden: 2}}
    channel_mixer: {{kind: swiglu, expansion: 2}}
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / f"{MODULE}.py").write_text(textwrap.dedent(MIXER_SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_user_mixer_compiles_samples_and_counts(user_module):
    space = loads(space_text(MODEL), allow_code=True)
    info = get_block(f"{MODULE}.PrefixMean", "token_mixer")
    assert [k.name for k in info.knobs] == ["scale", "hidden"]
    assert info.defaults == {"scale": 1.0, "hidden": 2}
    specs, _ = sample_specs(space, 8)
    assert {s.layers[0].mixer.kind for s in specs} == {f"{MODULE}.PrefixMean"}
    assert {s.layers[0].mixer.knobs["scale"] for s in specs} == {0.5, 1.0}
    assert count_architectures(space).distinct == 2 * 2


@pytest.mark.parametrize("name, knobs, words", [
    (f"{MODULE}.NotAMixer", "{}", "not a subclass of nas.blocks.TokenMixer"),
    (f"{MODULE}.NeedsAValue", "{}", "parameter 'width' needs a default"),
    (f"{MODULE}.Missing", "{}", "defines no 'Missing'"),
    ("nas_no_such_module_here.Mixer", "{}", "cannot find module 'nas_no_such_module_here'"),
    (f"{MODULE}.PrefixMean", "{width: 3}", "unknown knob"),
    (f"{MODULE}.PrefixMean", "{hidden: 2.5}", "must be an integer"),
])
def test_user_mixer_errors_name_the_key(user_module, name, knobs, words):
    model = MODEL.replace(f"{MODULE}.PrefixMean: {{scale: {{choice: [0.5, 1.0]}}, hidden: 2}}",
                          f"{name}: {knobs}")
    with pytest.raises(SpaceError) as info:
        loads(space_text(model), allow_code=True)
    assert info.value.key.startswith(f"model.token_mixers.{name}"), str(info.value)
    assert words in str(info.value), str(info.value)


def test_user_mixer_trains_through_the_search(user_module, tmp_path):
    text = space_text(MODEL, "{steps: 3, batch_size: 4, lr: 0.01}")
    url = f"sqlite:///{tmp_path}/nas.db"
    options = SearchOptions(budget=parse_budget("1trials"), storage=url, threads=1)
    outcome = run_search(loads(text, "user.yaml", allow_code=True), options, NullReporter())
    trials = Store(url).trials(outcome.run_name)
    assert [t.state for t in trials] == [COMPLETE], [t.error for t in trials]
    assert trials[0].spec["layers"][0]["mixer"]["kind"] == f"{MODULE}.PrefixMean"


def test_without_allow_code_the_mixer_is_read_not_imported(user_module, tmp_path):
    """Loading never imports the module: its knobs come from the source of `__init__`, and a
    search refuses the space, naming the key and the file to trust."""
    sys.modules.pop(MODULE, None)
    space = loads(space_text(MODEL), "user.yaml")
    assert MODULE not in sys.modules
    assert count_architectures(space).distinct == 2 * 2
    refusal = space.code_refusal
    assert refusal is not None and refusal.key == f"model.token_mixers.{MODULE}.PrefixMean"
    assert f"{MODULE}.py" in refusal.fix and "--allow-code" in refusal.fix
    with pytest.raises(SpaceError, match="unknown knob"):
        loads(space_text(MODEL.replace("hidden: 2", "width: 2")))
    options = SearchOptions(budget=parse_budget("1trials"), storage=f"sqlite:///{tmp_path}/n.db")
    with pytest.raises(SpaceError, match="rerun with --allow-code"):
        run_search(space, options, NullReporter())
    assert not (tmp_path / "n.db").exists()
    assert MODULE not in sys.modules


def test_nas_own_block_by_import_path_is_told_its_registry_name():
    model = MODEL.replace(f"{MODULE}.PrefixMean: {{scale: {{choice: [0.5, 1.0]}}, hidden: 2}}",
                          "nas.blocks.controls.MeanPool: {}")
    with pytest.raises(SpaceError, match="write `mean_pool`"):
        loads(space_text(model))


def test_workers_and_nas_measure_build_the_mixer_only_with_permission(user_module, tmp_path,
                                                                     monkeypatch):
    """A trial request without allow_code never imports the mixer's module (the driver's
    permission travels in the request, and a space loaded without it sends none); `nas
    measure` of a spec naming it stops in one line naming the file, and runs with
    --allow-code."""
    from dataclasses import replace

    from typer.testing import CliRunner

    from nas.cli import app
    from nas.evaluate.trial import TrialRequest, run_trial

    monkeypatch.delenv("NAS_ALLOW_CODE", raising=False)
    sys.modules.pop(MODULE, None)
    space = loads(space_text(MODEL), "user.yaml")
    assert not space.allow_code
    spec = sample_specs(space, 1)[0][0]
    request = TrialRequest(spec_json=spec.to_json(), task=space.task, num_threads=1,
                           latency=({"name": "latency_ms", "batch": 1, "seq_len": 8},))
    file = user_module / f"{MODULE}.py"
    for each in (request, replace(request, latency_only=True)):
        with pytest.raises(ValueError, match=f"mixer '{MODULE}.PrefixMean', which runs code "
                           f"from {file}.*if you trust {file}, rerun with --allow-code"):
            run_trial(each)
    assert MODULE not in sys.modules
    path = tmp_path / "arch.json"
    path.write_text(spec.to_json())
    args = ["measure", str(path), "--seq-len", "8", "--phase", "prefill", "--no-memory",
            "--threads", "1", "--format", "json"]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2, refused.output
    assert len(refused.stderr.splitlines()) == 1 and str(file) in refused.stderr
    assert "--allow-code" in refused.stderr and MODULE not in sys.modules
    allowed = CliRunner().invoke(app, [*args, "--allow-code"])
    assert allowed.exit_code == 0, allowed.output
    assert [m["phase"] for m in json.loads(allowed.stdout)["measurements"]] == ["prefill"]
