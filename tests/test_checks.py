"""Every input checked against what it claims to be, and every OS error one
line (issue 24): a params file DVC would refuse, a profile that does not
exist, a skew that makes the factor common, samples fewer than their meta
says, images of another size, a metrics folder with nothing in it, a file
where a folder belongs, exhausted resources."""

from __future__ import annotations

import errno
import json
import os
import re

import numpy as np
import pytest
import yaml

from pipeline.data.datasets import FactorDataset, load_dataset, save_dataset
from pipeline.errors import DataError, ParamsError, RgfError
from pipeline.files import SampleMeta, read_samples, write_samples
from pipeline.params import load_params, parse_params
from pipeline.stages import os_problem, run
from pipeline.stages.validate import last_profile
from pipeline.workers import run_jobs
from tests.helpers import compose, one_error, with_key, write_params

# --- params ------------------------------------------------------------------


def test_a_section_written_twice_is_refused_as_dvc_refuses_it(tmp_path):
    path = write_params(tmp_path, compose("smoke"))
    path.write_text(path.read_text() + "vae:\n  epochs: 3\n")
    with pytest.raises(ParamsError, match=r"not valid YAML at line \d+: key 'vae' written twice") as err:
        load_params(path)
    assert "\n" not in str(err.value)


def test_a_key_written_twice_inside_a_section_is_refused(tmp_path):
    path = tmp_path / "params.yaml"
    text = yaml.safe_dump(compose("smoke"), sort_keys=False)
    path.write_text(text.replace("skew:\n", "skew:\n  rare_fractions: [0.1]\n", 1))
    with pytest.raises(ParamsError, match="key 'rare_fractions' written twice"):
        load_params(path)


def test_a_profile_conf_does_not_hold_is_refused(tmp_path):
    path = write_params(tmp_path, with_key(compose("smoke"), "profile", "nonexist"))
    with pytest.raises(ParamsError, match=r"profile = 'nonexist': no conf/profile/nonexist.yaml; one of \["):
        load_params(path)


@pytest.mark.parametrize("fraction", [0.51, 0.9, 1.0])
def test_a_rare_fraction_that_makes_the_factor_common_is_refused(tmp_path, fraction):
    path = write_params(tmp_path, with_key(compose("smoke"), "skew.rare_fractions", [0.0, fraction]))
    with pytest.raises(ParamsError, match=r"skew.rare_fractions.1 = .* less than or equal to 0.5"):
        load_params(path)


def test_rare_fractions_edited_by_hand_must_bring_their_datasets_and_skews(tmp_path):
    """dvc.yaml's matrices iterate over `datasets` and `skews`, which Hydra
    derives; a hand edit of the fractions alone would train the old sets."""
    path = write_params(tmp_path, with_key(compose("smoke"), "skew.rare_fractions", [0.0, 0.05]))
    expected = "['balanced', 'skewed_k1', 'skewed_k1_r5'] to match skew.rare_classes [1] and skew.rare_fractions"
    with pytest.raises(ParamsError, match=re.escape(f"datasets must be {expected}")):
        load_params(path)
    fixed = with_key(compose("smoke"), "skew.rare_fractions", [0.0, 0.05])
    fixed["datasets"] = ["balanced", "skewed_k1", "skewed_k1_r5"]
    with pytest.raises(ParamsError, match=re.escape("skews must be ['k1', 'k1_r5']")):
        load_params(write_params(tmp_path, fixed))
    fixed["skews"] = ["k1", "k1_r5"]
    assert load_params(write_params(tmp_path, fixed)).skews == ["k1", "k1_r5"]


def test_a_study_stored_by_an_earlier_design_is_read_in_todays_keys(tmp_path):
    """An assembled study or an experiment's params.yaml from before the
    rare fractions were a list: read as the same study (stored=True), refused
    as the workspace's params."""
    old = compose("survey")
    old["skew"] = {"rare_classes": [1, 2], "rare_fraction": 0.0}
    del old["skews"]
    old["datasets"] = ["balanced", "skewed_k1", "skewed_k2"]
    path = write_params(tmp_path, old)
    stored = load_params(path, stored=True)
    assert stored.skew.rare_fractions == [0.0] and stored.skews == ["k1", "k2"]
    assert stored.datasets == ["balanced", "skewed_k1", "skewed_k2"]
    assert stored == parse_params(compose("survey"))
    with pytest.raises(ParamsError, match="unknown key 'skew.rare_fraction'"):
        load_params(path)


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: p.mkdir(), "a folder; give the params file"),
        (lambda p: p.write_bytes(b"profile: smoke\n\xff\xfe\n"), "not UTF-8 text (byte 15)"),
        (lambda p: None, "not found"),
    ],
)
def test_check_params_on_a_folder_bytes_or_nothing_is_one_line(tmp_path, capsys, make, says):
    from pipeline.cli import main

    path = tmp_path / "params.yaml"
    make(path)
    assert main(["check-params", str(path)]) == 2
    assert says in one_error(capsys.readouterr().err)


def test_the_validate_stage_says_when_the_profile_changed(tmp_path, capsys):
    from pipeline.stages import validate

    path = write_params(tmp_path, compose("quick"))
    lock = {"stages": {"validate": {"params": {"params.yaml": {"profile": "smoke", "seed": 0}}}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    assert last_profile(tmp_path / "dvc.lock") == "smoke"
    assert run(validate.main, ["--params", str(path), "--out", str(tmp_path / "params.ok")]) == 0
    err = capsys.readouterr().err
    assert "composed from profile quick, the last run used smoke" in err and "-S profile=smoke" in err
    lock["stages"]["validate"]["params"]["params.yaml"]["profile"] = "quick"
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    assert run(validate.main, ["--params", str(path), "--out", str(tmp_path / "params.ok")]) == 0
    assert "composed from" not in capsys.readouterr().err
    assert last_profile(tmp_path / "missing.lock") is None


# --- data and samples ------------------------------------------------------------


def test_a_dataset_of_another_image_size_than_its_manifest_is_refused(tmp_path):
    data = tmp_path / "colour"
    images = np.zeros((4, 32, 32, 3), np.uint8)
    save_dataset(FactorDataset(images, np.arange(4), np.zeros(4, np.uint8), np.zeros(4, bool)), data / "balanced")
    (data / "manifest.json").write_text(json.dumps({"image_size": 28}))
    with pytest.raises(DataError, match="32x32 images, the data's manifest.json says 28x28"):
        load_dataset(data / "balanced")
    (data / "manifest.json").write_text(json.dumps({"image_size": 32}))
    assert load_dataset(data / "balanced").images.shape == (4, 32, 32, 3)


def _samples(folder, count, claimed, size=28):
    folder.mkdir(parents=True)
    meta = SampleMeta(run="r", model="vae", factor="colour", dataset="balanced", num_samples=claimed, seed=0)
    write_samples(folder, np.zeros((count, size, size, 3), np.uint8), meta)
    return folder


def test_samples_fewer_than_their_meta_says_are_refused(tmp_path):
    folder = _samples(tmp_path / "s", 5, 200)
    with pytest.raises(DataError, match="5 samples, meta.json says 200"):
        read_samples(folder, "vae", "colour", "balanced", 0)
    assert len(read_samples(_samples(tmp_path / "ok", 5, 5), "vae", "colour", "balanced", 0)) == 5


def test_samples_of_another_image_size_are_refused(tmp_path):
    folder = _samples(tmp_path / "s", 3, 3, size=32)
    with pytest.raises(DataError, match="32x32 images, the study's are 28x28"):
        read_samples(folder, "vae", "colour", "balanced", 0, image_size=28)


# --- the report's metrics ------------------------------------------------------


def test_report_on_an_empty_metrics_folder_fails(tmp_path, capsys):
    from pipeline.cli import main

    (tmp_path / "metrics").mkdir()
    assert main(["report", "--metrics", str(tmp_path / "metrics"), "--params", str(write_params(tmp_path, {}))]) == 2
    assert "no metrics files" in one_error(capsys.readouterr().err)


def test_report_where_a_metrics_file_is_a_folder_is_one_line(tmp_path, capsys):
    from pipeline.cli import main

    (tmp_path / "metrics" / "vae" / "colour" / "k1-s0.json").mkdir(parents=True)
    assert main(["report", "--metrics", str(tmp_path / "metrics")]) == 2
    assert "k1-s0.json: a folder, not a MetricsFile file" in one_error(capsys.readouterr().err)


# --- the OS says no ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("err", "says"),
    [
        (OSError(errno.EMFILE, "Too many open files", "x.npy"), "too many open files"),
        (OSError(errno.ENOMEM, "Cannot allocate memory"), "out of memory"),
        (PermissionError(errno.EACCES, "Permission denied", "data/colour"), "check its permissions"),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "params.yaml"), "give a folder, not a file"),
    ],
)
def test_an_os_error_is_one_line_saying_what_to_change(capsys, err, says):
    def fails(_):
        raise err

    assert run(fails) == 2
    line = one_error(capsys.readouterr().err)
    assert says in line
    if err.errno in (errno.EMFILE, errno.ENOMEM):
        assert "`workers`, `train.threads` or the batch size" in line


def test_memory_error_and_a_non_utf8_file_are_one_line(capsys):
    def no_memory(_):
        raise MemoryError

    def not_text(_):
        b"\xff".decode()

    assert run(no_memory) == 2
    assert "out of memory" in one_error(capsys.readouterr().err)
    assert run(not_text) == 2
    assert "not UTF-8 text" in one_error(capsys.readouterr().err)


def test_a_library_that_cannot_be_mapped_is_one_line(capsys):
    """ulimit -v: importing torch in a worker fails with this ImportError."""

    def cannot_map(_):
        raise ImportError("libtorch_cpu.so: failed to map segment from shared object")

    def other(_):
        raise ImportError("No module named 'nothing'")

    assert run(cannot_map) == 2
    assert "out of memory loading a library" in one_error(capsys.readouterr().err)
    with pytest.raises(ImportError, match="nothing"):  # a missing module is a bug to see whole
        run(other)
    assert "EMFILE" not in os_problem(OSError(errno.EMFILE, "Too many open files"))


def _die(_job) -> None:
    os._exit(1)  # as a worker the kernel kills for memory


def test_a_worker_that_dies_is_one_line_naming_the_limits():
    with pytest.raises(RgfError, match="a worker process died abruptly .* lower `workers`"):
        run_jobs(_die, [1, 2], workers=2)


def test_the_validate_stage_says_when_the_dvc_remote_is_missing(tmp_path, capsys):
    """A fresh clone whose default remote (a folder beside the checkout) does
    not exist: the first stage says so in one line, with the command to fix it."""
    from pipeline.stages import validate
    from pipeline.stages.validate import missing_remote

    path = write_params(tmp_path, compose("smoke"))
    (tmp_path / ".dvc").mkdir()
    config = "[core]\n    remote = storage\n['remote \"storage\"']\n    url = ../../team-storage\n"
    (tmp_path / ".dvc" / "config").write_text(config)
    assert run(validate.main, ["--params", str(path), "--out", str(tmp_path / "params.ok")]) == 0
    (note,) = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert f"the DVC remote 'storage' is {tmp_path.parent / 'team-storage'}, which does not exist" in note
    assert "`dvc remote modify --local storage url <path or URL>`" in note
    (tmp_path.parent / "team-storage").mkdir()
    assert missing_remote(tmp_path) is None
    (tmp_path / ".dvc" / "config.local").write_text("['remote \"storage\"']\n    url = s3://bucket/rgf\n")
    assert missing_remote(tmp_path) is None  # DVC itself speaks for remotes elsewhere
    (tmp_path / ".dvc" / "config.local").write_text("['remote \"storage\"']\n    url = /nowhere/rgf\n")
    assert "/nowhere/rgf, which does not exist" in missing_remote(tmp_path)
