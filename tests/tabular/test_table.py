"""Tabular benchmarks (nas.tabular): a grid run with replicates exported to a table, written,
read back; a damaged or hostile table file is refused with one line naming the field."""

from __future__ import annotations

import gzip
import json

import pytest

from nas.tabular import TableError, export_table, read, write


def test_a_grid_run_becomes_a_table_and_reads_back(built):
    store, run_name, folder = built
    table = export_table(store, run_name)
    assert table.name == "table" and len(table.entries) == 4
    assert [o["name"] for o in table.objectives] == ["accuracy", "params"]
    for trial in store.trials(run_name):
        entry = table.entries[trial.config_hash]
        assert [t.seed for t in entry.trainings] == [5, 6]  # the run's seed, then the replicate
        first, second = entry.trainings
        assert first.values["accuracy"] == trial.metrics["accuracy_initial"]
        assert second.values["accuracy"] == trial.metrics["accuracy_replicate_1"]
        assert first.values["params"] == second.values["params"] == trial.values["params"]
        assert first.device_seconds > 0 and second.device_seconds > 0
        assert first.device_seconds + second.device_seconds == pytest.approx(
            trial.device_seconds)
        assert "accuracy_initial" not in first.metrics and "train_seconds" in first.metrics
        assert entry.costs["params"] == trial.params
        assert entry.training_for(5) is second and entry.training_for(6) is first
    path = write(table, folder / "table.json.gz")
    again = read(path)
    assert again.to_json() == table.to_json()
    assert again.lookup(trial.arch) == table.entries[trial.config_hash]


def test_a_damaged_table_is_refused_naming_the_field(built, tmp_path):
    store, run_name, _ = built
    doc = export_table(store, run_name).to_json()

    def refused(document, text=None):
        path = tmp_path / "bad.json.gz"
        with gzip.open(path, "wb") as fh:
            fh.write(text if text is not None else json.dumps(document).encode())
        with pytest.raises(TableError) as caught:
            read(path)
        message = str(caught.value)
        assert len(message.splitlines()) == 1 and str(path) in message
        return message

    assert "not JSON" in refused(None, b"{not json")
    assert "format" in refused({**doc, "format": "pickle"})
    assert "version 9" in refused({**doc, "version": 9})
    entry = doc["entries"][0]
    assert "entries.0.config_hash: does not match" in refused(
        {**doc, "entries": [{**entry, "config_hash": "0" * 16}]})
    bad_seconds = {**entry, "trainings": [{**entry["trainings"][0], "device_seconds": -1}]}
    assert "device_seconds" in refused({**doc, "entries": [bad_seconds]})
    bad_value = {**entry, "trainings": [{**entry["trainings"][0], "values": {"accuracy": "x"}}]}
    assert "entries.0.trainings.0.values.accuracy: expected" in refused(
        {**doc, "entries": [bad_value]})
    assert "appears twice" in refused({**doc, "entries": [entry, entry]})
    assert "not an architecture" in refused({**doc, "entries": [{**entry, "spec": {"x": 1}}]})
    plain = tmp_path / "plain.json.gz"
    plain.write_text("not gzip")
    with pytest.raises(TableError, match="not a gzip-compressed table"):
        read(plain)
    with pytest.raises(TableError, match="cannot read the table"):
        read(tmp_path / "missing.json.gz")


def test_a_decompression_bomb_stops_at_the_limit(tmp_path, monkeypatch):
    import nas.tabular.table as table_module

    monkeypatch.setattr(table_module, "MAX_JSON_BYTES", 1000)
    path = tmp_path / "bomb.json.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b" " * 100_000)
    with pytest.raises(TableError, match="decompresses to more than 1,000 bytes"):
        read(path)


def test_the_summary_gives_the_data_card_figures(built):
    from nas.stats import quantile
    from nas.tabular.summary import summarize

    store, run_name, _ = built
    table = export_table(store, run_name)
    summary = summarize(table)
    assert (summary.configurations, summary.trainings) == (4, 8)
    assert summary.device_seconds == pytest.approx(
        sum(t.device_seconds for t in store.trials(run_name)))
    accuracy, params = summary.objectives
    means = sorted(sum(t.values["accuracy"] for t in e.trainings) / 2
                   for e in table.entries.values())
    assert accuracy.quantiles[0] == means[0] and accuracy.quantiles[-1] == means[-1]
    assert params.noise_median is None  # no seed changes the parameter count
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert summary.to_json()["objectives"][0]["name"] == "accuracy"


def test_nas_table_export_and_show(built, tmp_path):
    from typer.testing import CliRunner

    from nas.cli import app

    store, run_name, _ = built
    runner = CliRunner()
    out = tmp_path / "t.json.gz"
    args = ["table", "export", run_name, "--out", str(out), "--storage", store.url]
    first = runner.invoke(app, args)
    assert first.exit_code == 0 and "wrote 4 configurations (8 trainings)" in first.stdout
    again = runner.invoke(app, args)  # never over a file unasked
    assert again.exit_code == 2 and "already exists; fix: pass --force" in again.stderr
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0
    shown = runner.invoke(app, ["table", "show", str(out), "--format", "json"])
    doc = json.loads(shown.stdout)
    assert doc["configurations"] == 4 and doc["trainings"] == 8
    assert [o["name"] for o in doc["objectives"]] == ["accuracy", "params"]
    bad = tmp_path / "bad.json.gz"
    bad.write_bytes(b"junk")
    refused = runner.invoke(app, ["table", "show", str(bad)])
    assert refused.exit_code == 2 and "not a gzip-compressed table" in refused.stderr


def test_the_data_card_is_computed_from_the_table(built, tmp_path):
    from typer.testing import CliRunner

    from nas.cli import app
    from nas.tabular.card import entry_means, true_front

    store, run_name, _ = built
    path = write(export_table(store, run_name), tmp_path / "t.json.gz")
    card = tmp_path / "card.md"
    result = CliRunner().invoke(app, ["table", "card", str(path), "--out", str(card)])
    assert result.exit_code == 0, result.stderr
    text = card.read_text()
    table = read(path)
    assert "**Configurations:** 4, every one really trained (8 trainings; 2 seeds each)" in text
    assert f"run `{run_name}`" in text and "search: {strategy: grid" in text  # space verbatim
    assert "Not measured (`nas table measure` adds it)" in text
    front = true_front(table)
    assert f"## The true Pareto front ({len(front)} configurations" in text
    names = ["accuracy", "params"]
    best = max(table.entries.values(), key=lambda e: entry_means(e, names)[0])
    assert f"1. `{best.spec.short_form()}`" in text
    again = CliRunner().invoke(app, ["table", "card", str(path), "--out", str(card)])
    assert again.exit_code == 2 and "already exists" in again.stderr
