"""Known answers for the quality metrics (pipeline/evaluation/quality.py) and
the oracle's penultimate features they are computed in."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import linalg

from pipeline.errors import ParamsError
from pipeline.evaluation.quality import (
    ambiguity,
    frechet_distance,
    frechet_distance_from_moments,
    gaussian_moments,
    knn_sq_radii,
    precision_recall,
    quality_block,
)
from pipeline.oracle.fit import features
from pipeline.oracle.network import OracleCNN


def relu_features(n, d=128, seed=0, shift=0.0):
    """Oracle-like features: non-negative, correlated, full rank when n > d."""
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(99).normal(size=(d, d)) / np.sqrt(d)
    return np.maximum(rng.normal(size=(n, d)) @ mix + shift, 0.0) * 3.0


def random_spd(d, seed):
    a = np.random.default_rng(seed).normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def sqrtm_fd(mu1, s1, mu2, s2):
    """The textbook formula with scipy's sqrtm of the product (pytorch-fid's way, well-conditioned inputs only)."""
    covmean = linalg.sqrtm(s1 @ s2)
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


# --- Frechet distance --------------------------------------------------------


def test_identical_sets_have_distance_zero():
    x = relu_features(1000)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    # the same set in another order is the same Gaussian
    assert frechet_distance(x, x[::-1]) == pytest.approx(0.0, abs=1e-6)


def test_diagonal_gaussians_give_the_closed_form_exactly_from_moments():
    mu1, mu2 = np.array([0.0, 1.0, -2.0, 0.5]), np.array([1.0, 1.0, 0.0, 0.5])
    a, b = np.array([1.0, 4.0, 9.0, 0.25]), np.array([4.0, 1.0, 1.0, 0.25])
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()  # 5 + 1 + 1 + 4 + 0 = 11
    assert expected == 11.0
    assert frechet_distance_from_moments(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(11.0, rel=1e-12)


def test_full_covariances_agree_with_sqrtm_of_the_product_and_are_symmetric():
    d = 16
    mu1, mu2 = np.linspace(0, 1, d), np.linspace(1, -1, d)
    s1, s2 = random_spd(d, 1), random_spd(d, 2)
    fd = frechet_distance_from_moments(mu1, s1, mu2, s2)
    assert fd == pytest.approx(sqrtm_fd(mu1, s1, mu2, s2), rel=1e-9)
    # a formula that took sqrt(S1) S2 for (S1 S2)^{1/2} would differ when swapped
    assert frechet_distance_from_moments(mu2, s2, mu1, s1) == pytest.approx(fd, rel=1e-9)


def test_large_samples_of_two_gaussians_approach_the_closed_form():
    rng = np.random.default_rng(0)
    a, b = np.array([1.0, 4.0, 9.0, 0.25]), np.array([4.0, 1.0, 1.0, 0.25])
    mu1, mu2 = np.zeros(4), np.array([1.0, 0.0, 0.0, 0.0])
    x = mu1 + rng.normal(size=(200_000, 4)) * np.sqrt(a)
    y = mu2 + rng.normal(size=(100_000, 4)) * np.sqrt(b)  # unequal sizes
    assert frechet_distance(x, y) == pytest.approx(1 + 1 + 1 + 4, abs=0.1)
    assert frechet_distance(y, x) == pytest.approx(frechet_distance(x, y), rel=1e-9)


def test_moments_are_the_mean_and_the_unbiased_covariance():
    x = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 4.0]])
    mu, sigma = gaussian_moments(x)
    np.testing.assert_allclose(mu, [2.0, 2.0])
    np.testing.assert_allclose(sigma, [[4.0, 3.0], [3.0, 3.0]])  # divided by n - 1 = 2


def test_near_singular_covariances_stay_finite_and_a_shift_adds_its_square():
    # 60 samples in 128 dimensions: the covariance has rank 59 (per-class sizes)
    x = relu_features(60, seed=3)
    v = np.full(128, 0.5)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-4)
    # the same covariance, the mean moved by v: exactly ||v||^2 = 32
    assert frechet_distance(x, x + v) == pytest.approx(32.0, abs=1e-4)
    fd = frechet_distance(x, relu_features(60, seed=4))
    assert np.isfinite(fd) and fd > 0


def test_too_few_samples_are_refused_naming_the_fix():
    with pytest.raises(ParamsError, match="evaluation.num_samples"):
        frechet_distance(np.zeros((1, 4)), np.zeros((5, 4)))


# --- precision and recall ----------------------------------------------------


def clusters(centres, per_cluster, seed, spread=0.1):
    rng = np.random.default_rng(seed)
    points = np.concatenate([c + spread * rng.normal(size=(per_cluster, len(c))) for c in centres])
    return points, np.repeat(np.arange(len(centres)), per_cluster)


CENTRES = 20.0 * np.eye(10)  # ten modes, sqrt(2) * 20 apart


def test_knn_radii_on_a_line_are_known_and_do_not_depend_on_chunking():
    line = np.arange(10.0)[:, None]
    # k = 3: the ends' third neighbour is 3 away, the next ones' 2 away
    expected = np.array([9, 4, 4, 4, 4, 4, 4, 4, 4, 9], dtype=float)
    np.testing.assert_allclose(knn_sq_radii(line, k=3), expected, atol=1e-9)
    np.testing.assert_allclose(knn_sq_radii(line, k=3, chunk_size=3), expected, atol=1e-9)
    np.testing.assert_allclose(knn_sq_radii(line, k=1), np.ones(10), atol=1e-9)


def test_a_set_against_itself_has_precision_and_recall_one():
    x = relu_features(500)
    assert precision_recall(x, x) == {"precision": 1.0, "recall": 1.0}


def test_a_set_far_away_has_precision_and_recall_zero():
    real, _ = clusters(CENTRES, 50, seed=0)
    assert precision_recall(real, real + 100.0) == {"precision": 0.0, "recall": 0.0}


def test_half_the_modes_give_recall_one_half_and_full_precision():
    real, labels = clusters(CENTRES, 100, seed=0)
    # exactly the real points of modes 0-4: every fake point is a real one
    subset = real[labels < 5]
    assert precision_recall(real, subset) == {"precision": 1.0, "recall": 0.5}
    # fresh draws: k-NN balls in 10 dimensions cover ~85% of a new sample of the
    # same modes, so compare with fresh draws of all ten modes
    full = precision_recall(real, clusters(CENTRES, 100, seed=1)[0])
    assert full["precision"] > 0.8 and full["recall"] > 0.8
    fake, _ = clusters(CENTRES[:5], 200, seed=1)  # modes 0-4, as many points as the real set
    half = precision_recall(real, fake)
    assert half["precision"] == pytest.approx(full["precision"], abs=0.05)
    assert half["recall"] == pytest.approx(full["recall"] / 2, abs=0.03)  # the missing modes are never covered
    # swapped arguments swap the answers: the fake set covers half the real modes, not the reverse
    assert precision_recall(fake, real) == {"precision": half["recall"], "recall": half["precision"]}


def test_chunking_does_not_change_precision_or_recall():
    real, fake = relu_features(300, seed=0), relu_features(200, seed=1, shift=0.2)
    assert precision_recall(real, fake, chunk_size=7) == precision_recall(real, fake, chunk_size=1024)


# --- ambiguity -----------------------------------------------------------------


def test_ambiguity_counts_confidences_strictly_below_the_threshold():
    conf = [0.95, 0.5, 0.89, 0.9, 0.99, 0.2]
    labels = [0, 0, 0, 1, 1, 2]
    out = ambiguity(conf, 0.9, labels)
    assert out["share"] == 0.5 and out["samples"] == 6  # 0.5, 0.89, 0.2; 0.9 itself is not below
    assert out["per_class"] == {
        "0": {"share": 2 / 3, "samples": 3},
        "1": {"share": 0.0, "samples": 2},
        "2": {"share": 1.0, "samples": 1},
    }
    # a class below min_class_samples is left out; without labels there are no classes
    assert set(ambiguity(conf, 0.9, labels, min_class_samples=2)["per_class"]) == {"0", "1"}
    assert ambiguity(conf, 0.9)["per_class"] == {}
    assert ambiguity(conf, 0.5)["share"] == 1 / 6


# --- the quality block of one run ------------------------------------------------


def real_and_fake(real_per_class=200, fake_per_class=100, seed=0):
    real, real_labels = clusters(CENTRES, real_per_class, seed=seed, spread=1.0)
    fake, fake_labels = clusters(CENTRES, fake_per_class, seed=seed + 1, spread=1.0)
    return real, real_labels, fake, fake_labels


def test_quality_block_of_samples_from_the_real_distribution_matches_its_baseline():
    real, real_labels, fake, fake_labels = real_and_fake()
    conf = np.where(np.arange(len(fake)) % 4 == 0, 0.6, 0.99)  # every 4th sample ambiguous
    block = quality_block(real, real_labels, fake, fake_labels, conf, np.random.default_rng(0))
    json.dumps(block, allow_nan=False)  # JSON-ready
    assert (block["samples"], block["compared"], block["reference"]) == (1000, 1000, 1000)
    assert block["ambiguity"] == 0.25 and block["k"] == 3 and block["ambiguity_threshold"] == 0.9
    base = block["baseline"]
    assert block["fd"] == pytest.approx(base["fd"], abs=0.1)  # both near 0 in 10 unit-variance dimensions
    assert block["precision"] == pytest.approx(base["precision"], abs=0.05)
    assert block["recall"] == pytest.approx(base["recall"], abs=0.05)
    assert set(block["per_class"]) == {str(c) for c in range(10)}
    row = block["per_class"]["3"]
    assert (row["samples"], row["compared"], row["reference"]) == (100, 100, 100)
    assert row["ambiguity"] == pytest.approx(np.mean(conf[fake_labels == 3] < 0.9))
    assert row["fd"] == pytest.approx(row["baseline"]["fd"], abs=1.0)
    # the same rng seed gives the same block
    again = quality_block(real, real_labels, fake, fake_labels, conf, np.random.default_rng(0))
    assert again == block


def test_quality_block_of_far_samples_is_far_from_its_baseline():
    real, real_labels, fake, fake_labels = real_and_fake()
    block = quality_block(real, real_labels, fake + 5.0, fake_labels, np.ones(len(fake)), np.random.default_rng(0))
    assert block["fd"] == pytest.approx(10 * 25.0, rel=0.05) and block["baseline"]["fd"] < 0.2
    assert block["precision"] < 0.01 and block["baseline"]["precision"] > 0.5
    assert block["ambiguity"] == 0.0


def test_quality_block_matches_sizes_and_leaves_out_small_classes():
    # 3,000 real (halves of 1,500) against 1,000 samples: both sides compared at 1,000 against 1,500;
    # class 9 has 10 samples (left out), class 8 only 40 real images (too few in each half: no FD)
    real, real_labels = clusters(CENTRES, 300, seed=0, spread=1.0)
    keep = (real_labels != 8) | (np.arange(len(real)) % 300 < 40)
    real, real_labels = real[keep], real_labels[keep]
    fake, fake_labels = clusters(CENTRES[:9], 110, seed=1, spread=1.0)
    extra, _ = clusters(CENTRES[9:], 10, seed=2, spread=1.0)
    fake, fake_labels = np.concatenate([fake, extra]), np.concatenate([fake_labels, np.full(10, 9)])
    block = quality_block(real, real_labels, fake, fake_labels, np.ones(len(fake)), np.random.default_rng(0))
    assert (block["samples"], block["compared"], block["reference"]) == (1000, 1000, (len(real) + 1) // 2)
    assert "9" not in block["per_class"]
    assert block["per_class"]["8"]["samples"] == 110 and block["per_class"]["8"]["fd"] is None
    assert block["per_class"]["8"]["baseline"] is None
    assert block["per_class"]["0"]["compared"] == 110 and block["per_class"]["0"]["reference"] == 150


def test_quality_block_refuses_a_class_minimum_below_k_plus_one():
    real, real_labels, fake, fake_labels = real_and_fake(50, 20)
    with pytest.raises(ParamsError, match="min_class_samples"):
        quality_block(real, real_labels, fake, fake_labels, np.ones(len(fake)), np.random.default_rng(0), 3, 0.9, 3)


# --- the oracle's penultimate features ---------------------------------------------


def old_forward(model, x):
    """OracleCNN.forward as it was before `features` existed."""
    x = F.max_pool2d(F.relu(model.conv1(x)), 2)
    x = F.max_pool2d(F.relu(model.conv2(x)), 2)
    x = model.dropout2(F.relu(model.fc1(torch.flatten(model.dropout1(x), 1))))
    return model.fc2(x)


def test_oracle_features_are_the_dropout_free_fc1_activations_and_forward_is_unchanged():
    torch.manual_seed(0)
    model = OracleCNN(10)
    assert list(model.state_dict()) == [
        "conv1.weight",
        "conv1.bias",
        "conv2.weight",
        "conv2.bias",
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
    ]
    x = torch.rand(8, 3, 28, 28)
    model.eval()
    feats = model.features(x)
    assert feats.shape == (8, 128) and (feats >= 0).all()
    torch.testing.assert_close(model.fc2(feats), model(x))
    torch.testing.assert_close(model(x), old_forward(model, x), rtol=0, atol=0)
    model.train()  # no dropout in the features, whatever the mode
    torch.testing.assert_close(model.features(x), feats, rtol=0, atol=0)
    torch.manual_seed(1)
    new = model(x)
    torch.manual_seed(1)
    torch.testing.assert_close(new, old_forward(model, x), rtol=0, atol=0)  # same dropout masks


def test_features_helper_batches_uint8_images_and_handles_none():
    torch.manual_seed(0)
    model = OracleCNN(10)
    images = np.random.default_rng(0).integers(0, 256, size=(20, 28, 28, 3), dtype=np.uint8)
    out = features(model, images, batch_size=7)
    assert out.shape == (20, 128) and out.dtype == np.float64
    np.testing.assert_allclose(out, features(model, images), rtol=1e-6, atol=1e-6)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    np.testing.assert_allclose(out, model.eval().features(x).detach().double().numpy(), rtol=1e-6, atol=1e-6)
    assert features(model, images[:0]).shape == (0, 128)
