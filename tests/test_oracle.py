import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.data.build import write_datasets
from pipeline.data.datasets import FactorDataset, both_ways
from pipeline.errors import OracleError
from pipeline.factors import colourise
from pipeline.files import OracleMetrics, read, read_curves, read_data_manifest
from pipeline.io import MARKER, load_checkpoint
from pipeline.oracle.fit import load_oracles, predict, to_tensor, train_oracle
from pipeline.oracle.network import OracleCNN
from pipeline.stages import oracle, run
from tests.helpers import compose, params, with_key, write_params

SMOKE = params("smoke").oracle
# the paper's lr 0.01 / momentum 0.5 needs far more steps than a fast test affords
FAST = SMOKE.model_copy(update={"epochs": 3, "batch_size": 32, "lr": 0.03, "momentum": 0.9})


@pytest.fixture(scope="module")
def coloured(bundled):
    """The bundled digits in random red/green ink, in a fixed random order."""
    images, labels = bundled
    rng = np.random.default_rng(1)
    idx = rng.permutation(len(labels))
    green = rng.random(len(labels)) < 0.5
    return colourise(images[idx], green), labels[idx], green


@pytest.mark.parametrize("size", [28, 64])
def test_oracle_cnn_output_shape(size):
    model = OracleCNN(10, channels=3, image_size=size)
    assert model(torch.rand(5, 3, size, size)).shape == (5, 10)
    assert OracleCNN(2, channels=1, image_size=size)(torch.rand(1, 1, size, size)).shape == (1, 2)


def test_to_tensor_is_nchw_in_unit_range():
    images = np.zeros((2, 28, 28, 3), np.uint8)
    images[0, 3, 4, 1] = 255
    x = to_tensor(images)
    assert x.shape == (2, 3, 28, 28) and x.dtype == torch.float32
    assert x[0, 1, 3, 4] == 1.0 and x.sum() == 1.0


def test_label_and_colour_oracles_learn_real_digits(coloured):
    images, labels, green = coloured
    train, held = slice(0, 2000), slice(2000, 2500)
    label_model = train_oracle(images[train], labels[train], 10, FAST, seed=0)
    pred, conf = predict(label_model, images[held])
    assert pred.shape == (500,) and pred.dtype == np.int64
    assert conf.dtype == np.float64 and np.all((conf > 0) & (conf <= 1))
    assert (pred == labels[held]).mean() > 0.85

    # ink colour is easy: one epoch on half the data is plenty
    colour_opts = FAST.model_copy(update={"epochs": 1})
    factor_model = train_oracle(images[:1000], green[:1000].astype(np.int64), 2, colour_opts, seed=0)
    pred, _ = predict(factor_model, images[held], batch_size=128)
    assert set(np.unique(pred)) <= {0, 1}
    assert (pred == green[held]).mean() > 0.98


def test_training_is_deterministic_for_a_seed(coloured):
    images, labels, _ = coloured
    opts = SMOKE.model_copy(update={"epochs": 1, "batch_size": 32})
    a, b, c = (train_oracle(images[:256], labels[:256], 10, opts, seed=s) for s in (3, 3, 4))
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def _recolour(rgb: np.ndarray, green: np.ndarray) -> np.ndarray:
    # recover the grey digit (ink sits in one channel) and recolour it
    return colourise(rgb.max(axis=3), green)


def _write_data(root: Path, images, labels, green) -> Path:
    """A tiny colour-factor dataset folder: 300 balanced digits, 100 test digits
    twice, and its manifest as the prepare stage writes it."""
    train = FactorDataset(images[:300], labels[:300], green[:300].astype(np.uint8), green[:300])
    n = np.zeros(100, bool)
    test = both_ways(_recolour(images[300:400], n), _recolour(images[300:400], ~n), labels[300:400], n)
    write_datasets(root, "colour", {"balanced": train, "test": test}, params("smoke"))
    assert read_data_manifest(root).num_classes == 10
    return root


def _stage(root: Path, data: Path, *settings) -> tuple[int, Path, Path]:
    """The oracle stage of colour, 1 epoch on the CPU, with `settings` (key, value)."""
    raw = with_key(with_key(compose("smoke"), "oracle.epochs", 1), "device", "cpu")
    for key, value in settings:
        raw = with_key(raw, key, value)
    path = write_params(root, raw)
    out, metrics = root / "models" / "colour", root / "metrics" / "colour.json"
    argv = ["--params", str(path), "--factor", "colour", "--data", str(data), "--curves", str(root / "curves")]
    return run(oracle.main, argv + ["--out", str(out), "--metrics", str(metrics)]), out, metrics


@pytest.fixture(scope="module")
def data_dir(coloured, tmp_path_factory):
    return _write_data(tmp_path_factory.mktemp("oracle-data"), *coloured)


@pytest.fixture(scope="module")
def stage_out(data_dir, tmp_path_factory):
    """The oracle stage run end to end, 1 epoch, on a tiny colour dataset, with
    a gate every oracle passes (min_accuracy 0)."""
    code, out, metrics = _stage(tmp_path_factory.mktemp("oracle"), data_dir, ("oracle.min_accuracy", 0.0))
    assert code == 0
    return out, metrics


def test_stage_writes_checkpoints_and_metrics(stage_out):
    out, metrics_path = stage_out
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "factor.pt", "label.pt"]
    assert [p.name for p in out.parent.iterdir()] == [out.name], "no scratch left beside it"
    ckpt = load_checkpoint(out / "factor.pt")
    assert ckpt["epoch"] == 1
    assert ckpt["params"]["target"] == "factor" and ckpt["params"]["num_outputs"] == 2
    assert ckpt["params"]["factor"] == "colour" and ckpt["params"]["epochs"] == 1
    assert load_checkpoint(out / "label.pt")["params"]["num_outputs"] == 10
    metrics = json.loads(metrics_path.read_text())
    expected = {"factor_name", "label", "factor", "min_accuracy", "passed", "epochs", "train_size", "test_size"}
    assert set(metrics) == expected
    assert metrics["factor_name"] == "colour"
    assert (metrics["train_size"], metrics["test_size"], metrics["epochs"]) == (300, 200, 1)
    for t in ("label", "factor"):
        assert set(metrics[t]) == {"accuracy", "per_class"}
        assert 0.0 <= metrics[t]["accuracy"] <= 1.0
        assert set(metrics[t]["per_class"]) <= {str(c) for c in range(10)}
    # a gate of 0 cannot be missed
    assert metrics["min_accuracy"] == 0.0 and metrics["passed"] is True
    assert read(OracleMetrics, metrics_path, "").passed is True
    # DVCLive's curves of both oracles beside them: one row per epoch, loss and training accuracy
    curves = out.parent.parent / "curves"
    for target in ("label", "factor"):
        (row,) = read_curves(curves / target)
        assert row["epoch"] == 1 and row["loss"] > 0 and 0 <= row["accuracy"] <= 1
    assert not (curves / "label" / "metrics.json").exists() and not (curves / MARKER).exists()


def test_a_gate_above_the_accuracy_fails_and_the_oracles_are_refused(data_dir, tmp_path, capsys):
    # 1 epoch on 300 digits cannot read all 200 test digits right: a gate of 1 must fail
    code, out, metrics_path = _stage(tmp_path, data_dir, ("oracle.min_accuracy", 1.0))
    assert code == 0  # the numbers are written even when an oracle falls short
    metrics = read(OracleMetrics, metrics_path, "")
    assert metrics.min_accuracy == 1.0 and metrics.label.accuracy < 1.0
    assert metrics.passed is False
    err = capsys.readouterr().err
    assert re.search(r"warning: oracle@colour: label 0\.\d{4}.* below oracle\.min_accuracy 1\.0", err)
    with pytest.raises(OracleError, match=r"label oracle of colour: test accuracy 0\.\d{4} is below .* 1\.0000"):
        load_oracles(out, metrics_path, min_accuracy=metrics.min_accuracy)


def test_stage_reports_missing_data_as_one_line(tmp_path, capsys):
    params_path = write_params(tmp_path, compose("smoke"))
    argv = ["--params", str(params_path), "--factor", "thin", "--data", str(tmp_path / "nowhere")]
    argv += ["--curves", str(tmp_path / "curves")]
    out, metrics = tmp_path / "models" / "thin", tmp_path / "metrics" / "thin.json"
    assert run(oracle.main, argv + ["--out", str(out), "--metrics", str(metrics)]) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not metrics.exists()


def test_stage_asked_for_cuda_without_one_stops_with_one_line(data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU-only machine, wherever this runs
    code, out, metrics = _stage(tmp_path, data_dir, ("device", "cuda"))
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "device = 'cuda'" in err and "no CUDA device on this machine" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() and not metrics.exists()


def test_load_oracles_returns_both_models(stage_out):
    out, metrics_path = stage_out
    label, factor, acc = load_oracles(out, metrics_path, min_accuracy=0.0)
    assert label.fc2.out_features == 10 and factor.fc2.out_features == 2
    assert not label.training
    assert acc == {t: json.loads(metrics_path.read_text())[t]["accuracy"] for t in ("label", "factor")}


def test_load_oracles_refuses_a_missing_metrics_file(stage_out, tmp_path):
    out, _ = stage_out
    with pytest.raises(OracleError, match=r"colour\.json: missing; train the oracles with `dvc repro oracle@colour`"):
        load_oracles(out, tmp_path / "colour.json", min_accuracy=0.0)


def test_load_oracles_refuses_a_corrupt_checkpoint(stage_out, tmp_path):
    out, metrics_path = stage_out
    broken = tmp_path / "colour"
    shutil.copytree(out, broken)
    (broken / "label.pt").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(OracleError, match="label oracle.*unreadable"):
        load_oracles(broken, metrics_path, min_accuracy=0.0)


def test_load_oracles_enforces_the_accuracy_gate(stage_out, tmp_path):
    out, metrics_path = stage_out
    metrics = json.loads(metrics_path.read_text())
    metrics["label"]["accuracy"], metrics["factor"]["accuracy"] = 0.99, 0.5
    low = tmp_path / "colour.json"
    low.write_text(json.dumps(metrics))
    with pytest.raises(OracleError, match=r"factor oracle of colour: test accuracy 0\.5000 .* 0\.9200") as err:
        load_oracles(out, low, min_accuracy=0.92)
    assert "oracle.epochs" in str(err.value)


# --- oracles, data and factor belong together (issue 24) ----------------------


def test_load_oracles_refuses_oracles_of_another_factor(stage_out):
    out, metrics_path = stage_out
    with pytest.raises(OracleError, match="scores the oracles of colour, not thick"):
        load_oracles(out, metrics_path, 0.0, factor="thick")


def test_load_oracles_refuses_one_checkpoint_of_another_factor(stage_out, tmp_path):
    out, metrics_path = stage_out
    mixed = tmp_path / "colour"
    shutil.copytree(out, mixed)
    ckpt = torch.load(mixed / "factor.pt", weights_only=True)
    ckpt["params"]["factor"] = "thick"  # factor.pt swapped for thick's
    torch.save(ckpt, mixed / "factor.pt")
    with pytest.raises(OracleError, match=r"factor\.pt: the factor oracle of thick, not of colour"):
        load_oracles(mixed, metrics_path, 0.0, factor="colour")


def test_load_oracles_refuses_oracles_trained_on_other_data(stage_out, data_dir, tmp_path):
    out, metrics_path = stage_out
    load_oracles(out, metrics_path, 0.0, factor="colour", data=data_dir)  # their own data
    other = tmp_path / "colour"
    shutil.copytree(data_dir, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["seed"] += 1
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(OracleError, match="trained on other data than"):
        load_oracles(out, metrics_path, 0.0, factor="colour", data=other)
