"""`nas plot` for any number of objectives, read from the figure's own data (the matplotlib
artists' offsets and lines), and the hypervolume over all objectives."""

from __future__ import annotations

import itertools
import random

import pytest

from nas.cli.plots import build_figure, collect
from nas.store import Store
from nas.strategies.pareto import dominates, hypervolume, hypervolume_2d, pareto_mask
from tests.cli.test_plot import OBJECTIVES, nas, new_run, spec

pytest.importorskip("matplotlib")

THREE = [{"name": "accuracy", "direction": "maximize"},
         {"name": "latency_ms", "direction": "minimize"},
         {"name": "params", "direction": "minimize"}]
DIRECTIONS = [o["direction"] for o in THREE]

# (mixers, accuracy, latency_ms, params). On the 3-D front: 0, 1, 3, 4. Trial 1 is on it only
# through params: in the latency × accuracy view trial 0 dominates it, so a front line drawn in
# that view would run through a point the view shows dominated. Trial 2 is dominated by 0.
TRIALS3 = [
    ("C-A", 0.90, 1.0, 100.0),
    ("C-C", 0.80, 2.0, 50.0),
    ("A-A", 0.50, 3.0, 200.0),
    ("A-A-A-A", 0.95, 4.0, 300.0),
    ("C-C-C-C", 0.70, 0.5, 400.0),
]
FRONT3 = {0, 1, 3, 4}


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('plot3')}/nas.db"
    store = Store(url)
    run = new_run(store, "tri", THREE)
    for number, (mixers, acc, lat, params) in enumerate(TRIALS3):
        store.start_trial(run.id, number, spec(mixers, 32), worker="w")
        values = {"accuracy": acc, "latency_ms": lat, "params": params}
        store.complete_trial(run.id, number, values=values, metrics=values, curve=[],
                             device="cpu", device_seconds=100.0, wall_seconds=100.0)
    two = new_run(store, "two", OBJECTIVES)
    for number, (_, acc, lat, _params) in enumerate(TRIALS3):
        store.start_trial(two.id, number, spec("C-A", 32), worker="w")
        values = {"accuracy": acc, "latency_ms": lat}
        store.complete_trial(two.id, number, values=values, metrics=values, curve=[],
                             device="cpu", device_seconds=100.0, wall_seconds=100.0)
    store.close()
    return url


def load(url, name):
    store = Store(url, create=False)
    try:
        return store.run(name), store.trials(name), store.ledger_entries(name)
    finally:
        store.close()


def artists(ax, gid):
    return [a for a in (*ax.collections, *ax.lines) if a.get_gid() == gid]


def offsets(ax, gid):
    points = set()
    for collection in artists(ax, gid):
        points |= {tuple(map(float, p)) for p in collection.get_offsets()}
    return points


def panels(fig):
    return [ax for ax in fig.axes if hasattr(ax, "nas_objectives")]


def test_the_case_misleads_in_two_dimensions():
    """The fixture's point: trial 1 is on the 3-D front, dominated in the latency × accuracy
    view (so the old plot's step line ran through it)."""
    points = [(acc, lat, params) for _, acc, lat, params in TRIALS3]
    assert {i for i, on in enumerate(pareto_mask(points, DIRECTIONS)) if on} == FRONT3
    assert dominates(points[0][:2], points[1][:2], DIRECTIONS[:2])


def test_three_objectives_draw_every_pair_and_mark_the_true_front(db):
    import matplotlib.pyplot as plt

    run, trials, ledger = load(db, "tri")
    data = collect(run, trials, None, None, ledger)
    assert {t.number for t in data.front} == FRONT3 and not data.front_line
    fig = build_figure(data)
    try:
        drawn = panels(fig)
        pairs = {ax.nas_objectives for ax in drawn}
        assert pairs == {("latency_ms", "accuracy"), ("params", "accuracy"),
                         ("params", "latency_ms")}
        by_number = {n: dict(zip(("accuracy", "latency_ms", "params"), values, strict=True))
                     for n, (_, *values) in enumerate(TRIALS3)}
        for ax in drawn:
            x, y = ax.nas_objectives
            expected = {(by_number[n][x], by_number[n][y]) for n in FRONT3}
            assert offsets(ax, "front") == expected, (x, y)
            everything = {(v[x], v[y]) for v in by_number.values()}
            assert offsets(ax, "trials") == everything
            # no front line in a projection: no line joins the front's points
            assert not artists(ax, "front-line")
            assert not [line for line in ax.lines if len(line.get_xdata()) > 1]
    finally:
        plt.close(fig)


def test_one_pair_of_three_objectives_has_no_line_either(db):
    import matplotlib.pyplot as plt

    run, trials, ledger = load(db, "tri")
    data = collect(run, trials, "latency_ms", "accuracy", ledger)
    fig = build_figure(data)
    try:
        (ax,) = panels(fig)
        assert ax.nas_objectives == ("latency_ms", "accuracy")
        # trial 1 (2.0 ms, 0.80) is marked although (1.0 ms, 0.90) dominates it in this view
        assert (2.0, 0.80) in offsets(ax, "front")
        assert offsets(ax, "front") == {(TRIALS3[n][2], TRIALS3[n][1]) for n in FRONT3}
        assert not artists(ax, "front-line")
    finally:
        plt.close(fig)
    only_x = collect(run, trials, "params", None, ledger)
    assert only_x.pairs == [("params", "accuracy"), ("params", "latency_ms")]


def test_two_objectives_draw_the_front_as_a_step_line(db):
    import matplotlib.pyplot as plt

    run, trials, ledger = load(db, "two")
    data = collect(run, trials, None, None, ledger)
    assert data.pairs == [("latency_ms", "accuracy")] and data.front_line
    # over two objectives, trial 1 is dominated (trial 0 is faster and more accurate)
    assert {t.number for t in data.front} == {0, 3, 4}
    fig = build_figure(data)
    try:
        (ax,) = panels(fig)
        (line,) = artists(ax, "front-line")
        assert list(zip(line.get_xdata(), line.get_ydata(), strict=True)) == [
            (0.5, 0.70), (1.0, 0.90), (4.0, 0.95)]
        assert offsets(ax, "front") == {(0.5, 0.70), (1.0, 0.90), (4.0, 0.95)}
    finally:
        plt.close(fig)


def test_progress_is_the_hypervolume_over_all_objectives(db):
    run, trials, ledger = load(db, "tri")
    data = collect(run, trials, None, None, ledger)
    points = [(acc, lat, params) for _, acc, lat, params in TRIALS3]
    # reference: the worst of each (accuracy 0.5, 4 ms, 400 params); box 0.45 × 3.5 × 350
    reference = (0.5, 4.0, 400.0)
    expected = hypervolume(points, DIRECTIONS, reference) / (0.45 * 3.5 * 350)
    assert [v for _, v in data.progress][-1] == pytest.approx(expected)
    assert 0 < expected < 1
    # it is not the hypervolume of two of them: params changes it (trial 1 adds volume)
    without_1 = hypervolume(points[:1] + points[2:], DIRECTIONS, reference)
    assert hypervolume(points, DIRECTIONS, reference) > without_1
    # and the curve never falls
    values = [v for _, v in data.progress]
    assert values == sorted(values) and len(values) == len(TRIALS3)


def test_cli_draws_three_objectives(db, tmp_path):
    out = tmp_path / "tri.png"
    proc = nas("plot", "tri", "--out", str(out), "--storage", db)
    assert proc.returncode == 0, proc.stderr
    assert "5 trials, 4 on the front" in proc.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------------
# hypervolume over any number of objectives
# ------------------------------------------------------------------------------------------------


def brute_force(points, directions, reference):
    """Inclusion–exclusion over every subset of the points inside the reference: exact, and
    independent of the slicing algorithm (only for a handful of points)."""
    signs = [1 if d == "minimize" else -1 for d in directions]
    ref = [s * r for s, r in zip(signs, reference, strict=True)]
    inside = [[s * v for s, v in zip(signs, p, strict=True)] for p in points]
    inside = [p for p in inside if all(v < r for v, r in zip(p, ref, strict=True))]
    total = 0.0
    for k in range(1, len(inside) + 1):
        for subset in itertools.combinations(inside, k):
            corner = [max(values) for values in zip(*subset, strict=True)]
            volume = 1.0
            for c, r in zip(corner, ref, strict=True):
                volume *= r - c
            total += (-1) ** (k + 1) * volume
    return total


def test_hypervolume_hand_computed_in_three_dimensions():
    minimize = ["minimize"] * 3
    assert hypervolume([(1, 1, 1)], minimize, (2, 3, 4)) == pytest.approx(6.0)
    # three unit-thick slabs: 3 × 2 − 3 × 1 + 1 = 4
    assert hypervolume([(1, 2, 2), (2, 1, 2), (2, 2, 1)], minimize, (3, 3, 3)) == pytest.approx(4)
    # dominated, repeated and outside points add nothing
    assert hypervolume([(1, 1, 1), (1, 1, 1), (1.5, 1.5, 1.5), (0, 0, 5)], minimize,
                       (2, 2, 2)) == pytest.approx(1.0)
    assert hypervolume([], minimize, (2, 2, 2)) == 0.0
    # mixed directions: maximize accuracy from reference 0
    assert hypervolume([(0.5, 1.0, 1.0)], ["maximize", "minimize", "minimize"],
                       (0.0, 2.0, 3.0)) == pytest.approx(0.5 * 1 * 2)
    with pytest.raises(ValueError):
        hypervolume([(1, 1)], ["minimize", "minimize"], (2, 2, 2))


@pytest.mark.parametrize("dims", [1, 2, 3, 4, 5])
def test_hypervolume_matches_inclusion_exclusion(dims):
    rng = random.Random(dims)
    for _ in range(25):
        directions = [rng.choice(["minimize", "maximize"]) for _ in range(dims)]
        points = [[rng.choice([0, 1, 2, 3, 4, 5]) + rng.random() * (rng.random() < 0.5)
                   for _ in range(dims)] for _ in range(rng.randint(0, 7))]
        reference = [6.0 if d == "minimize" else -1.0 for d in directions]
        assert hypervolume(points, directions, reference) == pytest.approx(
            brute_force(points, directions, reference))


def test_hypervolume_matches_optuna():
    np = pytest.importorskip("numpy")
    try:
        from optuna._hypervolume import compute_hypervolume
    except ImportError:  # a private module: its place may change between releases
        pytest.skip("optuna._hypervolume.compute_hypervolume is not available")
    rng = random.Random(7)
    for dims in (3, 4):
        points = [[rng.random() for _ in range(dims)] for _ in range(40)]
        reference = [1.1] * dims
        ours = hypervolume(points, ["minimize"] * dims, reference)
        assert ours == pytest.approx(compute_hypervolume(np.array(points), np.array(reference)))


def test_hypervolume_2d_is_the_n_dimensional_one():
    points = [(1.0, 3.0), (0.5, 1.0), (0.0, 4.0)]
    directions = ["maximize", "minimize"]
    assert hypervolume_2d(points, directions, (0.0, 4.0)) == hypervolume(
        points, directions, (0.0, 4.0)) == pytest.approx(2.0)


def test_report_draws_three_objectives_and_reads_proxies(tmp_path):
    """`nas report` draws the scatter matrix of a 3-objective run, and still reports a proxy
    task's rank agreement (nas.evaluate.ranking, now imported only for such runs)."""
    from nas.cli.report import build_report

    store = Store(f"sqlite:///{tmp_path}/nas.db")
    run = new_run(store, "tri", THREE)
    for number, (mixers, acc, lat, params) in enumerate(TRIALS3):
        store.start_trial(run.id, number, spec(mixers, 32), worker="w")
        values = {"accuracy": acc, "latency_ms": lat, "params": params}
        store.complete_trial(run.id, number, values=values,
                             metrics={**values, "small_accuracy": acc / 2}, curve=[],
                             device="cpu", device_seconds=100.0, wall_seconds=100.0)
    report = build_report(store, "tri")
    store.close()
    assert report.png is not None and report.png[:4] == b"\x89PNG", report.plot_note
    facts = dict(report.facts)
    assert "Spearman 1.00" in facts["proxy small"]


def test_progress_adds_each_trials_exclusive_volume_exactly():
    """The curve adds what each new front point covers beyond the front so far; at every step
    it equals the hypervolume of all trials completed by then, computed from scratch."""
    from datetime import datetime, timedelta
    from types import SimpleNamespace

    from nas.cli.plots import progress_curve

    rng = random.Random(3)
    names = ["accuracy", "latency_ms", "params", "memory"]
    directions = ["maximize", "minimize", "minimize", "minimize"]
    run = SimpleNamespace(objective_names=names, directions=directions)
    start = datetime(2026, 1, 1)
    trials = [SimpleNamespace(number=i, state="COMPLETE", device_seconds=36.0,
                              finished_at=start + timedelta(minutes=i),
                              values={n: round(rng.random(), 2) for n in names})
              for i in range(60)]
    progress = progress_curve(run, trials, trials, None)
    low = {n: min(t.values[n] for t in trials) for n in names}
    high = {n: max(t.values[n] for t in trials) for n in names}
    reference = [high[n] if d == "minimize" else low[n]
                 for n, d in zip(names, directions, strict=True)]
    box = 1.0
    for n in names:
        box *= high[n] - low[n]
    assert [hours for hours, _ in progress] == pytest.approx([0.01 * (i + 1) for i in range(60)])
    for i, (_, value) in enumerate(progress):
        points = [[t.values[n] for n in names] for t in trials[:i + 1]]
        assert value == pytest.approx(hypervolume(points, directions, reference) / box)
