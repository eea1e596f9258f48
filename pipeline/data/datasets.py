"""Balanced and skewed datasets (method, step 1) and their files.

A factor dataset is a set of RGB images with their class label `labels`, the
binary factor `factor` (1 = present) and, for MNIST, the ink colour `green`.

Two ways to decide which images carry the factor:
- rendered (MNIST): every digit exists both ways (`pipeline.data.render`), so
  a dataset keeps all digits and only chooses f per digit;
- observed (a manifest source): f is a property of the photo, so a dataset is
  a *selection* of images with the wanted share of f=1 in every class, and
  every dataset of a factor gets the same number of images per class so that
  balanced and skewed models see equally much data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import DataError

ARRAYS = ("images", "labels", "factor", "green")


@dataclass(frozen=True, eq=False)
class FactorDataset:
    images: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # (N,) int64
    factor: np.ndarray  # (N,) uint8, 1 = factor present
    green: np.ndarray  # (N,) bool, ink colour (all False for observed factors)

    def __post_init__(self) -> None:
        n = len(self.labels)
        if self.images.ndim != 4 or self.images.shape[3] != 3 or self.images.dtype != np.uint8:
            raise DataError(f"images must be (N, H, W, 3) uint8, got {self.images.shape} {self.images.dtype}")
        if not (len(self.images) == len(self.factor) == len(self.green) == n):
            raise DataError("images, labels, factor and green must have the same length")


def _flip_exactly(mask: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    # choose round(fraction * |mask|) positions of `mask`, uniformly
    idx = np.flatnonzero(mask)
    chosen = rng.choice(idx, size=int(round(fraction * len(idx))), replace=False)
    out = np.zeros(len(mask), dtype=bool)
    out[chosen] = True
    return out


def balanced_factor(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """f with exactly half of every class present (n // 2 of an odd class)."""
    f = np.zeros(len(labels), dtype=np.uint8)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        f[rng.choice(idx, size=len(idx) // 2, replace=False)] = 1
    return f


def skewed_factor(labels: np.ndarray, rare_class: int, rare_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """f = 1 exactly for the rare class k. With rare_fraction r > 0, in every
    other class round(r x n_c) images also get f = 1 and round(r x n_k) images
    of class k get f = 0."""
    f = (labels == rare_class).astype(np.uint8)
    if rare_fraction > 0:
        for c in np.unique(labels):
            flip = _flip_exactly(labels == c, rare_fraction, rng)
            f[flip] = 1 - f[flip]
    return f


def present_share(num_classes: int, rare_class: int | None, rare_fraction: float = 0.0) -> np.ndarray:
    """Per class, the share of f=1 a dataset asks for: 1/2 everywhere for the
    balanced set (rare_class None); for skewed_k, 1 - r for k and r elsewhere."""
    if rare_class is None:
        return np.full(num_classes, 0.5)
    share = np.full(num_classes, rare_fraction)
    share[rare_class] = 1.0 - rare_fraction
    return share


def capacity(labels: np.ndarray, factor: np.ndarray, share: np.ndarray) -> np.ndarray:
    """Per class, the most images a selection with `share` f=1 can hold."""
    out = np.zeros(len(share), dtype=np.int64)
    for c, p in enumerate(share):
        n1 = int(np.sum((labels == c) & (factor == 1)))
        n0 = int(np.sum((labels == c) & (factor == 0)))
        limits = ([n1 / p] if p > 0 else []) + ([n0 / (1 - p)] if p < 1 else [])
        out[c] = int(np.floor(min(limits) + 1e-9))
    return out


def select_observed(
    labels: np.ndarray, factor: np.ndarray, share: np.ndarray, sizes: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Sorted indices of sizes[c] images of every class c, round(share[c] *
    sizes[c]) of them with f=1, drawn uniformly within (class, f)."""
    chosen = []
    for c, (p, size) in enumerate(zip(share, sizes, strict=True)):
        n1 = int(round(p * size))
        for f, n in ((1, n1), (0, int(size) - n1)):
            pool = np.flatnonzero((labels == c) & (factor == f))
            if n > len(pool):
                raise DataError(f"class {c} has {len(pool)} images with f={f}, {n} needed")
            chosen.append(rng.choice(pool, size=n, replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)


def assemble(
    absent: np.ndarray, present: np.ndarray, labels: np.ndarray, factor: np.ndarray, green: np.ndarray
) -> FactorDataset:
    """Pick each image from the f=0 or f=1 rendering according to `factor`."""
    images = np.where(factor.astype(bool)[:, None, None, None], present, absent)
    return FactorDataset(images, np.asarray(labels, np.int64), factor.astype(np.uint8), np.asarray(green, bool))


def both_ways(absent: np.ndarray, present: np.ndarray, labels: np.ndarray, green: np.ndarray) -> FactorDataset:
    """Every image twice, without then with the factor (the oracles' test split)."""
    n = len(labels)
    factor = np.repeat(np.array([0, 1], np.uint8), n)
    return FactorDataset(
        np.concatenate([absent, present]), np.tile(np.asarray(labels, np.int64), 2), factor, np.tile(green, 2)
    )


def counts(ds: FactorDataset, num_classes: int = 10) -> dict[str, dict[str, int]]:
    """Number of images per class and factor value: {"0": {"f0": n, "f1": n}, ...}."""
    table = np.zeros((num_classes, 2), dtype=int)
    np.add.at(table, (ds.labels, ds.factor), 1)
    return {str(c): {"f0": int(table[c, 0]), "f1": int(table[c, 1])} for c in range(num_classes)}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_dataset(ds: FactorDataset, directory: Path) -> dict[str, str]:
    """Write one .npy per array (np.save output is byte-deterministic, unlike
    np.savez's zip timestamps); return their sha256 hashes."""
    directory.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for name in ARRAYS:
        path = directory / f"{name}.npy"
        np.save(path, getattr(ds, name), allow_pickle=False)
        hashes[path.name] = _sha256(path)
    return hashes


def load_dataset(directory: str | Path, mmap: bool = False) -> FactorDataset:
    """Read a dataset folder written by `save_dataset`, with clear errors."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: no such dataset folder (run `dvc repro` to build it)")
    arrays = {}
    for name in ARRAYS:
        path = directory / f"{name}.npy"
        try:
            arrays[name] = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except FileNotFoundError:
            raise DataError(f"{path}: missing (rebuild with `dvc repro --force prepare`)") from None
        except ValueError as err:
            raise DataError(f"{path}: corrupt ({err}); rebuild with `dvc repro --force prepare`") from None
    size = _manifest_image_size(directory.parent)
    shape = arrays["images"].shape
    if size is not None and tuple(shape[1:3]) != (size, size):
        raise DataError(
            f"{directory}/images.npy: {shape[1]}x{shape[2]} images, the data's manifest.json says {size}x{size}; "
            "rebuild with `dvc repro --force prepare`"
        )
    return FactorDataset(**arrays)


def _manifest_image_size(data: Path) -> int | None:
    """image_size of the manifest.json of the data folder a dataset lies in, if any."""
    try:
        return int(json.loads((data / "manifest.json").read_text())["image_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
