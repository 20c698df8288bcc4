"""`nas plot`: a run's front, its hypervolume over device-hours and the mixers along the front,
as a PNG (matplotlib, imported only when drawing) or a self-contained HTML page.

Two objectives: one scatter of every trial with the front as a step line. Three or more: a
scatter matrix, one panel per pair of objectives, with the trials on the front over *all*
objectives circled and no line (a front of three objectives, projected on two, is not a staircase:
some of its points are dominated in the projection). One objective: the value per trial with
the running best. The hypervolume is over all objectives (`progress_curve`).

The numbers (`collect`, `progress_curve`) need no matplotlib; `build_figure` returns the
matplotlib Figure, whose artists carry gids ("trials", "front", "front-line"; "replicates":
the error bars of trials trained with several seeds) that tests read.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.cli.fronts import REFERENCE_RULE as COMMON_REFERENCE
from nas.cli.fronts import Comparison, charges, hypervolume_progress
from nas.errors import NasError
from nas.formatting import format_value
from nas.spec import MIXER_LETTERS
from nas.store import COMPLETE, LedgerEntry, RunRecord, TrialRecord

SUFFIXES = (".png", ".html")
INSTALL_HINT = "matplotlib is not installed: pip install 'nas[plot]'"
REFERENCE_RULE = ("over all objectives, each scaled to [0, 1] between its best and worst value "
                  "among the completed trials; reference point: the worst value of each")


# ------------------------------------------------------------------------------------------------
# numbers
# ------------------------------------------------------------------------------------------------


def mixer_family(short_form: str) -> str:
    """The set of token-mixer letters of a trial: "C-A-C-A" → "A+C"."""
    return "+".join(sorted({p for p in short_form.split("-") if p})) or "?"


def mixer_shares(trials: Sequence[TrialRecord]) -> dict[str, float]:
    """Share of each mixer letter among all layers of `trials`, largest first."""
    counts: dict[str, int] = {}
    for t in trials:
        for letter in t.short_form.split("-"):
            if letter:
                counts[letter] = counts.get(letter, 0) + 1
    total = sum(counts.values()) or 1
    return {k: v / total for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))}


@dataclass(frozen=True)
class PlotData:
    run: RunRecord
    pairs: list[tuple[str, str]]  # (x, y) of each panel; empty for one objective (y per trial)
    complete: list[TrialRecord]  # completed trials with a value for every objective, in order
    front: list[TrialRecord]  # those on the Pareto front over all of the run's objectives
    progress: list[tuple[float, float]]  # (device-hours, hypervolume or best so far)
    matrix: bool = False  # the pairs are the whole scatter matrix of >= 3 objectives

    @property
    def objectives(self) -> list[str]:
        return list(self.run.objective_names)

    @property
    def x(self) -> str | None:
        """The x objective of a one-panel figure (None for one objective: trial number)."""
        return self.pairs[0][0] if len(self.pairs) == 1 else None

    @property
    def y(self) -> str | None:
        """The y objective of a one-panel figure or a one-objective run."""
        if not self.pairs:
            return self.objectives[0]
        return self.pairs[0][1] if len(self.pairs) == 1 else None

    @property
    def front_line(self) -> bool:
        """Whether the front is drawn as a step line: only when the panel shows every objective
        (two). In a projection of three or more the line would run through points the
        projection shows dominated."""
        return len(self.objectives) == 2


def choose_pairs(run: RunRecord, x: str | None, y: str | None) -> list[tuple[str, str]]:
    """The (x, y) objectives of each panel. One objective: none (it is drawn per trial). Two:
    one panel, default x = the second, y = the first. Three or more: every pair (y = the earlier
    objective, x = the later: the first row of the matrix is the first objective against each
    other one); --x and --y pick one pair, either alone pairs it with every other objective."""
    return objective_pairs(list(run.objective_names), x, y, f"run {run.name!r} has",
                           "trial number")


def objective_pairs(names: list[str], x: str | None, y: str | None, whose: str,
                    over: str) -> list[tuple[str, str]]:
    """`choose_pairs` over objectives `names`; errors say "{whose} objectives …" and, for one
    objective, that it is plotted over `over`."""
    for flag, value in (("--x", x), ("--y", y)):
        if value is not None and value not in names:
            raise NasError(f"unknown {flag} {value!r}; {whose} objectives {', '.join(names)}")
    if len(names) == 1:
        if x is not None:
            raise NasError(f"{whose} one objective ({names[0]}); --x does not apply (it is "
                           f"plotted over {over})")
        return []
    if x is not None and x == y:
        raise NasError(f"--x and --y are both {x!r}; choose two different objectives")
    if len(names) == 2 or (x is not None and y is not None):
        y = y or (names[0] if x != names[0] else names[1])
        x = x or next(n for n in (names[1], names[0]) if n != y)
        return [(x, y)]
    if x is not None:
        return [(x, other) for other in names if other != x]
    if y is not None:
        return [(other, y) for other in names if other != y]
    return [(names[j], names[i]) for i, j in itertools.combinations(range(len(names)), 2)]


def collect(run: RunRecord, trials: Sequence[TrialRecord], x: str | None = None,
            y: str | None = None, ledger: Sequence[LedgerEntry] | None = None) -> PlotData:
    """What the figure shows, from the run's trials (any states); `x` and `y` as --x and --y
    (`choose_pairs`). With the run's `ledger`, the progress curve's x is the device time spent
    when each trial completed (every charge before it counted, pruned and failed trials'
    segments included); without it, each trial's total is charged when it finished. Text from
    the database is drawn as plain characters (see `_labels`)."""
    pairs = choose_pairs(run, x, y)
    run, trials = _labels(run, trials)
    names = list(run.objective_names)
    complete = [t for t in trials if t.state == COMPLETE and t.values
                and all(t.values.get(n) is not None for n in names)]
    if not complete:
        raise NasError(f"run {run.name!r} has no completed trials to plot")
    front = [t for t in complete if t.pareto]
    progress = progress_curve(run, trials, complete, ledger)
    matrix = len(names) >= 3 and x is None and y is None
    return PlotData(run, pairs, complete, front, progress, matrix)


def progress_curve(run: RunRecord, trials: Sequence[TrialRecord],
                   complete: Sequence[TrialRecord],
                   ledger: Sequence[LedgerEntry] | None) -> list[tuple[float, float]]:
    """(device-hours, value) at each completion in spending order. One objective: the best
    value so far. Two or more: the hypervolume of the trials completed so far over all
    objectives, each scaled to [0, 1] between its best and worst value among `complete`, with
    the worst value of each as reference point — the share of that box the front dominates (1
    only if one trial is best at everything). An objective on which every trial ties is left
    out (it decides no dominance); a trial worst at some objective adds nothing."""
    names = list(run.objective_names)
    directions = dict(zip(names, run.directions, strict=True))
    by_number = {t.number: t for t in complete}
    progress: list[tuple[float, float]] = []
    hours = 0.0
    if len(names) == 1:
        (name,) = names
        for seconds, number in charges(trials, ledger):
            hours += seconds / 3600
            if (t := by_number.get(number)) is None:
                continue
            value = t.values[name]
            best = progress[-1][1] if progress else value
            better = value < best if directions[name] == "minimize" else value > best
            progress.append((hours, value if better else best))
        return progress
    low = {n: min(t.values[n] for t in complete) for n in names}
    high = {n: max(t.values[n] for t in complete) for n in names}
    return hypervolume_progress(charges(trials, ledger), complete, names, run.directions, low,
                                high)


# ------------------------------------------------------------------------------------------------
# drawing
# ------------------------------------------------------------------------------------------------


def _goal(run: RunRecord, name: str) -> str:
    return dict(zip(run.objective_names, run.directions, strict=True))[name]


def _axis_label(run: RunRecord, name: str, short: bool = False) -> str:
    minimize = _goal(run, name) == "minimize"
    if short:
        return f"{name} {'↓' if minimize else '↑'}"
    return f"{name}  {'↓ lower' if minimize else '↑ higher'} is better"


def _labels(run: RunRecord, trials: Sequence[TrialRecord]
            ) -> tuple[RunRecord, list[TrialRecord]]:
    """The run and trials with the text the figure draws (run name, mixers) cut short and free
    of control characters: a name from someone else's database may be huge or hold escapes."""
    from dataclasses import replace

    from nas.cli.untrusted import plain

    return (replace(run, name=plain(run.name, 120)),
            [replace(t, short_form=plain(t.short_form, 120)) for t in trials])


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise NasError(INSTALL_HINT) from None
    matplotlib.use("Agg")
    return matplotlib


def render_png(data: PlotData) -> bytes:
    """The figure as PNG bytes; NasError if matplotlib is missing."""
    return _png(_build_figure, data)


def _png(build: Callable[[Any], Any], data: Any) -> bytes:
    """`build(data)`'s figure as PNG bytes, closed afterwards; NasError if matplotlib is
    missing. Text is drawn as written: `$` starts no math (a run name or metric from a database
    is not a formula, and a malformed one would make matplotlib raise)."""
    matplotlib = _matplotlib()
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"text.parse_math": False}):
        fig = build(data)
        try:
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png")
        finally:
            plt.close(fig)
    return buffer.getvalue()


def build_figure(data: PlotData) -> Any:
    """The matplotlib Figure `render_png` saves (close it with matplotlib.pyplot.close). Its
    panels' artists carry gids: "trials" (a family's scatter), "front" (the circles around the
    trials on the front over all objectives), "front-line" (the step line, two objectives
    only), "progress" and "shares"; each panel's `nas_objectives` is its (x, y) pair."""
    matplotlib = _matplotlib()
    with matplotlib.rc_context({"text.parse_math": False}):
        return _build_figure(data)


def _build_figure(data: PlotData) -> Any:
    import matplotlib.pyplot as plt

    rows, cols, cells = _panel_cells(len(data.objectives), len(data.pairs), data.matrix)
    fig, left, right = _figure(rows, cols)
    ax_progress = fig.add_subplot(right[0])
    ax_share = fig.add_subplot(right[1])
    families = sorted({mixer_family(t.short_form) for t in data.complete},
                      key=lambda f: (f.count("+"), f))
    cmap = plt.get_cmap("tab10" if len(families) <= 10 else "tab20")
    colors = {f: cmap(i % cmap.N) for i, f in enumerate(families)}
    run = data.run
    if not data.pairs:
        ax = fig.add_subplot(left[0, 0])
        _draw_single(ax, data, colors)
        ax.legend(title="mixers in the stack", loc="best", fontsize=9, title_fontsize=9,
                  framealpha=0.9)
    else:
        panels = []
        for (x, y), (r, c) in zip(data.pairs, cells, strict=True):
            ax = fig.add_subplot(left[r, c])
            ax.nas_objectives = (x, y)
            _draw_pair(ax, data, x, y, colors, full=len(data.pairs) == 1)
            panels.append(ax)
        _legend(fig, left, panels, data.matrix and rows > 1, "mixers in the stack")
    # progress panel
    hours = [h for h, _ in data.progress]
    values = [v for _, v in data.progress]
    ax_progress.step(hours, values, where="post", color="tab:blue", lw=1.8, gid="progress")
    ax_progress.plot(hours, values, "o", ms=3.5, color="tab:blue")
    ax_progress.set_xlabel("cumulative device-hours (trials in order of finishing)")
    if data.pairs:
        ax_progress.set_ylabel("hypervolume (share of the box)")
        what = (f"all {len(data.objectives)} objectives" if len(data.objectives) > 2
                else " × ".join(reversed(data.objectives)))
        ax_progress.set_title(f"hypervolume of the front, {what}\neach scaled to [0, 1] best "
                              "to worst; reference point: the worst of each", fontsize=10)
    else:
        ax_progress.set_ylabel(f"best {data.y}")
        ax_progress.set_title(f"best {data.y} so far", fontsize=10)
    ax_progress.grid(True, alpha=0.3)
    ax_progress.ticklabel_format(axis="x", style="plain", useOffset=False)
    # mixer share panel
    shares = mixer_shares(data.front)
    letters = list(shares)
    kinds = {letter: kind for kind, letter in MIXER_LETTERS.items()}
    ticks = [f"{k}\n{kinds.get(k, '')}" for k in letters]
    bars = ax_share.bar(ticks, [100 * shares[k] for k in letters], color="tab:gray",
                        edgecolor="black", lw=0.6, gid="shares")
    for bar, letter in zip(bars, letters, strict=True):
        ax_share.annotate(f"{100 * shares[letter]:.0f}%", (bar.get_x() + bar.get_width() / 2,
                                                          bar.get_height()),
                          ha="center", va="bottom", fontsize=9, xytext=(0, 2),
                          textcoords="offset points")
    ax_share.set_ylim(0, 115)
    ax_share.set_ylabel("% of layers")
    what = "front" if data.pairs else "best trial(s)"
    count = f"{len(data.front)} trial{'s' if len(data.front) != 1 else ''}"
    ax_share.set_title(f"mixers along the {what} ({count})", fontsize=10)
    ax_share.grid(True, axis="y", alpha=0.3)
    fig.suptitle(f"{run.name}: {len(data.complete)} completed trials, {len(data.front)} on the "
                 f"front, {run.device_seconds / 3600:.3g} device-hours", fontsize=13)
    return fig


def _panel_cells(n_objectives: int, n_pairs: int,
                 matrix: bool) -> tuple[int, int, list[tuple[int, int]]]:
    """(rows, columns, the (row, column) of each pair's panel) of the left part of a figure:
    the upper triangle of a scatter matrix, else the pairs two to a row (one: a single panel)."""
    if matrix:
        side = n_objectives - 1
        return side, side, [(i, j - 1) for i, j in itertools.combinations(range(n_objectives), 2)]
    cols = 1 if n_pairs <= 1 else 2
    rows = max(1, -(-n_pairs // cols))
    return rows, cols, [divmod(k, cols) for k in range(n_pairs)]


def _figure(rows: int, cols: int) -> tuple[Any, Any, Any]:
    """(figure, grid of the left part's rows × cols, grid of the right part's two rows)."""
    import matplotlib.pyplot as plt

    height = 7.5 if rows == 1 else max(7.5, 3.6 * rows)
    fig = plt.figure(figsize=(15 if cols == 1 else 17, height), dpi=110, layout="constrained")
    outer = fig.add_gridspec(1, 2, width_ratios=[1.75 if cols == 1 else 2.2, 1])
    return fig, outer[0].subgridspec(rows, cols), outer[1].subgridspec(2, 1)


def _legend(fig: Any, left: Any, panels: list[Any], in_corner: bool, title: str) -> None:
    """The first panel's legend: in the empty lower-left cell of a scatter matrix
    (`in_corner`), else on the panel."""
    if in_corner:
        handles, labels = panels[0].get_legend_handles_labels()
        holder = fig.add_subplot(left[left.nrows - 1, 0])
        holder.axis("off")
        holder.legend(handles, labels, title=title, loc="center", fontsize=9, title_fontsize=9)
    else:
        panels[0].legend(title=title, loc="best", fontsize=9, title_fontsize=9, framealpha=0.9)


def _step_where(direction_x: str) -> str:
    """How a front's staircase steps with its points sorted by x: a minimized x keeps each
    point's y until the next point (post), a maximized one from the previous point (pre)."""
    return "post" if direction_x == "minimize" else "pre"


def _draw_pair(ax: Any, data: PlotData, x: str, y: str, colors: dict[str, Any],
               full: bool) -> None:
    """One panel: every completed trial over (x, y) by mixer family, the front's trials circled.
    The front is over all objectives; only when those are x and y is it joined by a line."""
    run = data.run
    for family, color in colors.items():
        members = [t for t in data.complete if mixer_family(t.short_form) == family]
        ax.scatter([t.values[x] for t in members], [t.values[y] for t in members],
                   s=36 if full else 24, color=color, alpha=0.75, label=family, zorder=2,
                   gid="trials")
    _error_bars(ax, data.complete, x, y)
    front = sorted(data.front, key=lambda t: (t.values[x], t.values[y]))
    fx = [t.values[x] for t in front]
    fy = [t.values[y] for t in front]
    n = len(data.objectives)
    if data.front_line:
        ax.step(fx, fy, where=_step_where(_goal(run, x)), color="black",
                lw=1.4, zorder=3, label="Pareto front", gid="front-line")
        ring = "_front"  # the line's legend entry names the front
    else:
        ring = f"on the Pareto front over all {n} objectives"
    ax.scatter(fx, fy, s=110 if full else 70, facecolors="none", edgecolors="black", lw=1.6,
               zorder=4, label=ring, gid="front")
    if full:
        # Labels fan out alternately above/below and away from the front so they do not collide.
        offsets = [(8, 14), (8, -18), (10, 28), (10, -32)]
        for i, t in enumerate(front):
            dx, dy = offsets[i % len(offsets)]
            ax.annotate(f"#{t.number} {t.short_form}", (t.values[x], t.values[y]),
                        xytext=(dx, dy), textcoords="offset points", fontsize=9, zorder=5,
                        bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "0.6",
                              "alpha": 0.9},
                        arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.8})
        ax.set_xlabel(_axis_label(run, x))
        ax.set_ylabel(_axis_label(run, y))
        if data.front_line:
            title = (f"{y} vs {x}: every completed trial, front circled and labelled "
                     "(#trial mixers)")
        else:
            title = (f"{y} vs {x}, a projection of {n} objectives: the front over all of them "
                     "circled\n(a circled trial may look dominated here: it wins on another "
                     "objective)")
        ax.set_title(title, fontsize=11)
    else:
        for t in front:
            ax.annotate(f"#{t.number}", (t.values[x], t.values[y]), xytext=(5, 5),
                        textcoords="offset points", fontsize=7, zorder=5)
        ax.set_xlabel(_axis_label(run, x, short=True), fontsize=9)
        ax.set_ylabel(_axis_label(run, y, short=True), fontsize=9)
        ax.tick_params(labelsize=8)
    ax.grid(True, alpha=0.3)
    ax.margins(x=0.12, y=0.12)


def replicate_errors(trial: TrialRecord, name: str) -> tuple[float, float] | None:
    """(below, above): how far the 95 % interval of a replicated objective reaches from the
    trial's value (its mean), or None where the trial was not replicated (search.replicates)."""
    metrics = trial.metrics or {}
    low, high = metrics.get(f"{name}_ci_low"), metrics.get(f"{name}_ci_high")
    if f"{name}_replicates" not in metrics or low is None or high is None:
        return None
    value = float(trial.values[name])
    return max(0.0, value - float(low)), max(0.0, float(high) - value)


def _error_bars(ax: Any, trials: Sequence[TrialRecord], x: str | None, y: str) -> None:
    """Error bars (the 95 % interval of the mean over the seeds) on the replicated trials, on
    each axis whose objective was replicated; x None: the trial number. Their LineCollections
    carry gid "replicates" (tests read the segments)."""
    def errors(name: str | None) -> list[tuple[float, float] | None]:
        return [None if name is None else replicate_errors(t, name) for t in trials]

    ex, ey = errors(x), errors(y)
    shown = [i for i in range(len(trials)) if ex[i] is not None or ey[i] is not None]
    if not shown:
        return

    def bars(found: list[tuple[float, float] | None]) -> list[list[float]] | None:
        if all(found[i] is None for i in shown):
            return None
        return [[(found[i] or (0.0, 0.0))[0] for i in shown],
                [(found[i] or (0.0, 0.0))[1] for i in shown]]

    xs = [trials[i].number if x is None else trials[i].values[x] for i in shown]
    ys = [trials[i].values[y] for i in shown]
    container = ax.errorbar(xs, ys, xerr=bars(ex), yerr=bars(ey), fmt="none", ecolor="0.35",
                            elinewidth=1.0, capsize=3, zorder=1,
                            label="95 % interval of the mean over seeds")
    for artist in (*container.lines[1], *container.lines[2]):
        artist.set_gid("replicates")


def _draw_single(ax: Any, data: PlotData, colors: dict[str, Any]) -> None:
    y, run = data.objectives[0], data.run
    for family, color in colors.items():
        members = [t for t in data.complete if mixer_family(t.short_form) == family]
        ax.scatter([t.number for t in members], [t.values[y] for t in members], s=36,
                   color=color, alpha=0.8, label=family, zorder=2, gid="trials")
    _error_bars(ax, data.complete, None, y)
    minimize = run.directions[0] == "minimize"
    numbers, best = [], []
    for t in data.complete:
        value = t.values[y]
        if best and not (value < best[-1] if minimize else value > best[-1]):
            value = best[-1]
        numbers.append(t.number)
        best.append(value)
    ax.step(numbers, best, where="post", color="black", lw=1.4, label="running best", zorder=3)
    for t in data.front:
        ax.annotate(f"#{t.number} {t.short_form}", (t.number, t.values[y]), xytext=(8, 12),
                    textcoords="offset points", fontsize=9,
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "0.6", "alpha": 0.9})
    ax.set_xlabel("trial number")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel(_axis_label(run, y))
    ax.set_title(f"{y} per trial, with the running best", fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.margins(x=0.06, y=0.12)


def render_html(data: PlotData, png: bytes) -> str:
    """A self-contained page: the figure inline (base64) and the front as a table."""
    run = data.run
    names = run.objective_names
    head = ["trial", "mixers", "d_model", "layers", "params", *names]
    rows = []
    for t in data.front:
        cells = [str(t.number), t.short_form, str(t.d_model), str(t.n_layers),
                 format_value("params", t.params),
                 *(format_value(n, (t.values or {}).get(n)) for n in names)]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    goals = ", ".join(f"{n} ({d})" for n, d in zip(names, run.directions, strict=True))
    image = base64.b64encode(png).decode("ascii")
    title = html.escape(f"nas plot: {run.name}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
img {{ max-width: 100%; border: 1px solid #ddd; }}
table {{ border-collapse: collapse; margin-top: 1em; }}
th, td {{ border: 1px solid #bbb; padding: 0.3em 0.7em; text-align: right; }}
td:nth-child(2), th:nth-child(2) {{ text-align: left; font-family: monospace; }}
th {{ background: #f0f0f0; }}
</style></head><body>
<h1>{html.escape(run.name)}</h1>
<p>{len(data.complete)} completed trials; objectives: {html.escape(goals)}; status
{html.escape(run.status)}.</p>
<img alt="front of {html.escape(run.name)}" src="data:image/png;base64,{image}">
<h2>Pareto front ({len(data.front)} trials)</h2>
<table><thead><tr>{"".join(f"<th>{html.escape(h)}</th>" for h in head)}</tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
</body></html>
"""


def write_plot(run: RunRecord, trials: Sequence[TrialRecord], out: Path, x: str | None,
               y: str | None, ledger: Sequence[LedgerEntry] | None = None) -> PlotData:
    """Draw `run` into `out` (.png or .html); the data drawn."""
    suffix = out.suffix.lower()
    if suffix not in SUFFIXES:
        raise NasError(f"unsupported --out suffix {out.suffix or '(none)'!r}; use .png or .html")
    data = collect(run, trials, x, y, ledger)
    png = render_png(data)
    _write(out, png if suffix == ".png" else render_html(data, png))
    return data


# ------------------------------------------------------------------------------------------------
# comparing runs (`nas plot RUN RUN ...`; the numbers: nas.cli.fronts)
# ------------------------------------------------------------------------------------------------

RUN_MARKERS = "osD^vPX*ph"


@dataclass(frozen=True)
class ComparePlot:
    comparison: Comparison
    pairs: list[tuple[str, str]]  # as PlotData.pairs, over the shared objectives
    matrix: bool = False

    def label(self, index: int) -> str:
        """Run `index`'s legend entry: its name (plain characters) and hypervolume."""
        from nas.cli.untrusted import plain

        front = self.comparison.runs[index]
        return f"{plain(front.run.name, 60)} (hv {front.hypervolume:.3f})"

    def goal(self, name: str) -> str:
        return dict(zip(self.comparison.names, self.comparison.directions, strict=True))[name]


def collect_comparison(comparison: Comparison, x: str | None = None,
                       y: str | None = None) -> ComparePlot:
    """What `nas plot RUN RUN …` draws; `x` and `y` as --x and --y, over the shared
    objectives."""
    from nas.store.untrusted import shown

    names = comparison.names
    runs = ", ".join(shown(f.run.name) for f in comparison.runs)
    pairs = objective_pairs(names, x, y, f"runs {runs} share", "device-hours")
    return ComparePlot(comparison, pairs, len(names) >= 3 and x is None and y is None)


def build_compare_figure(data: ComparePlot) -> Any:
    """The figure of a comparison (close it with matplotlib.pyplot.close). Gids: "trials" (a
    run's completed trials, faint), "front" (its front's points), "front-line" (its staircase,
    two shared objectives only), "progress" (its hypervolume over device-hours), "reach" (the
    target line), "shares" (the combined front's bars); each run's artists carry `nas_run`
    (its index in the comparison), each panel `nas_objectives`."""
    matplotlib = _matplotlib()
    with matplotlib.rc_context({"text.parse_math": False}):
        return _build_compare_figure(data)


def _build_compare_figure(data: ComparePlot) -> Any:
    import matplotlib.pyplot as plt

    comparison = data.comparison
    rows, cols, cells = _panel_cells(len(comparison.names), len(data.pairs), data.matrix)
    fig, left, right = _figure(rows, cols)
    cmap = plt.get_cmap("tab10" if len(comparison.runs) <= 10 else "tab20")
    styles = [(cmap(i % cmap.N), RUN_MARKERS[i % len(RUN_MARKERS)])
              for i in range(len(comparison.runs))]
    panels = []
    if not data.pairs:
        ax = fig.add_subplot(left[0, 0])
        _draw_runs_single(ax, data, styles)
        panels.append(ax)
    for (x, y), (r, c) in zip(data.pairs, cells, strict=True):
        ax = fig.add_subplot(left[r, c])
        ax.nas_objectives = (x, y)
        _draw_runs_pair(ax, data, x, y, styles, full=len(data.pairs) == 1)
        panels.append(ax)
    _legend(fig, left, panels, data.matrix and rows > 1, "run (hypervolume)")
    _draw_runs_progress(fig.add_subplot(right[0]), data, styles)
    _draw_runs_shares(fig.add_subplot(right[1]), data, styles)
    fig.suptitle(f"{len(comparison.runs)} runs over "
                 + ", ".join(_axis_label_of(data, n, short=True) for n in comparison.names),
                 fontsize=13)
    return fig


def _axis_label_of(data: ComparePlot, name: str, short: bool = False) -> str:
    minimize = data.goal(name) == "minimize"
    if short:
        return f"{name} {'↓' if minimize else '↑'}"
    return f"{name}  {'↓ lower' if minimize else '↑ higher'} is better"


def _draw_runs_pair(ax: Any, data: ComparePlot, x: str, y: str, styles: list[Any],
                    full: bool) -> None:
    """Every run's completed trials (faint) and front over (x, y), each in its colour and
    marker; with two shared objectives each front joined by its staircase."""
    line = len(data.comparison.names) == 2
    for index, front in enumerate(data.comparison.runs):
        color, marker = styles[index]
        trials = ax.scatter([t.values[x] for t in front.complete],
                            [t.values[y] for t in front.complete], s=14, color=color,
                            marker=marker, alpha=0.25, zorder=2, gid="trials")
        members = sorted(front.front, key=lambda t: (t.values[x], t.values[y]))
        fx, fy = [t.values[x] for t in members], [t.values[y] for t in members]
        points = ax.scatter(fx, fy, s=60 if full else 34, color=color, marker=marker,
                            edgecolors="black", lw=0.6, zorder=4, gid="front",
                            label=data.label(index))
        artists = [trials, points]
        if line:
            artists += ax.step(fx, fy, where=_step_where(data.goal(x)), color=color, lw=1.6,
                               zorder=3, gid="front-line")
        for artist in artists:
            artist.nas_run = index
    ax.set_xlabel(_axis_label_of(data, x, short=not full), fontsize=None if full else 9)
    ax.set_ylabel(_axis_label_of(data, y, short=not full), fontsize=None if full else 9)
    if full:
        ax.set_title(f"{y} vs {x}: each run's front (faint: its other completed trials)",
                     fontsize=11)
    elif not line:
        ax.tick_params(labelsize=8)
    ax.grid(True, alpha=0.3)
    ax.margins(x=0.08, y=0.08)


def _draw_runs_single(ax: Any, data: ComparePlot, styles: list[Any]) -> None:
    """One shared objective: each run's trials over the device-hours at which they completed,
    with the running best."""
    (name,) = data.comparison.names
    minimize = data.goal(name) == "minimize"
    for index, front in enumerate(data.comparison.runs):
        color, marker = styles[index]
        done = sorted(front.complete, key=lambda t: (front.hours.get(t.number, 0.0), t.number))
        hours = [front.hours.get(t.number, 0.0) for t in done]
        values = [t.values[name] for t in done]
        best = list(itertools.accumulate(values, min if minimize else max))
        trials = ax.scatter(hours, values, s=22, color=color, marker=marker, alpha=0.4,
                            zorder=2, gid="trials")
        (line,) = ax.step(hours, best, where="post", color=color, lw=1.6, zorder=3,
                          gid="front-line", label=data.label(index))
        trials.nas_run = line.nas_run = index
    ax.set_xlabel("device-hours of the run when the trial completed")
    ax.set_ylabel(_axis_label_of(data, name))
    ax.set_title(f"{name} per trial, with each run's running best", fontsize=11)
    ax.grid(True, alpha=0.3)


def _draw_runs_progress(ax: Any, data: ComparePlot, styles: list[Any]) -> None:
    """Each run's hypervolume in the common box against its device-hours, and the target line
    of `reach` × the best final hypervolume."""
    comparison = data.comparison
    for index, front in enumerate(comparison.runs):
        hours = [h for h, _ in front.progress]
        values = [v for _, v in front.progress]
        spent = front.run.device_seconds / 3600
        if hours and spent > hours[-1]:  # the line runs on to all the run spent
            hours, values = [*hours, spent], [*values, values[-1]]
        color = styles[index][0]
        (line,) = ax.step(hours, values, where="post", color=color, lw=1.8, gid="progress",
                          label=data.label(index))
        ax.plot(hours[:len(front.progress)], values[:len(front.progress)], "o", ms=3,
                color=color)
        line.nas_run = index
    target = comparison.reach * comparison.best_hypervolume
    ax.axhline(target, color="0.4", ls="--", lw=1, gid="reach",
               label=f"{comparison.reach:.0%} of the best")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("cumulative device-hours of each run")
    ax.set_ylabel("hypervolume (share of the common box)")
    ax.set_title("hypervolume, one reference for all runs: each objective scaled\nbetween its "
                 "best and worst over all their trials; reference: the worst", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, alpha=0.3)
    ax.ticklabel_format(axis="x", style="plain", useOffset=False)


def _draw_runs_shares(ax: Any, data: ComparePlot, styles: list[Any]) -> None:
    """Each run's share of the combined front (the front of all the runs' trials together)."""
    from nas.cli.untrusted import plain

    comparison = data.comparison
    shares = [100 * comparison.share(i) for i in range(len(comparison.runs))]
    names = [plain(f.run.name, 30) for f in comparison.runs]
    bars = ax.bar(range(len(names)), shares, color=[c for c, _ in styles],
                  edgecolor="black", lw=0.6, gid="shares")
    for bar, front in zip(bars, comparison.runs, strict=True):
        ax.annotate(f"{front.combined}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=9, xytext=(0, 2),
                    textcoords="offset points")
    ax.set_xticks(range(len(names)), names, fontsize=9, rotation=20 if len(names) > 4 else 0)
    ax.set_ylim(0, 115)
    ax.set_ylabel("% of the combined front")
    size = comparison.combined_size
    ax.set_title(f"share of the combined front ({size} trial{'s' if size != 1 else ''}: the "
                 "front of all runs together)", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)


def render_compare_html(data: ComparePlot, png: bytes) -> str:
    """A self-contained page: the figure inline and the runs' summary as a table."""
    comparison = data.comparison
    head = ["run", "strategy", "trials", "device-hours", "front", "hypervolume",
            "combined front"]
    rows = []
    for index, front in enumerate(comparison.runs):
        run = front.run
        cells = [run.name, run.strategy, f"{run.trials_complete}",
                 f"{run.device_seconds / 3600:.3g}", str(len(front.front)),
                 f"{front.hypervolume:.4f}", f"{comparison.share(index):.0%}"]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    image = base64.b64encode(png).decode("ascii")
    names = ", ".join(f.run.name for f in comparison.runs)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(f"nas plot: {names}")}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
img {{ max-width: 100%; border: 1px solid #ddd; }}
table {{ border-collapse: collapse; margin-top: 1em; }}
th, td {{ border: 1px solid #bbb; padding: 0.3em 0.7em; text-align: right; }}
th {{ background: #f0f0f0; }}
</style></head><body>
<h1>{html.escape(names)}</h1>
<p>Hypervolume over {html.escape(", ".join(comparison.names))}, {html.escape(COMMON_REFERENCE)}.</p>
<img alt="fronts of {html.escape(names)}" src="data:image/png;base64,{image}">
<table><thead><tr>{"".join(f"<th>{html.escape(h)}</th>" for h in head)}</tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
</body></html>
"""


def write_compare_plot(comparison: Comparison, out: Path, x: str | None,
                       y: str | None) -> ComparePlot:
    """Draw a comparison of runs into `out` (.png or .html); the data drawn."""
    suffix = out.suffix.lower()
    if suffix not in SUFFIXES:
        raise NasError(f"unsupported --out suffix {out.suffix or '(none)'!r}; use .png or .html")
    data = collect_comparison(comparison, x, y)
    png = _png(_build_compare_figure, data)
    _write(out, png if suffix == ".png" else render_compare_html(data, png))
    return data


def _write(out: Path, content: bytes | str) -> None:
    try:
        if isinstance(content, bytes):
            out.write_bytes(content)
        else:
            out.write_text(content, encoding="utf-8")
    except OSError as exc:
        raise NasError(f"cannot write {out}: {exc.strerror or exc}") from None
