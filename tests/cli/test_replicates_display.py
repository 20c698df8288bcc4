"""How replicated trials (search.replicates) are shown: `nas show` (mean ± half-width, seeds),
`nas pareto`/`nas trials` tables (mean ± half-width; ≈ from intervals), json/csv (the metrics),
and `nas plot`'s error bars, read from the figure's own artists."""

from __future__ import annotations

import json

import pytest
from rich.console import Console
from typer.testing import CliRunner

from nas.cli import app
from nas.cli.plots import build_figure, collect
from nas.cli.render import mean_text, trial_detail, trials_table
from nas.orchestrator.replicates import updated_metrics
from nas.store import Store
from tests.cli.test_plot import OBJECTIVES, new_run, spec

# (mixers, accuracy per seed (the first is the trial's own), latency_ms); trials 0-2 replicated
TRIALS = [
    ("C-C", [0.50, 0.70, 0.60], 1.0),
    ("C-A", [0.90, 0.80, None], 2.0),  # one replicate diverged
    ("A-A", [0.55, 0.62, 0.58], 1.5),  # off the front on means; its interval overlaps trial 0
    ("A-C", [0.20], 3.0),  # not replicated, dominated beyond any noise
]


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('replicates')}/nas.db"
    store = Store(url)
    run = new_run(store, "rep", OBJECTIVES)
    for number, (mixers, seeds, latency) in enumerate(TRIALS):
        store.start_trial(run.id, number, spec(mixers, 32), worker="w")
        values = {"accuracy": seeds[0], "latency_ms": latency}
        store.complete_trial(run.id, number, values=values, metrics=dict(values), curve=[],
                             device="cpu", device_seconds=10.0, wall_seconds=10.0)
        if len(seeds) > 1:
            trial = store.trial(run.id, number)
            metrics = updated_metrics(trial, ["accuracy"],
                                      [None if v is None else {"accuracy": v} for v in seeds[1:]])
            store.record_replicates(run.id, number, charges=[10.0, 10.0], metrics=metrics,
                                    values={**values, "accuracy": metrics["accuracy"]})
    store.close()
    return url


def load(url):
    store = Store(url, create=False)
    try:
        return store.run("rep"), store.trials("rep"), store.ledger_entries("rep")
    finally:
        store.close()


def text_of(renderable) -> str:
    console = Console(width=200, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text()


def test_the_store_keeps_means_and_charges(db):
    run, trials, ledger = load(db)
    assert trials[0].values["accuracy"] == pytest.approx(0.6)
    assert trials[1].values["accuracy"] == pytest.approx(0.85)  # the diverged seed left out
    assert trials[1].metrics["accuracy_replicate_2_failed"] == 1.0
    assert [t.number for t in trials if t.pareto] == [0, 1]
    assert [e.note for e in ledger].count("replicate") == 6
    assert trials[0].device_seconds == pytest.approx(30.0)


def test_show_gives_mean_interval_and_seeds(db):
    run, trials, _ = load(db)
    half = trials[0].metrics["accuracy_ci_high"] - 0.6  # t(2) · 0.1 / √3 = 0.248
    assert mean_text("accuracy", trials[0].metrics, seeds=True) == (
        f"0.60 ± {half:.2f} (3 seeds)")
    assert mean_text("accuracy", trials[1].metrics, seeds=True).endswith(
        "(2 seeds, 1 failed)")
    assert mean_text("latency_ms", trials[0].metrics) is None
    assert mean_text("accuracy", trials[3].metrics) is None
    detail = "\n".join(text_of(part) for part in trial_detail(run, trials[0], []))
    assert f"accuracy     0.60 ± {half:.2f} (3 seeds)" in detail
    [spread] = [line for line in detail.splitlines() if "accuracy_spread" in line]
    assert f"{half / 0.6:.1%}" in spread and "!" not in spread  # no noisy-timing flag
    shown = CliRunner().invoke(app, ["show", "rep/0", "--storage", db])
    assert shown.exit_code == 0, shown.output
    assert f"0.60 ± {half:.2f} (3 seeds)" in shown.output
    as_json = CliRunner().invoke(app, ["show", "rep/0", "--storage", db, "--format", "json"])
    metrics = json.loads(as_json.output)["metrics"]
    assert metrics["accuracy_replicate_2"] == 0.6 and metrics["accuracy_replicates"] == 3


def test_tables_show_mean_and_half_width_and_near_from_intervals(db):
    run, trials, _ = load(db)
    table = text_of(trials_table("t", run, trials, near={2}))
    assert "0.60 ± 0.25" in table and "95 % interval" in table
    [unreplicated] = [line for line in table.splitlines() if "A-C" in line]
    assert "0.2" in unreplicated and "±" not in unreplicated
    pareto = CliRunner().invoke(app, ["pareto", "rep", "--storage", db])
    assert pareto.exit_code == 0, pareto.output
    rows = [line for line in pareto.output.splitlines() if "±" in line and "│" in line]
    assert len(rows) == 3  # 0 and 1 on the front, 2 ≈ near it: its interval overlaps 0's
    assert "≈" in next(line for line in rows if "A-A" in line)
    csv_out = CliRunner().invoke(app, ["trials", "rep", "--storage", db, "--format", "csv"])
    assert csv_out.exit_code == 0 and "accuracy" in csv_out.output.splitlines()[0]


def errorbar_segments(ax):
    segments = []
    for collection in ax.collections:
        if collection.get_gid() == "replicates":
            segments += [tuple(map(tuple, s)) for s in collection.get_segments()]
    return segments


def test_plot_draws_error_bars_on_replicated_trials_only(db):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    run, trials, ledger = load(db)
    fig = build_figure(collect(run, trials, ledger=ledger))
    try:
        [ax] = [a for a in fig.axes if hasattr(a, "nas_objectives")]
        assert ax.nas_objectives == ("latency_ms", "accuracy")
        segments = errorbar_segments(ax)

        def rounded(pairs):
            return sorted(tuple(round(v, 9) for point in pair for v in point) for pair in pairs)

        expected = [((t.values["latency_ms"], t.metrics["accuracy_ci_low"]),
                     (t.values["latency_ms"], t.metrics["accuracy_ci_high"]))
                    for t in trials if "accuracy_replicates" in t.metrics]
        assert len(expected) == 3 and rounded(segments) == rounded(expected)
        # vertical bars only (latency was not replicated), none on the unreplicated trial 3
        assert all(a[0] == b[0] for a, b in segments)
        assert all(a[0] != 3.0 for a, _ in segments)
    finally:
        plt.close(fig)
