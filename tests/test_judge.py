"""judge(): what the oracles read becomes counts, verdicts and quality."""

import itertools

import numpy as np
import pytest

from pipeline.data.datasets import FactorDataset
from pipeline.evaluation import judge as judge_module
from pipeline.evaluation.judge import Read, judge
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
    reads = itertools.cycle([balanced, skewed])
    monkeypatch.setattr(judge_module, "read_samples", lambda *a: next(reads))
    real_feats = np.random.default_rng(2).normal(size=(400, 8))
    monkeypatch.setattr(judge_module, "features", lambda *a: real_feats)
    real = FactorDataset(
        np.zeros((400, 4, 4, 3), np.uint8), np.repeat([0, 1], 200), np.zeros(400, np.uint8), np.zeros(400, bool)
    )
    return real


def _judge(real, *overrides):
    ev = params("smoke", *overrides).evaluation
    return judge(None, None, None, None, 1, ev, "cpu", -1, num_classes=2, real=real, rng=np.random.default_rng(0))


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
    metrics = _judge(oracle_reads, "evaluation.max_fd=5")
    quality = metrics["quality"]
    # the balanced run's features come from the real distribution, the skewed run's are shifted by 10 in 8 dims
    assert quality["balanced"]["fd"] < 1.0 and quality["skewed"]["fd"] > 700
    assert quality["skewed"]["precision"] == 0.0
    assert quality["skewed"]["ambiguity"] == pytest.approx(30 / 200)
    assert len(metrics["low_quality"]) == 1 and metrics["low_quality"][0].startswith("skewed: FD ")
    assert metrics["low_quality"][0].endswith("> evaluation.max_fd 5")
    assert _judge(oracle_reads)["low_quality"] == []  # no threshold, no mark
