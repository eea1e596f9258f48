"""The study against the paper's published tables (pipeline/evaluation/paper.py):
kappa and agreement on hand-computed tables, the join's bookkeeping, the
claims on the paper's own table, malformed tables, and `rgf paper`."""

import json
import shutil

import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.errors import RgfError
from pipeline.evaluation import paper
from tests.helpers import REPO
from tests.test_report import write_metrics

PAPER = REPO / "references" / "haider2025"
VERDICT = {"L": "learned", "M": "memorized", "O": "opposite", "U": "undefined"}


def cells(paper_marks: str, study_marks: str) -> pd.DataFrame:
    """Counted cells with these marks ("U": undefined in the study)."""
    study = [m if m != "U" else "" for m in study_marks]
    return pd.DataFrame({"paper": list(paper_marks), "study": study, "counted": True})


def run(model: str, factor: str, k: int, seed: int, verdicts: str) -> dict:
    """A metrics dict with only what the join reads: 11 verdicts, digits 0-9 then total."""
    keys = [*paper.DIGITS, "total"]
    classes = {
        key: {"verdict": VERDICT[v], "z": None if v == "U" else {"L": 0.5, "M": -3.0, "O": 3.0}[v]}
        for key, v in zip(keys, verdicts, strict=True)
    }
    for row in classes.values():
        row["verdicts"] = {"fisher": "learned" if row["verdict"] != "undefined" else "undefined"}
    return {"model": model, "factor": factor, "rare_class": k, "seed": seed, "source": "mnist", "classes": classes}


def write_paper(folder, columns: dict[tuple[int, str, str], str]):
    """Table 4 and Tables 1-2 for the given (k, factor, model) columns, each as
    11 marks (digits 0-9, then the "all" row); z -3 for M, 0.5 for L."""
    folder.mkdir(parents=True, exist_ok=True)
    t4, t12 = [], []
    for (k, factor, model), marks in columns.items():
        for digit, mark in zip([*paper.DIGITS, "all"], marks, strict=True):
            t4.append(f"{k},{factor},{digit},{model},{mark}")
            t12.append(f"{k},{factor},{'total' if digit == 'all' else digit},{model},{-3 if mark == 'M' else 0.5},")
        t4.append(f"{k},{factor},count,{model},{marks[:10].count('L')}")
    (folder / paper.TABLE_4).write_text("rare_class,factor,digit,model,verdict\n" + "\n".join(t4) + "\n")
    (folder / paper.TABLES_1_2).write_text("rare_class,factor,digit,model,z,marked_learned\n" + "\n".join(t12) + "\n")
    return folder


# --- agreement and kappa ------------------------------------------------------


def test_kappa_and_confusion_of_a_hand_computed_table():
    # paper 2 L / 8 M, study 4 L / 6 M, 8 of 10 agree: p_o 0.8, p_e 0.2*0.4 + 0.8*0.6 = 0.56,
    # kappa (0.8 - 0.56) / (1 - 0.56) = 6/11
    a = paper.agreement(cells("LLMMMMMMMM", "LLLLMMMMMM"))
    assert a["agree"] == 8 and a["compared"] == 10 and a["agreement"] == 0.8
    assert a["kappa"] == pytest.approx(6 / 11)
    assert a["baseline_m"] == 0.8  # answering M everywhere
    assert a["confusion"] == {"L": {"L": 2, "M": 0}, "M": {"L": 2, "M": 6}}  # rows: the paper
    swapped = paper.agreement(cells("LLLLMMMMMM", "LLMMMMMMMM"))
    assert swapped["kappa"] == pytest.approx(6 / 11)
    assert swapped["confusion"] == {"L": {"L": 2, "M": 2}, "M": {"L": 0, "M": 6}}
    assert swapped["baseline_m"] == 0.6


def test_perfect_agreement_scores_one_and_all_m_scores_zero():
    marks = "LLLMMMMMMM"
    assert paper.kappa(list(marks), list(marks)) == 1.0
    assert paper.kappa(list(marks), ["M"] * 10) == 0.0
    all_m = paper.agreement(cells(marks, "M" * 10))
    assert all_m["agreement"] == all_m["baseline_m"] == 0.7 and all_m["kappa"] == 0.0
    assert paper.kappa(["M"] * 4, ["M"] * 4) is None  # chance agreement 1: kappa undefined
    assert paper.kappa([], []) is None


def test_undefined_cells_count_in_no_share():
    a = paper.agreement(cells("LMMMM", "LUMUL"))
    assert (a["cells"], a["compared"], a["undefined"], a["agree"]) == (5, 3, 2, 2)
    assert a["baseline_m"] == pytest.approx(2 / 3)


def test_z_sign_and_spearman():
    z = pd.DataFrame(
        {
            "counted": True,
            "row": ["rare", "other", "other", "total", "other"],
            "paper_z": [1.0, 2.0, 3.0, -1.0, None],
            "study_z": [2.0, 4.0, 6.0, 1.0, 5.0],
        }
    )
    out = paper.z_agreement(z)
    assert (out["cells"], out["same_sign"], out["sign_agreement"]) == (4, 3, 0.75)
    assert out["spearman_rho"] == pytest.approx(1.0)  # the same order, one sign apart
    assert (out["rare_paper_positive"], out["rare_study_positive"]) == (1, 1)


# --- the paper's own tables ---------------------------------------------------


def test_the_papers_tables_load_whole():
    cells = paper.load_paper(PAPER).cells
    assert len(cells) == 440  # 2 k x 5 factors x 4 models x (10 digits + total)
    assert (cells["verdict"] == "L").sum() == 43  # as the paper states
    assert cells["z"].notna().sum() == 398 and cells["bold"].sum() == 20
    # what references/haider2025/README.md says of the tables' inconsistencies
    assert set(cells.loc[cells["z"].isna(), "verdict"]) == {"M"}
    bold = cells[cells["bold"]]
    assert set(bold["rare_class"]) == {2} and (bold["z"].abs() < 1.96).all()
    assert bold.loc[bold["verdict"] == "M", ["factor", "model", "digit"]].values.tolist() == [
        ["thin", "vae", "7"],
        ["thick", "vae", "8"],
    ]
    significant = cells[(cells["verdict"] == "L") & (cells["z"].abs() >= 1.96)]
    assert significant[["rare_class", "factor", "digit", "z"]].values.tolist() == [
        [2, "thin", "8", -5.03],
        [2, "thick", "9", -2.8],
    ]


def test_the_claims_hold_on_the_papers_own_table():
    claims = paper.claims(paper.paper_marks(paper.load_paper(PAPER)))
    assert {key: c["holds"] for key, c in claims.items()} == {"a": True, "b": True, "c": True, "d": True}
    assert claims["b"]["numbers"] == "VAE 79/100 M, GAN 91/100 M, GAN-SD 88/100 M, DM 99/100 M"
    assert claims["d"]["numbers"] == "colour 0/80 L, thin 9/80 L, thick 5/80 L, swell 7/80 L, fracture 22/80 L"


def test_claims_that_fail_or_cannot_be_judged_say_so():
    rows = [("vae", "colour", "L"), ("gan", "colour", "M"), ("gan_sd", "colour", "M"), ("gan", "fracture", "M")]
    marks = pd.DataFrame([{"model": m, "factor": f, "digit": "3", "mark": x} for m, f, x in rows])
    claims = paper.claims(marks)
    assert claims["a"] == {"holds": False, "numbers": "VAE 1/1 L, GAN 0/1 L, GAN-SD 0/1 L"}
    assert claims["b"]["holds"] is None  # no DDPM
    assert claims["c"]["holds"] is False  # GAN-SD 1/1 M, not below the GAN's 2/2
    assert claims["d"]["holds"] is False  # fracture 0/1 L, colour 1/3


@pytest.mark.parametrize(
    "table, old, new, message",
    [
        (paper.TABLE_4, "1,colour,0,vae,M", "1,colour,0,vae,X", r"line 2: verdict 'X', expected L or M"),
        (paper.TABLE_4, "1,colour,count,vae,0", "1,colour,count,vae,2", "count 2, its digits hold 0 L"),
        (paper.TABLE_4, "1,colour,0,vae,M\n", "", "k=1 colour vae lacks a digit"),
        (paper.TABLE_4, "rare_class,factor,digit,model,verdict", "k,factor,digit,model,verdict", "columns"),
        (paper.TABLES_1_2, "1,colour,1,vae,-6.14,", "1,colour,1,vae,-6.l4,", "z '-6.l4', expected a number"),
        (paper.TABLES_1_2, "1,colour,1,vae,-6.14,", "1,colour,1,vae,-6.14,,,", "not a readable CSV"),
        (paper.TABLES_1_2, "1,colour,1,vae,-6.14,", "1,colour,1,dcgan,-6.14,", "model 'dcgan'"),
    ],
)
def test_a_malformed_table_is_one_line(tmp_path, table, old, new, message):
    shutil.copytree(PAPER, tmp_path / "p")
    path = tmp_path / "p" / table
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new, 1))
    with pytest.raises(RgfError, match=message) as err:
        paper.load_paper(tmp_path / "p")
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_a_missing_table_names_the_fix(tmp_path):
    with pytest.raises(RgfError, match=r"table_4_verdicts.csv: missing; give --paper"):
        paper.load_paper(tmp_path)


# --- the join -----------------------------------------------------------------


def test_the_join_drops_controls_and_counts_undefined_cells(tmp_path):
    folder = write_paper(tmp_path / "p", {(1, "colour", "gan"): "MMMMMMMMMMM", (1, "thin", "gan"): "LLMMMMMMMMM"})
    metrics = [
        run("gan", "colour", 1, 0, "MLMMMMMMMUM"),
        run("data-memorizer", "colour", 1, 0, "M" * 11),
        run("gan", "colour", 3, 0, "M" * 11),  # no k = 3 in the paper
        # a relaxed skew of the same cell (a rarity curve's point): the paper's tables are r = 0's, not a seed
        {**run("gan", "colour", 1, 0, "L" * 11), "rare_fraction": 0.5},
    ]
    joined, left_out = paper.join(metrics, paper.load_paper(folder))
    assert left_out == {
        **{"control_files": 1, "files_not_in_paper": 2, "cells_not_in_paper": 0},
        "paper_cells_missing": 11,  # thin
    }
    assert len(joined) == 11 and joined["counted"].all()
    assert joined["row"].tolist() == ["other", "rare", *["other"] * 8, "total"]
    a = paper.agreement(joined)
    assert (a["cells"], a["compared"], a["undefined"], a["agree"]) == (11, 10, 1, 9)
    assert joined["agree"].isna().sum() == 1


def test_several_seeds_give_a_row_each_and_their_majority(tmp_path):
    folder = write_paper(tmp_path / "p", {(1, "colour", "gan"): "MMMMMMMMMMM"})
    seeds = ["LLUMMMMMMMM", "MMLMMMMMMMM", "MUUMMMMMMMM"]
    metrics = [run("gan", "colour", 1, seed, marks) for seed, marks in enumerate(seeds)]
    joined, _ = paper.join(metrics, paper.load_paper(folder))
    assert len(joined) == 11 * 4
    majority = joined[joined["counted"]].set_index("digit")
    assert (joined["seed"] == "majority").sum() == 11 == len(majority)
    # digit 0: L, M, M -> M; digit 1: L, M, U -> a tie, undefined; digit 2: U, L, U -> L
    assert majority.loc[["0", "1", "2"], "study"].tolist() == ["M", "", "L"]
    assert majority.loc["0", "study_verdict"] == "learned,memorized,memorized"
    assert majority.loc["0", "study_z"] == pytest.approx((0.5 - 3.0 - 3.0) / 3)
    assert joined.loc[joined["digit"] == "0", "seed"].tolist() == ["0", "1", "2", "majority"]


def test_agreement_and_the_claims_are_given_per_seed_and_for_the_majority(tmp_path):
    folder = write_paper(tmp_path / "p", {(1, "colour", "gan"): "MMMMMMMMMMM"})
    seeds = ["LLUMMMMMMMM", "MMLMMMMMMMM", "MUUMMMMMMMM"]
    metrics = [run("gan", "colour", 1, seed, marks) for seed, marks in enumerate(seeds)]
    summary, _ = paper.compare(metrics, paper.load_paper(folder))
    by = summary["by"]["seed"]
    assert list(by) == ["0", "1", "2", "majority"]
    # the paper says M everywhere: seed 0 agrees on 8 of its 10 judged cells, seed 1 on 10 of 11,
    # seed 2 on 9 of 9; the majority (M, tie, L, M...) on 9 of 10, as the overall count does
    assert [(by[s]["agree"], by[s]["compared"]) for s in by] == [(8, 10), (10, 11), (9, 9), (9, 10)]
    assert (summary["agreement"]["agree"], summary["agreement"]["compared"]) == (9, 10)
    assert by["1"]["paper_M_study_L"] == 1 and by["2"]["undefined"] == 2
    # "colour is memorized by every model" fails on any L among the digits: only seed 2 has none
    held = {seed: c["a"]["holds"] for seed, c in summary["claims_by_seed"].items()}
    assert held == {"0": False, "1": False, "2": True, "majority": False}
    text = paper.readme(summary)
    assert "## By seed" in text and "| seed 2 " in text and "| majority " in text
    # each seed alone per model, factor and k too, with its confusion table
    per_factor = {seed: tables["factor"]["colour"] for seed, tables in summary["by_seed"].items()}
    assert {seed: (a["agree"], a["compared"]) for seed, a in per_factor.items()} == {
        "0": (8, 10),
        "1": (10, 11),
        "2": (9, 9),
        "majority": (9, 10),
    }
    assert per_factor["0"]["paper_M_study_L"] == 2 and summary["by_seed"]["1"]["k"]["1"]["paper_M_study_L"] == 1
    assert "80% (8/10), 0.00" in text and "100% (9/9), –" in text


def test_the_verdict_compared_is_a_key_or_a_function(tmp_path):
    folder = write_paper(tmp_path / "p", {(1, "colour", "gan"): "MMMMMMMMMMM"})
    metrics = [run("gan", "colour", 1, 0, "MMMMMMMMMMM")]
    tables = paper.load_paper(folder)
    by_key, _ = paper.join(metrics, tables, "verdicts.fisher")
    assert set(by_key["study"]) == {"L"}
    by_function, _ = paper.join(metrics, tables, lambda row: "opposite")
    assert set(by_function["study"]) == {"M"}  # opposite counts as M, as in Table 4
    with pytest.raises(RgfError, match="gan/colour/k1-s0, class 0: no 'verdict_filtered'"):
        paper.join(metrics, tables, "verdict_filtered")
    with pytest.raises(RgfError, match="expected one of learned"):
        paper.join(metrics, tables, lambda row: "L")


def test_the_filtered_view_is_compared_when_asked(tmp_path):
    tables = paper.load_paper(write_paper(tmp_path / "p", {(1, "colour", "gan"): "MMMMMMMMMMM"}))
    filtered = {
        **run("gan", "colour", 1, 0, "M" * 11),
        "classes_filtered": run("gan", "colour", 1, 0, "LU" * 5 + "L")["classes"],
    }
    joined, _ = paper.join([filtered], tables, classes="classes_filtered")
    assert joined["study"].tolist() == ["L", ""] * 5 + ["L"]
    assert joined["study_z"].isna().sum() == 5
    older = {**run("gan", "colour", 1, 0, "M" * 11), "classes_filtered": None}  # written before the filter
    with pytest.raises(RgfError, match="gan/colour/k1-s0: no 'classes_filtered'"):
        paper.join([older], tables, classes="classes_filtered")


def test_each_disagreement_is_put_down_to_the_first_cause_that_applies(tmp_path):
    """One seed: the paper says M on every cell; the GAN's digits 0-4 and its
    total are L, each for another reason, 5-9 agree; the VAE's runs failed the
    quality gates, so each of its L cells is put down to quality first."""
    tables = paper.load_paper(
        write_paper(tmp_path / "p", {(1, "colour", "gan"): "M" * 11, (1, "colour", "vae"): "M" * 11})
    )
    gan = run("gan", "colour", 1, 0, "LLLLLMMMMML")
    classes = gan["classes"]
    classes["0"]["z"] = 1.5  # L, shifted away from the skew (towards f = 1 on a common class)
    classes["1"]["z"] = 1.5  # L, shifted towards the skew on the rare class's row: short of significance
    classes["2"]["z"] = -1.2  # towards the skew, and the filtered samples say M
    classes["3"]["verdicts"] = {"fisher": "memorized", "one_sample": "learned"}  # another test says M
    classes["4"]["z"] = -0.5  # towards the skew by half a standard error: no shift to speak of
    classes["total"]["z"] = -1.5  # the total row: the skew's direction is f = 1 falling
    for c in (classes["5"], classes["6"]):
        c["verdicts"] = {"fisher": "memorized"}  # agreeing cells have no cause
    gan["classes_filtered"] = run("gan", "colour", 1, 0, "LLMLLMMMMML")["classes"]
    vae = {**run("vae", "colour", 1, 0, "LLLMMMMMUUM"), "low_quality": ["skewed"]}  # 8: no reason recorded
    vae["classes_filtered"] = vae["classes"]
    vae["classes"]["9"]["reason"] = "low_support"
    joined, _ = paper.join([gan, vae], tables)
    whys = joined.set_index(["model", "digit"])["why"]
    assert whys["gan"].loc[["0", "1", "2", "3", "4", "total"]].tolist() == [
        *("stable", "power", "misread", "test", "stable", "power")
    ]
    assert set(whys["gan"].loc[["5", "6", "7", "8", "9"]]) == {""}
    assert whys["vae"].loc[["0", "1", "2"]].tolist() == ["quality"] * 3 and whys["vae"].loc["9"] == ""
    found = paper.disagreements(joined)
    assert found["cells"] == 9
    counts = {n: (c["paper_M_study_L"], c["paper_L_study_M"], c["gan"], c["vae"]) for n, c in found["by_why"].items()}
    assert counts == {
        "seeds": (0, 0, 0, 0),
        "quality": (3, 0, 0, 3),
        "misread": (1, 0, 1, 0),
        "test": (1, 0, 1, 0),
        "power": (2, 0, 2, 0),
        "stable": (2, 0, 2, 0),
    }
    assert found["undefined_reasons"] == {"low_support": 1, "unknown": 1}
    # compared on the filtered samples, misreads are not assessable: no such row
    summary, _ = paper.compare([gan, vae], tables, classes="classes_filtered")
    assert "| misread" not in paper.readme(summary) and "| power" in paper.readme(summary)


def test_a_cell_of_several_seeds_is_judged_on_all_its_seeds(tmp_path):
    """Three seeds, the paper L on every digit and M on the total, the study M
    at its majority on digits 0-4: digit 0 has a seed giving L (seeds); digit 1
    M at every seed and test (stable); digit 2 M at the two seeds whose runs
    failed the gates, undefined at the third (quality); digit 3 M at every seed,
    the third's run within the gates (not quality: stable); digit 4 M, one
    seed's filtered view L (misread). The total is L at every seed, z towards the skew at two seeds and
    away at the third (not power: stable). Digit 5 is L, M, undefined: a tie."""
    tables = paper.load_paper(write_paper(tmp_path / "p", {(1, "colour", "gan"): "L" * 10 + "M"}))
    seeds = ["LMMMMLLLLLL", "MMMMMMLLLLL", "MMMMMULLLLL"]
    metrics = [run("gan", "colour", 1, seed, marks) for seed, marks in enumerate(seeds)]
    for m in metrics:
        for c in m["classes"].values():
            c["verdicts"] = {"fisher": c["verdict"]}
        m["classes_filtered"] = {key: dict(c) for key, c in m["classes"].items()}
    metrics[0]["classes"]["2"]["verdict"] = "undefined"  # digit 2: M at seeds 1, 2 only
    metrics[0]["classes"]["2"]["reason"] = "low_support"
    metrics[1]["low_quality"] = ["skewed"]
    metrics[2]["low_quality"] = ["balanced"]
    metrics[2]["classes_filtered"]["4"]["verdict"] = "learned"
    for seed, z in enumerate((-1.5, -1.5, 1.5)):
        metrics[seed]["classes"]["total"]["z"] = z
    metrics[2]["classes"]["5"]["reason"] = "degenerate_balanced"
    joined, _ = paper.join(metrics, tables)
    majority = joined[joined["counted"]].set_index("digit")
    assert majority.loc[["0", "1", "2", "3", "4", "total", "5"], "why"].tolist() == [
        *("seeds", "stable", "quality", "stable", "misread", "stable", "")
    ]
    assert majority.loc["5", "undefined_reason"] == "degenerate_balanced,tied_seeds"
    assert majority.loc["2", "low_quality"] == "False,True,True" and majority.loc["4", "filtered"] == "M,M,L"
    # each seed's own row has its own cause, never `seeds`; digit 0: seed 0 agrees, seeds 1 and 2 failed the gates
    own = joined[~joined["counted"]].set_index(["digit", "seed"])["why"]
    assert "seeds" not in set(own)
    assert own.loc["2"].tolist() == ["", "quality", "quality"] == own.loc["0"].tolist()
    assert own.loc["4"].tolist() == ["stable", "quality", "quality"]  # seed 2's filtered L comes after its gates
    summary, _ = paper.compare(metrics, tables)
    assert summary["disagreements"]["by_why"]["seeds"]["paper_L_study_M"] == 1
    # the seeds beside each other, digits only: 0 (L, M, M) and 5 (L, M) split; 2 judged by two seeds, alike
    assert summary["seed_agreement"][0] == {"factor": "colour", "model": "gan", "judged": 10, "unanimous": 8}
    assert [(r["factor"], r["model"]) for r in summary["seed_agreement"]] == [
        *(("colour", "gan"), ("colour", "all"), ("all", "gan"), ("all", "all"))
    ]
    assert "| colour | 80% (8/10) | 80% (8/10) |" in paper.readme(summary)
    assert paper.seed_agreement(joined[joined["seed"] == "0"]) == []
    text = paper.readme(summary)
    assert "## Why cells disagree" in text and "1 P_c^u is 0 or 1 (`degenerate_balanced`)" in text


def test_a_study_without_a_cell_of_the_paper_is_one_line(tmp_path):
    folder = write_paper(tmp_path / "p", {(1, "colour", "gan"): "MMMMMMMMMMM"})
    with pytest.raises(RgfError, match="no metrics file of a generative model"):
        paper.join([run("data-learner", "colour", 1, 0, "M" * 11)], paper.load_paper(folder))


# --- rgf paper ----------------------------------------------------------------


@pytest.fixture
def study(tmp_path):
    root = tmp_path / "metrics"
    for model in ("gan", "data-memorizer", "data-learner"):
        write_metrics(root, model, "colour", 1)
    return root


def test_rgf_paper_writes_the_comparison(study, tmp_path, capsys):
    out = tmp_path / "paper"
    argv = ["paper", "--metrics", str(study), "--paper", str(PAPER), "--out", str(out)]
    assert main(argv) == 0
    assert "4/10 cells agree" in capsys.readouterr().err
    summary = json.loads((out / "comparison.json").read_text())
    # the GAN's classes 0, 2, 3 and total memorized, 4-8 and the rare class learned, 9 without samples;
    # the paper: M on every colour cell
    assert summary["left_out"]["control_files"] == 2
    a = summary["agreement"]
    assert (a["cells"], a["compared"], a["undefined"], a["agree"], a["kappa"]) == (11, 10, 1, 4, 0.0)
    assert a["confusion"] == {"L": {"L": 0, "M": 0}, "M": {"L": 6, "M": 4}}
    assert summary["by"]["row"]["rare k=1"]["agree"] == 0
    assert summary["claims"]["a"]["study"] == {"holds": False, "numbers": "GAN 6/9 L"}
    assert summary["claims"]["a"]["paper"]["holds"] is True
    assert len(pd.read_csv(out / "cells.csv")) == 11
    assert "**40% (4/10) agree**" in (out / "README.md").read_text()
    assert main(argv) == 0  # an earlier comparison is replaced


def test_rgf_paper_refuses_an_out_it_did_not_write(study, tmp_path, capsys):
    argv = ["paper", "--metrics", str(study), "--paper", str(PAPER), "--out"]
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    assert main([*argv, str(tmp_path / "taken")]) == 2
    assert "this output (paper) did not write" in capsys.readouterr().err
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "dvc.yaml").write_text("stages: {}\n")
    assert main([*argv, str(tmp_path / "repo")]) == 2
    assert "is or holds the project's root" in capsys.readouterr().err
    assert main(["paper", "--metrics", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main([*argv, str(tmp_path / "o"), "--classes", "classes_filtered"]) == 2  # files without the filter
    assert "gan/colour/k1-s0: no 'classes_filtered'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
