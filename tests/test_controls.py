import json

import numpy as np
import pytest
import yaml
from PIL import Image

from pipeline import sample
from pipeline.controls import control_samples, draw
from pipeline.data.datasets import assemble, save_dataset
from pipeline.evaluate import read_samples, skew_direction_of_total
from pipeline.stage import InputError, run
from tests.test_config import RAW


def _dataset(n=100, value=0, f=None):
    images = np.full((n, 28, 28, 3), value, np.uint8)
    labels = np.arange(n) % 10
    f = np.zeros(n, np.uint8) if f is None else f
    return assemble(images, images + 1, labels, f, np.zeros(n, bool))


def test_draw_is_without_replacement_when_possible():
    rng = np.random.default_rng(0)
    images = np.arange(50)[:, None]
    out = draw(images, 50, rng)
    assert sorted(out[:, 0].tolist()) == list(range(50))
    assert len(draw(images, 80, rng)) == 80


def test_memorizer_draws_from_its_training_set_and_learner_from_balanced():
    trained_on, balanced = _dataset(value=10), _dataset(value=200)
    rng = np.random.default_rng(0)
    assert (control_samples("data-memorizer", trained_on, balanced, 30, rng) == 10).all()
    assert (control_samples("data-learner", trained_on, balanced, 30, rng) == 200).all()
    with pytest.raises(ValueError, match="not a control model"):
        control_samples("gan", trained_on, balanced, 30, rng)


@pytest.fixture()
def data_dir(tmp_path):
    skew = (np.arange(100) % 10 == 1).astype(np.uint8)
    save_dataset(_dataset(f=np.arange(100) % 2), tmp_path / "colour" / "balanced")
    save_dataset(_dataset(f=skew), tmp_path / "colour" / "skewed_k1")
    params = dict(RAW, evaluation=dict(RAW["evaluation"], num_samples=40))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def test_sample_stage_writes_images_meta_and_grid(data_dir):
    out = data_dir / "samples" / "run"
    argv = ["--params", str(data_dir / "params.yaml"), "--model", "data-memorizer", "--factor", "colour"]
    grid = data_dir / "plots" / "grid.png"
    sample.main(
        argv + ["--dataset", "skewed_k1", "--data", str(data_dir / "colour"), "--out", str(out), "--grid", str(grid)]
    )
    images = read_samples(out, "data-memorizer", "colour", "skewed_k1")
    assert images.shape == (40, 28, 28, 3)
    assert json.loads((out / "meta.json").read_text())["run"] == "data-memorizer-colour-skewed_k1"
    assert Image.open(grid).size == (3 * (10 * 30 + 2), 3 * (4 * 30 + 2))  # 40 samples: 4 rows of 10, zoom 3
    with pytest.raises(InputError, match="expected {'model': 'data-memorizer', 'factor': 'thin'"):
        read_samples(out, "data-memorizer", "thin", "skewed_k1")


def test_sample_stage_rejects_unknown_dataset_and_model(data_dir, capsys):
    base = ["--params", str(data_dir / "params.yaml"), "--factor", "colour", "--data", str(data_dir / "colour")]
    assert run(sample.main, base + ["--model", "data-memorizer", "--dataset", "skewed_k7"]) == 2
    assert "dataset 'skewed_k7' is not configured" in capsys.readouterr().err
    assert run(sample.main, base + ["--model", "glow", "--dataset", "balanced"]) == 2
    assert "model 'glow' has no sampler" in capsys.readouterr().err


def test_missing_samples_are_reported(tmp_path):
    with pytest.raises(InputError, match="missing or corrupt samples"):
        read_samples(tmp_path, "data-learner", "colour", "balanced")


def test_total_direction_follows_the_skewed_counts():
    counts = {str(c): {"f0": 90, "f1": 10} for c in range(10)}
    assert skew_direction_of_total({"datasets": {"skewed_k1": {"counts": counts}}}, "skewed_k1") == -1
    counts = {str(c): {"f0": 10, "f1": 90} for c in range(10)}
    assert skew_direction_of_total({"datasets": {"skewed_k1": {"counts": counts}}}, "skewed_k1") == 1
    with pytest.raises(InputError, match="cannot read the counts of skewed_k2"):
        skew_direction_of_total({"datasets": {"skewed_k1": {"counts": counts}}}, "skewed_k2")


def _evaluate_setup(data_dir):
    """Samples of both control runs for colour, k=1, and an existing metrics file."""
    from pipeline.data.datasets import write_json

    for dataset in ("balanced", "skewed_k1"):
        argv = ["--params", str(data_dir / "params.yaml"), "--model", "data-learner", "--factor", "colour"]
        out = data_dir / "samples" / f"data-learner-colour-{dataset}"
        grid = data_dir / "plots" / f"{dataset}.png"  # never the workspace's plots/
        sample.main(
            argv + ["--dataset", dataset, "--data", str(data_dir / "colour"), "--out", str(out), "--grid", str(grid)]
        )
    counts = {"skewed_k1": {"counts": {"0": {"f0": 9, "f1": 1}}}}
    write_json(data_dir / "colour" / "manifest.json", {"datasets": counts})
    old = data_dir / "metrics.json"
    old.write_text("OLD")
    return old


def _evaluate(data_dir, old, *extra):
    from pipeline import evaluate

    argv = ["--params", str(data_dir / "params.yaml"), "--model", "data-learner", "--factor", "colour"]
    argv += ["--rare-class", "1", "--samples", str(data_dir / "samples"), "--data", str(data_dir / "colour")]
    return run(evaluate.main, argv + ["--out", str(old), *extra])


def test_evaluate_refuses_samples_of_another_factor_and_keeps_old_metrics(data_dir, capsys):
    old = _evaluate_setup(data_dir)
    meta = data_dir / "samples" / "data-learner-colour-skewed_k1" / "meta.json"
    meta.write_text(meta.read_text().replace('"colour"', '"thin"'))
    assert _evaluate(data_dir, old) == 2
    assert "samples of {'model': 'data-learner', 'factor': 'thin'" in capsys.readouterr().err
    assert old.read_text() == "OLD"


def test_evaluate_refuses_missing_oracles_and_keeps_old_metrics(data_dir, capsys):
    old = _evaluate_setup(data_dir)
    missing = ["--oracles", str(data_dir / "none"), "--oracle-metrics", str(data_dir / "none.json")]
    assert _evaluate(data_dir, old, *missing) == 2
    assert "none.json" in capsys.readouterr().err
    assert old.read_text() == "OLD"
