import re

import numpy as np
import pytest
from PIL import Image

from pipeline.data.build import write_datasets
from pipeline.data.datasets import assemble
from pipeline.errors import DataError
from pipeline.files import DataManifest, DatasetEntry, SampleMeta, read, read_samples
from pipeline.generative.controls import control_samples, draw_indices, pool
from pipeline.stages import evaluate, run, sample
from tests.helpers import compose, params, write_params


def _dataset(n=100, value=0, f=None):
    images = np.full((n, 28, 28, 3), value, np.uint8)
    labels = np.arange(n) % 10
    f = np.zeros(n, np.uint8) if f is None else f
    return assemble(images, images + 1, labels, f, np.zeros(n, bool))


def test_draw_is_without_replacement_when_possible():
    rng = np.random.default_rng(0)
    idx = draw_indices({"balanced": 100}, {"balanced": 1.0}, 50, rng, "balanced")["balanced"]
    assert idx.tolist() == pool("balanced", "balanced", 100).tolist()  # every image of the balanced run's half
    assert len(draw_indices({"balanced": 100}, {"balanced": 1.0}, 80, rng, "balanced")["balanced"]) == 80


def test_memorizer_draws_from_its_training_set_and_learner_from_balanced():
    pools = {"skewed_k1": _dataset(value=10), "balanced": _dataset(value=200)}
    rng = np.random.default_rng(0)
    assert (control_samples("data-memorizer", "skewed_k1", pools, 30, rng, 0.2) == 10).all()
    assert (control_samples("data-learner", "skewed_k1", pools, 30, rng, 0.2) == 200).all()
    with pytest.raises(ValueError, match="not a control; choose one of data-memorizer, data-learner, data-mixer"):
        control_samples("gan", "skewed_k1", pools, 30, rng, 0.2)


@pytest.fixture()
def data_dir(tmp_path):
    """data/colour of the smoke profile (balanced and skewed_k1, 100 images
    each, told apart by their pixels, with their manifest) and its params with M = 40."""
    skew = (np.arange(100) % 10 == 1).astype(np.uint8)
    datasets = {"balanced": _dataset(f=np.arange(100) % 2), "skewed_k1": _dataset(value=100, f=skew)}
    write_datasets(tmp_path / "colour", "colour", datasets, params("smoke"))
    write_params(tmp_path, compose("smoke", "evaluation.num_samples=40"))
    return tmp_path


def _sample_argv(data_dir, model, dataset, seed=0):
    """The sample stage's command line as dvc.yaml writes it, into data_dir."""
    run_name = f"{model}-colour-{dataset}-s{seed}"
    return [
        *("--params", str(data_dir / "params.yaml"), "--model", model, "--factor", "colour"),
        *("--dataset", dataset, "--seed", str(seed), "--data", str(data_dir / "colour")),
        *("--model-dir", str(data_dir / "models" / f"{model}-colour-s{seed}" / dataset)),
        *("--out", str(data_dir / "samples" / run_name)),
        *("--grid", str(data_dir / "plots" / f"{run_name}.png")),  # never the workspace's plots/
    ]


def test_sample_stage_writes_images_meta_and_grid(data_dir):
    assert run(sample.main, _sample_argv(data_dir, "data-memorizer", "skewed_k1")) == 0
    out = data_dir / "samples" / "data-memorizer-colour-skewed_k1-s0"
    images = read_samples(out, "data-memorizer", "colour", "skewed_k1", 0)
    assert images.shape == (40, 28, 28, 3)
    # the memorizer's samples are images of the skewed set it was given (pixels 100 and 101)
    assert images.min() >= 100
    meta = read(SampleMeta, out / "meta.json", "")
    assert meta.run == "data-memorizer-colour-skewed_k1-s0" and meta.num_samples == 40 and meta.seed == 0
    grid = data_dir / "plots" / "data-memorizer-colour-skewed_k1-s0.png"
    assert Image.open(grid).size == (3 * (10 * 30 + 2), 3 * (4 * 30 + 2))  # 40 samples: 4 rows of 10, zoom 3
    with pytest.raises(DataError, match=re.escape("expected {'model': 'data-memorizer', 'factor': 'thin'")):
        read_samples(out, "data-memorizer", "thin", "skewed_k1", 0)


def test_sample_stage_rejects_unknown_dataset_and_model(data_dir, capsys):
    assert run(sample.main, _sample_argv(data_dir, "data-memorizer", "skewed_k7")) == 2
    assert "dataset 'skewed_k7' is not configured" in capsys.readouterr().err
    assert run(sample.main, _sample_argv(data_dir, "glow", "balanced")) == 2
    assert "model 'glow' has no sampler" in capsys.readouterr().err
    assert run(sample.main, _sample_argv(data_dir, "data-memorizer", "balanced", seed=5)) == 2
    assert "seed 5 is not in seeds [0]; pick one of those" in capsys.readouterr().err
    assert not (data_dir / "samples").exists() and not (data_dir / "plots").exists()


def test_missing_samples_are_reported(tmp_path):
    with pytest.raises(DataError, match=r"meta\.json: missing; run `dvc repro sample-"):
        read_samples(tmp_path, "data-learner", "colour", "balanced", 0)
    meta = SampleMeta(
        run="data-learner-colour-balanced",
        model="data-learner",
        factor="colour",
        dataset="balanced",
        num_samples=40,
        seed=0,
    )
    meta.write(tmp_path / "meta.json")
    with pytest.raises(DataError, match="missing or corrupt samples"):
        read_samples(tmp_path, "data-learner", "colour", "balanced", 0)


def _manifest(counts: dict) -> DataManifest:
    """A data manifest whose skewed_k1 set has `counts`."""
    entry = DatasetEntry(size=sum(c["f0"] + c["f1"] for c in counts.values()), counts=counts, sha256={})
    return DataManifest(
        factor="colour",
        source="mnist-bundled",
        seed=0,
        skew={"rare_classes": [1], "rare_fractions": [0.0]},
        num_classes=10,
        class_names=[str(c) for c in range(10)],
        factor_values=("red", "green"),
        image_size=28,
        datasets={"skewed_k1": entry},
    )


def test_total_direction_follows_the_skewed_counts():
    counts = {str(c): {"f0": 90, "f1": 10} for c in range(10)}
    assert _manifest(counts).skew_direction("skewed_k1") == -1
    counts = {str(c): {"f0": 10, "f1": 90} for c in range(10)}
    assert _manifest(counts).skew_direction("skewed_k1") == 1
    with pytest.raises(DataError, match="no dataset 'skewed_k2'"):
        _manifest(counts).skew_direction("skewed_k2")


def _evaluate_setup(data_dir):
    """Samples of both control runs for colour, k=1, and an existing metrics file."""
    for dataset in ("balanced", "skewed_k1"):
        assert run(sample.main, _sample_argv(data_dir, "data-learner", dataset)) == 0
    old = data_dir / "metrics" / "data-learner" / "colour" / "k1-s0.json"
    old.parent.mkdir(parents=True)
    old.write_text("OLD")
    return old


def _evaluate(data_dir, old, oracles, oracle_metrics, skew="k1"):
    """The evaluate stage's command line as dvc.yaml writes it, into data_dir."""
    argv = ["--params", str(data_dir / "params.yaml"), "--model", "data-learner", "--factor", "colour"]
    argv += ["--skew", skew, "--seed", "0", "--samples", str(data_dir / "samples")]
    argv += ["--data", str(data_dir / "colour")]
    argv += ["--oracles", str(oracles), "--oracle-metrics", str(oracle_metrics)]
    reads = data_dir / "reads" / "data-learner" / "colour" / "k1-s0.npz"
    return run(evaluate.main, argv + ["--out", str(old), "--reads", str(reads)])


def test_evaluate_refuses_samples_of_another_factor_and_keeps_old_metrics(data_dir, capsys):
    old = _evaluate_setup(data_dir)
    meta = data_dir / "samples" / "data-learner-colour-skewed_k1-s0" / "meta.json"
    meta.write_text(meta.read_text().replace('"colour"', '"thin"'))
    oracles = data_dir / "models" / "oracles" / "colour"
    assert _evaluate(data_dir, old, oracles, data_dir / "metrics" / "oracles" / "colour.json") == 2
    assert "samples of {'model': 'data-learner', 'factor': 'thin'" in capsys.readouterr().err
    assert old.read_text() == "OLD"
    assert sorted(p.name for p in old.parent.iterdir()) == ["k1-s0.json"]


def test_evaluate_refuses_missing_oracles_and_keeps_old_metrics(data_dir, capsys):
    old = _evaluate_setup(data_dir)
    assert _evaluate(data_dir, old, data_dir / "none", data_dir / "none.json") == 2
    assert "none.json: missing" in capsys.readouterr().err
    assert old.read_text() == "OLD"
    assert sorted(p.name for p in old.parent.iterdir()) == ["k1-s0.json"]


@pytest.mark.parametrize(
    ("skew", "says"),
    [
        ("k1_r5", "--skew k1_r5: not one of this study's skews ['k1']; set skew.rare_classes and skew.rare_fractions"),
        ("k2", "--skew k2: not one of this study's skews ['k1']"),
    ],
)
def test_evaluate_refuses_a_skew_the_study_does_not_have_and_keeps_old_metrics(data_dir, capsys, skew, says):
    old = _evaluate_setup(data_dir)
    oracles = data_dir / "models" / "oracles" / "colour"
    assert _evaluate(data_dir, old, oracles, data_dir / "metrics" / "oracles" / "colour.json", skew) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and says in err
    assert old.read_text() == "OLD"


@pytest.mark.parametrize("control", ["data-learner", "degraded-learner", "data-mixer"])
def test_a_controls_two_runs_share_no_image(control):
    """The learner's runs on the balanced and on a skewed set draw from
    disjoint halves of the balanced set, as two models trained apart would."""
    n = 400
    images = np.arange(n, dtype=np.uint32).view(np.uint8).reshape(n, 1, 1, 4)[..., :3]  # each image unique
    images = np.ascontiguousarray(np.broadcast_to(images, (n, 2, 2, 3)))
    balanced = assemble(images, images, np.arange(n) % 10, np.zeros(n, np.uint8), np.zeros(n, bool))
    pools = {"balanced": balanced, "skewed_k1": balanced}
    runs = [control_samples(control, d, pools, 150, np.random.default_rng(0), 0.2) for d in ("balanced", "skewed_k1")]
    seen = [{bytes(x) for x in run} for run in runs]
    assert len(seen[0]) == 150
    if control != "data-mixer":
        assert len(seen[1]) == 150
        assert not seen[0] & seen[1]
    halves = [set(pool(d, "balanced", n).tolist()) for d in ("balanced", "skewed_k1")]
    assert not halves[0] & halves[1] and len(halves[0] | halves[1]) == n
