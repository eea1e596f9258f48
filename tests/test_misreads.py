"""Verdicts about memorization, not misreadings: the concentration test, the
sample filter, the manifold test, the oracles' bias, the degraded controls'
FD matching and the per-sample reads file."""

import itertools
import math

import numpy as np
import pytest

from pipeline.data.datasets import FactorDataset
from pipeline.errors import DataError
from pipeline.evaluation import judge as judge_module
from pipeline.evaluation.judge import Read, judge, match_fd, on_manifold, oracle_bias
from pipeline.evaluation.quality import frechet_distance
from pipeline.evaluation.stats import concentration
from pipeline.files import read_reads, write_reads
from pipeline.generative.controls import degrade
from tests.helpers import params


def _table(f1_per_class, f0_per_class=None):
    f1 = np.asarray(f1_per_class)
    f0 = np.zeros_like(f1) if f0_per_class is None else np.asarray(f0_per_class)
    return np.stack([f0, f1], axis=1).astype(np.int64)


def test_concentration_known_answer():
    """Of 100 samples with f, 10 read as class 1 in the balanced run and 70
    in the skewed run: pooled p = 0.4, se = sqrt(0.4 * 0.6 * (1/100 + 1/100)),
    z = 0.6 / se = 5 sqrt(3)."""
    balanced = _table([10, 10, 10, 10, 10, 10, 10, 10, 10, 10])
    skewed = _table([0, 70, 0, 0, 0, 30, 0, 0, 0, 0], [100] * 10)  # f = 0 samples never enter
    result = concentration(balanced, skewed, rare_class=1)
    assert (result["n_b"], result["k_b"], result["n_s"], result["k_s"]) == (100, 10, 100, 70)
    assert result["share_balanced"] == 0.1 and result["share_skewed"] == 0.7
    assert result["z"] == pytest.approx(5 * math.sqrt(3), rel=1e-12)
    assert result["p_value"] == pytest.approx(math.erfc(5 * math.sqrt(3) / math.sqrt(2)), rel=1e-9)
    assert result["verdict"] == "memorized"
    lo, hi = result["ci_difference"]
    assert lo < 0.6 < hi


def test_concentration_falls_is_opposite_and_equal_is_learned():
    same = _table([10] * 10)
    assert concentration(same, same, 1)["verdict"] == "learned"
    assert concentration(same, same, 1)["z"] == 0.0
    fewer = _table([20, 0, 10, 10, 10, 10, 10, 10, 10, 10])
    assert concentration(same, fewer, 1)["verdict"] == "opposite"
    nothing = _table([0] * 10, [5] * 10)
    assert concentration(same, nothing, 1)["verdict"] == "undefined"


def test_concentration_is_not_diluted_by_misread_samples():
    """Every sample with f is class 1 in the skewed run, but 300 red samples of
    other classes are misread as class 1: the per-class P(f=1 | class 1)
    falls (0.25 against 0.5), the concentration rises (1.0 against 0.1)."""
    balanced = _table([50] * 10, [50] * 10)
    skewed = _table([0, 100, 0, 0, 0, 0, 0, 0, 0, 0], [100, 300, 100, 100, 100, 100, 100, 100, 100, 100])
    assert skewed[1, 1] / skewed[1].sum() == 0.25
    assert concentration(balanced, skewed, 1)["verdict"] == "memorized"


def _read(labels, factor, label_confidence, feats):
    n = len(labels)
    return Read(np.asarray(labels), np.asarray(label_confidence, float), np.asarray(factor), np.ones(n), feats)


@pytest.fixture
def misread(monkeypatch):
    """Class 1 and 0, 200 samples each per run. Balanced: half of each class
    carries f. Skewed: class 1's 60 real samples all carry f; 140 red digits of
    class 0 are misread as class 1, unsurely (p 0.5); class 0's other samples lack f."""
    rng = np.random.default_rng(0)
    balanced = _read([0] * 200 + [1] * 200, [0, 1] * 200, [0.99] * 400, rng.normal(size=(400, 4)))
    labels = [0] * 200 + [1] * 60 + [1] * 140
    factor = [0] * 200 + [1] * 60 + [0] * 140
    conf = [0.99] * 260 + [0.5] * 140
    skewed = _read(labels, factor, conf, rng.normal(size=(400, 4)))
    real = _read(np.repeat([0, 1], 200), np.tile([0, 1], 200), np.ones(400), rng.normal(size=(400, 4)))
    reads = itertools.cycle([balanced, skewed, real])
    monkeypatch.setattr(judge_module, "read_samples", lambda *a: next(reads))
    return FactorDataset(
        np.zeros((400, 2, 2, 3), np.uint8), np.repeat([0, 1], 200), np.zeros(400, np.uint8), np.zeros(400, bool)
    )


def _judge(real, *overrides):
    ev = params("smoke", "evaluation.min_count=20", *overrides).evaluation
    rngs = {run: np.random.default_rng(i) for i, run in enumerate(("balanced", "skewed"))}
    return judge(None, None, None, None, 1, ev, "cpu", -1, num_classes=2, real=real, rngs=rngs)


def test_misread_samples_flip_a_verdict_and_the_confident_filter_restores_it(misread):
    metrics, reads = _judge(misread, "evaluation.sample_filter=confident", "evaluation.min_label_confidence=0.9")
    unfiltered, filtered = metrics["classes"]["1"], metrics["classes_filtered"]["1"]
    assert (unfiltered.n_s, unfiltered.k_s, unfiltered.verdict) == (200, 60, "opposite")  # 0.3 against 0.5
    # the 140 unsure misreads are dropped: 60 of 60 carry f
    assert (filtered.n_b, filtered.n_s, filtered.k_s) == (200, 60, 60)
    assert filtered.p_skewed == 1.0 and filtered.verdict == "memorized"
    assert filtered.z == pytest.approx(30 / math.sqrt(15), rel=1e-12)  # (60 - 60 x 0.5) / sqrt(60 x 0.25)
    assert metrics["kept"] == {"balanced": 400, "skewed": 260}
    assert metrics["concentration"]["verdict"] == "memorized"  # 60 of 60 f = 1 in class 1 against 100 of 200
    assert reads["skewed_kept"].sum() == 260 and not reads["skewed_kept"][260:].any()
    none, _ = _judge(misread, "evaluation.sample_filter=none")
    assert none["kept"] == {"balanced": 400, "skewed": 400}
    assert none["classes_filtered"]["1"].verdict == "opposite"


def test_on_manifold_is_inside_the_balls_of_the_class_it_is_read_as():
    """Real class 0 at x in {0, 1, 2, 3} on a line, class 1 at {100, ..., 103};
    with k = 1 every ball has radius 1. A sample at 1.5 read as 0 is on; read
    as 1, off; one at 50 is off either way; one read as a class without real images is off."""
    real = _read(
        [0, 0, 0, 0, 1, 1, 1, 1], [0] * 8, [1] * 8, np.array([[0.0], [1], [2], [3], [100], [101], [102], [103]])
    )
    sample = _read([0, 1, 0, 2], [0] * 4, [1] * 4, np.array([[1.5], [1.5], [50.0], [1.0]]))
    assert on_manifold(real, sample, k=1).tolist() == [True, False, False, False]


def test_the_oracles_bias_on_a_model_is_its_balanced_share_against_the_real_datas():
    real = _read([0] * 100 + [1] * 100, [0, 1] * 100, [1] * 200, np.zeros((200, 1)))
    model = _read([0] * 100 + [1] * 100, [1] * 77 + [0] * 23 + [0, 1] * 50, [1] * 200, np.zeros((200, 1)))
    bias = oracle_bias(model, real, 0.15, 2)
    assert bias["0"]["p_model"] == 0.77 and bias["0"]["p_data"] == 0.5
    assert bias["0"]["difference"] == pytest.approx(0.27) and bias["0"]["flagged"]
    assert bias["1"]["difference"] == 0.0 and not bias["1"]["flagged"]


def _featurize(images):
    """A fixed feature map: 4 x 4 average pools of the grey image, 16-d."""
    grey = images.astype(np.float64).mean(axis=3) / 255
    n, h, w = grey.shape
    return grey.reshape(n, 4, h // 4, 4, w // 4).mean(axis=(2, 4)).reshape(n, 16)


@pytest.mark.parametrize("target", [0.1, 0.5])
def test_the_degraded_control_lands_within_two_percent_of_its_target_fd(target):
    rng = np.random.default_rng(0)
    images = np.zeros((300, 16, 16, 3), np.uint8)
    for image, column in zip(images, rng.integers(2, 12, size=len(images)), strict=True):
        image[:, column : column + 3] = 255  # a bar at a random place: degrading moves and spreads it
    real = _featurize(images)
    strength, fd = match_fd(images, target, real, _featurize, seed=0)
    assert 0 < strength < 4
    assert abs(fd - target) <= 0.02 * target
    again = frechet_distance(_featurize(degrade(images, strength, np.random.default_rng(0))), real)
    assert again == fd


def test_an_unreachable_target_takes_the_strongest_degradation():
    images = np.full((50, 8, 8, 3), 128, np.uint8)
    strength, fd = match_fd(images, 1e9, _featurize(images), _featurize, seed=0, high=2.0)
    assert strength == 2.0 and fd < 1e9


def test_degrade_warps_blurs_and_noises_and_zero_leaves_images_alone():
    images = np.zeros((64, 28, 28, 3), np.uint8)
    images[:, 8:20, 12:16] = 255  # a vertical stroke
    assert degrade(images, 0.0, np.random.default_rng(0)) is images
    soft = degrade(images, 1.0, np.random.default_rng(0))
    assert soft.dtype == np.uint8 and soft.shape == images.shape
    assert (soft[:, 8:20, 12:16] < 255).mean() > 0.5  # blurred (and moved) strokes
    assert (soft[:, :4, :4] > 0).mean() > 0.2  # speckle far from the stroke
    warped = [not np.array_equal(soft[0, ..., 0] > 128, x[..., 0] > 128) for x in soft[1:]]
    assert all(warped)  # every image distorted its own way
    stronger = degrade(images, 2.0, np.random.default_rng(0))
    assert np.abs(stronger.astype(int) - images).mean() > np.abs(soft.astype(int) - images).mean()
    with pytest.raises(ValueError, match="strength"):
        degrade(images, -1.0, np.random.default_rng(0))


def test_reads_files_round_trip_and_a_wrong_file_is_refused(tmp_path, misread):
    _, arrays = _judge(misread)
    path = tmp_path / "reads" / "vae" / "colour" / "k1-s0.npz"
    write_reads(path, arrays)
    back = read_reads(path)
    assert set(back) == {"balanced", "skewed"}
    assert back["skewed"]["label"].tolist() == [0] * 200 + [1] * 200
    assert back["skewed"]["label_confidence"][-1] == np.float32(0.5)
    assert back["balanced"]["index"].tolist() == list(range(400))
    assert path.stat().st_size < 20_000
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(DataError, match="not a reads file"):
        read_reads(other)
    with pytest.raises(ValueError, match="expected arrays"):
        write_reads(other, {"x": np.zeros(3)})
