"""Comparing runs: `nas pareto RUN RUN …` (and `nas compare RUN RUN`) over the shared
objectives with hypervolume on one common reference, and `nas plot RUN RUN …` read from the
figure's own artists. The runs are written by hand through the store, so every number below is
computed by hand."""

from __future__ import annotations

import csv
import importlib.util
import io
import json

import pytest
from typer.testing import CliRunner

from nas.cli import app
from nas.cli.fronts import load_comparison
from nas.store import Store
from tests.cli.test_plot import new_run, spec

ACC_LAT = [{"name": "accuracy", "direction": "maximize"},
           {"name": "latency_ms", "direction": "minimize"}]
THREE = [*ACC_LAT, {"name": "params", "direction": "minimize"}]

# Run "a" (nsga2-like, 1 device-hour per trial): its front is 0, 2, 1; trial 3 is dominated by 2.
A = [("C-C", 0.2, 1.0, 50, 3600.0), ("A-A", 0.8, 3.0, 90, 3600.0),
     ("C-A", 0.5, 2.0, 70, 3600.0), ("A-C", 0.4, 2.5, 60, 3600.0)]
# Run "b" (three objectives; params is left out when it meets "a"): every trial is on its front,
# but trial 0 sits at the worst latency and trial 2 at the worst accuracy of all the trials, so
# only trial 1 adds hypervolume. Then a failed trial costs 900 s.
B = [("A-A-A-A", 0.9, 4.0, 300, 7200.0), ("C-A", 0.6, 1.5, 80, 1800.0),
     ("C-C", 0.1, 0.5, 40, 1800.0)]

# The common box: accuracy 0.1 (worst) .. 0.9, latency 4.0 (worst) .. 0.5; area 0.8 × 3.5 = 2.8.
# a: latency [1, 2) × 0.1 + [2, 3) × 0.4 + [3, 4) × 0.7 = 1.2;  b: [1.5, 4) × 0.5 = 1.25.
BOX = 0.8 * 3.5
HV_A, HV_B = 1.2 / BOX, 1.25 / BOX
# a after trial 0: 3 × 0.1; after trial 1: 0.1 + 0.1 + 0.7 = 0.9; after 2: 1.2 (then unchanged)
CURVE_A = [(1.0, 0.3 / BOX), (2.0, 0.9 / BOX), (3.0, HV_A), (4.0, HV_A)]
CURVE_B = [(2.0, 0.0), (2.5, HV_B), (3.0, HV_B)]
# The combined front: b's trial 1 (0.6, 1.5) dominates a's trial 2 (0.5, 2.0); all else stays.
COMBINED = {("a", 0), ("a", 1), ("b", 0), ("b", 1), ("b", 2)}


def add_trials(store, run, rows, objectives):
    for number, (mixers, acc, lat, params, seconds) in enumerate(rows):
        store.start_trial(run.id, number, spec(mixers, 32), worker="w")
        values = {"accuracy": acc, "latency_ms": lat, "params": params}
        values = {o["name"]: values[o["name"]] for o in objectives}
        store.complete_trial(run.id, number, values=values, metrics={**values, "params": params},
                             curve=[], device="cpu", device_seconds=seconds,
                             wall_seconds=seconds)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('compare')}/nas.db"
    store = Store(url)
    add_trials(store, new_run(store, "a", ACC_LAT), A, ACC_LAT)
    b = new_run(store, "b", THREE)
    add_trials(store, b, B, THREE)
    store.start_trial(b.id, len(B), spec("L-L", 32), worker="w")
    store.fail_trial(b.id, len(B), error="boom", device_seconds=900.0, wall_seconds=900.0)
    # "c" shares nothing with "a"; "d" shares only latency_ms (its accuracy is minimized)
    c = new_run(store, "c", [{"name": "loss", "direction": "minimize"}])
    store.start_trial(c.id, 0, spec("C-C", 32), worker="w")
    store.complete_trial(c.id, 0, values={"loss": 1.0}, metrics={"loss": 1.0}, curve=[],
                         device="cpu", device_seconds=60.0, wall_seconds=60.0)
    d_objectives = [{"name": "accuracy", "direction": "minimize"}, ACC_LAT[1]]
    add_trials(store, new_run(store, "d", d_objectives),
               [("C-C", 0.3, 0.8, 10, 600.0), ("A-A", 0.9, 2.0, 10, 600.0)], d_objectives)
    # "b3" has b's three objectives, for a comparison over three
    add_trials(store, new_run(store, "b3", THREE),
               [("C-A", 0.7, 1.2, 20, 900.0), ("A-A", 0.95, 3.5, 500, 900.0)], THREE)
    store.close()
    return url


def flat(pairs) -> list[float]:
    return [v for pair in pairs for v in pair]


def cli(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def comparison(db, *runs, reach=0.9):
    store = Store(db, create=False)
    try:
        return load_comparison(store, runs, reach)
    finally:
        store.close()


def test_the_numbers_of_two_runs_on_a_common_reference(db):
    c = comparison(db, "a", "b")
    assert c.objectives == ACC_LAT
    assert c.worst == {"accuracy": 0.1, "latency_ms": 4.0}
    assert c.best == {"accuracy": 0.9, "latency_ms": 0.5}
    a, b = c.runs
    assert [t.number for t in a.front] == [0, 1, 2] and [t.number for t in b.front] == [0, 1, 2]
    assert a.left_out == [] and b.left_out == ["params"]
    assert a.hypervolume == pytest.approx(HV_A) and b.hypervolume == pytest.approx(HV_B)
    assert flat(a.progress) == pytest.approx(flat(CURVE_A))
    assert flat(b.progress) == pytest.approx(flat(CURVE_B))
    assert {(c.runs[i].run.name, n) for i, n in c.combined} == COMBINED
    assert (a.combined, b.combined, c.combined_size) == (2, 3, 5)
    assert c.share(0) == pytest.approx(0.4) and c.share(1) == pytest.approx(0.6)
    # 90 % of the best (b's 0.446): a gets there with trial 2, at 3 h; b with trial 1, at 2.5 h
    assert c.hours_to_best(0) == pytest.approx(3.0) and c.hours_to_best(1) == pytest.approx(2.5)
    assert c.hours_to_own(0) == pytest.approx(3.0)
    # with 100 %, a never reaches b's hypervolume
    full = comparison(db, "a", "b", reach=1.0)
    assert full.hours_to_best(0) is None and full.hours_to_best(1) == pytest.approx(2.5)


def test_one_shared_objective_compares_the_best_values(db):
    c = comparison(db, "a", "d")
    assert c.names == ["latency_ms"] and c.runs[1].left_out == ["accuracy"]
    assert c.worst == {"latency_ms": 3.0} and c.best == {"latency_ms": 0.8}
    assert [t.number for t in c.runs[0].front] == [0] and [t.number for t in c.runs[1].front] == [0]
    assert c.runs[0].hypervolume == pytest.approx(2.0 / 2.2)
    assert c.runs[1].hypervolume == pytest.approx(1.0)
    assert {(i, n) for i, n in c.combined} == {(1, 0)}


def test_pareto_of_several_runs_as_a_table(db):
    out = cli("pareto", "a", "b", "--storage", db)
    assert "Pareto fronts of a, b over accuracy ↑, latency_ms ↓" in out
    assert "not shared, left out: b: params ↓" in out
    assert "runs compared" in out
    assert f"{HV_A:.4f}" in out and f"{HV_B:.4f}" in out
    assert "2 of 5 (40%)" in out and "3 of 5 (60%)" in out
    assert "reference point: the worst value of each, one for all runs" in out
    assert "accuracy 0.1, latency_ms 4" in out
    assert "3h 00m" in out and "2h 30m" in out  # device time to 90 % of the best
    # `nas compare RUN RUN` is the same comparison
    assert cli("compare", "a", "b", "--storage", db) == out


def test_pareto_of_several_runs_as_json_and_csv(db):
    data = json.loads(cli("pareto", "a", "b", "--storage", db, "--format", "json"))
    assert data["objectives"] == ACC_LAT and data["reference"] == {"accuracy": 0.1,
                                                                   "latency_ms": 4.0}
    runs = {r["name"]: r for r in data["runs"]}
    assert runs["a"]["hypervolume"] == pytest.approx(HV_A)
    assert runs["b"]["objectives_left_out"] == ["params"]
    assert runs["b"]["device_seconds"] == pytest.approx(7200 + 1800 + 1800 + 900)
    assert runs["a"]["combined_front_share"] == pytest.approx(0.4)
    assert runs["a"]["device_seconds_to_reach_best"] == pytest.approx(3 * 3600)
    assert flat((p["device_seconds"] / 3600, p["hypervolume"])
                for p in runs["a"]["hypervolume_curve"]) == pytest.approx(flat(CURVE_A))
    assert {(m["run"], m["number"]) for m in data["front"] if m["combined_front"]} == COMBINED
    assert len(data["front"]) == 6
    rows = list(csv.DictReader(io.StringIO(cli("pareto", "a", "b", "--storage", db,
                                               "--format", "csv"))))
    assert [(r["run"], r["number"]) for r in rows] == [("a", "0"), ("a", "1"), ("a", "2"),
                                                       ("b", "0"), ("b", "1"), ("b", "2")]
    assert "params" in rows[0] and rows[4]["accuracy"] == "0.6"
    assert {(r["run"], int(r["number"])) for r in rows if r["combined_front"] == "True"} \
        == COMBINED
    assert float(rows[3]["run_hypervolume"]) == pytest.approx(HV_B)


def test_one_run_is_unchanged(db):
    out = cli("pareto", "a", "--storage", db)
    assert "Pareto front of a (3 trials" in out and "runs compared" not in out
    assert isinstance(json.loads(cli("pareto", "a", "--storage", db, "--format", "json")), list)


def test_compare_keeps_its_trial_form(db):
    pair = json.loads(cli("compare", "a/0", "b/1", "--storage", db, "--format", "json"))
    assert (pair["a"]["run"], pair["a"]["number"], pair["b"]["run"]) == ("a", 0, "b")


@pytest.mark.parametrize(("args", "message"), [
    (("pareto", "a", "c"), "runs 'a', 'c' share no objective (same name and direction): 'a': "
     "accuracy (max), latency_ms (min); 'c': loss (min) — fix:"),
    (("pareto", "a", "b", "a"), "run 'a' is named twice"),
    (("pareto", "a", "nope"), "no run 'nope'"),
    (("pareto", "a", "--reach", "0.5"), "--reach applies when comparing runs"),
    (("pareto", "a", "b", "--reach", "0"), "--reach must be a share"),
    (("compare", "a"), "compare takes two trials (RUN/A RUN/B) or two or more runs"),
    (("compare", "a/0", "a/1", "b/1"), "compare takes two trials (RUN/A RUN/B), got 3"),
    (("compare", "a/0", "a/1", "--reach", "0.5"), "--reach applies when comparing runs"),
    (("plot", "a", "c", "--out", "x.png"), "share no objective"),
    (("plot", "a", "b", "--out", "x.png", "--x", "params"),
     "unknown --x 'params'; runs 'a', 'b' share objectives accuracy, latency_ms"),
    (("plot", "a", "d", "--out", "x.png", "--x", "latency_ms"), "--x does not apply"),
    (("plot", "a", "b", "--out", "x.svg"), "unsupported --out suffix '.svg'"),
])
def test_errors_are_one_line(db, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, [*args, "--storage", db])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output
    assert not (tmp_path / "x.png").exists()


# ------------------------------------------------------------------------------------------------
# the figure
# ------------------------------------------------------------------------------------------------


def artists(ax, gid):
    return [a for a in (*ax.collections, *ax.lines, *ax.patches) if a.get_gid() == gid]


def by_run(ax, gid):
    """{run index: set of (x, y)} of the artists with `gid` on `ax`."""
    out: dict[int, set] = {}
    for artist in artists(ax, gid):
        points = artist.get_offsets() if hasattr(artist, "get_offsets") else artist.get_xydata()
        out.setdefault(artist.nas_run, set()).update(tuple(map(float, p)) for p in points)
    return out


def figure(db, *runs, x=None, y=None):
    pytest.importorskip("matplotlib")
    from nas.cli.plots import build_compare_figure, collect_comparison

    return build_compare_figure(collect_comparison(comparison(db, *runs), x, y))


def test_the_figure_overlays_fronts_and_hypervolume_curves(db):
    import matplotlib.pyplot as plt

    fig = figure(db, "a", "b")
    try:
        (panel,) = [ax for ax in fig.axes if hasattr(ax, "nas_objectives")]
        assert panel.nas_objectives == ("latency_ms", "accuracy")
        assert by_run(panel, "front") == {0: {(1.0, 0.2), (2.0, 0.5), (3.0, 0.8)},
                                          1: {(4.0, 0.9), (1.5, 0.6), (0.5, 0.1)}}
        assert by_run(panel, "trials")[0] == {(r[2], r[1]) for r in A}  # trial 3 too
        lines = {a.nas_run: a for a in artists(panel, "front-line")}
        assert sorted(lines) == [0, 1]
        assert list(lines[0].get_xdata()) == [1.0, 2.0, 3.0]
        assert list(lines[0].get_ydata()) == [0.2, 0.5, 0.8]
        legend = [t.get_text() for t in panel.get_legend().get_texts()]
        assert legend == [f"a (hv {HV_A:.3f})", f"b (hv {HV_B:.3f})"]
        (progress,) = [ax for ax in fig.axes if artists(ax, "progress")]
        curves = {a.nas_run: list(zip(a.get_xdata(), a.get_ydata(), strict=True))
                  for a in artists(progress, "progress")}
        assert flat(curves[0]) == pytest.approx(flat(CURVE_A))
        # b's line runs on to all it spent: its failed trial's 900 s after the last completion
        assert flat(curves[1]) == pytest.approx(flat([*CURVE_B, (3.25, HV_B)]))
        (reach,) = artists(progress, "reach")
        assert list(reach.get_ydata()) == pytest.approx([0.9 * HV_B] * 2)
        (shares,) = [ax for ax in fig.axes if artists(ax, "shares")]
        assert [p.get_height() for p in artists(shares, "shares")] == pytest.approx([40, 60])
    finally:
        plt.close(fig)


def test_three_shared_objectives_draw_projections_without_lines(db):
    import matplotlib.pyplot as plt

    fig = figure(db, "b", "b3")
    try:
        panels = [ax for ax in fig.axes if hasattr(ax, "nas_objectives")]
        assert sorted(ax.nas_objectives for ax in panels) == sorted(
            [("latency_ms", "accuracy"), ("params", "accuracy"), ("params", "latency_ms")])
        assert all(not artists(ax, "front-line") for ax in panels)
        params = next(ax for ax in panels if ax.nas_objectives == ("params", "latency_ms"))
        assert by_run(params, "front")[1] == {(20.0, 1.2), (500.0, 3.5)}
    finally:
        plt.close(fig)


def test_one_shared_objective_draws_the_running_best_over_device_hours(db):
    import matplotlib.pyplot as plt

    fig = figure(db, "a", "d")
    try:
        panel = next(ax for ax in fig.axes if artists(ax, "trials"))
        assert by_run(panel, "trials")[1] == {(600 / 3600, 0.8), (1200 / 3600, 2.0)}
        best = {a.nas_run: list(a.get_ydata()) for a in artists(panel, "front-line")}
        assert best == {0: [1.0, 1.0, 1.0, 1.0], 1: [0.8, 0.8]}
    finally:
        plt.close(fig)


def test_nas_plot_of_several_runs_writes_png_and_html(db, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "fronts.png"
    out = cli("plot", "a", "b", "--out", str(png), "--storage", db)
    assert f"a: hypervolume {HV_A:.3f}, 2 on the combined front" in " ".join(out.split())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = tmp_path / "fronts.html"
    cli("plot", "a", "b", "--out", str(page), "--storage", db)
    text = page.read_text()
    assert "data:image/png;base64,iVBORw0KGgo" in text and "<script" not in text
    assert f"<td>a</td><td>nsga2</td><td>4</td><td>4</td><td>3</td><td>{HV_A:.4f}</td>" in text


def test_names_from_a_hostile_database_are_shown_inert(db, tmp_path):
    """Run names and mixers holding markup, escapes and `$` (matplotlib math) reach the table,
    the error line and the figure as plain characters."""
    import shutil
    import sqlite3

    copy = tmp_path / "hostile.db"
    shutil.copy(db.removeprefix("sqlite:///"), copy)
    with sqlite3.connect(copy) as connection:
        connection.execute("UPDATE nas_runs SET name = ? WHERE name = 'b'", ("[red]b$\\frac{",))
        connection.execute("UPDATE nas_runs SET name = ? WHERE name = 'c'", ("c\x1b[2J\nX",))
        connection.execute("UPDATE nas_trials SET short_form = ? WHERE number = 1",
                           ("C\x1b[2J\n[bold]A",))
    connection.close()
    url = f"sqlite:///{copy}"
    out = cli("pareto", "a", "[red]b$\\frac{", "--storage", url)
    assert "[red]b$\\frac{" in out and "[bold]A" in out and "\x1b" not in out
    result = CliRunner().invoke(app, ["pareto", "a", "c\x1b[2J\nX", "--storage", url])
    assert result.exit_code == 2 and "\x1b" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    if importlib.util.find_spec("matplotlib") is not None:
        cli("plot", "a", "[red]b$\\frac{", "--out", str(tmp_path / "f.png"), "--storage", url)
        assert (tmp_path / "f.png").stat().st_size > 10_000
