"""scripts/compare_surveys.py: two assembled studies side by side, from hand-made folders with known answers."""

import json

import pandas as pd
import pytest

from pipeline.errors import RgfError
from tests.helpers import load_script


@pytest.fixture(scope="module")
def surveys():
    return load_script("compare_surveys")


def _quality(rows):
    columns = ["model", "factor", "k", "seed", "fd_u", "fd_s", "precision_u", "sample_confidence"]
    return pd.DataFrame(rows, columns=columns)


def _cells(marks, seed="0", counted=True):
    """VAE, colour, k = 1: one cell per digit with the study's marks, and Table 4's total row."""
    rows = [
        {"rare_class": 1, "factor": "colour", "model": "vae", "digit": str(d), "row": "other", "seed": seed}
        | {"counted": counted, "study": m}
        for d, m in enumerate(marks)
    ]
    total = {"rare_class": 1, "factor": "colour", "model": "vae", "digit": "total", "row": "total", "seed": seed}
    return pd.DataFrame([*rows, total | {"counted": counted, "study": "M"}])


def test_quality_takes_the_balanced_run_once_per_factor_and_seed(surveys):
    # k = 1 and 2 share the balanced run: its FD counts once per factor and seed, the skewed runs' each
    before = _quality(
        [
            ("VAE", "colour", 1, 0, 60.0, 50.0, 0.8, 0.7),
            ("VAE", "colour", 2, 0, 60.0, 70.0, 0.8, 0.9),
            ("VAE", "thin", 1, 0, 40.0, 30.0, 0.6, 0.5),
        ]
    )
    after = _quality([("VAE", "colour", 1, 0, 20.0, 10.0, 0.9, 0.95), ("VAE", "colour", 1, 1, 30.0, 20.0, 0.7, 0.85)])
    table = surveys.quality_table(before, after)
    assert list(table.index) == ["VAE"]  # the models neither study has are left out
    assert table.loc["VAE"].to_dict() == {
        "FD balanced": "50.00 → 25.00",  # (60 + 40) / 2, not (60 + 60 + 40) / 3; seed 1's balanced run counts
        "FD skewed": "50.00 → 15.00",
        "precision": "0.70 → 0.80",
        "confidence": "0.70 → 0.90",
    }


def test_verdicts_count_classes_only_and_the_changes_between_cells_judged_in_both(surveys):
    before = _cells(["M", "M", "L", "M", "", "M", "M", "M", "M", "M"])
    after = _cells(["M", "L", "M", "M", "M", "", "M", "M", "M", "M"])
    after = pd.concat([after, _cells(["L"] * 10, seed="1", counted=False)])  # a seed the majority stands for
    table = surveys.verdict_table(before, after)
    # before: 8 M of 9 judged; after 8 M of 9; digits 4 and 5 undefined in one study each: 8 in both
    assert table.loc["VAE"].to_dict() == {"memorized": "8/9 → 8/9", "changed": "2 of 8", "L → M": 1, "M → L": 1}


def test_agreement_and_claims_read_the_comparisons(surveys):
    def comparison(agree, kappa, holds):
        by = {"colour": {"agree": agree, "compared": 80, "kappa": kappa}}
        claim = {"claim": "colour is memorized by every model", "study": {"holds": holds, "numbers": "VAE 0/20 L"}}
        return {
            "by": {"factor": by},
            "agreement": {"agree": agree, "compared": 80, "kappa": kappa},
            "claims": {"a": claim},
        }

    before, after = comparison(70, 0.1, False), comparison(80, None, True)
    agreement = surveys.agreement_table(before, after)
    assert agreement.loc["colour"].to_dict() == {"agree": "70/80 → 80/80", "kappa": "0.10 → –"}
    assert list(agreement.index) == ["colour", "all"]
    claims = surveys.claims_table(before, after)
    assert claims.loc["colour is memorized by every model"].to_dict() == {
        "before": "not reproduced",
        "after": "reproduced",
        "after's numbers": "VAE 0/20 L",
    }
    before["claims"]["a"]["study"]["holds"] = None  # a claim a study cannot judge (a factor missing)
    assert surveys.claims_table(before, after).loc["colour is memorized by every model", "before"] == "not judged"


def test_a_folder_without_its_paper_comparison_is_one_line(surveys, tmp_path):
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "quality.csv").write_text("model\n")
    with pytest.raises(
        RgfError, match=r"no paper/cells.csv, paper/comparison.json; run `rgf assemble` and `rgf paper`"
    ):
        surveys.load(tmp_path)
    (tmp_path / "paper").mkdir()
    (tmp_path / "paper" / "cells.csv").write_text("rare_class\n")
    (tmp_path / "paper" / "comparison.json").write_text(json.dumps({}))
    quality, cells, comparison = surveys.load(tmp_path)
    assert comparison == {} and list(cells.columns) == ["rare_class"]
