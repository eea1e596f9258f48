import io
import json

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from pipeline.errors import MetricsError
from pipeline.evaluation import report, tables
from pipeline.evaluation.stats import TESTS, compare, false_positive_rate
from pipeline.files import load_metrics, write_curves
from pipeline.io import MARKER
from pipeline.paths import metrics_path
from pipeline.stages import run
from pipeline.stages.report import main
from tests.helpers import compose, params, write_params

BALANCED = np.full((10, 2), 50, dtype=np.int64)  # 100 samples per class, half with f


def memorizer(k):
    """The skew reproduced exactly: f on in class k only."""
    skewed = np.zeros((10, 2), dtype=np.int64)
    skewed[:, 0] = 100
    skewed[k] = (0, 100)
    return skewed


def learner(k):
    """Same proportions as the balanced model, except a chance bump in class 3."""
    skewed = BALANCED.copy()
    skewed[3] = (39, 61)
    return skewed


def gan(k):
    """A mixture: classes 0-3 memorized, 4-8 learned, no samples of class 9."""
    skewed = BALANCED.copy()
    skewed[:4] = (70, 30)
    skewed[4:9] = (52, 48)
    skewed[9] = (0, 0)
    skewed[k] = (50, 50)
    return skewed


MAKERS = {"data-memorizer": memorizer, "data-learner": learner, "gan": gan}


def quality(fd, precision):
    """A quality block (pipeline/files.py QualityBlock) with this FD and precision."""
    baseline = {"fd": 1.5, "precision": 0.8, "recall": 0.8}
    return {
        **{"samples": 1000, "compared": 500, "reference": 1000, "fd": fd, "precision": precision, "recall": 0.5},
        **{"baseline": baseline, "ambiguity": 0.1, "ambiguity_threshold": 0.9, "k": 3, "per_class": {}},
    }


QUALITY = {"data-memorizer": quality(1.5, 0.8), "data-learner": quality(1.6, 0.8), "gan": quality(12.0, 0.4)}
FACTOR_VALUES = {"colour": ["red", "green"], "thin": ["plain", "thin"]}
# the study the metrics below belong to: MNIST, factors colour and thin, rare classes 1 and 2
STUDY = ("factors=[colour,thin]", "skew.rare_classes=[1,2]", "datasets=[balanced,skewed_k1,skewed_k2]")


def write_metrics(
    root,
    model,
    factor,
    k,
    balanced=BALANCED,
    test="one_sample",
    alpha=0.05,
    min_count=20,
    seed=0,
    skewed=None,
    rare_fraction=0.0,
):
    skewed = MAKERS[model](k) if skewed is None else skewed
    results = compare(balanced, skewed, rare_class=k, test=test, alpha=alpha, min_count=min_count)
    doc = {  # every key of a MetricsFile (pipeline/files.py), as the evaluate stage writes it
        "model": model,
        "factor": factor,
        "rare_class": k,
        "seed": seed,
        "source": "mnist-bundled",
        "rare_fraction": rare_fraction,
        "class_names": [str(c) for c in range(10)],
        "factor_values": FACTOR_VALUES[factor],
        "num_samples": int(skewed.sum()),
        "oracle_accuracy": {"label": 0.97, "factor": 0.9 if factor == "thin" else 0.99},
        "test": test,
        "alpha": alpha,
        "correction": "none",
        "min_count": min_count,
        "min_factor_confidence": 0.0,
        "dropped": {"balanced": 0, "skewed": 0},
        "quality": {run: QUALITY[model] for run in ("balanced", "skewed")},
        "low_quality": ["skewed: FD 40.0 > evaluation.max_fd 30"] if model == "gan" and k == 2 else [],
        "calibration": {},
        "control_resamples": 0,
        "sample_confidence": 0.93,
        "confident_fraction": 0.88,
        "classes": {key: r.to_dict() for key, r in results.items()},
    }
    path = metrics_path(root, model, factor, k, seed, rare_fraction)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return results


@pytest.fixture
def metrics_root(tmp_path):
    root = tmp_path / "metrics"
    for factor in ("colour", "thin"):
        for k in (1, 2):
            for model in MAKERS:
                if not (model == "gan" and factor == "thin"):
                    write_metrics(root, model, factor, k)
    # oracle metrics live beside the models and are not model metrics
    (root / "oracles").mkdir()
    (root / "oracles" / "colour.json").write_text("{}")
    return root


def study_params(folder, *overrides):
    """params.yaml of the study above (smoke profile, every model), with `overrides`."""
    return write_params(folder, compose("smoke", *STUDY, "oracle.min_accuracy=0.92", *overrides))


@pytest.fixture
def params_file(tmp_path):
    return study_params(tmp_path / "params")


def stage_argv(metrics, params_path, tmp_path, out=None, plots=None, summary=None, plot_data=None):
    """The report stage's command line: every path argument is required."""
    return [
        "--metrics",
        str(metrics),
        "--params",
        str(params_path),
        "--out",
        str(out or tmp_path / "reports"),
        "--plots",
        str(plots or tmp_path / "no-plots"),
        "--summary",
        str(summary or tmp_path / "s.json"),
        "--plot-data",
        str(plot_data or tmp_path / "plot-data"),
    ]


def test_load_metrics_skips_oracles(metrics_root):
    metrics = load_metrics(metrics_root)
    assert len(metrics) == 10
    assert {m["model"] for m in metrics} == set(MAKERS)
    assert load_metrics(metrics_root.parent / "absent") == []


def test_z_table_cells_and_absent_columns(metrics_root):
    df = tables.z_table(load_metrics(metrics_root), rare_class=1)
    assert list(df.index) == [str(c) for c in range(10)] + ["Total"]
    assert list(df.columns) == [
        ("colour", "GAN"),
        ("colour", "Memorizer"),
        ("colour", "Learner"),
        ("thin", "Memorizer"),
        ("thin", "Learner"),
    ]
    assert ("thin", "GAN") not in df.columns
    assert df.loc["0", ("colour", "Memorizer")] == "-10.00 (M)"
    assert df.loc["1", ("colour", "Memorizer")] == "10.00 (M)"
    assert df.loc["Total", ("thin", "Memorizer")] == "-25.30 (M)"
    assert df.loc["3", ("colour", "Learner")] == "2.20 (O)"
    assert df.loc["4", ("colour", "Learner")] == "0.00 (L)"
    assert df.loc["0", ("colour", "GAN")] == "-4.00 (M)"
    assert df.loc["5", ("colour", "GAN")] == "-0.40 (L)"
    assert df.loc["9", ("colour", "GAN")] == "– none"  # no samples of class 9
    assert tables.z_table(load_metrics(metrics_root), rare_class=7).empty


def test_z_bars_for_dvc_plots(metrics_root, params_file, tmp_path):
    bars = tables.z_bars(load_metrics(metrics_root))
    expected = {f"{model}-{factor}-k{k}" for model in MAKERS for factor in ("colour", "thin") for k in (1, 2)}
    assert set(bars) == expected - {"gan-thin-k1", "gan-thin-k2"}  # no GAN metrics for thin
    gan = bars["gan-colour-k1"]
    assert list(gan.columns) == ["class", "z", "verdict", "note", "critical", "title"]
    assert list(gan["class"]) == [str(c) for c in range(10)]
    by_class = gan.set_index("class")
    assert by_class.loc["0", "z"] == -4.0 and by_class.loc["0", "verdict"] == "memorized"
    # class 9 has no samples: undefined, kept with the reason and no z (not drawn as z = 0)
    assert pd.isna(by_class.loc["9", "z"]) and by_class.loc["9", "verdict"] == "undefined"
    assert by_class.loc["9", "note"] == "undefined: no samples"
    assert set(gan["critical"]) == {1.96} and set(gan["title"]) == {"GAN · colour · k = 1"}
    histories = tmp_path / "train" / "gan_sd-colour-s0"  # DVCLive's folders, as the train stage logs them
    probe = ("d_loss", "d_loss_k1_with", "d_loss_k1_without", "d_loss_k2_with", "d_loss_k2_without")
    rows = [(1, 1.2, 0.5, 0.9, 0.4, 0.8), (2, 1.1, 0.25, 1.5, 0.3, 0.7)]
    write_curves(histories / "balanced", [dict(zip(("epoch", *probe), r, strict=True)) for r in rows])
    write_curves(histories.parent / "vae-colour-s0" / "balanced", [{"epoch": 1, "loss": 3.0}])
    (histories.parent / "data-memorizer-colour-s0").mkdir()  # a control: no curves
    out = tmp_path / "plot-data"
    main(stage_argv(metrics_root, params_file, tmp_path, plots=histories.parent, plot_data=out))
    learner = pd.read_csv(out / "z" / "data-learner-thin-k2.csv")
    assert learner.loc[3, ["class", "z", "verdict"]].tolist() == [3, 2.2, "opposite"]
    assert len(list((out / "z").glob("*.csv"))) == 10
    # one probe chart per run folder and k, its balanced and skewed_k<k> runs in long form
    assert sorted(p.name for p in (out / "probe").iterdir()) == ["gan_sd-colour-s0-k1.csv", "gan_sd-colour-s0-k2.csv"]
    probe = pd.read_csv(out / "probe" / "gan_sd-colour-s0-k1.csv")
    assert probe.columns.tolist() == ["title", "dataset", "epoch", "images", "bce"]
    assert set(probe["title"]) == {"GAN-SD · colour · seed 0 · k = 1"} and set(probe["dataset"]) == {"balanced"}
    assert probe[["epoch", "images", "bce"]].values.tolist() == [
        [1, "with the factor", 0.5],
        [1, "without the factor", 0.9],
        [2, "with the factor", 0.25],
        [2, "without the factor", 1.5],
    ]
    # one loss chart per run folder, the probe columns left out; none for the control
    assert sorted(p.name for p in (out / "train").iterdir()) == ["gan_sd-colour-s0.csv", "vae-colour-s0.csv"]
    losses = pd.read_csv(out / "train" / "vae-colour-s0.csv")
    assert losses.values.tolist() == [["VAE · colour · seed 0", "balanced", 1, "loss", 3.0]]
    assert set(pd.read_csv(out / "train" / "gan_sd-colour-s0.csv")["term"]) == {"d_loss"}
    # quality: one point per model and factor (the metrics hold colour and thin; the GAN only colour)
    quality = pd.read_csv(out / "quality.csv")
    assert quality.columns.tolist() == ["model", "factor", "fd", "precision", "mean_abs_z"]
    pairs = set(zip(quality["model"], quality["factor"], strict=True))
    assert len(pairs) == len(quality) == 2 * quality["model"].nunique() - 1
    assert ("GAN", "colour") in pairs and ("GAN", "thin") not in pairs and ("Memorizer", "thin") in pairs


def test_a_study_without_controls_still_gets_its_summary(metrics_root, params_file, tmp_path):
    for control in ("data-memorizer", "data-learner"):
        for path in (metrics_root / control).rglob("*.json"):
            path.unlink()
    main(stage_argv(metrics_root, params_file, tmp_path))
    summary = json.loads((tmp_path / "s.json").read_text())
    assert set(summary["models"]) == {"gan"} and summary["learner_fp_rate"] == {}
    assert summary["models"]["gan"]["memorized"] == 2 * 3  # classes 0-3 but k, for k = 1 and k = 2


def test_metrics_of_other_studies_are_left_out(metrics_root, tmp_path):
    """A sweep of one model must not report the other models' older files."""
    gan_only = write_params(
        tmp_path / "gan-only",
        compose("smoke", "models=[gan]", "factors=[colour]", "skew.rare_classes=[1]", "datasets=[balanced,skewed_k1]"),
    )
    stale_probe = tmp_path / "train" / "gan-thin-s0"
    stale_probe.mkdir(parents=True)
    (stale_probe / "balanced.csv").write_text("epoch,d_loss,d_loss_k1_with,d_loss_k1_without\n1,1.2,0.5,0.9\n")
    out = tmp_path / "reports"
    main(stage_argv(metrics_root, gan_only, tmp_path, out=out, plots=stale_probe.parent, plot_data=tmp_path / "p"))
    summary = json.loads((tmp_path / "s.json").read_text())
    assert set(summary["models"]) == {"gan"} and set(summary["oracles"]) == {"colour"}
    # classes 0, 2, 3 at z = -4; 4-8 at -0.4; k = 1 at 0; 9 undefined
    # the pooled test with Holm: z = -0.2 / sqrt(0.4 * 0.6 * 2 / 100) = -2.89 (p 0.0039, x9 = 0.035): the same 3
    corrected = {"learned": 6, "memorized": 3}
    assert summary["models"]["gan"] == {
        "learned": 6,
        "memorized": 3,
        "mean_abs_z": round(14 / 9, 3),
        "two_proportion_holm": corrected,
        "fd": 12.0,
        "precision": 0.4,
        "seed_agreement": 1.0,
        "concentration": {"memorized": 0, "comparisons": 1},  # 50 of 380 f = 1 samples against 50 of 500
        "low_quality": 0,
    }
    readme = (out / "README.md").read_text()
    assert "9 metrics files under" in readme and "data-learner/thin/k2" in readme
    assert [p.name for p in (tmp_path / "p" / "z").iterdir()] == ["gan-colour-k1.csv"]
    assert list((tmp_path / "p" / "probe").iterdir()) == [] and not list(out.glob("probe_*"))


def test_summary_counts(metrics_root):
    metrics = load_metrics(metrics_root)
    df = tables.summary_table(metrics)
    paper, pooled = "one_sample", "two_proportion+holm"
    heads = (paper, pooled, "concentration")
    assert list(df.columns) == [(m, t) for m in ("GAN", "Memorizer", "Learner") for t in heads]
    # of the f = 1 samples, the share read as class k: the memorizer's 100 of 100 against 50 of 500
    assert df.loc[("colour", "k=1"), ("Memorizer", "concentration")] == "M 0.10→1.00"
    # the learner's 50 of 511 (class 3's bump adds 11) against 50 of 500
    assert df.loc[("colour", "k=1"), ("Learner", "concentration")] == "L 0.10→0.10"
    # the GAN's 50 of 380 (classes 0, 2, 3 at 30, 4-8 at 48, none of 9): z = 1.46, learned
    assert df.loc[("colour", "k=1"), ("GAN", "concentration")] == "L 0.10→0.13"
    assert df.loc[("Total", ""), ("Memorizer", "concentration")] == "M 4/4"
    assert df.loc[("colour", "k=1"), ("Memorizer", paper)] == "0/10"
    assert df.loc[("colour", "k=1"), ("Memorizer", pooled)] == "0/10"
    # the learner's chance bump in class 3: 61/100 against 50/100 is z = 0.11 / sqrt(0.25 / 100) = 2.2 under
    # the one-sample test (O, counted as M) but 0.11 / sqrt(0.555 * 0.445 * 2 / 100) = 1.57 pooled (L)
    assert df.loc[("colour", "k=1"), ("Learner", paper)] == "9/1"
    assert df.loc[("colour", "k=1"), ("Learner", pooled)] == "10/0"
    # k=1: classes 0, 2, 3 memorized, 1 and 4-8 learned, 9 undefined, under both tests
    assert df.loc[("colour", "k=1"), ("GAN", paper)] == "6/3"
    assert df.loc[("colour", "k=2"), ("GAN", pooled)] == "6/3 [low quality]"
    assert df.loc[("thin", "k=1"), ("GAN", paper)] == ""
    assert df.loc[("Total", ""), ("Memorizer", paper)] == "0/40"
    assert df.loc[("Total", ""), ("GAN", paper)] == "12/6"
    assert df.loc[("Total", ""), ("Learner", pooled)] == "40/0"
    plain = tables.summary_table(metrics, paper_style=False)
    assert plain.loc[("colour", "k=1"), ("Learner", paper)] == "9/0/1"
    assert plain.loc[("Total", ""), ("Learner", paper)] == "36/0/4"


def test_proportions(metrics_root):
    df = tables.proportions_table(load_metrics(metrics_root), rare_class=2)
    # Wilson 95% interval of 50/100: 0.4038 to 0.5962
    assert (df.drop(index="Total") == "0.50 [0.40, 0.60]").all().all()
    assert (df.loc["Total"] == "0.50 [0.47, 0.53]").all()  # 500 of 1,000


def test_effects(metrics_root):
    df = tables.effect_table(load_metrics(metrics_root), rare_class=1)
    # GAN class 0: 30/100 against 50/100; Newcombe 95% interval -0.33 to -0.06; h = 2 asin sqrt .3 - pi / 2
    assert df.loc["0", ("colour", "GAN")] == "-0.20 [-0.33, -0.06] h=-0.41"
    assert df.loc["9", ("colour", "GAN")] == "–"
    assert df.loc["5", ("colour", "Learner")] == "+0.00 [-0.14, +0.14] h=+0.00"


def test_false_positive_table_matches_stats(metrics_root):
    metrics = load_metrics(metrics_root)
    df = tables.false_positive_table(metrics)
    for test in TESTS:
        results = [
            compare(BALANCED, learner(k), rare_class=k, test=test, alpha=0.05)
            for _ in ("colour", "thin")
            for k in (1, 2)
        ]
        flagged, defined = false_positive_rate(results)
        row = df.loc[("Learner", test)]
        assert (row["flagged"], row["defined"], row["rate"]) == (flagged, defined, flagged / defined)
        assert df.loc[("Memorizer", test), "rate"] == 1.0
    # the chance bump in class 3 fools the one-sample test only
    assert df.loc[("Learner", "one_sample"), "flagged"] == 4
    assert df.loc[("Learner", "two_proportion"), "flagged"] == 0
    assert df.loc[("Learner", "one_sample"), "defined"] == 40


def test_quality_table(metrics_root):
    df = tables.quality_table(load_metrics(metrics_root), min_accuracy=0.92)
    assert df.loc[("GAN", "colour", 1, 0), "defined_classes"] == 9
    assert df.loc[("GAN", "colour", 1, 0), "sample_confidence"] == 0.93
    assert bool(df.loc[("Learner", "colour", 2, 0), "oracles_ok"])
    assert not bool(df.loc[("Learner", "thin", 2, 0), "oracles_ok"])


def test_to_markdown_flattens_multiindex():
    cols = pd.MultiIndex.from_tuples([("colour", "GAN"), ("thin", "VAE")], names=["factor", "model"])
    df = pd.DataFrame([["1.00 (L)", "–"], ["a|b", np.nan]], index=pd.Index(["0", "Total"], name="class"), columns=cols)
    lines = tables.to_markdown(df).splitlines()
    assert [c.strip() for c in lines[0].strip("|").split("|")] == ["class", "colour / GAN", "thin / VAE"]
    assert set(lines[1]) <= {"|", "-", " "}
    assert [c.strip() for c in lines[3].strip("|").split(" | ")] == ["Total", "a\\|b", "–"]


def test_corrupt_json_names_file(metrics_root, params_file, tmp_path, capsys):
    bad = metrics_root / "gan" / "colour" / "k2-s0.json"
    bad.write_text("{not json")
    with pytest.raises(MetricsError, match="gan/colour/k2-s0.json"):
        load_metrics(metrics_root)
    assert run(main, stage_argv(metrics_root, params_file, tmp_path)) == 2
    assert "gan/colour/k2-s0.json" in capsys.readouterr().err
    assert not (tmp_path / "reports").exists()


def test_a_metrics_file_missing_a_key_is_refused(metrics_root):
    path = metrics_root / "gan" / "colour" / "k1-s0.json"
    doc = json.loads(path.read_text())
    del doc["confident_fraction"]
    path.write_text(json.dumps(doc))
    with pytest.raises(MetricsError, match=r"gan/colour/k1-s0\.json.*confident_fraction"):
        load_metrics(metrics_root)


def test_misplaced_file_is_rejected(metrics_root):
    path = metrics_root / "gan" / "colour" / "k1-s0.json"
    doc = json.loads(path.read_text())
    doc["factor"] = "thin"
    path.write_text(json.dumps(doc))
    with pytest.raises(MetricsError, match="gan/colour/k1-s0.json: holds .*its path says"):
        load_metrics(metrics_root)


def test_stage_writes_readme_and_csvs(metrics_root, params_file, tmp_path):
    out = tmp_path / "reports"
    main(stage_argv(metrics_root, params_file, tmp_path, out=out, summary=tmp_path / "summary.json"))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["models"]["data-memorizer"] == {
        "learned": 0,
        "memorized": 40,
        "mean_abs_z": 10.0,
        "two_proportion_holm": {"learned": 0, "memorized": 40},
        "fd": 1.5,
        "precision": 0.8,
        "seed_agreement": 1.0,
        "concentration": {"memorized": 4, "comparisons": 4},
        "low_quality": 0,
    }
    assert summary["learner_fp_rate"]["two_proportion"] == 0.0
    assert summary["learner_fp_rate"]["one_sample"] == 0.1
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        MARKER,
        "README.md",
        "concentration.csv",  # from the counts: these files predate the stored test
        "effect_k1.csv",
        "effect_k2.csv",
        "false_positives.csv",
        "proportions_k1.csv",
        "proportions_k2.csv",
        "quality.csv",
        "summary.csv",
        "z_k1.csv",
        "z_k2.csv",
    ]
    readme = (out / "README.md").read_text()
    assert "No metrics from a manifest source" in readme
    assert "test `one_sample`, alpha = 0.05, correction `none`" in readme
    assert "-10.00 (M)" in readme and "Stale" not in readme
    assert "– few" in readme and "two_proportion+holm" in readme and "Newcombe" in readme
    assert "the configured test (`one_sample`) flags 10.0% (95% CI 4.0%-23.1%; 4 of 40)" in readme
    z = pd.read_csv(out / "z_k1.csv", header=[0, 1], index_col=0)
    assert z.loc["3", ("colour", "Learner")] == "2.20 (O)"


def test_stale_params_are_flagged(metrics_root, tmp_path):
    fisher = study_params(tmp_path / "fisher", "evaluation.test=fisher")
    out = tmp_path / "reports"
    main(stage_argv(metrics_root, fisher, tmp_path, out=out))
    assert "params.yaml asks for test `fisher`" in (out / "README.md").read_text()


def test_no_metrics_gives_a_readme(tmp_path, params_file):
    (tmp_path / "metrics").mkdir()
    out = tmp_path / "reports"
    main(stage_argv(tmp_path / "metrics", params_file, tmp_path, out=out))
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "README.md"]
    assert "No metrics found" in (out / "README.md").read_text()


def test_print_report(metrics_root):
    buf = io.StringIO()
    report.print_report(metrics_root, Console(file=buf, width=200))
    text = buf.getvalue()
    assert "rare class k = 1" in text and "colour / Memorizer" in text and "-25.30 (M)" in text


@pytest.mark.parametrize("width", [80, 100])
def test_print_report_fits_a_narrow_terminal_without_cutting_a_cell(metrics_root, width):
    """A pipe or an 80-column terminal: wide tables come in parts, every cell whole."""
    buf = io.StringIO()
    report.print_report(metrics_root, Console(file=buf, width=width))
    text = buf.getvalue()
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= width
    assert "(part 1 of" in text and "-25.30 (M)" in text  # the memorizer's total z, whole


def test_print_report_keeps_to_the_study_in_params(metrics_root, tmp_path):
    thin_only = params("smoke", "factors=[thin]", "skew.rare_classes=[1,2]", "datasets=[balanced,skewed_k1,skewed_k2]")
    buf = io.StringIO()
    report.print_report(metrics_root, Console(file=buf, width=300), thin_only)
    text = buf.getvalue()
    assert "thin / Memorizer" in text and "colour / Memorizer" not in text
    assert "Left out 6 metrics files of other studies" in text and "gan/colour/k1" in text


def test_rgf_report_on_a_missing_metrics_folder_fails_in_one_line(metrics_root, tmp_path, capsys, monkeypatch):
    from pipeline.cli import main as rgf

    monkeypatch.chdir(tmp_path)  # no params.yaml here: the whole of metrics/ is shown
    missing = tmp_path / "nonexistent"
    assert rgf(["report", "--metrics", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and err.strip().count("\n") == 0
    assert f"error: --metrics {missing}: no such folder; run the evaluate stages first (dvc repro)" in err
    # a --params that was asked for must exist; the default params.yaml need not
    assert rgf(["report", "--metrics", str(metrics_root), "--params", str(tmp_path / "nope.yaml")]) == 2
    assert f"{tmp_path / 'nope.yaml'}: not found" in capsys.readouterr().err
    assert rgf(["report", "--metrics", str(metrics_root)]) == 0
    assert "z per class, rare class k = 1" in capsys.readouterr().out


def test_a_low_quality_comparison_keeps_its_verdicts_marked_in_tables_1_2_and_4(metrics_root):
    metrics = load_metrics(metrics_root)
    z2, z1 = tables.z_table(metrics, 2), tables.z_table(metrics, 1)
    assert ("colour", "GAN [low quality]") in z2.columns and ("colour", "GAN") in z1.columns
    assert z2.loc["0", ("colour", "GAN [low quality]")] == "-4.00 (M)"
    summary = tables.summary_table(metrics)
    assert summary.loc[("colour", "k=2"), ("GAN", "one_sample")] == "6/3 [low quality]"
    assert summary.loc[("colour", "k=1"), ("GAN", "one_sample")] == "6/3"
    quality = tables.quality_table(metrics)
    gan = quality.xs(("GAN", "colour"))
    assert gan.loc[(2, 0), "low_quality"] and not gan.loc[(1, 0), "low_quality"]
    assert gan.loc[(1, 0), "fd_s"] == 12.0 and gan.loc[(1, 0), "fd_real"] == 1.5


def test_calibration_counts_every_redraw_with_an_interval(metrics_root):
    metrics = load_metrics(metrics_root)
    for m in metrics:
        if m["model"] == "data-learner":
            # 200 redraws x 10 classes per file: the one-sample test flags 17%, the pooled one 5%
            m["calibration"] = {
                "one_sample": {"flagged": 340, "defined": 2000},
                "two_proportion": {"flagged": 100, "defined": 2000},
                "fisher": {"flagged": 60, "defined": 2000},
            }
            m["control_resamples"] = 200
    fp = tables.false_positive_table(metrics)
    row = fp.loc[("Learner", "one_sample")]
    assert (row["files"], row["resamples"], row["flagged"], row["defined"]) == (4, 200, 1360, 8000)
    assert row["rate"] == 0.17
    # Wilson 95% interval of 1360 / 8000
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((0.16195, 0.17836), abs=5e-5)
    assert fp.loc[("Learner", "two_proportion"), "rate"] == 0.05
    assert fp.loc[("Memorizer", "one_sample"), "resamples"] == 0  # no redraws: the stored counts
    assert fp.loc[("Memorizer", "one_sample"), "rate"] == 1.0


def test_seeds_are_aggregated_with_their_agreement(tmp_path):
    """Seeds 0 and 1 reproduce the GAN's mixture, seed 2 moved nothing (every
    class learned, class 9 sampled); seed 3 belongs to another study."""
    root = tmp_path / "metrics"
    for seed, skewed in ((0, gan(1)), (1, gan(1)), (2, BALANCED), (3, BALANCED)):
        write_metrics(root, "gan", "colour", 1, seed=seed, skewed=skewed)
    study = params("smoke", "models=[gan]", "factors=[colour]", "seeds=[0,1,2]")
    result = report.study_report(load_metrics(root), study)
    assert [m["seed"] for m in result.metrics] == [0, 1, 2]
    assert "gan/colour/k1-s3" in result.readme
    z = result.tables["z_k1"][("colour", "GAN")]
    # class 0: z = -4, -4, 0 (one-sample, p_u = 0.5, n_s = 100): mean -2.67, sd 2.31
    assert z["0"] == "-2.67±2.31 (M 2/3 L 1/3)"
    assert z["4"] == "-0.27±0.23 (L 3/3)"  # -0.4, -0.4, 0
    assert z["1"] == "0.00±0.00 (L 3/3)"
    assert z["9"] == "– none (– 2/3 L 1/3)"  # no samples of class 9 in seeds 0 and 1
    summary = result.tables["summary"]
    # seeds 0, 1: 6 learned / 3 memorized; seed 2: 10/0
    assert summary.loc[("colour", "k=1"), ("GAN", "one_sample")] == "6-10/0-3"
    assert summary.loc[("Total", ""), ("GAN", "one_sample")] == "6-10/0-3"
    effect = result.tables["effect_k1"][("colour", "GAN")]
    assert effect["0"] == "-0.13 (seeds -0.20..+0.00) h=-0.27"
    headline = result.summary
    assert headline["seeds"] == [0, 1, 2]
    gan_row = headline["models"]["gan"]
    assert (gan_row["learned"], gan_row["memorized"]) == (7.33, 2)  # (6 + 6 + 10) / 3, (3 + 3 + 0) / 3
    assert gan_row["seed_agreement"] == 0.6  # classes 1, 4-8 agree; 0, 2, 3 and 9 do not
    assert "3 seeds" in result.readme and "`M 3/3`" in result.readme
    bars = tables.z_bars(result.metrics)["gan-colour-k1"].set_index("class")
    assert bars.loc["0", "verdict"] == "memorized" and bars.loc["0", "z"] == round(-8 / 3, 4)


def test_one_seed_keeps_the_plain_cells(metrics_root):
    z = tables.z_table(load_metrics(metrics_root), 1)[("colour", "GAN")]
    assert z["0"] == "-4.00 (M)"


def test_a_study_of_several_rare_fractions_tables_its_sharpest_and_names_the_rest(tmp_path):
    """skew.rare_fractions [0, 0.5]: Table 4 and the z tables are r = 0's (the
    GAN's mixture); the r = 0.5 comparison (nothing moved) is named as the
    rarity curve's point, not averaged in as if it were a second seed."""
    root = tmp_path / "metrics"
    write_metrics(root, "gan", "colour", 1, skewed=gan(1))
    write_metrics(root, "gan", "colour", 1, skewed=BALANCED, rare_fraction=0.5)
    assert sorted(p.name for p in (root / "gan" / "colour").iterdir()) == ["k1-s0.json", "k1_r50-s0.json"]
    study = params("smoke", "models=[gan]", "factors=[colour]", "skew.rare_fractions=[0,0.5]")
    result = report.study_report(load_metrics(root), study)
    assert [m["rare_fraction"] for m in result.metrics] == [0.0] and result.rare_fraction == 0.0
    assert result.tables["z_k1"][("colour", "GAN")]["0"].startswith("-4.00")  # one run, not the mean with 0
    note = "1 comparisons at the study's other rare fractions (r = 0.5) are the rarity curve's points"
    assert note in result.readme
    out = io.StringIO()
    report.print_report(root, Console(file=out, width=200))  # without params: the smallest fraction there
    assert note in " ".join(out.getvalue().split())


def test_an_earlier_designs_relaxed_skew_file_is_read_under_its_old_name(tmp_path):
    """Before the rare fractions were a list, a run at r = 0.25 was written as
    k1-s0.json; it still loads (a persisted output a report must not choke
    on), while a file whose content names another run is still refused."""
    root = tmp_path / "metrics"
    write_metrics(root, "gan", "colour", 1, skewed=gan(1), rare_fraction=0.25)
    (root / "gan" / "colour" / "k1_r25-s0.json").rename(root / "gan" / "colour" / "k1-s0.json")
    assert [m["rare_fraction"] for m in load_metrics(root)] == [0.25]
    (root / "gan" / "colour" / "k1-s0.json").rename(root / "gan" / "colour" / "k1_r5-s0.json")
    with pytest.raises(MetricsError, match="holds model/factor/skew-seed .*'k1_r25-s0'.* its path says"):
        load_metrics(root)
