"""Databases and queries are data: a nas.db (with its nas-artifacts folder) that someone else
edited, damaged or crafted must never make nas delete, read or write outside the run's own
folder, print a traceback, hang, or forge output. Every bad input is one line on stderr with
exit code 2; queries that make sense on odd data succeed.

Each test builds a small real database (one run "r", three completed trials with kept weights,
written through the Store, no training), edits it with sqlite3 the way an attacker or a bad
disk would, and runs the CLI in-process; two run `nas` in a subprocess to see the terminal.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nas.cli import app
from nas.errors import StoreError
from nas.spec import ArchSpec, LayerSpec, ModuleSpec
from nas.store import Store
from nas.store.artifacts import ArtifactFile, digest

OBJECTIVES = [{"name": "accuracy", "direction": "maximize"},
              {"name": "latency_ms", "direction": "minimize"}]
SECRET = "the only copy of a thesis\n"
SECONDS = 60  # no query of these small databases may take longer, whatever they hold


@dataclass(frozen=True)
class World:
    """A database with run "r" (trials 0..2, each with weights kept in the run's folder) and,
    outside every nas folder, a victim file that no command may touch."""

    db: Path
    url: str
    artifacts: Path  # the artifacts root
    run_dir: Path  # the run's folder in it
    victim: Path

    def sql(self, statement: str, *params: object) -> None:
        with sqlite3.connect(self.db) as connection:
            connection.execute(statement, params)
        connection.close()

    def set_weights_path(self, number: int, path: str) -> None:
        self.sql("UPDATE nas_artifacts SET path = ? WHERE trial_id = "
                 "(SELECT id FROM nas_trials WHERE number = ?)", path, number)

    def victim_intact(self) -> bool:
        return self.victim.is_file() and self.victim.read_text() == SECRET


def _spec(d_model: int) -> ArchSpec:
    layer = LayerSpec(ModuleSpec.make("short_conv", kernel_size=4),
                      ModuleSpec.make("mlp", expansion=2, activation="gelu"))
    return ArchSpec(d_model=d_model, vocab_size=16, layers=(layer,), training={"lr": 1e-3})


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """The pristine database folder, built once; tests work on copies."""
    folder = tmp_path_factory.mktemp("template") / "results"
    folder.mkdir()
    store = Store(f"sqlite:///{folder}/nas.db")
    run = store.create_run(
        name="r", base_name="space", space_path="s.yaml", space_text="name: space\n",
        space_hash="abc", objectives=OBJECTIVES, strategy="random", seed=0, budget="5trials",
        budget_unit="trials", budget_amount=5, versions={"nas": "0"}, host="elsewhere")
    (store.artifacts_root / store.run_folder("r")).mkdir(parents=True)
    for n in range(3):
        store.start_trial(run.id, n, _spec(16 * (n + 1)), worker="w")
        relative = f"{store.run_folder('r')}/{n}.safetensors"
        (store.artifacts_root / relative).write_bytes(b"weights" * (n + 1))
        size, sha = digest(store.artifacts_root / relative)
        store.complete_trial(
            run.id, n, values={"accuracy": 0.5 + n / 10, "latency_ms": 1.0 + n},
            metrics={"accuracy": 0.5 + n / 10, "latency_ms": 1.0 + n, "params": 1000 + n},
            curve=[(10, "train_loss", 2.0)], device="cpu", device_seconds=1.0,
            wall_seconds=1.0, artifact=ArtifactFile(relative, size, sha))
    store.finish_run(run.id, "finished")
    store.close()
    with sqlite3.connect(folder / "nas.db") as connection:  # everything in the main file
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return folder


@pytest.fixture
def world(template, tmp_path) -> World:
    folder = tmp_path / "results"
    shutil.copytree(template, folder)
    victim = tmp_path / "home" / "thesis.tex"
    victim.parent.mkdir()
    victim.write_text(SECRET)
    artifacts = folder / "nas-artifacts"
    return World(folder / "nas.db", f"sqlite:///{folder}/nas.db", artifacts,
                 artifacts / "nas.db" / "r", victim)


def nas(world: World, *args: str, stdin: str | None = None):
    """Run the CLI in-process against the world's database; also checks the time bound and
    that no traceback reached the output."""
    started = time.monotonic()
    result = CliRunner().invoke(app, [*args, "--storage", world.url], input=stdin)
    assert time.monotonic() - started < SECONDS, f"{args} took too long"
    text = result.stdout + result.stderr
    assert "Traceback" not in text, text
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        repr(result.exception))
    return result


def one_line_error(result, *words: str) -> str:
    """The error `result` printed: exit code 2, exactly one line on stderr, holding `words`."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "\x1b" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def warnings_of(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("warning: ")]


# ------------------------------------------------------------------------------------------------
# artifact paths: nothing outside the run's folder is deleted, read or written
# ------------------------------------------------------------------------------------------------


def test_rm_leaves_a_file_named_by_an_absolute_path_alone(world):
    world.set_weights_path(0, str(world.victim))
    result = nas(world, "rm", "r", "--yes")
    assert result.exit_code == 0, result.stderr
    assert world.victim_intact()
    warning, = warnings_of(result)
    assert "artifact row" in warning and "outside the run's folder" in warning
    assert not world.run_dir.exists()  # the run's own weights went with it


def test_rm_leaves_a_file_reached_by_dot_dot_alone(world):
    hops = "/".join([".."] * 2)  # nas.db/r/../../../home/thesis.tex, relative to the root
    world.set_weights_path(1, f"nas.db/r/../../{hops}/home/thesis.tex")
    assert (world.artifacts / f"nas.db/r/../../{hops}/home/thesis.tex").resolve() == \
        world.victim.resolve()
    result = nas(world, "rm", "r", "--yes")
    assert result.exit_code == 0 and world.victim_intact()
    assert len(warnings_of(result)) == 1


def test_a_link_in_the_run_folder_is_removed_but_never_followed(world):
    link = world.run_dir / "1.safetensors"
    link.unlink()
    link.symlink_to(world.victim)
    result = nas(world, "rm", "r", "--yes")
    assert result.exit_code == 0 and world.victim_intact()
    assert not link.is_symlink()  # the link itself may go; its target stays


def test_a_run_folder_that_is_a_link_to_elsewhere_is_not_swept(world):
    shutil.rmtree(world.run_dir)
    world.run_dir.symlink_to(world.victim.parent, target_is_directory=True)
    world.set_weights_path(0, "nas.db/r/thesis.tex")  # "inside" the linked folder
    result = nas(world, "rm", "r", "--yes")
    assert result.exit_code == 0, result.stderr
    assert world.victim_intact()


def test_an_artifacts_root_that_is_a_link_still_works(world, tmp_path):
    """A user may keep nas-artifacts on another disk: the root may be a link (its real place
    is then the boundary), and the run's own files are deleted as usual."""
    real = tmp_path / "big-disk"
    shutil.move(world.artifacts, real)
    world.artifacts.symlink_to(real, target_is_directory=True)
    result = nas(world, "rm", "r", "--yes")
    assert result.exit_code == 0 and not warnings_of(result)
    assert not (real / "nas.db" / "r").exists() and world.victim_intact()


@pytest.mark.parametrize("path", ["nas.db/r/0.safe\x00tensors", "nas.db/r/" + "x" * 100_000,
                                  "nas.db/r", "nas.db/r/.", "", "/"],
                         ids=["nul-byte", "very-long", "the-folder", "dot", "empty", "root"])
def test_paths_that_name_no_file_of_the_run_are_skipped(world, path):
    world.set_weights_path(0, path)
    result = nas(world, "rm", "r", "--yes")
    assert result.exit_code == 0, result.stderr
    assert world.victim_intact() and len(warnings_of(result)) == 1
    assert all(len(line) < 1000 for line in result.stderr.splitlines())


def test_pruning_and_the_orphan_sweep_never_leave_the_run_folder(world):
    world.set_weights_path(0, str(world.victim))
    outside = world.artifacts / "nas.db" / "other-run" / "0.safetensors"
    outside.parent.mkdir()
    outside.write_bytes(b"another run's weights")
    world.set_weights_path(1, "nas.db/r/../other-run/0.safetensors")
    store = Store(world.url, create=False)
    removed = store.prune_artifacts(store.run("r").id, "none", sweep=True)
    store.close()
    assert world.victim_intact() and outside.is_file()
    # the files of the run itself went: the one its rows named, and those no row names now
    assert sorted(p.name for p in removed) == ["0.safetensors", "1.safetensors",
                                               "2.safetensors"]
    assert all(p.parent == world.run_dir for p in removed)


def test_export_never_copies_a_file_from_outside_the_run_folder(world, tmp_path):
    world.set_weights_path(2, str(world.victim))
    out = tmp_path / "bundle"
    result = nas(world, "export", "r/2", "--out", str(out))
    one_line_error(result, "r'/2", "outside the run's folder", "left alone")
    assert not (out / "model.safetensors").exists() and world.victim_intact()


def test_a_copied_database_says_where_its_weights_are_and_how_to_bring_them(world, tmp_path):
    copy = world.db.with_name("backup.db")
    shutil.copyfile(world.db, copy)
    backup = World(copy, f"sqlite:///{copy}", world.artifacts, world.artifacts / "backup.db" / "r",
                   world.victim)
    out = tmp_path / "bundle"
    line = one_line_error(nas(backup, "export", "r/0", "--out", str(out)), "r'/0",
                          "database 'nas.db'", "'backup.db'", "copy or rename",
                          str(world.artifacts / "backup.db"))
    assert "edited" not in line and not out.exists()
    # what the message says works: the copy then finds its weights in its own folder
    shutil.copytree(world.artifacts / "nas.db", world.artifacts / "backup.db")
    result = nas(backup, "export", "r/0", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert (out / "model.safetensors").read_bytes() == b"weights"
    store = Store(backup.url)  # a search resumed on the copy sweeps its folder at the end
    try:
        store.prune_artifacts(store.run("r").id, "all", sweep=True)
    finally:
        store.close()
    assert all((backup.run_dir / f"{n}.safetensors").exists() for n in range(3))


@pytest.mark.parametrize("path", ["other.db/r/../../../home/thesis.tex",
                                  "other.db/r/../../../home",
                                  "other.db/elsewhere/0.safetensors", "/other.db/r/0.safetensors"])
def test_a_path_under_another_database_that_leaves_the_run_is_still_refused(world, tmp_path,
                                                                            path):
    world.set_weights_path(0, path)
    line = one_line_error(nas(world, "export", "r/0", "--out", str(tmp_path / "b")),
                          "left alone")
    assert "copy or rename" not in line and world.victim_intact()


def test_export_refuses_a_folder_that_already_holds_files(world, tmp_path):
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    one_line_error(nas(world, "export", "r/2", "--out", str(out)), "already holds files",
                   "--force")
    assert (out / "notes.txt").read_text() == "mine" and not (out / "arch.json").exists()


def test_export_with_force_replaces_links_instead_of_writing_through_them(world, tmp_path):
    out = tmp_path / "bundle"
    out.mkdir()
    for name in ("model.safetensors", "arch.json", "metrics.json", "model.py"):
        (out / name).symlink_to(world.victim)
    result = nas(world, "export", "r/2", "--out", str(out), "--force")
    assert result.exit_code == 0, result.stderr
    assert world.victim_intact()
    assert not any((out / name).is_symlink() for name in ("model.safetensors", "model.py"))


def test_report_replaces_links_instead_of_writing_through_them(world, tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.html").symlink_to(world.victim)
    result = nas(world, "report", "r", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert world.victim_intact() and not (out / "report.html").is_symlink()


# ------------------------------------------------------------------------------------------------
# trial references and conditions
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args,words", [
    (["show", "r/99999999999999999999999"], ["no trial 99999999999999999999999 in run 'r'"]),
    (["show", "r/" + "9" * 5000], ["no trial 9", "in run 'r'"]),
    (["show", "r/9223372036854775808"], ["no trial 9223372036854775808"]),
    (["show", "r/²"], ["expected RUN/NUMBER"]),
    (["show", "r/٣"], ["expected RUN/NUMBER"]),
    (["show", "r/-1"], ["expected RUN/NUMBER"]),
    (["compare", "r/0", "r/99999999999999999999999"], ["no trial 99999999999999999999999"]),
    (["export", "r/99999999999999999999999", "--out", "x"], ["no trial"]),
    (["measure", "r/99999999999999999999999"], ["no trial"]),
    (["trials", "99999999999999999999999"], ["no run '99999999999999999999999'"]),
    (["trials", "²"], ["no run '²'"]),
    (["show", "99999999999999999999999/1"], ["no run"]),
])
def test_trial_references_out_of_range_are_one_line(world, args, words):
    one_line_error(nas(world, *args), *words)


@pytest.mark.parametrize("where,count", [("accuracy > 1e999999", 0),
                                         ("params > 99999999999999999999999999", 0),
                                         ("number < 99999999999999999999999999", 3),
                                         ("accuracy > -1e999999", 3)])
def test_huge_numbers_in_where_compare_or_are_refused_in_one_line(world, where, count):
    """The filter runs in Python, so no integer column can overflow; a literal that reads as
    infinity may be refused by the expression parser (one line) or compared as infinity."""
    result = nas(world, "trials", "r", "--where", where, "--format", "csv")
    if result.exit_code == 2:
        one_line_error(result, "--where")
    else:
        assert result.exit_code == 0, result.stderr
        assert len(result.stdout.strip().splitlines()) == 1 + count


# ------------------------------------------------------------------------------------------------
# damaged pages
# ------------------------------------------------------------------------------------------------


def corrupt_pages(db: Path, *tables: str) -> None:
    """Overwrite the root page of each table with garbage, leaving the file header and the
    schema intact: the database opens, but reading those tables fails."""
    with sqlite3.connect(db) as connection:
        size = connection.execute("PRAGMA page_size").fetchone()[0]
        roots = [connection.execute("SELECT rootpage FROM sqlite_master WHERE name = ?",
                                    (t,)).fetchone()[0] for t in tables]
    connection.close()
    with db.open("r+b") as handle:
        for page in roots:
            handle.seek((page - 1) * size)
            handle.write(bytes([0xA5]) * size)


@pytest.mark.parametrize("args", [["runs"], ["trials", "r"], ["pareto", "r"], ["show", "r/1"],
                                  ["compare", "r/0", "r/1"], ["export", "r/1", "--out", "x"],
                                  ["report", "r", "--out", "x"], ["rm", "r", "--yes"],
                                  ["trials", "r", "--format", "json"]],
                         ids=lambda a: "-".join(a[:2]))
def test_a_damaged_page_is_one_line_naming_the_file_and_the_fix(world, args):
    corrupt_pages(world.db, "nas_runs", "nas_trials")
    line = one_line_error(nas(world, *args), str(world.db), "malformed", "backup", ".recover")
    assert "sqlalche.me" not in line
    assert world.run_dir.is_dir() and len(list(world.run_dir.iterdir())) == 3  # nothing lost


# ------------------------------------------------------------------------------------------------
# malformed and huge values
# ------------------------------------------------------------------------------------------------


MALFORMED = {
    "metrics-not-json": ("UPDATE nas_trials SET metrics = '{bad' WHERE number = 1",
                         "Expecting property name"),
    "values-a-list": ("UPDATE nas_trials SET \"values\" = '[1, 2]' WHERE number = 1", "values"),
    "metric-a-string": ("UPDATE nas_trials SET metrics = '{\"accuracy\": \"high\"}' "
                        "WHERE number = 1", "not a number"),
    "spec-deeply-nested": ("UPDATE nas_trials SET spec_json = ? WHERE number = 1",
                           "recursion"),
    "date-not-a-date": ("UPDATE nas_trials SET started_at = 'yesterday' WHERE number = 1",
                        "yesterday"),
    "width-not-a-number": ("UPDATE nas_trials SET d_model = 'wide' WHERE number = 1",
                           "d_model"),
    "huge-metric-string": ("UPDATE nas_trials SET metrics = ? WHERE number = 1",
                           "not a number"),
    "huge-number": ("UPDATE nas_trials SET metrics = ? WHERE number = 1", "digits"),
}
PARAMETERS = {"spec-deeply-nested": "[" * 200_000,
              "huge-metric-string": '{"a": "' + "x" * 50_000_000 + '"}',
              "huge-number": '{"a": ' + "9" * 10_000 + "}"}


@pytest.mark.parametrize("case", list(MALFORMED))
@pytest.mark.parametrize("command", [["trials", "r"], ["show", "r/1"]], ids=["trials", "show"])
def test_malformed_trial_columns_are_one_line(world, case, command):
    statement, word = MALFORMED[case]
    world.sql(statement, *([PARAMETERS[case]] if case in PARAMETERS else []))
    one_line_error(nas(world, *command), "trial", "malformed data", word, "backup")
    assert nas(world, "show", "r/0").exit_code == 0  # the other trials still read
    assert nas(world, "runs").exit_code == 0


@pytest.mark.parametrize("objectives", ['{"a": 1}', '[{"name": "accuracy"}]', "[7]", "7",
                                        '[{"name": "' + "n" * 5000 + '", "direction": '
                                        '"maximize"}]'])
def test_malformed_objectives_are_one_line(world, objectives):
    world.sql("UPDATE nas_runs SET objectives = ?", objectives)
    for args in (["runs"], ["trials", "r"], ["pareto", "r"]):
        one_line_error(nas(world, *args), "run", "malformed data", "objective")


def test_a_spec_that_is_no_architecture_is_one_line_in_show_and_compare(world):
    world.sql("UPDATE nas_trials SET spec_json = '{\"layers\": 3}' WHERE number = 1")
    one_line_error(nas(world, "show", "r/1"), "r/1", "malformed architecture")
    one_line_error(nas(world, "compare", "r/0", "r/1"), "r/1", "malformed architecture")
    assert nas(world, "show", "r/1", "--format", "json").exit_code == 0  # the data as stored


def test_a_curve_value_that_is_no_number_is_one_line(world):
    world.sql("UPDATE nas_metrics SET value = 'soon'")
    one_line_error(nas(world, "show", "r/1"), "curve", "not a number")


def test_a_huge_error_text_is_shown_cut_short(world):
    world.sql("UPDATE nas_trials SET state = 'FAIL', error = ? WHERE number = 1",
              "boom\n" * 5_000_000)
    result = nas(world, "show", "r/1")
    assert result.exit_code == 0 and len(result.stdout) < 100_000


# ------------------------------------------------------------------------------------------------
# names that would restyle, move or forge output
# ------------------------------------------------------------------------------------------------


FORGED = "r\x1b[2J\x1b[31m[red][/x]\nerror: forged line\x1b]8;;http://evil\x07"


def test_a_run_name_with_escapes_and_markup_is_shown_inert(world):
    world.sql("UPDATE nas_runs SET name = ?", FORGED)
    for fmt in ("table", "csv"):
        result = nas(world, "runs", "--format", fmt)
        assert result.exit_code == 0, result.stderr
        assert "\x1b" not in result.stdout and "\x07" not in result.stdout
        assert "error: forged" not in result.stdout.replace("\\nerror: forged", "")
    table = nas(world, "runs").stdout
    assert "[red][/x]" in table  # shown as written, not read as styles
    assert "error: forged" not in nas(world, "runs", "--format", "json").stdout.replace(
        "\\nerror: forged", "")


def test_names_from_the_database_in_an_error_stay_on_one_line(world):
    world.sql("UPDATE nas_runs SET name = ?", FORGED)
    one_line_error(nas(world, "trials", "nope"), "no run 'nope'", "recent runs")


def test_trial_text_with_escapes_is_shown_inert(world):
    world.sql("UPDATE nas_trials SET short_form = ?, device = ?, metrics = ? WHERE number = 1",
              "C\x1b[2J\n[bold]A", "[/]cpu\x1b[5m",
              '{"acc\\u001b[31m\\n[red]": 0.5}')
    for args in (["trials", "r"], ["show", "r/1"], ["compare", "r/0", "r/1"]):
        result = nas(world, *args)
        assert result.exit_code == 0, result.stderr
        assert "\x1b" not in result.stdout and "[bold]A" in result.stdout


def test_a_run_name_that_is_no_folder_name_has_no_files_to_touch(world):
    world.sql("UPDATE nas_runs SET name = '../../home'")
    result = nas(world, "rm", "../../home", "--yes")
    assert result.exit_code == 0, result.stderr
    assert world.victim_intact() and len(warnings_of(result)) == 3


def test_a_plot_of_names_with_dollar_signs_draws(world, tmp_path):
    pytest.importorskip("matplotlib")
    world.sql("UPDATE nas_runs SET name = 'r$\\frac{'")
    world.sql("UPDATE nas_trials SET short_form = '$^$_{' WHERE number = 1")
    result = nas(world, "plot", "r$\\frac{", "--out", str(tmp_path / "front.png"))
    assert result.exit_code == 0, result.stderr


# ------------------------------------------------------------------------------------------------
# through a real terminal process
# ------------------------------------------------------------------------------------------------


def run_nas(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas", *args], capture_output=True, text=True,
                          timeout=SECONDS, env={**os.environ, "COLUMNS": "160"})


def test_a_damaged_database_reaches_the_terminal_as_one_line(world):
    corrupt_pages(world.db, "nas_runs", "nas_trials")
    proc = run_nas("show", "r/1", "--storage", world.url)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and str(world.db) in proc.stderr


def test_rm_by_a_crafted_database_in_a_real_process_spares_the_victim(world):
    world.set_weights_path(0, str(world.victim))
    world.set_weights_path(1, "../../home/thesis.tex")
    proc = run_nas("rm", "r", "--yes", "--storage", world.url)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert world.victim_intact()
    assert [line.startswith("warning: ") for line in proc.stderr.splitlines()] == [True, True]


@pytest.mark.parametrize("values, word", [
    ('{"accuracy": 0.5}', "no value for objective 'latency_ms'"),
    ('{"accuracy": 0.5, "latency_ms": null}', "no value for objective 'latency_ms'"),
    ('{"accuracy": 0.5, "latency_ms": true}', "True, not a number"),
    ("{}", "no value for objective 'accuracy'"),
    ("null", "no value for objective 'accuracy'"),
], ids=["missing", "null", "boolean", "empty", "no-values"])
def test_a_complete_trial_without_its_objectives_is_one_line(world, tmp_path, values, word):
    # pareto fronts, resume and reports read every objective of every COMPLETE trial
    world.sql("UPDATE nas_trials SET \"values\" = ? WHERE number = 0", values)
    for args in (["pareto", "r"], ["trials", "r"], ["show", "r/0"],
                 ["report", "r", "--out", str(tmp_path / "report")]):
        one_line_error(nas(world, *args), "trial 0", "run 'r'", str(world.db), word, "backup")
    assert not (tmp_path / "report").exists()
    assert nas(world, "show", "r/1").exit_code == 0  # the other trials still read
    # what `nas resume` reads: the completed trials, a finished twin, the front it refreshes
    store = Store(world.url)
    try:
        run = store.run("r")
        with sqlite3.connect(world.db) as connection:
            (twin,), = connection.execute("SELECT config_hash FROM nas_trials WHERE number = 0")
        connection.close()
        for read in (lambda: store.trials(run.id, states=["COMPLETE"]),
                     lambda: store.find_complete(run.id, twin),
                     lambda: store.find_trained(run.id, twin)):
            with pytest.raises(StoreError, match="trial 0 is COMPLETE"):
                read()
        store.start_trial(run.id, 3, _spec(64), worker="w")
        with pytest.raises(StoreError, match="trial 0 is COMPLETE") as info:
            store.complete_trial(run.id, 3, values={"accuracy": 0.9, "latency_ms": 1.0},
                                 metrics={}, curve=[], device="cpu", device_seconds=1.0,
                                 wall_seconds=1.0)
        assert "\n" not in str(info.value)
    finally:
        store.close()
