"""The rarity curve (`rgf rarity`): per-run counts, the seeds' aggregation,
the r = 0.5 null check against the learner's false-positive rate, the
figure, and which experiments are collected."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.errors import MetricsError
from pipeline.evaluation import experiments, rarity
from pipeline.files import load_metrics
from pipeline.io import MARKER
from tests.helpers import compose, dvc, dvc_env, params, sh, write_params
from tests.test_report import BALANCED, learner, memorizer, write_metrics


def shifted(k, moved):
    """Counts where the first `moved` classes other than k lost the factor (70/30)."""
    skewed = BALANCED.copy()
    others = [c for c in range(10) if c != k][:moved]
    skewed[others] = (70, 30)
    return skewed


@pytest.fixture
def sweep(tmp_path):
    """A GAN at r = 0 (seeds: 6 and 8 classes moved), 0.1 (seed 0: 2) and
    0.5 (seeds: 0 and 1 moved), and the learner at r = 0.5."""
    root = tmp_path / "metrics"
    for r, seed, moved in [(0.0, 0, 6), (0.0, 1, 8), (0.1, 0, 2), (0.5, 0, 0), (0.5, 1, 1)]:
        write_metrics(root / f"r{r}", "gan", "colour", 1, skewed=shifted(1, moved), seed=seed, rare_fraction=r)
    write_metrics(root / "r0.5", "data-learner", "colour", 1, skewed=learner(1), rare_fraction=0.5)
    return [m for folder in sorted(root.iterdir()) for m in load_metrics(folder)]


def test_run_rows_count_each_comparison(sweep):
    runs = rarity.run_rows(sweep).set_index(["model", "rare_fraction", "seed"])
    assert runs.loc[("gan", 0.0, 1), "memorized"] == 8
    assert runs.loc[("gan", 0.0, 1), "tested"] == 10
    assert runs.loc[("gan", 0.0, 1), "learned"] == 2
    assert runs.loc[("gan", 0.1, 0), "memorized"] == 2
    # 30% against 50% at n = 100: z = -0.2 / sqrt(0.25 / 100) = -4 (one-sample) in the moved classes, 0 elsewhere
    assert runs.loc[("gan", 0.0, 1), "mean_abs_z"] == pytest.approx(8 * 4 / 10)
    assert runs.loc[("gan", 0.5, 1), "mean_abs_z"] == pytest.approx(4 / 10)
    # of the f = 1 samples, the share in class 1: 50 of 500 in the balanced run; 50 of 50 + 8 x 30 + 50 = 340
    # when 8 classes lost the factor, a rise from 0.10 to 0.147, z = 2.06 (p 0.04): memorized
    assert runs.loc[("gan", 0.0, 1), "concentration_balanced"] == 0.1
    assert runs.loc[("gan", 0.0, 1), "concentration_skewed"] == pytest.approx(50 / 340)
    assert runs.loc[("gan", 0.0, 1), "concentration_memorized"] == 1
    assert runs.loc[("gan", 0.5, 0), "concentration_memorized"] == 0


def test_curve_table_means_and_ranges_over_seeds(sweep):
    table = rarity.curve_table(rarity.run_rows(sweep))
    gan = table[table["model"] == "gan"].set_index("rare_fraction")
    assert list(gan.index) == [0.0, 0.1, 0.5]
    assert gan.loc[0.0, "seeds"] == 2
    assert (gan.loc[0.0, "memorized"], gan.loc[0.0, "memorized_min"], gan.loc[0.0, "memorized_max"]) == (7, 6, 8)
    assert gan.loc[0.1, "seeds"] == 1
    assert gan.loc[0.5, "memorized"] == 0.5
    # controls after the generative models, as in the paper's tables
    assert list(table["model"].unique()) == ["gan", "data-learner"]
    cells = rarity.grid(table)
    assert cells.loc[("colour", "k=1", "GAN"), "r=0"] == "7 (6-8)/10 [7 (6-8)] 2.8 (2.4-3.2)"
    assert list(cells.columns) == ["r=0", "r=0.1", "r=0.5"]


def test_p_skewed_others_pools_every_class_but_the_rare_one(sweep, tmp_path):
    runs = rarity.run_rows(sweep).set_index(["model", "rare_fraction", "seed"])
    # k = 1; 8 of the other 9 classes at 30 of 100 with f, one at 50: 290 / 900; balanced 450 / 900
    assert runs.loc[("gan", 0.0, 1), "p_skewed_others"] == pytest.approx(290 / 900)
    assert runs.loc[("gan", 0.0, 1), "p_balanced_others"] == pytest.approx(0.5)
    # the learner's chance bump in class 3 (61 of 100) counts; the rare class itself never does
    assert runs.loc[("data-learner", 0.5, 0), "p_skewed_others"] == pytest.approx(461 / 900)
    gan = rarity.curve_table(rarity.run_rows(sweep)).set_index(["model", "rare_fraction"]).loc["gan"]
    assert (gan.loc[0.0, "p_skewed_others_min"], gan.loc[0.0, "p_skewed_others_max"]) == pytest.approx(
        (290 / 900, 330 / 900)
    )
    assert rarity.rate_grid(rarity.curve_table(rarity.run_rows(sweep))).loc[("colour", "k=1", "GAN"), "r=0"] == (
        "0.34 (0.32-0.37)"
    )
    # the memorizer gives f to class k = 2 only: 0 among the others, whatever class 2 holds
    write_metrics(tmp_path / "m", "data-memorizer", "colour", 2, skewed=memorizer(2), rare_fraction=0.0)
    assert rarity.run_rows(load_metrics(tmp_path / "m")).loc[0, "p_skewed_others"] == 0.0


def test_null_check_sets_r_half_beside_the_learner_rate(sweep):
    runs = rarity.run_rows(sweep)
    rates = {"one_sample": (0.1, 0.05, 0.2), "two_proportion": (0.02, 0.01, 0.04)}
    null = rarity.null_check(runs, rates).set_index(["model", "factor", "test"])
    # GAN at 0.5: 0 + 1 of 20 tested classes memorized; one factor, so no row over all factors
    assert set(null.index.get_level_values("factor")) == {"colour"}
    row = null.loc[("GAN", "colour", "one_sample")]
    assert (row["flagged"], row["tested"], row["share"]) == (1, 20, 0.05)
    assert row["within"]  # 0.05 <= 0.2
    # P(Bin(20, 0.2) >= 1) = 1 - 0.8^20
    assert row["p_value"] == pytest.approx(1 - 0.8**20)
    pooled = null.loc[("GAN", "colour", "two_proportion + holm")]
    assert pooled["learner_fp_upper"] == 0.04
    assert pooled["p_value"] == pytest.approx(1 - 0.96**20 if pooled["flagged"] else 1.0)
    # 2 of 10 at a rate of 0.13 is no evidence: P(Bin(10, 0.13) >= 2) = 0.37, although 0.2 > 0.13
    two = rarity.null_check(runs[runs["seed"] == 0].assign(memorized=2), {"one_sample": (0.1, 0.07, 0.13)})
    two = two.set_index(["model", "factor", "test"]).loc[("GAN", "colour", "one_sample")]
    assert (two["flagged"], two["tested"], two["share"]) == (2, 10, 0.2) and two["within"]
    assert two["p_value"] == pytest.approx(0.38037, abs=1e-5)
    # a model that memorizes at no skew is outside the rate: P(Bin(20, 0.2) >= 10) = 0.0026
    worse = rarity.null_check(runs.assign(memorized=np.where(runs["rare_fraction"] == 0.5, 5, 0)), rates)
    worse = worse.set_index(["model", "factor", "test"]).loc[("GAN", "colour", "one_sample")]
    assert worse["p_value"] == pytest.approx(0.002594827, abs=1e-8) and not worse["within"]
    # without a learner nothing is claimed
    assert rarity.null_check(runs, None)["within"].isna().all()
    # a second factor: a row per factor and one over both; the one that memorizes at no skew stands out
    thin = runs.assign(factor="thin", memorized=np.where(runs["rare_fraction"] == 0.5, 5, 0))
    both = rarity.null_check(pd.concat([runs, thin]), rates).set_index(["model", "factor", "test"])
    gan = both.xs(("GAN", "one_sample"), level=("model", "test"))
    assert list(gan.index) == ["colour", "thin", "all"]
    assert gan[["flagged", "tested"]].to_numpy().tolist() == [[1, 20], [10, 20], [11, 40]]
    assert gan["within"].tolist() == [True, False, True]  # P(Bin(40, 0.2) >= 11) = 0.16
    assert gan.loc["all", "p_value"] == pytest.approx(0.160769, abs=1e-6)


def test_null_check_counts_the_classes_that_moved_against_the_skew(tmp_path):
    # at r = 0.5, seed 0: classes 0 and 2 lose the factor (towards the skew), 3 and 4 gain it (70 of 100),
    # class 5 gains it a little (58 of 100: z = 1.6, learned); seed 1: class 6 gains it
    drift = {0: [(0, (70, 30)), (2, (70, 30)), (3, (30, 70)), (4, (30, 70)), (5, (42, 58))], 1: [(6, (30, 70))]}
    for seed, moves in drift.items():
        skewed = BALANCED.copy()
        for c, counts in moves:
            skewed[c] = counts
        write_metrics(tmp_path, "gan", "colour", 1, skewed=skewed, seed=seed, rare_fraction=0.5)
    runs = rarity.run_rows(load_metrics(tmp_path)).set_index("seed")
    assert runs.loc[0, ["memorized", "opposite", "learned"]].tolist() == [4, 2, 6]
    assert runs.loc[1, ["memorized", "opposite"]].tolist() == [1, 1]
    # pooled: z = 0.2 / sqrt(0.25 x 2 / 100) = 2.83, p = 0.0047; Holm's largest factor (x 10) gives 0.047 < 0.05
    assert runs.loc[0, ["memorized_corrected", "opposite_corrected"]].tolist() == [4, 2]
    null = rarity.null_check(runs.reset_index(), None).set_index("test")
    assert null.loc["one_sample", ["flagged", "opposite", "tested"]].tolist() == [5, 3, 20]
    assert null.loc["two_proportion + holm", ["flagged", "opposite"]].tolist() == [5, 3]


def test_learner_rates_come_from_the_learner_files(sweep):
    rates = rarity.learner_rates(sweep)
    # learner(k): one class (3) of ten moves to 61/39 -> flagged by the one-sample test
    rate, low, high = rates["one_sample"]
    assert rate == 0.1 and low < rate < high
    assert rarity.learner_rates([m for m in sweep if m["model"] != "data-learner"]) is None
    # the learner at another r of the same factor, k and seed is the same draw: counted once
    again = [{**m, "rare_fraction": 0.25} for m in sweep if m["model"] == "data-learner"]
    assert rarity.learner_rates(sweep + again) == rates
    # another seed is another measurement: twice the classes, the same rate, a narrower interval
    other = [{**m, "seed": 1} for m in again]
    rate2, low2, high2 = rarity.learner_rates(sweep + other)["one_sample"]
    assert rate2 == 0.1 and low < low2 and high2 < high


def test_write_curve_writes_every_file(sweep, tmp_path):
    out = tmp_path / "rarity"
    table, null = rarity.write_curve(sweep, out, experiments=3, notes=["other-exp: left out"])
    assert sorted(p.name for p in out.iterdir()) == [
        MARKER,
        "README.md",
        "curve.csv",
        "curve.png",
        "metrics",
        "null.csv",
        "runs.csv",
    ]
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pd.read_csv(out / "curve.csv").shape[0] == len(table) == 4
    text = (out / "README.md").read_text()
    assert (
        "3 DVC experiments collected this time" in text
        and "other-exp: left out" in text
        and "| 0.34 (0.32-0.37)" in text
        and "| r=0.5" in text.replace(" ", " ")
    )
    # a folder holding someone else's files is refused, not replaced
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    with pytest.raises(Exception, match="did not write"):
        rarity.write_curve(sweep, other, experiments=3, notes=[])
    assert (other / "notes.txt").read_text() == "keep"


def test_a_curve_keeps_its_runs_and_a_slice_rerun_replaces_only_its_own(sweep, tmp_path):
    """Slices run in other sessions: the folder keeps every run's metrics file,
    and a collection merges the runs found now into them. A slice re-run (r =
    0.1, seed 0, now 5 classes moved) replaces its own file; every other
    file stays byte for byte."""
    out = tmp_path / "rarity"
    rarity.write_curve(sweep, out, experiments=5, notes=[])
    files = sorted(p.relative_to(out) for p in (out / "metrics").rglob("*.json"))
    assert [str(f) for f in files] == [  # a run's skew names its rare fraction: k1_r10 is r = 0.1
        "metrics/data-learner/colour/k1_r50-s0.json",
        "metrics/gan/colour/k1-s0.json",
        "metrics/gan/colour/k1-s1.json",
        "metrics/gan/colour/k1_r10-s0.json",
        "metrics/gan/colour/k1_r50-s0.json",
        "metrics/gan/colour/k1_r50-s1.json",
    ]
    before = {f: (out / f).read_bytes() for f in files}
    kept = rarity.kept_metrics(out)
    assert sorted(map(experiments.run_key, kept)) == sorted(map(experiments.run_key, sweep))
    rerun = tmp_path / "rerun"
    write_metrics(rerun, "gan", "colour", 1, skewed=shifted(1, 5), seed=0, rare_fraction=0.1)
    table, _ = rarity.write_curve(experiments.merged(kept, load_metrics(rerun)), out, experiments=1, notes=[])
    changed = {f for f in files if (out / f).read_bytes() != before[f]}
    assert changed == {Path("metrics/gan/colour/k1_r10-s0.json")}
    assert table.set_index(["model", "rare_fraction"]).loc[("gan", 0.1), "memorized"] == 5
    assert len(rarity.kept_metrics(out)) == len(sweep)


def test_a_curve_written_before_keeps_its_runs_in_folders_per_fraction(sweep, tmp_path):
    """A curve of the earlier layout (metrics/r<r>/<model>/<factor>/k<k>-s<seed>.json,
    the fraction only in the folder's name and the file) is read as it is,
    and the next collection writes its runs in today's layout."""
    out = tmp_path / "rarity"
    rarity.write_curve(sweep, out, experiments=0, notes=[])
    shutil.rmtree(out / "metrics")
    for m in sweep:
        path = out / "metrics" / f"r{m['rare_fraction']:g}" / m["model"] / m["factor"] / f"k1-s{m['seed']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(m))
    kept = rarity.kept_metrics(out)
    assert sorted(map(experiments.run_key, kept)) == sorted(map(experiments.run_key, sweep))
    rarity.write_curve(kept, out, experiments=0, notes=[])
    assert not list((out / "metrics").glob("r*")) and len(rarity.kept_metrics(out)) == len(sweep)


def test_rgf_rarity_puts_kept_runs_together_without_any_experiment(empty_repo, sweep, tmp_path):
    """A fresh clone without the earlier slices' experiments: `rgf rarity`
    redraws the curve from the runs the folder keeps."""
    from pipeline.cli import main

    out = tmp_path / "rarity"
    reference = params("quick")
    rarity.write_curve(sweep, out, experiments=5, notes=[], params=reference)
    (out / "curve.csv").unlink()
    assert main(["rarity", "--repo", str(empty_repo), "--params", str(out / "params.yaml"), "--out", str(out)]) == 0
    assert len(pd.read_csv(out / "curve.csv")) == 4
    assert "0 DVC experiments collected this time" in (out / "README.md").read_text()
    # its params.yaml spans what the curve holds, not only what the last slice ran
    stored = yaml.safe_load((out / "params.yaml").read_text())
    assert stored["models"] == ["gan", "data-learner"] and stored["factors"] == ["colour"]
    assert stored["seeds"] == [0, 1] and stored["skew"]["rare_fractions"] == [0.0, 0.1, 0.5]
    assert stored["skews"] == [f"k{k}{r}" for k in reference.skew.rare_classes for r in ("", "_r10", "_r50")]


def test_rgf_rarity_without_experiments_or_kept_runs_is_one_line(empty_repo, tmp_path, capsys):
    from pipeline.cli import main

    reference = write_params(tmp_path, compose("quick"))
    assert main(["rarity", "--repo", str(empty_repo), "--params", str(reference), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "keeps no runs; run the sweep first" in err
    assert not (tmp_path / "r").exists()


def test_the_design_leaves_out_only_what_a_sweep_varies():
    base = params("quick")
    swept = params("quick", "skew.rare_fractions=[0,0.25]", "models=[vae,ddpm]", "seeds=[0,1]", "factors=[thin]")
    assert experiments.design(base) == experiments.design(swept)
    other = params("quick", "vae.epochs=99")
    assert experiments._differences(experiments.design(other), experiments.design(base)) == ["vae.epochs"]


def test_experiments_left_out_are_named_once_per_way_they_differ():
    notes = experiments.left_out_notes(
        {
            "skew.rare_classes": ["survey-thin-s0", "survey-colour-s1", "survey-colour-s0"],
            "gan_sd.sd_lambda": ["sd-0p1"],
        }
    )
    assert notes == [
        "sd-0p1: left out, its params differ in gan_sd.sd_lambda",
        "3 experiments left out, their params differ in skew.rare_classes: "
        "survey-colour-s0, survey-colour-s1, survey-thin-s0",
    ]
    assert experiments.left_out_notes({}) == []


def test_memorizer_moves_every_class(tmp_path):
    write_metrics(tmp_path / "m", "data-memorizer", "colour", 2, skewed=memorizer(2), rare_fraction=0.0)
    runs = rarity.run_rows(load_metrics(tmp_path / "m"))
    assert runs.loc[0, "memorized"] == 10 and runs.loc[0, "rare_fraction"] == 0.0


@pytest.fixture
def empty_repo(tmp_path):
    """A git + DVC repository without experiments."""
    repo = tmp_path / "repo"
    repo.mkdir()
    env = dvc_env()
    sh(["git", "init", "-q"], repo, env)
    dvc(repo, env, "init", "-q")
    return repo


def test_assemble_keeps_earlier_slices_and_writes_the_report(empty_repo, tmp_path):
    out = tmp_path / "survey"
    # a slice assembled in an earlier session: only its metrics files are left
    for model in ("gan", "data-learner"):
        write_metrics(out / "metrics", model, "colour", 1)
    reference = params("smoke")
    (out / "params.yaml").write_text(yaml.safe_dump(reference.model_dump(mode="json")))
    now, total, notes = experiments.assemble(empty_repo, reference, out)
    assert (now, total, notes) == (0, 2, [])
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "metrics", "params.yaml", "summary.json", "tables"]
    # the study's params: the reference's design with the models, factors and seeds the slices ran
    study = experiments.parse_params(yaml.safe_load((out / "params.yaml").read_text()))
    assert experiments.design(study) == experiments.design(reference)
    assert (study.models, study.factors, study.seeds) == (["gan", "data-learner"], ["colour"], [0])
    readme = (out / "tables" / "README.md").read_text()
    assert "colour / GAN" in readme and "Table 4" in readme
    assert set(json.loads((out / "summary.json").read_text())["models"]) == {"gan", "data-learner"}


def test_assemble_keeps_every_seed_of_a_survey_run_one_seed_at_a_time(empty_repo, tmp_path):
    """Slices of seeds 0, 1 and 2 against the profile's params (seeds: [0]):
    every seed's runs are in the study and its report, none left out."""
    out = tmp_path / "survey"
    for seed in (0, 1, 2):
        write_metrics(out / "metrics", "gan", "colour", 1, seed=seed)
    write_metrics(out / "metrics", "gan", "thin", 1, seed=1)
    reference = params("smoke")
    assert reference.seeds == [0]
    (out / "params.yaml").write_text(yaml.safe_dump(reference.model_dump(mode="json")))
    assert experiments.assemble(empty_repo, reference, out)[1] == 4
    assert json.loads((out / "summary.json").read_text())["seeds"] == [0, 1, 2]
    readme = (out / "tables" / "README.md").read_text()
    assert "seeds 0, 1, 2." in readme and "Left out" not in readme
    assert yaml.safe_load((out / "params.yaml").read_text())["factors"] == ["colour", "thin"]


def _experiment(repo, name: str, files: dict[str, bytes], env) -> str:
    """A commit holding `files`, under the experiment ref `dvc exp run -n <name>`
    would make (refs/exps/<base[:2]>/<base[2:]>/<name>); the workspace stays at the base."""
    if sh(["git", "rev-parse", "-q", "--verify", "HEAD"], repo, env, check=False).returncode != 0:
        sh(["git", "commit", "-q", "-m", "base"], repo, env)
    base = sh(["git", "rev-parse", "HEAD"], repo, env).stdout.strip()
    for path, content in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_bytes(content)
    sh(["git", "add", *files], repo, env)
    tree = sh(["git", "write-tree"], repo, env).stdout.strip()
    commit = sh(["git", "commit-tree", tree, "-p", base, "-m", name], repo, env).stdout.strip()
    sh(["git", "update-ref", f"refs/exps/{base[:2]}/{base[2:]}/{name}", commit], repo, env)
    sh(["git", "reset", "-q", "--hard", base], repo, env)
    return commit


def test_assemble_brings_each_collected_runs_reads_and_keeps_the_others(empty_repo, tmp_path):
    """A slice's reads arrive with its metrics, from the experiment's commit;
    reads assembled earlier stay byte for byte; a run collected again without
    reads loses the stale ones (reads never stand beside another run's metrics)."""
    env = dvc_env()
    out = tmp_path / "survey"
    write_metrics(out / "metrics", "gan", "colour", 1, seed=0)
    write_metrics(out / "metrics", "gan", "colour", 1, seed=2)
    (out / "reads" / "gan" / "colour").mkdir(parents=True)
    (out / "reads" / "gan" / "colour" / "k1-s0.npz").write_bytes(b"seed 0, an earlier session")
    (out / "reads" / "gan" / "colour" / "k1-s2.npz").write_bytes(b"seed 2, stale")
    reference = params("smoke")
    (out / "params.yaml").write_text(yaml.safe_dump(reference.model_dump(mode="json")))
    slices = tmp_path / "slices"
    for seed in (1, 2):
        write_metrics(slices, "gan", "colour", 1, seed=seed)
    for seed, reads in ((1, {"reads/gan/colour/k1-s1.npz": b"seed 1, from its experiment"}), (2, {})):
        raw = compose("smoke", f"seeds=[{seed}]", "models=[gan]", "factors=[colour]")
        files = {"params.yaml": yaml.safe_dump(raw).encode(), **reads}
        files[f"metrics/gan/colour/k1-s{seed}.json"] = (slices / "gan" / "colour" / f"k1-s{seed}.json").read_bytes()
        _experiment(empty_repo, f"smoke-colour-s{seed}", files, env)
    assert experiments.assemble(empty_repo, reference, out)[:2] == (2, 3)
    reads = {p.name: p.read_bytes() for p in (out / "reads" / "gan" / "colour").iterdir()}
    assert reads == {"k1-s0.npz": b"seed 0, an earlier session", "k1-s1.npz": b"seed 1, from its experiment"}


def test_assemble_without_any_metrics_is_one_line(empty_repo, tmp_path):
    with pytest.raises(MetricsError, match="run a slice first"):
        experiments.assemble(empty_repo, params("smoke"), tmp_path / "survey")
    assert not (tmp_path / "survey").exists()
