"""`nas plot`: the figure and the HTML page from a hand-made store, and the 2-D hypervolume."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from nas.cli.plots import mixer_family, mixer_shares
from nas.spec import ArchSpec, LayerSpec, ModuleSpec
from nas.store import Store
from nas.strategies.pareto import hypervolume_2d

OBJECTIVES = [{"name": "accuracy", "direction": "maximize"},
              {"name": "latency_ms", "direction": "minimize"}]
MIN_MIN = ["minimize", "minimize"]

# (mixers bottom → top, d_model, accuracy, latency_ms, device seconds); fronts: 0, 2, 4, 6
TRIALS = [
    ("C-C", 32, 0.06, 1.04, 300.0),
    ("A-A-A-A", 64, 0.34, 3.9, 500.0),
    ("A-C", 32, 0.34, 1.34, 250.0),
    ("L-L-L-L", 64, 0.34, 4.7, 600.0),
    ("C-A", 64, 1.00, 1.94, 400.0),
    ("C-C-A-A", 64, 0.74, 3.01, 450.0),
    ("C-A-C-A", 32, 0.80, 1.60, 350.0),
    ("C-C-C-C", 64, 0.06, 2.74, 420.0),
]
KINDS = {"A": ("attention", {"heads": 2}), "C": ("short_conv", {"kernel_size": 4}),
         "L": ("linear_attention", {"heads": 2})}


def spec(mixers: str, d_model: int) -> ArchSpec:
    layers = tuple(LayerSpec(ModuleSpec.make(KINDS[m][0], **KINDS[m][1]),
                             ModuleSpec.make("mlp", expansion=2, activation="gelu"))
                   for m in mixers.split("-"))
    return ArchSpec(d_model=d_model, vocab_size=16, layers=layers, training={"lr": 1e-3})


def new_run(store, name, objectives):
    return store.create_run(
        name=name, base_name=name, space_path="s.yaml", space_text="name: space",
        space_hash="abc", objectives=objectives, strategy="nsga2", seed=0, budget="10trials",
        budget_unit="trials", budget_amount=10, versions={"nas": "0"}, host="h",
    )


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('plot')}/nas.db"
    store = Store(url)
    run = new_run(store, "demo", OBJECTIVES)
    for number, (mixers, width, acc, lat, seconds) in enumerate(TRIALS):
        store.start_trial(run.id, number, spec(mixers, width), worker="w")
        values = {"accuracy": acc, "latency_ms": lat}
        store.complete_trial(run.id, number, values=values,
                             metrics={**values, "params": 1000 * (number + 1)}, curve=[],
                             device="cpu", device_seconds=seconds, wall_seconds=seconds)
    store.start_trial(run.id, len(TRIALS), spec("A-A", 32), worker="w")
    store.fail_trial(run.id, len(TRIALS), error="boom", device_seconds=60.0, wall_seconds=60.0)
    single = new_run(store, "single", [{"name": "loss", "direction": "minimize"}])
    for number, loss in enumerate([2.0, 1.5, 1.7, 1.2, 1.3]):
        store.start_trial(single.id, number, spec("C-A" if number % 2 else "L-L", 32), "w")
        store.complete_trial(single.id, number, values={"loss": loss}, metrics={"loss": loss},
                             curve=[], device="cpu", device_seconds=100.0, wall_seconds=100.0)
    assert [t.number for t in store.pareto("demo")] == [0, 2, 4, 6]
    store.close()
    return url


def nas(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NAS_STORAGE"}
    return subprocess.run([sys.executable, "-m", "nas", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000


def test_plot_png(db, tmp_path):
    out = tmp_path / "front.png"
    proc = nas("plot", "demo", "--out", str(out), "--storage", db)
    assert proc.returncode == 0, proc.stderr
    assert "8 trials, 4 on the front" in proc.stdout
    assert_png(out)
    swapped = tmp_path / "swapped.png"
    proc = nas("plot", "demo", "--out", str(swapped), "--x", "accuracy", "--y", "latency_ms",
               "--storage", db)
    assert proc.returncode == 0, proc.stderr
    assert_png(swapped)


def test_plot_html_is_self_contained(db, tmp_path):
    out = tmp_path / "front.html"
    proc = nas("plot", "demo", "--out", str(out), "--storage", db)
    assert proc.returncode == 0, proc.stderr
    page = out.read_text()
    assert '<img alt="front of demo" src="data:image/png;base64,iVBORw0KGgo' in page
    assert "<script" not in page and "http" not in page
    rows = page.split("<tbody>")[1].split("</tbody>")[0]
    for number, mixers in ((0, "C-C"), (2, "A-C"), (4, "C-A"), (6, "C-A-C-A")):
        assert f"<tr><td>{number}</td><td>{mixers}</td>" in rows
    assert rows.count("<tr>") == 4
    assert "<td>1.94</td>" in rows and "<td>5,000</td>" in rows


def test_plot_single_objective(db, tmp_path):
    out = tmp_path / "single.png"
    proc = nas("plot", "single", "--out", str(out), "--storage", db)
    assert proc.returncode == 0, proc.stderr
    assert_png(out)


@pytest.mark.parametrize(("args", "message"), [
    (("nope", "--out", "x.png"), "no run 'nope'"),
    (("demo", "--out", "x.png", "--x", "speed"),
     "unknown --x 'speed'; run 'demo' has objectives accuracy, latency_ms"),
    (("demo", "--out", "x.png", "--y", "params"), "unknown --y 'params'"),
    (("demo", "--out", "x.png", "--x", "accuracy", "--y", "accuracy"), "both 'accuracy'"),
    (("demo", "--out", "x.svg"), "unsupported --out suffix '.svg'; use .png or .html"),
    (("single", "--out", "x.png", "--x", "loss"), "--x does not apply"),
])
def test_plot_errors_are_one_line(db, tmp_path, args, message):
    proc = nas("plot", *args, "--storage", db)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


def test_missing_matplotlib_says_how_to_install(db, tmp_path):
    # A `matplotlib` that cannot be imported, first on the path.
    fake = tmp_path / "fake"
    (fake / "matplotlib").mkdir(parents=True)
    (fake / "matplotlib" / "__init__.py").write_text("raise ImportError('no')\n")
    env = {k: v for k, v in os.environ.items() if k != "NAS_STORAGE"}
    env["PYTHONPATH"] = f"{fake}{os.pathsep}{env.get('PYTHONPATH', '')}"
    proc = subprocess.run([sys.executable, "-m", "nas", "plot", "demo", "--out",
                           str(tmp_path / "f.png"), "--storage", db], capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 2
    assert "pip install 'nas[plot]'" in proc.stderr and "Traceback" not in proc.stderr


def test_hypervolume_hand_computed():
    # minimize both, reference (4, 4): the union of [1,4]x[3,4], [2,4]x[2,4], [3,4]x[1,4]
    # = 3*1 + 2*1 + 1*1 = 6
    assert hypervolume_2d([(1, 3), (2, 2), (3, 1)], MIN_MIN, (4, 4)) == pytest.approx(6.0)
    # one point: a rectangle; dominated and repeated points add nothing
    assert hypervolume_2d([(1, 1)], MIN_MIN, (3, 4)) == pytest.approx(6.0)
    assert hypervolume_2d([(1, 1), (2, 2), (1, 1), (1, 3)], MIN_MIN, (3, 4)) == pytest.approx(6.0)
    # points on or beyond the reference add nothing
    assert hypervolume_2d([(4, 1), (1, 4), (5, 0)], MIN_MIN, (4, 4)) == 0.0
    assert hypervolume_2d([], MIN_MIN, (4, 4)) == 0.0
    # order of the input does not matter
    assert hypervolume_2d([(3, 1), (1, 3), (2, 2)], MIN_MIN, (4, 4)) == pytest.approx(6.0)


def test_hypervolume_with_a_maximized_objective():
    # accuracy (max) × latency (min), reference = worst of each: (0.0, 4.0)
    # (1.0, 3.0): 1.0 × 1.0; (0.5, 1.0) adds 0.5 × 2.0 below latency 3 → 2.0
    points = [(1.0, 3.0), (0.5, 1.0), (0.0, 4.0)]
    directions = ["maximize", "minimize"]
    assert hypervolume_2d(points, directions, (0.0, 4.0)) == pytest.approx(2.0)
    # both maximized, reference (0, 0): union of 2×1 and 1×2 rectangles = 3
    assert hypervolume_2d([(2, 1), (1, 2)], ["maximize", "maximize"], (0, 0)) == pytest.approx(3)
    with pytest.raises(ValueError):
        hypervolume_2d([(1, 1, 1)], ["minimize"] * 3, (2, 2, 2))


def test_families_and_shares():
    assert mixer_family("C-A-C-A") == "A+C" and mixer_family("L") == "L"
    assert mixer_family("A-L-C") == "A+C+L"

    class T:
        def __init__(self, short_form):
            self.short_form = short_form

    shares = mixer_shares([T("C-C"), T("C-A")])
    assert list(shares) == ["C", "A"] and shares == {"C": 0.75, "A": 0.25}


def test_progress_follows_the_ledger_so_pruned_segments_count_when_spent(tmp_path):
    """A trial pruned at a rung is charged before later completions; its finished_at comes
    at the end of the search. The curve's x must include its charge at the time it was made."""
    from nas.cli.plots import collect
    from nas.store import PRUNED, RUNNING

    store = Store(f"sqlite:///{tmp_path}/nas.db")
    run = new_run(store, "mf", OBJECTIVES)
    store.start_trial(run.id, 0, spec("C-C", 16), worker="w")
    values = {"accuracy": 0.1, "latency_ms": 1.0}
    store.record_rung(run.id, 0, state=RUNNING, values=values, metrics=values, curve=[],
                      device="cpu", device_seconds=360.0, wall_seconds=360.0)
    store.start_trial(run.id, 1, spec("A-A", 32), worker="w")
    good = {"accuracy": 0.9, "latency_ms": 2.0}
    store.complete_trial(run.id, 1, values=good, metrics=good, curve=[], device="cpu",
                         device_seconds=720.0, wall_seconds=720.0)
    store.set_trial_state(run.id, 0, PRUNED)  # retired when the search ended
    run, trials = store.run("mf"), store.trials("mf")

    by_ledger = collect(run, trials, "latency_ms", "accuracy", store.ledger_entries("mf"))
    assert [hours for hours, _ in by_ledger.progress] == [pytest.approx(0.3)]  # 360 s + 720 s
    by_finish = collect(run, trials, "latency_ms", "accuracy")
    assert [hours for hours, _ in by_finish.progress] == [pytest.approx(0.2)]
    assert [(e.trial_number, e.note) for e in store.ledger_entries("mf")] == [
        (0, "rung"), (1, "complete")]
