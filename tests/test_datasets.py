import numpy as np
import pytest

from pipeline.data.datasets import (
    FactorDataset,
    assemble,
    balanced_factor,
    both_ways,
    counts,
    load_dataset,
    save_dataset,
    skewed_factor,
)
from pipeline.errors import DataError
from pipeline.io import rng_for

# uneven classes, one of them odd-sized
LABELS = np.repeat(np.arange(10), [100, 101, 80, 60, 90, 100, 100, 100, 100, 50])


def _per_class(f):
    return np.array([[np.sum((LABELS == c) & (f == v)) for v in (0, 1)] for c in range(10)])


def test_balanced_is_exactly_half_in_every_class():
    f = balanced_factor(LABELS, np.random.default_rng(0))
    sizes = np.bincount(LABELS)
    assert np.array_equal(_per_class(f)[:, 1], sizes // 2)
    assert np.array_equal(_per_class(f)[:, 0], sizes - sizes // 2)


def test_skewed_puts_the_factor_exactly_on_the_rare_class():
    f = skewed_factor(LABELS, 2, 0.0, np.random.default_rng(0))
    assert np.array_equal(f, (LABELS == 2).astype(np.uint8))


def test_relaxed_skew_flips_the_configured_fraction_of_every_class():
    f = skewed_factor(LABELS, 1, 0.1, np.random.default_rng(0))
    table = _per_class(f)
    sizes = np.bincount(LABELS)
    expected_on = np.round(0.1 * sizes).astype(int)
    expected_on[1] = sizes[1] - round(0.1 * sizes[1])
    assert np.array_equal(table[:, 1], expected_on)


def test_builders_are_deterministic_under_the_seed():
    a = balanced_factor(LABELS, rng_for(7, "balanced", "thin"))
    b = balanced_factor(LABELS, rng_for(7, "balanced", "thin"))
    c = balanced_factor(LABELS, rng_for(7, "balanced", "thick"))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def _renderings(n=20):
    absent = np.zeros((n, 4, 4, 3), np.uint8)
    present = np.full((n, 4, 4, 3), 9, np.uint8)
    return absent, present


def test_assemble_takes_each_image_from_its_rendering():
    absent, present = _renderings()
    f = np.arange(20) % 3 == 0
    ds = assemble(absent, present, np.arange(20) % 10, f, np.zeros(20, bool))
    assert np.array_equal(ds.images[:, 0, 0, 0] == 9, f)
    assert ds.factor.dtype == np.uint8 and ds.labels.dtype == np.int64


def test_both_ways_renders_every_image_twice():
    absent, present = _renderings()
    ds = both_ways(absent, present, np.arange(20) % 10, np.ones(20, bool))
    assert len(ds.labels) == 40
    assert counts(ds) == {str(c): {"f0": 2, "f1": 2} for c in range(10)}
    assert not ds.images[:20].any() and (ds.images[20:] == 9).all()


def test_save_and_load_round_trip(tmp_path):
    absent, present = _renderings()
    ds = assemble(absent, present, np.arange(20) % 10, np.arange(20) % 2, np.arange(20) % 4 == 0)
    hashes = save_dataset(ds, tmp_path / "d")
    assert set(hashes) == {"images.npy", "labels.npy", "factor.npy", "green.npy"}
    back = load_dataset(tmp_path / "d")
    for name in ("images", "labels", "factor", "green"):
        assert np.array_equal(getattr(back, name), getattr(ds, name))


def test_load_reports_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DataError, match="no such dataset folder"):
        load_dataset(tmp_path / "nothing")
    absent, present = _renderings()
    save_dataset(assemble(absent, present, np.arange(20) % 10, np.zeros(20), np.zeros(20, bool)), tmp_path / "d")
    (tmp_path / "d" / "labels.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match="labels.npy: corrupt"):
        load_dataset(tmp_path / "d")
    (tmp_path / "d" / "labels.npy").unlink()
    with pytest.raises(DataError, match="labels.npy: missing"):
        load_dataset(tmp_path / "d")


def test_mismatched_arrays_are_rejected():
    with pytest.raises(DataError, match="same length"):
        FactorDataset(np.zeros((3, 4, 4, 3), np.uint8), np.zeros(2, np.int64), np.zeros(3, np.uint8), np.zeros(3, bool))
