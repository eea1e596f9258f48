"""Nothing lost, round two (issue 24): where outputs may go and what they
may replace. No output is, holds or lies inside the project's root, its
.git, .dvc or code, or the command's own inputs; a folder is replaced only
when it is this output's own (its marker file); a command's outputs are
checked before any work and swapped in together, under a lock; a collector
never mixes studies of two designs in one folder, and leaves what else its
folder holds (a hand-written reading) alone."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from pipeline.errors import RgfError
from pipeline.files import write_curves
from pipeline.io import MARKER, Owned, atomic_dir, atomic_entries, check_output, check_owned, replacing
from pipeline.paths import HISTORY, ORACLE_CURVES, PREPARED, SOURCE, STUDY
from pipeline.stages import run
from tests.helpers import compose, digest, one_error, write_params


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project root (.git, .dvc, pipeline/) with a user's file in it, as the working directory."""
    root = tmp_path / "project"
    for folder in (".git", ".dvc", "pipeline", "reports"):
        (root / folder).mkdir(parents=True)
    (root / "pipeline" / "code.py").write_text("# the code\n")
    (root / "notes.md").write_text("a user's notes\n")
    monkeypatch.chdir(root)
    return root


# --- where an output may go --------------------------------------------------


@pytest.mark.parametrize("out", [".", "..", "/", "./", "reports/..", ".git/x", ".dvc/cache", "pipeline/out"])
def test_an_output_at_or_around_the_projects_root_or_code_is_refused(project, out):
    with pytest.raises(RgfError, match=r"project's (root|\.git/|\.dvc/|pipeline/)"):
        check_output(Path(out))


def test_an_output_inside_the_project_is_allowed(project):
    check_output(Path("reports/tables"))
    check_output(project / "data" / "colour")


@pytest.mark.parametrize("out", ["data/source", "data/source/x", "data"])
def test_an_output_that_is_holds_or_lies_in_an_input_is_refused(project, out):
    with pytest.raises(RgfError, match="the input data/source"):
        check_output(Path(out), [Path("data/source")])


def test_a_symbolic_link_to_the_root_is_refused(project, tmp_path):
    (tmp_path / "link").symlink_to(project)
    with pytest.raises(RgfError, match="project's root"):
        check_output(tmp_path / "link")


# --- which folder an output may replace ----------------------------------------


def test_each_output_replaces_only_its_own_folder(tmp_path):
    """The source and prepare stages' folders both hold manifest.json: their
    markers (and, for folders written before markers, their other files)
    tell them apart."""
    source, prepared = tmp_path / "source", tmp_path / "colour"
    with atomic_dir(source, SOURCE) as tmp:
        (tmp / "manifest.json").write_text("{}")
    with atomic_dir(prepared, PREPARED) as tmp:
        (tmp / "manifest.json").write_text("{}")
    assert (source / MARKER).read_text() == "source\n"
    check_owned(source, SOURCE)
    with pytest.raises(RgfError, match="holds rgf's source output, not its prepared"):
        check_owned(source, PREPARED)
    with pytest.raises(RgfError, match="holds rgf's prepared output, not its source"):
        check_owned(prepared, SOURCE)
    # folders written before markers: the legacy names must all be there
    (source / MARKER).unlink()
    (prepared / MARKER).unlink()
    (source / "train_images.npy").write_bytes(b"")
    for name in ("balanced", "test", "val"):
        (prepared / name).mkdir()
    check_owned(source, SOURCE)
    check_owned(prepared, PREPARED)
    with pytest.raises(RgfError, match=r"this output \(prepared\) did not write"):
        check_owned(source, PREPARED)
    with pytest.raises(RgfError, match=r"this output \(source\) did not write"):
        check_owned(prepared, SOURCE)


def test_a_curves_folder_has_no_marker_and_is_known_by_its_layout(tmp_path):
    """DVC draws a plots folder file by file, so the DVCLive curves carry no
    marker: the folder is replaced when every file in it is a curve, and a
    folder with any other file (a user's, another output's marker) is not."""
    curves = tmp_path / "plots" / "train" / "vae-colour-s0"
    with atomic_dir(curves, HISTORY) as tmp:
        write_curves(tmp / "balanced", [{"epoch": 1, "loss": 2.0}])
    assert digest(curves).keys() == {"balanced/plots/metrics/loss.tsv"}
    check_owned(curves, HISTORY)
    with atomic_dir(curves, HISTORY) as tmp:  # replaced by its own output
        write_curves(tmp / "skewed_k1", [{"epoch": 1, "loss": 1.0}])
    assert set(digest(curves)) == {"skewed_k1/plots/metrics/loss.tsv"}
    (curves / MARKER).write_text("source\n")
    with pytest.raises(RgfError, match="holds rgf's source output, not its history"):
        check_owned(curves, HISTORY)
    (curves / MARKER).unlink()
    for stray in ("notes.md", "skewed_k1/notes.tsv", "skewed_k1/plots/metrics/deeper/loss.tsv"):
        (curves / stray).parent.mkdir(parents=True, exist_ok=True)
        (curves / stray).write_text("mine\n")
        with pytest.raises(RgfError, match=r"this output \(history\) did not write"):
            check_owned(curves, HISTORY)
        (curves / stray).unlink()
    check_owned(curves, HISTORY)
    with pytest.raises(RgfError, match=r"this output \(oracle-curves\) did not write"):
        check_owned(curves, ORACLE_CURVES)  # a run's curves are not the oracles' (their layouts differ)
    with pytest.raises(RgfError, match=r"this output \(oracle-curves\) did not write"):
        check_owned(tmp_path / "plots" / "train", ORACLE_CURVES)  # the parent: its files lie one level deeper


def test_a_users_folder_is_never_replaced(tmp_path):
    users = tmp_path / "mine"
    users.mkdir()
    (users / "README.md").write_text("mine\n")
    (users / "params.yaml").write_text("mine\n")
    before = digest(users)
    ran = []
    with pytest.raises(RgfError, match="did not write"), atomic_dir(users, STUDY) as tmp:
        ran.append(tmp)
    assert ran == [], "the check runs before any work"
    assert digest(users) == before and sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_every_check_runs_before_the_first_output_is_touched(tmp_path):
    """One refused output of three: the block never runs, and the two others
    (a folder of this output's and a file) are untouched."""
    good, users, summary = tmp_path / "tables", tmp_path / "plots", tmp_path / "summary.json"
    with atomic_dir(good, Owned("tables")) as tmp:
        (tmp / "README.md").write_text("old\n")
    users.mkdir()
    (users / "mine.csv").write_text("mine\n")
    summary.write_text("old\n")
    before = digest(tmp_path)
    with (
        pytest.raises(RgfError, match="plots: holds files this output"),
        replacing({good: Owned("tables"), users: Owned("plot-data")}, [summary]),
    ):
        raise AssertionError("the block ran before the checks refused")
    assert digest(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plots", "summary.json", "tables"]


def test_outputs_are_swapped_in_together_or_not_at_all(tmp_path):
    folder, first, second = tmp_path / "tables", tmp_path / "a.json", tmp_path / "b.json"
    with replacing({folder: Owned("tables")}, [first, second]) as (tmp, a, b):
        (tmp / "x").write_text("1")
        a.write_text("1")
        b.write_text("1")
    before = digest(tmp_path)
    with (
        pytest.raises(RgfError, match="never written"),
        replacing({folder: Owned("tables")}, [first, second]) as (
            tmp,
            a,
            _,
        ),
    ):
        (tmp / "x").write_text("2")
        a.write_text("2")  # the second file is never written: nothing is swapped
    assert digest(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json", "tables"]


def test_a_link_to_an_output_folder_stays_a_link(tmp_path):
    real = tmp_path / "elsewhere" / "tables"
    with atomic_dir(real, Owned("tables")) as tmp:
        (tmp / "old.csv").write_text("old\n")
    link = tmp_path / "reports" / "tables"
    link.parent.mkdir()
    link.symlink_to(real)
    with atomic_dir(link, Owned("tables")) as tmp:
        (tmp / "new.csv").write_text("new\n")
    assert link.is_symlink() and link.resolve() == real
    assert sorted(p.name for p in real.iterdir()) == [MARKER, "new.csv"]
    assert sorted(p.name for p in link.parent.iterdir()) == ["tables"]
    assert sorted(p.name for p in real.parent.iterdir()) == ["tables"]


def test_scratch_of_a_killed_command_is_tidied_and_an_old_version_comes_back(tmp_path):
    """kill -9 between moving the old version aside and putting the new one
    in place: the next command restores the old one (and drops the half-written
    new one) before it starts."""
    out = tmp_path / "tables"
    dead = 2**22 + 1  # above the kernel's default pid_max: no such process
    old = tmp_path / f".tables.old-{dead}-abcdef"
    old.mkdir()
    (old / MARKER).write_text("tables\n")
    (old / "kept.csv").write_text("old\n")
    half = tmp_path / f".tables.partial-{dead}-012345"
    half.mkdir()
    with atomic_dir(tmp_path / "other", Owned("x")):
        pass
    assert old.exists(), "another output's scratch is left alone"
    with pytest.raises(RuntimeError), atomic_dir(out, Owned("tables")):
        raise RuntimeError("stop before the swap")
    assert (out / "kept.csv").read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "tables"]


def _write_slowly(out: str, text: str, started) -> None:
    with atomic_dir(Path(out), Owned("tables")) as tmp:
        started.wait(10)
        time.sleep(0.3)
        (tmp / "README.md").write_text(text)
        (tmp / "table.csv").write_text(text)


def test_two_commands_writing_one_output_at_once_take_turns(tmp_path):
    """Two report stages at once used to collide on one fixed scratch name:
    both failed and the tracked folder was gone."""
    out = tmp_path / "reports" / "tables"
    ctx = multiprocessing.get_context("spawn")
    started = ctx.Barrier(2)
    workers = [ctx.Process(target=_write_slowly, args=(str(out), text, started)) for text in ("one\n", "two\n")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    text = (out / "README.md").read_text()
    assert text in ("one\n", "two\n") and (out / "table.csv").read_text() == text  # one writer's, whole
    assert sorted(p.name for p in out.parent.iterdir()) == ["tables"]


# --- collectors: a folder holds one study, and what else it holds stays ------


def test_a_collector_keeps_what_else_its_folder_holds(tmp_path):
    out = tmp_path / "survey"
    with atomic_entries(out, STUDY) as tmp:
        (tmp / "params.yaml").write_text("a\n")
        (tmp / "metrics").mkdir()
    (out / "reading.md").write_text("a hand-written reading\n")
    (out / "paper").mkdir()
    (out / "paper" / "cells.csv").write_text("x\n")
    with atomic_entries(out, STUDY) as tmp:
        (tmp / "params.yaml").write_text("b\n")
        (tmp / "metrics").mkdir()
    assert (out / "params.yaml").read_text() == "b\n"
    assert (out / "reading.md").read_text() == "a hand-written reading\n"
    assert (out / "paper" / "cells.csv").read_text() == "x\n"


def _smoke_study(folder: Path, *overrides: str) -> Path:
    return write_params(folder, compose("smoke", *overrides))


def test_assemble_refuses_a_folder_holding_a_study_of_another_design(tmp_path, monkeypatch, capsys):
    from pipeline.cli import main

    monkeypatch.chdir(tmp_path)
    study = tmp_path / "reports" / "survey"
    _smoke_study(study, "vae.epochs=7")
    (study / "summary.json").write_text("{}\n")
    (study / "metrics").mkdir()
    before = digest(study)
    params = _smoke_study(tmp_path / "mine")
    assert main(["assemble", "--repo", str(tmp_path), "--params", str(params), "--out", str(study)]) == 2
    line = one_error(capsys.readouterr().err)
    assert "holds a study of another design (its params.yaml differs in vae.epochs)" in line
    assert digest(study) == before


@pytest.mark.parametrize("out", [".", "PWD"])
def test_assemble_refuses_the_repository_root(tmp_path, monkeypatch, capsys, out):
    from pipeline.cli import main

    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    params = _smoke_study(repo)
    (repo / "code.py").write_text("x = 1\n")
    monkeypatch.chdir(repo)
    before = digest(repo)
    target = str(repo) if out == "PWD" else out
    assert main(["assemble", "--params", str(params), "--out", target]) == 2
    assert "is or holds the project's root" in one_error(capsys.readouterr().err)
    assert digest(repo) == before


def test_rarity_refuses_a_curve_of_another_or_unknown_design(tmp_path, monkeypatch, capsys):
    from pipeline.cli import main

    monkeypatch.chdir(tmp_path)
    curve = tmp_path / "reports" / "rarity"
    curve.mkdir(parents=True)
    for name in ("curve.csv", "null.csv", "reading.md"):
        (curve / name).write_text("committed\n")
    params = _smoke_study(tmp_path / "mine")
    before = digest(curve)
    assert main(["rarity", "--params", str(params), "--out", str(curve)]) == 2
    assert "does not say its design (no params.yaml); give --replace" in one_error(capsys.readouterr().err)
    _smoke_study(curve, "vae.epochs=7")
    before = digest(curve)
    assert main(["rarity", "--params", str(params), "--out", str(curve)]) == 2
    assert "differs in vae.epochs" in one_error(capsys.readouterr().err)
    assert digest(curve) == before


def test_standin_cars_never_writes_over_a_users_folder(tmp_path, capsys):
    from pipeline.cli import main

    mine = tmp_path / "compcars"
    (mine / "image").mkdir(parents=True)
    (mine / "manifest.csv").write_text("path,make,colour\nimage/a.jpg,Toyota,black\n")
    before = digest(mine)
    assert main(["standin-cars", str(mine), "--per-cell", "1"]) == 2
    assert "did not write" in one_error(capsys.readouterr().err)
    assert digest(mine) == before
    assert main(["standin-cars", str(tmp_path / "cars"), "--per-cell", "-5"]) == 2
    assert "--per-cell -5: must be at least 1" in one_error(capsys.readouterr().err)
    assert not (tmp_path / "cars").exists()
    assert main(["standin-cars", str(tmp_path / "cars"), "--per-cell", "1"]) == 0
    assert main(["standin-cars", str(tmp_path / "cars"), "--per-cell", "2"]) == 0  # its own: replaced
    assert len((tmp_path / "cars" / "manifest.csv").read_text().splitlines()) == 1 + 2 * 4


# --- stages: every check before any work ---------------------------------------


def test_prepare_refuses_to_write_over_its_own_source(tmp_path, capsys):
    from pipeline.stages import prepare, source

    params = write_params(tmp_path, compose("smoke", "data.train_size=300", "data.test_size=60", "data.val_size=40"))
    src = tmp_path / "data" / "source"
    assert run(source.main, ["--params", str(params), "--out", str(src)]) == 0
    capsys.readouterr()
    before = digest(src)
    argv = ["--params", str(params), "--factor", "colour", "--source", str(src), "--out", str(src)]
    assert run(prepare.main, argv) == 2
    assert "is, holds or lies inside the input" in one_error(capsys.readouterr().err)
    assert digest(src) == before
    # the source stage aimed at prepared data
    prepared = tmp_path / "data" / "colour"
    argv = ["--params", str(params), "--factor", "colour", "--source", str(src), "--out", str(prepared)]
    assert run(prepare.main, argv) == 0
    capsys.readouterr()
    before = digest(prepared)
    assert run(source.main, ["--params", str(params), "--out", str(prepared)]) == 2
    assert "holds rgf's prepared output, not its source" in one_error(capsys.readouterr().err)
    assert digest(prepared) == before


def test_the_report_stage_refuses_the_root_before_any_work(tmp_path, monkeypatch, capsys):
    from pipeline.stages import report

    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    params = write_params(root, compose("smoke"))
    monkeypatch.chdir(root)
    monkeypatch.setattr(report, "study_report", lambda *a: pytest.fail("worked before the checks"))
    before = digest(root)
    argv = ["--params", str(params), "--metrics", "metrics", "--plots", "plots/train", "--out", "."]
    argv += ["--summary", "reports/summary.json", "--plot-data", "reports/plots"]
    assert run(report.main, argv) == 2
    assert "is or holds the project's root" in one_error(capsys.readouterr().err)
    assert digest(root) == before


def test_assemble_refuses_a_folder_of_an_earlier_design(tmp_path, monkeypatch, capsys):
    """A study assembled before a key existed: today's params cannot read its params.yaml."""
    from pipeline.cli import main

    monkeypatch.chdir(tmp_path)
    study = tmp_path / "reports" / "survey"
    raw = compose("smoke")
    del raw["evaluation"]["sample_filter"]
    write_params(study, raw)
    (study / "metrics").mkdir()
    before = digest(study)
    params = _smoke_study(tmp_path / "mine")
    assert main(["assemble", "--repo", str(tmp_path), "--params", str(params), "--out", str(study)]) == 2
    line = one_error(capsys.readouterr().err)
    assert "holds a study of an earlier design" in line and "evaluation.sample_filter" in line
    assert digest(study) == before
