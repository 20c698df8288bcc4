"""Weight inheritance (nas.evaluate.inherit): the child's layers that equal the parent's, aligned
through insertions, removals and swaps, start from the parent's trained tensors; the rest keep
their fresh initialisation."""

from __future__ import annotations

import torch

from nas.blocks.model import build_model
from nas.evaluate.inherit import aligned_layers, inherit
from nas.export.weights import save_weights
from nas.spec import ArchSpec, LayerSpec, ModuleSpec


def stack(*kinds: str, d_model: int = 16) -> ArchSpec:
    made = {"A": ModuleSpec.make("attention", heads=2), "C": ModuleSpec.make("short_conv"),
            "L": ModuleSpec.make("linear_attention", heads=2)}
    channel = ModuleSpec.make("swiglu", expansion=2)
    return ArchSpec(d_model=d_model, vocab_size=16,
                    layers=tuple(LayerSpec(made[k], channel) for k in kinds))


def trained(spec: ArchSpec, path) -> torch.nn.Module:
    model = build_model(spec, seed=1)
    with torch.no_grad():  # "training": move every tensor away from its initial value
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    save_weights(model, path)
    return model


def test_alignment_follows_insertions_removals_and_swaps():
    assert aligned_layers(stack("C", "A", "L"), stack("C", "A", "L")) == [(0, 0), (1, 1), (2, 2)]
    assert aligned_layers(stack("C", "C", "A", "L"), stack("C", "A", "L")) == [(0, 0), (2, 1),
                                                                               (3, 2)]
    assert aligned_layers(stack("C", "L"), stack("C", "A", "L")) == [(0, 0), (1, 2)]
    assert len(aligned_layers(stack("A", "C", "L"), stack("C", "A", "L"))) == 2  # a swap
    assert aligned_layers(stack("C", "A", d_model=32), stack("C", "A")) == []  # another width


def test_a_child_with_an_inserted_layer_takes_the_parents_tensors(tmp_path):
    parent_spec, child_spec = stack("C", "A", "L"), stack("C", "C", "A", "L")
    parent = trained(parent_spec, tmp_path / "p.safetensors")
    child = build_model(child_spec, seed=2)
    fresh = {n: t.clone() for n, t in child.state_dict().items()}
    got = inherit(child, child_spec, parent_spec, tmp_path / "p.safetensors")
    assert got.layers == ((0, 0), (2, 1), (3, 2))
    mine, theirs = child.state_dict(), parent.state_dict()
    for name, tensor in mine.items():
        if name.startswith("blocks.1."):  # the inserted layer keeps its own initialisation
            assert torch.equal(tensor, fresh[name])
            continue
        origin = name
        if name.startswith("blocks."):
            index, rest = name.split(".", 2)[1:]
            origin = f"blocks.{ {0: 0, 2: 1, 3: 2}[int(index)] }.{rest}"
        assert torch.equal(tensor, theirs[origin]), name
    layer = sum(p.numel() for p in child.blocks[1].parameters())
    total = sum(p.numel() for p in child.parameters())
    assert abs(got.share - (total - layer) / total) < 1e-9


def test_nothing_is_taken_across_widths(tmp_path):
    parent_spec, child_spec = stack("C", "A"), stack("C", "A", d_model=32)
    trained(parent_spec, tmp_path / "p.safetensors")
    child = build_model(child_spec, seed=2)
    before = {n: t.clone() for n, t in child.state_dict().items()}
    got = inherit(child, child_spec, parent_spec, tmp_path / "p.safetensors")
    assert got.layers == () and got.tensors == 0 and got.share == 0.0
    assert all(torch.equal(t, before[n]) for n, t in child.state_dict().items())


INHERITING = """\
name: inheriting
task: {kind: mqar, vocab_size: 16, seq_len: 16, num_kv_pairs: 2}
model:
  d_model: 16
  n_layers: {choice: [2, 3]}
  token_mixers: {attention: {heads: 2}, short_conv: {kernel_size: 3}}
  layout: {free: [attention, short_conv]}
  channel_mixer: {kind: swiglu, expansion: 2}
training: {steps: 6, batch_size: 4, lr: 3.0e-3}
objectives: [{name: accuracy}, {name: params, goal: minimize}]
search: {strategy: evolution, seed: 3, population_size: 2, inherit: true}
"""


def test_a_search_with_inheritance_starts_children_from_their_parents(tmp_path):
    """Each child of the evolution names its parent; the worker started it from the parent's
    stored weights (a share of its parameters), and the weights of every trial stay until the
    search ends, then only the front's remain."""
    from nas.budget import parse_budget
    from nas.orchestrator.progress import NullReporter
    from nas.orchestrator.search import SearchOptions, run_search
    from nas.searchspace import loads
    from nas.store import Store

    url = f"sqlite:///{tmp_path}/nas.db"
    options = SearchOptions(budget=parse_budget("6trials"), storage=url, threads=1)
    outcome = run_search(loads(INHERITING, str(tmp_path / "s.yaml")), options, NullReporter())
    store = Store(url)
    run = store.run(outcome.run_name)
    states = {n: d.state for n, d in store.decisions(run.id) if d is not None}
    trials = {t.number: t for t in store.trials(run.id)}
    children = [n for n, s in states.items() if s.get("parent") is not None
                and trials[n].state == "COMPLETE"]
    assert children
    for number in children:
        metrics = trials[number].metrics
        assert metrics["inherited_from"] == states[number]["parent"]
        assert 0 < metrics["inherited_share"] <= 1 and metrics["inherited_layers"] >= 1
    assert all("inherited_from" not in trials[n].metrics for n in (0, 1))  # the random start
    kept = {a.number for a in store.artifacts(run.id)}
    assert kept == {t.number for t in store.pareto(run.id)}  # pruned to the front at the end


def test_inheritance_without_kept_weights_is_refused(tmp_path):
    from nas.budget import parse_budget
    from nas.errors import NasError
    from nas.orchestrator.progress import NullReporter
    from nas.orchestrator.search import SearchOptions, run_search
    from nas.searchspace import loads

    text = INHERITING.replace("inherit: true}", "inherit: true, keep_weights: none}")
    options = SearchOptions(budget=parse_budget("2trials"), storage=f"sqlite:///{tmp_path}/x.db")
    try:
        run_search(loads(text, "s.yaml"), options, NullReporter())
    except NasError as exc:
        assert "search.inherit needs the trained weights" in str(exc)
    else:
        raise AssertionError("not refused")
