import hashlib
from pathlib import Path

import numpy as np
import pytest

from pipeline.data.datasets import load_dataset
from pipeline.files import SourceManifest, read, read_data_manifest
from pipeline.stages import prepare, run, source
from tests.helpers import compose, with_key, write_params

# the smoke profile with a 300/60-digit source
SMOKE = ("data.train_size=300", "data.test_size=60", "data.val_size=40", "perturb.chunk_size=64")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """params.yaml of the smoke profile with a 300/60-digit source, and that source."""
    root = tmp_path_factory.mktemp("smoke")
    write_params(root, compose("smoke", *SMOKE))
    assert run(source.main, ["--params", str(root / "params.yaml"), "--out", str(root / "source")]) == 0
    return root


def _run(smoke, factor, out, workers=None):
    params = smoke / "params.yaml"
    if workers is not None:
        params = write_params(smoke / f"w{workers}", with_key(compose("smoke", *SMOKE), "workers", workers))
    argv = ["--params", str(params), "--factor", factor, "--source", str(smoke / "source"), "--out", str(out)]
    assert run(prepare.main, argv) == 0
    return out


def _digest(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*.npy"))
    }


def test_source_manifest(smoke):
    manifest = read(SourceManifest, smoke / "source" / "manifest.json", "")
    assert manifest.source == "mnist-bundled" and manifest.seed == 0
    assert manifest.train.size == 300 and manifest.test.size == 60
    train_labels = np.load(smoke / "source" / "train_labels.npy")
    test_labels = np.load(smoke / "source" / "test_labels.npy")
    assert train_labels.shape == (300,) and test_labels.shape == (60,)
    assert manifest.train.per_class == np.bincount(train_labels, minlength=10).tolist()
    assert manifest.test.per_class == np.bincount(test_labels, minlength=10).tolist()
    assert manifest.train.present_per_class is None  # MNIST: the factor is rendered later


def test_prepare_writes_every_dataset_with_exact_counts(smoke, tmp_path):
    out = _run(smoke, "thick", tmp_path / "thick")
    manifest = read_data_manifest(out)
    assert manifest.factor == "thick" and manifest.source == "mnist-bundled"
    assert manifest.num_classes == 10 and manifest.image_size == 28
    assert manifest.class_names == [str(c) for c in range(10)] and manifest.factor_values == ("plain", "thick")
    # the smoke profile has one rare class, 1
    assert set(manifest.datasets) == {"balanced", "skewed_k1", "test", "val"}
    train_labels = np.load(smoke / "source" / "train_labels.npy")
    sizes = np.bincount(train_labels, minlength=10)
    for c in range(10):
        bal = manifest.datasets["balanced"].counts[str(c)]
        assert bal == {"f0": int(sizes[c] - sizes[c] // 2), "f1": int(sizes[c] // 2)}
        sk = manifest.datasets["skewed_k1"].counts[str(c)]
        assert sk == ({"f0": 0, "f1": int(sizes[c])} if c == 1 else {"f0": int(sizes[c]), "f1": 0})
    # every dataset's counts and size are those of the arrays written next to the manifest
    for name, entry in manifest.datasets.items():
        ds = load_dataset(out / name)
        table = np.bincount(ds.labels * 2 + ds.factor, minlength=20).reshape(10, 2)
        assert entry.size == len(ds.labels)
        assert entry.counts == {str(c): {"f0": int(table[c, 0]), "f1": int(table[c, 1])} for c in range(10)}
    test = load_dataset(out / "test")
    assert len(test.labels) == 120 and test.factor.sum() == 60
    assert manifest.datasets["val"].size == 40 and manifest.datasets["test"].size == 120
    assert manifest.datasets["balanced"].size == manifest.datasets["skewed_k1"].size == 300
    # the skewed and balanced sets are the same digits, differently rendered
    bal, sk = load_dataset(out / "balanced"), load_dataset(out / "skewed_k1")
    assert np.array_equal(bal.labels, sk.labels) and np.array_equal(bal.green, sk.green)
    same_f = bal.factor == sk.factor
    assert np.array_equal(bal.images[same_f], sk.images[same_f])
    assert manifest.datasets["balanced"].sha256 == {k.split("/")[-1]: v for k, v in _digest(out / "balanced").items()}


def test_output_is_byte_identical_across_runs_and_worker_counts(smoke, tmp_path):
    one = _digest(_run(smoke, "fracture", tmp_path / "a", workers=1))
    again = _digest(_run(smoke, "fracture", tmp_path / "b", workers=1))
    two = _digest(_run(smoke, "fracture", tmp_path / "c", workers=2))
    assert len(one) == 4 * 4  # four datasets of four arrays each
    assert one == again == two
    manifests = [(tmp_path / d / "manifest.json").read_bytes() for d in "abc"]
    assert manifests[0] == manifests[1] == manifests[2]


def test_rare_fractions_cut_one_skewed_set_each_and_leave_the_extreme_one_as_it_was(smoke, tmp_path):
    """skew.rare_fractions [0, 0.1]: skewed_k1 byte for byte the set of a study
    with r = 0 alone, and skewed_k1_r10 with f=1 on round(0.1 n_c) images of
    every other class and f=0 on round(0.1 n_1) of class 1, the same digits."""
    alone = _run(smoke, "colour", tmp_path / "alone")
    both = with_key(compose("smoke", *SMOKE), "skew.rare_fractions", [0.0, 0.1])
    both["datasets"], both["skews"] = ["balanced", "skewed_k1", "skewed_k1_r10"], ["k1", "k1_r10"]
    params = write_params(tmp_path / "p", both)
    out = tmp_path / "both"
    argv = ["--params", str(params), "--factor", "colour", "--source", str(smoke / "source"), "--out", str(out)]
    assert run(prepare.main, argv) == 0
    manifest = read_data_manifest(out)
    assert set(manifest.datasets) == {"balanced", "skewed_k1", "skewed_k1_r10", "test", "val"}
    assert _digest(out / "skewed_k1") == _digest(alone / "skewed_k1")
    assert _digest(out / "balanced") == _digest(alone / "balanced")
    sizes = np.bincount(np.load(smoke / "source" / "train_labels.npy"), minlength=10)
    for c in range(10):
        flipped = int(round(0.1 * sizes[c]))
        expected = (
            {"f0": flipped, "f1": int(sizes[c]) - flipped} if c == 1 else {"f0": int(sizes[c]) - flipped, "f1": flipped}
        )
        assert manifest.datasets["skewed_k1_r10"].counts[str(c)] == expected, c
    relaxed = load_dataset(out / "skewed_k1_r10")
    assert np.array_equal(relaxed.labels, load_dataset(out / "skewed_k1").labels)


def test_bad_source_is_reported_before_work(smoke, tmp_path, capsys):
    out, source = tmp_path / "thin", tmp_path / "source"
    source.mkdir()
    argv = ["--params", str(smoke / "params.yaml"), "--factor", "thin", "--source", str(source), "--out", str(out)]
    assert run(prepare.main, argv) == 2
    assert "unreadable source arrays" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "params.yaml") == ["source"], "no scratch left"
