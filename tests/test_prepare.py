import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline import prepare, source
from pipeline.data.datasets import load_dataset

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """params.yaml of the smoke profile with a 300/60-digit source."""
    root = tmp_path_factory.mktemp("smoke")
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["profile"] = "smoke"
    raw["data"].update(train_size=300, test_size=60, val_size=40)
    raw["perturb"]["chunk_size"] = 64
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    assert source.main(["--params", str(root / "params.yaml"), "--out", str(root / "source")]) is None
    return root


def _run(smoke, factor, out, workers=None):
    params = smoke / "params.yaml"
    if workers is not None:
        raw = yaml.safe_load(params.read_text())
        raw["workers"] = workers
        params = smoke / f"params_w{workers}.yaml"
        params.write_text(yaml.safe_dump(raw))
    prepare.main(["--params", str(params), "--factor", factor, "--source", str(smoke / "source"), "--out", str(out)])
    return out


def _digest(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*.npy"))
    }


def test_source_manifest(smoke):
    manifest = json.loads((smoke / "source" / "manifest.json").read_text())
    assert manifest["train"]["size"] == 300 and manifest["test"]["size"] == 60


def test_prepare_writes_every_dataset_with_exact_counts(smoke, tmp_path):
    out = _run(smoke, "thick", tmp_path / "thick")
    manifest = json.loads((out / "manifest.json").read_text())
    rare = yaml.safe_load((smoke / "params.yaml").read_text())["skew"]["rare_classes"]
    assert set(manifest["datasets"]) == {"balanced", "test", "val"} | {f"skewed_k{k}" for k in rare}
    train_labels = np.load(smoke / "source" / "train_labels.npy")
    sizes = np.bincount(train_labels, minlength=10)
    for c in range(10):
        bal = manifest["datasets"]["balanced"]["counts"][str(c)]
        assert bal == {"f0": int(sizes[c] - sizes[c] // 2), "f1": int(sizes[c] // 2)}
        sk = manifest["datasets"]["skewed_k1"]["counts"][str(c)]
        assert sk == ({"f0": 0, "f1": int(sizes[c])} if c == 1 else {"f0": int(sizes[c]), "f1": 0})
    test = load_dataset(out / "test")
    assert len(test.labels) == 120 and test.factor.sum() == 60
    assert manifest["datasets"]["val"]["size"] == 40
    # the skewed and balanced sets are the same digits, differently rendered
    bal, sk = load_dataset(out / "balanced"), load_dataset(out / "skewed_k1")
    assert np.array_equal(bal.labels, sk.labels) and np.array_equal(bal.green, sk.green)
    same_f = bal.factor == sk.factor
    assert np.array_equal(bal.images[same_f], sk.images[same_f])
    assert manifest["datasets"]["balanced"]["sha256"] == {
        k.split("/")[-1]: v for k, v in _digest(out / "balanced").items()
    }


def test_output_is_byte_identical_across_runs_and_worker_counts(smoke, tmp_path):
    one = _digest(_run(smoke, "fracture", tmp_path / "a", workers=1))
    again = _digest(_run(smoke, "fracture", tmp_path / "b", workers=1))
    two = _digest(_run(smoke, "fracture", tmp_path / "c", workers=2))
    assert one == again == two


def test_bad_source_is_reported_before_work(smoke, tmp_path, capsys):
    from pipeline.stage import run

    code = run(prepare.main, ["--params", str(smoke / "params.yaml"), "--factor", "thin", "--source", str(tmp_path)])
    assert code == 2
    assert "unreadable source arrays" in capsys.readouterr().err
    assert not (tmp_path / "thin").exists()
