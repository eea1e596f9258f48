"""scripts/survey_slice.py: a slice's wall time and where it went, from DVC's time-stamped output."""

import csv
import json
import re

import pytest

from pipeline.errors import RgfError
from tests.helpers import load_script


@pytest.fixture(scope="module")
def slices():
    return load_script("survey_slice")


# what `dvc exp run` (DVC 3.67) prints, time-stamped
LOG = [
    (1000.0, "Reproducing experiment 'survey-thin-s0'"),
    (1000.0, "Running stage 'validate':"),
    (1006.0, "Stage 'source' didn't change, skipping"),
    (1012.0, "Running stage 'train-ddpm@thin-0':"),
    (1300.0, "ddpm-thin-balanced-s0 epoch 40/40 loss 0.066"),  # not a stage line
    (1612.0, "Stage 'train-vae@thin-0' is cached - skipping run, checking out outputs"),
    (1618.0, "Running stage 'train-ddpm@thin-1':"),
    (1678.0, "Running stage 'evaluate@ddpm-thin-k1-0':"),
    (1720.0, "Updating lock file 'dvc.lock'"),
]


def test_stage_minutes_sums_each_group_until_the_next_stage_line(slices):
    groups, wall = slices.stage_minutes(LOG)
    # validate 1000-1006; train-ddpm 1012-1612 and 1618-1678; evaluate 1678 to the last line
    assert groups == {"validate": 0.1, "train-ddpm": 11.0, "evaluate": 0.7}
    assert wall == 12.0
    assert slices.stage_minutes([]) == ({}, 0.0)


def test_a_row_names_the_dominant_stage_and_a_rerun_replaces_its_row(slices, tmp_path):
    first = slices.row("survey", "thin", 0, "survey-thin-s0", "abc1234", LOG)
    assert first["dominant_stage"] == "train-ddpm" and first["dominant_minutes"] == 11.0
    assert first["started_utc"] == "1970-01-01T00:16:40Z"
    assert json.loads(first["stage_minutes"])["evaluate"] == 0.7
    slices.record(tmp_path, first)
    slices.record(tmp_path, slices.row("survey", "thin", 1, "survey-thin-s1", "abc1234", LOG))
    again = slices.row("survey", "thin", 0, "survey-thin-s0", "def5678", LOG[:4])
    slices.record(tmp_path, again)
    rows = list(csv.DictReader((tmp_path / "slices.csv").open()))
    assert [(r["seed"], r["commit"]) for r in rows] == [("1", "abc1234"), ("0", "def5678")]
    assert list(rows[0]) == list(slices.COLUMNS)


def test_slices_md_gives_each_slice_the_totals_per_seed_and_where_the_time_went(slices, tmp_path):
    """record writes slices.md beside slices.csv; --tabulate writes it again from the csv alone."""
    slices.record(tmp_path, slices.row("survey", "thin", 0, "survey-thin-s0", "abc1234", LOG))
    slices.record(tmp_path, slices.row("survey", "swell", 0, "survey-swell-s0", "abc1234", LOG[:4], models="ddpm"))
    slices.record(tmp_path, slices.row("survey", "thin", 1, "survey-thin-s1", "abc1234", LOG))
    text = (tmp_path / "slices.md").read_text()
    # a slice: wall 12.0; training 11.0 of it the DDPM's; no sampling; evaluation 0.7
    first = "| survey | thin | 0 | 0 | all | abc1234 | 1970-01-01 00:16:40 | 12.0 | 11.0 (11.0) | 0.0 | 0.7 "
    first += "| train-ddpm (11.0) |"
    assert first in text
    assert "| survey | swell | 0 | 0 | ddpm | abc1234 |" in text
    # seed 0: thin (12.0) and swell (its log stops as its DDPM starts: 0.2 min)
    assert "| survey | 0 | 0 | 2 | swell thin | 12.2 | 0.20 |" in text
    assert "| survey | 0 | 1 | 1 | thin | 12.0 | 0.20 |" in text
    assert "| all |  |  | 3 |  | 24.2 | 0.40 |" in text
    # train-ddpm 11 + 0 + 11 of 22 + 0.7 x 2 + validate 0.1 x 3 (+ swell's train-ddpm, 0 min) = 23.7
    assert "| train-ddpm | 22.0 | 93% |" in text and "| evaluate | 1.4 | 6% |" in text
    (tmp_path / "slices.md").unlink()
    slices.main(["--tabulate", "--out", str(tmp_path), "--repo", str(tmp_path)])
    assert (tmp_path / "slices.md").read_text() == text


def test_tabulate_without_slices_and_a_slice_without_a_factor_are_refused(slices, tmp_path):
    with pytest.raises(RgfError, match="slices.csv: not found; --tabulate writes slices.md"):
        slices.main(["--tabulate", "--out", "x", "--repo", str(tmp_path)])
    with pytest.raises(RgfError, match="--factor: give the slice's factor"):
        slices.main(["--out", "x", "--repo", str(tmp_path)])
    assert not (tmp_path / "x").exists() and not (tmp_path / "logs").exists()


def test_a_log_without_time_stamps_is_refused_with_its_line(slices, tmp_path):
    log = tmp_path / "slice.log"
    log.write_text("1000 Running stage 'validate':\nRunning stage 'source':\n")
    with pytest.raises(RgfError, match=r"slice.log:2: expected '<epoch seconds> <line>'"):
        slices.read_log(log)
    log.write_text("")
    with pytest.raises(RgfError, match="empty"):
        slices.read_log(log)


def test_a_rarity_slice_is_its_own_slice_with_its_own_row(slices, tmp_path):
    """A row written before slices had a rare fraction is a survey slice (r = 0):
    a rarity slice at the same factor and seed (its fractions in one row) is
    another row, and its re-run replaces only its own."""
    old = slices.row("survey", "thin", 0, "survey-thin-s0", "abc1234", LOG)
    del old["rare_fraction"]
    with (tmp_path / "slices.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(old), lineterminator="\n")
        writer.writeheader()
        writer.writerow(old)
    for fractions, commit in (((0, 0.05, 0.5), "abc1234"), ((0.5,), "abc1234"), ((0, 0.05, 0.5), "def5678")):
        slices.record(tmp_path, slices.row("survey", "thin", 0, "survey-thin-s0-curve", commit, LOG, fractions))
    rows = list(csv.DictReader((tmp_path / "slices.csv").open()))
    expected = [("0", "abc1234"), ("0.5", "abc1234"), ("0 0.05 0.5", "def5678")]
    assert [(r["rare_fraction"], r["commit"]) for r in rows] == expected


def test_slices_that_split_the_models_keep_a_row_each(slices, tmp_path):
    """A slice run as two (--models vae,gan, then --models ddpm, each --name'd)
    records two rows; re-running one replaces only its own."""
    for models, commit in (("vae,gan", "abc1234"), ("ddpm", "abc1234"), ("vae,gan", "def5678")):
        slices.record(tmp_path, slices.row("survey", "thin", 0, f"thin-{models}", commit, LOG, (0, 0.5), models))
    rows = list(csv.DictReader((tmp_path / "slices.csv").open()))
    assert [(r["models"], r["commit"]) for r in rows] == [("ddpm", "abc1234"), ("vae,gan", "def5678")]


def test_a_slice_is_named_by_its_fractions_and_its_models(slices):
    assert slices.slice_name("survey", "thin", 1, None, "") == "survey-thin-s1"
    assert slices.slice_name("survey", "thin", 1, [0, 0.5], "") == "survey-thin-s1-r0_50"
    models = slices.model_list(" vae, ddpm,,vae")
    assert models == "ddpm,vae" and slices.model_list(None) == ""
    assert slices.slice_name("survey", "thin", 1, [0, 0.5], models) == "survey-thin-s1-r0_50-ddpm_vae"


def test_a_rarity_slice_is_named_by_its_fractions(slices):
    assert slices.curve_name([0, 0.01, 0.05, 0.5]) == "r0_1_5_50"
    assert slices.curve_name([0.025]) == "r2p5"


def test_rare_classes_without_rare_fractions_are_refused_before_any_run(slices, tmp_path):
    with pytest.raises(RgfError, match="--rare-classes goes with --rare-fractions"):
        slices.main(["--factor", "thin", "--rare-classes", "1", "--out", "x", "--repo", str(tmp_path)])
    assert not (tmp_path / "logs").exists()


def test_a_slice_sets_its_overrides_and_its_collector(slices, tmp_path):
    assert slices.overrides("survey", "thin", 1, None, None) == [
        "-S",
        "profile=survey",
        "-S",
        "factors=[thin]",
        "-S",
        "seeds=[1]",
    ]
    assert slices.overrides("quick", "swell", 2, [0, 0.05, 0.5], "vae,ddpm", [1])[6:] == [
        "-S",
        "skew.rare_classes=[1]",
        "-S",
        "skew.rare_fractions=[0,0.05,0.5]",
        "-S",
        "models=[vae,ddpm]",
    ]
    assert slices.collector(tmp_path, "survey", "reports/survey", rarity=False)[:2] == ["rgf", "assemble"]
    rarity = slices.collector(tmp_path, "quick", "reports/rarity", rarity=True)
    assert rarity[:2] == ["rgf", "rarity"] and rarity[rarity.index("--params") + 1] == str(tmp_path / "params.yaml")


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("0,0.7", "--rare-fractions 0,0.7: give fractions from 0 to 0.5"),
        ("0,a", "--rare-fractions 0,a: give comma-separated numbers"),
        (",", "--rare-fractions ,: give fractions from 0 to 0.5"),
    ],
)
def test_rare_fractions_out_of_range_are_refused_before_any_run(slices, tmp_path, given, says):
    with pytest.raises(RgfError, match=re.escape(says)):
        slices.main(["--factor", "thin", "--rare-fractions", given, "--out", "x", "--repo", str(tmp_path)])
    assert not (tmp_path / "logs").exists()
