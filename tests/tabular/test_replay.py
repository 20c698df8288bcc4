"""Replaying a tabular benchmark through the real search (search.evaluate.table): trials are
answered from the table with its recorded values and device-seconds, the run is marked as a
replay, and what cannot be replayed is refused before the run starts."""

from __future__ import annotations

import pytest

from nas.budget import parse_budget
from nas.errors import NasError
from nas.orchestrator.progress import NullReporter
from nas.orchestrator.search import SearchOptions, run_search
from nas.searchspace import loads
from nas.store import COMPLETE, FAIL, Store
from nas.tabular import export_table, write
from tests.tabular.conftest import GRID


@pytest.fixture(scope="module")
def table_file(built, tmp_path_factory):
    store, run_name, _ = built
    table = export_table(store, run_name)
    folder = tmp_path_factory.mktemp("replay")
    return write(table, folder / "grid.json.gz"), table


def replay_space(table_path, strategy: str = "random", extra: str = "",
                 relative: bool = False) -> str:
    """The grid's space searched by `strategy`, answered from the table (its path written
    relative to the space file's folder, or absolute)."""
    where = table_path.name if relative else str(table_path)
    return GRID.replace("search: {strategy: grid, seed: 5, replicates: {seeds: 2, for: all}}",
                        f"search: {{strategy: {strategy}, seed: 1, "
                        f"evaluate: {{table: '{where}'}}{extra}}}")


def search(text, folder, budget):
    folder.mkdir(exist_ok=True)
    url = f"sqlite:///{folder}/replay.db"
    options = SearchOptions(budget=parse_budget(budget), storage=url, threads=1)
    outcome = run_search(loads(text, str(folder / "space.yaml")), options, NullReporter())
    return outcome, Store(url)


def test_a_replayed_search_takes_the_tables_values_and_costs(table_file):
    path, table = table_file
    outcome, store = search(replay_space(path, "grid", relative=True), path.parent,
                            "100trials")
    trials = store.trials(outcome.run_name)
    assert [t.state for t in trials] == [COMPLETE] * 4
    for trial in trials:
        entry = table.entries[trial.config_hash]
        recorded = entry.training_for(1)  # the search's seed picks the training
        assert trial.values == pytest.approx(recorded.values)
        assert trial.device_seconds == pytest.approx(recorded.device_seconds)
        assert trial.worker == "replay table" and trial.device == "replay"
    run = store.run(outcome.run_name)
    assert run.versions["replay"].startswith("table ")  # never mistaken for a trained run
    assert run.device_seconds == pytest.approx(sum(t.device_seconds for t in trials))
    assert "search space exhausted" in outcome.message


def test_a_device_hours_budget_is_spent_as_the_trainings_spent_it(table_file):
    path, table = table_file
    cheapest = min(t.device_seconds for e in table.entries.values() for t in e.trainings)
    budget = f"{2.5 * cheapest / 3600:.8f}cpuh"  # room for two or three trainings
    outcome, store = search(replay_space(path, "grid"), path.parent / "b", budget)
    complete = [t for t in store.trials(outcome.run_name) if t.state == COMPLETE]
    assert 1 <= len(complete) < 4 and "budget spent" in outcome.message


def test_a_configuration_missing_from_the_table_fails_its_trial(table_file):
    path, _ = table_file
    wider = replay_space(path, "grid").replace("d_model: 16", "d_model: {choice: [16, 24]}")
    outcome, store = search(wider, path.parent / "c", "100trials")
    trials = store.trials(outcome.run_name)
    missing = [t for t in trials if t.state == FAIL]
    assert len(missing) == 4 and all("is not in the table table" in t.error for t in missing)
    assert sum(t.state == COMPLETE for t in trials) == 4


@pytest.mark.parametrize("change, budget, message", [
    ("", "10m", "wall-clock budget would measure the replay"),
    (", fidelity: {min_steps: 2, reduction: 3}", "10trials", "cannot be combined with "
                                                           "search.fidelity"),
])
def test_what_cannot_be_replayed_is_refused_before_the_run(table_file, change, budget, message):
    path, _ = table_file
    with pytest.raises(NasError, match=message):
        search(replay_space(path, extra=change), path.parent / "d", budget)


def test_an_objective_the_table_lacks_is_refused(table_file):
    path, _ = table_file
    text = replay_space(path).replace(
        "objectives: [{name: accuracy}, {name: params, goal: minimize}]",
        "objectives: [{name: accuracy}, {name: latency_ms, goal: minimize, batch: 1, "
        "seq_len: 16, phase: prefill}]")
    with pytest.raises(NasError) as caught:
        search(text, path.parent / "e", "10trials")
    assert str(caught.value) == (
        f"{path.parent / 'e' / 'space.yaml'}: search.evaluate.table: the table has no "
        "latency_ms (it has accuracy, params); fix: search the objectives the table has "
        "(latency figures come from `nas table measure`)")


def test_a_missing_table_file_is_one_line(tmp_path):
    text = GRID.replace("search: {strategy: grid, seed: 5, replicates: {seeds: 2, for: all}}",
                        "search: {evaluate: {table: nowhere.json.gz}}")
    with pytest.raises(NasError, match="cannot read the table") as caught:
        search(text, tmp_path, "10trials")
    assert len(str(caught.value).splitlines()) == 1


def test_a_measured_table_replays_latency_objectives(table_file, tmp_path):
    """`nas table measure` times every architecture (one thread, two passes); a space that
    names the figure as an objective replays it, and the trials carry the measured values."""
    from typer.testing import CliRunner

    from nas.cli import app
    from nas.tabular import read

    path, _ = table_file
    out = tmp_path / "timed.json.gz"
    result = CliRunner().invoke(app, ["table", "measure", str(path), "--out", str(out),
                                      "--phase", "prefill", "--phase", "train_step"])
    assert result.exit_code == 0, result.stderr
    assert "timed 4 architectures × 2 phases × 2 passes" in result.stdout
    timed = read(out)
    assert timed.source["latency"]["threads"] == 1 and timed.source["latency"]["seq_len"] == 16
    for entry in timed.entries.values():
        assert entry.costs["latency_prefill_ms"] > 0
        assert entry.costs["latency_prefill_ms_spread"] >= 0
        assert entry.costs["train_seconds_steady"] == pytest.approx(
            entry.costs["latency_train_step_ms"] * 6 / 1e3)
    text = replay_space(out, "grid").replace(
        "objectives: [{name: accuracy}, {name: params, goal: minimize}]",
        "objectives: [{name: accuracy}, {name: latency_prefill_ms, goal: minimize, "
        "phase: prefill, seq_len: 16}]")
    outcome, store = search(text, tmp_path / "r", "100trials")
    trials = store.trials(outcome.run_name)
    assert len(trials) == 4 and all(t.state == COMPLETE for t in trials)
    for trial in trials:
        assert trial.values["latency_prefill_ms"] == pytest.approx(
            timed.entries[trial.config_hash].costs["latency_prefill_ms"])
    # charge: steady — each trial costs the timed steady training, not the recorded one
    steady = text.replace("evaluate: {table:", "evaluate: {charge: steady, table:")
    outcome, store = search(steady, tmp_path / "s", "100trials")
    for trial in store.trials(outcome.run_name):
        assert trial.device_seconds == pytest.approx(
            timed.entries[trial.config_hash].costs["train_seconds_steady"])
    with pytest.raises(NasError, match="charge: steady needs the table's train_seconds_steady"):
        search(replay_space(path, "grid").replace("evaluate: {table:",
                                                  "evaluate: {charge: steady, table:"),
               tmp_path / "u", "10trials")


@pytest.mark.parametrize("strategy", ["evolution", "local", "predictor"])
def test_graph_strategies_replay_through_the_loop_and_store_their_lineage(table_file, strategy):
    """After `population_size` random trials, a child names its parent and mutation in the
    trial's strategy state; a resumed run's strategy is rebuilt from it."""
    path, _ = table_file
    text = replay_space(path, strategy, extra=", population_size: 2")
    outcome, store = search(text, path.parent / f"g-{strategy}", "100trials")
    run = store.run(outcome.run_name)
    trials = store.trials(outcome.run_name)
    assert sum(t.state == COMPLETE for t in trials) == 4  # the whole table, then duplicates
    states = {number: decision.state for number, decision in store.decisions(run.id)
              if decision is not None}
    children = {n: s for n, s in states.items() if s.get("parent") is not None}
    assert children and all(s["parent"] < n for n, s in children.items())
    assert all(s["mutation"] in ("decision", "predicted") for s in children.values())
