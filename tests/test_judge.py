"""judge(): what the oracles read becomes counts, verdicts and quality."""

import itertools

import numpy as np
import pytest

from pipeline.data.datasets import FactorDataset
from pipeline.evaluation import judge as judge_module
from pipeline.evaluation.judge import Read, calibrate, evaluate_run, judge
from pipeline.files import DataManifest, DatasetEntry
from pipeline.generative.controls import control_samples
from pipeline.io import rng_for
from pipeline.paths import run_name
from tests.helpers import params


def _read(labels, factor, factor_confidence, shift=0.0, seed=0):
    rng = np.random.default_rng(seed)
    n = len(labels)
    feats = rng.normal(size=(n, 8)) + shift
    return Read(np.asarray(labels), np.full(n, 0.95), np.asarray(factor), np.asarray(factor_confidence), feats)


@pytest.fixture
def oracle_reads(monkeypatch):
    """Class 0 and 1, 100 samples each per run; the skewed run's class-1
    samples all carry f, and 30 of its class-0 samples are read unsurely."""
    balanced = _read([0] * 100 + [1] * 100, [0, 1] * 100, [0.99] * 200)
    skewed_conf = [0.5] * 30 + [0.99] * 170
    skewed = _read([0] * 100 + [1] * 100, [0] * 100 + [1] * 100, skewed_conf, shift=10.0, seed=1)
    real_feats = np.random.default_rng(2).normal(size=(400, 8))
    real_read = Read(np.repeat([0, 1], 200), np.full(400, 0.99), np.tile([0, 1], 200), np.full(400, 0.99), real_feats)
    reads = itertools.cycle([balanced, skewed, real_read])
    monkeypatch.setattr(judge_module, "read_samples", lambda *a: next(reads))
    real = FactorDataset(
        np.zeros((400, 4, 4, 3), np.uint8), np.repeat([0, 1], 200), np.zeros(400, np.uint8), np.zeros(400, bool)
    )
    return real


def _judge(real, *overrides):
    ev = params("smoke", *overrides).evaluation
    rngs = {run: np.random.default_rng(i) for i, run in enumerate(("balanced", "skewed"))}
    return judge(None, None, None, None, 1, ev, "cpu", -1, num_classes=2, real=real, rngs=rngs)[0]


def test_unsure_samples_are_dropped_before_counting(oracle_reads):
    metrics = _judge(oracle_reads, "evaluation.min_factor_confidence=0.9")
    assert metrics["dropped"] == {"balanced": 0, "skewed": 30}
    row = metrics["classes"]["0"]
    assert (row.n_b, row.k_b, row.n_s, row.k_s) == (100, 50, 70, 0)
    assert metrics["min_factor_confidence"] == 0.9


def test_nothing_is_dropped_by_default(oracle_reads):
    metrics = _judge(oracle_reads)
    assert metrics["dropped"] == {"balanced": 0, "skewed": 0} and metrics["classes"]["0"].n_s == 100


def test_quality_of_both_runs_and_the_low_quality_mark(oracle_reads):
    metrics = _judge(oracle_reads, "evaluation.max_fd=5", "evaluation.min_precision=null")
    quality = metrics["quality"]
    # the balanced run's features come from the real distribution, the skewed run's are shifted by 10 in 8 dims
    assert quality["balanced"]["fd"] < 1.0 and quality["skewed"]["fd"] > 700
    assert quality["skewed"]["precision"] == 0.0
    assert quality["skewed"]["ambiguity"] == pytest.approx(30 / 200)
    assert len(metrics["low_quality"]) == 1 and metrics["low_quality"][0].startswith("skewed: FD ")
    assert metrics["low_quality"][0].endswith("> evaluation.max_fd 5")
    off = ("evaluation.max_fd=null", "evaluation.min_precision=null")
    assert _judge(oracle_reads, *off)["low_quality"] == []  # no threshold, no mark
    both = _judge(oracle_reads, "evaluation.max_fd=5", "evaluation.min_precision=0.5")["low_quality"]
    assert both == ["skewed: FD 803.7 > evaluation.max_fd 5", "skewed: precision 0.00 < evaluation.min_precision 0.5"]


def test_a_balanced_runs_quality_is_one_number_in_every_row(oracle_reads):
    """The quality of the one balanced run is the same whichever rare class it
    is compared against (its generator is keyed by the run, not the comparison);
    each skewed run draws its own real halves."""
    entry = DatasetEntry(size=200, counts={"0": {"f0": 100, "f1": 0}, "1": {"f0": 0, "f1": 100}}, sha256={})
    manifest = DataManifest(
        factor="colour",
        source="mnist-bundled",
        seed=0,
        skew={"rare_classes": [0, 1], "rare_fractions": [0.0]},
        num_classes=2,
        class_names=["0", "1"],
        factor_values=("red", "green"),
        image_size=4,
        datasets={"balanced": entry, "skewed_k0": entry, "skewed_k1": entry},
    )
    samples = dict.fromkeys(("balanced", "skewed_k0", "skewed_k1"), np.zeros((200, 4, 4, 3), np.uint8))
    oracles = (None, None, {"label": 0.99, "factor": 0.99})
    ev = params("smoke").evaluation
    rows = [
        evaluate_run("vae", "colour", k, samples, manifest, oracle_reads, oracles, ev, "cpu", seed=0)[0].quality
        for k in (0, 1)
    ]
    assert rows[0]["balanced"] == rows[1]["balanced"]
    assert rows[0]["skewed"].fd != rows[1]["skewed"].fd


def _pool(n, factor_of):
    """A Read of n images, classes 0..9 in turn, f from factor_of(class, index)."""
    labels = np.arange(n) % 10
    factor = np.array([factor_of(c, i) for i, c in enumerate(labels)])
    return Read(labels, np.ones(n), factor, np.ones(n), np.zeros((n, 2)))


@pytest.fixture(scope="module")
def calibration():
    """Each control's calibration over 100 redraws of 500 samples per run."""
    pools = {"balanced": _pool(4000, lambda c, i: (i // 10) % 2), "skewed_k1": _pool(4000, lambda c, i: int(c == 1))}
    ev = params("smoke", "evaluation.control_resamples=100", "evaluation.num_samples=500").evaluation
    return {
        model: calibrate(model, 1, pools, ev, np.random.default_rng(0), -1, 10)[0]
        for model in ("data-learner", "data-memorizer", "data-mixer")
    }


def test_the_learner_measures_each_tests_false_positive_rate(calibration):
    learner = {test: t for test, t in calibration["data-learner"].items() if test != "concentration"}
    assert all(t["defined"] == 1000 for t in learner.values())  # 100 redraws x 10 classes, all defined
    rate = {test: t["flagged"] / t["defined"] for test, t in learner.items()}
    concentration = calibration["data-learner"]["concentration"]
    assert concentration["defined"] == 100 and concentration["flagged"] <= 12  # one comparison a redraw; alpha 0.05
    # the pooled test holds alpha = 0.05; the one-sample test treats P_c^u as exact and runs well above it
    assert 0.02 <= rate["two_proportion"] <= 0.09 and rate["fisher"] <= rate["two_proportion"]
    assert rate["one_sample"] >= 0.12


def test_the_memorizer_is_always_caught_and_the_mixer_sometimes(calibration):
    memorizer = calibration["data-memorizer"]
    assert all(t["flagged"] == t["defined"] == 1000 for test, t in memorizer.items() if test != "concentration")
    assert memorizer["concentration"] == {"flagged": 100, "defined": 100}
    mixer = {test: t["flagged"] / t["defined"] for test, t in calibration["data-mixer"].items()}
    # a 20% mix moves P(f=1) by 0.1 at about 50 samples per class: detected, but not always
    assert 0.1 < mixer["two_proportion"] < 0.9 and mixer["one_sample"] > mixer["two_proportion"]


def test_the_learners_two_runs_draw_different_samples():
    rng = {d: rng_for(0, "sample", run_name("data-learner", "colour", d, 0)) for d in ("balanced", "skewed_k1")}
    images = np.arange(500, dtype=np.uint8).reshape(500, 1, 1, 1).repeat(3, axis=3)
    pools = {
        d: FactorDataset(images, np.zeros(500, np.int64), np.zeros(500, np.uint8), np.zeros(500, bool)) for d in rng
    }
    draws = {d: control_samples("data-learner", d, pools, 100, rng[d], 0.2) for d in rng}
    assert not np.array_equal(draws["balanced"], draws["skewed_k1"])


def test_the_mixer_draws_its_fraction_from_the_skewed_set():
    pools = {
        "balanced": FactorDataset(
            np.zeros((50, 2, 2, 3), np.uint8), np.zeros(50, np.int64), np.zeros(50, np.uint8), np.zeros(50, bool)
        ),
        "skewed_k1": FactorDataset(
            np.full((50, 2, 2, 3), 255, np.uint8), np.zeros(50, np.int64), np.ones(50, np.uint8), np.zeros(50, bool)
        ),
    }
    out = control_samples("data-mixer", "skewed_k1", pools, 40, np.random.default_rng(0), 0.2)
    assert out.shape == (40, 2, 2, 3) and int((out[:, 0, 0, 0] == 255).sum()) == 8  # round(0.2 x 40)
    assert not control_samples("data-mixer", "balanced", pools, 40, np.random.default_rng(0), 0.2).any()
