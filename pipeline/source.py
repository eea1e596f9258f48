"""Stage `source`: bring the raw digits into the pipeline.

Reads MNIST (the published IDX files, downloaded if allowed) or the bundled
5,000-image subset, optionally subsamples it (small profiles), and writes
plain arrays under data/source with a manifest. Raw data enters DVC here, so
queued experiments, which run in a copy of the repo without git-ignored
files, get it from the DVC cache.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.config import Params, load_params
from pipeline.data.datasets import rng_for, write_json
from pipeline.data.mnist import MNIST_FILES, Digits, download_mnist, load_bundled, load_mnist_dir
from pipeline.stage import InputError, atomic_dir, exit_with, parser


def subsample(digits: Digits, size: int | None, rng: np.random.Generator, split: str) -> Digits:
    """A uniformly random subset of `size` images (all when size is None)."""
    if size is None:
        return digits
    if size > len(digits.labels):
        raise InputError(f"data.{split}_size = {size} but the source has only {len(digits.labels)} {split} images")
    idx = np.sort(rng.choice(len(digits.labels), size=size, replace=False))
    return Digits(digits.images[idx], digits.labels[idx])


def load_source(params: Params) -> tuple[Digits, Digits]:
    """(train, test) digits as configured by the `data` section."""
    d = params.data
    if d.source == "mnist-bundled":
        train, test = load_bundled(d.bundled_test_fraction, params.seed)
    else:
        directory = Path(d.mnist_dir)
        if d.download and not all((directory / name).exists() for name in MNIST_FILES):
            download_mnist(directory)
        train, test = load_mnist_dir(directory)
    train = subsample(train, d.train_size, rng_for(params.seed, "subsample", "train"), "train")
    test = subsample(test, d.test_size, rng_for(params.seed, "subsample", "test"), "test")
    if d.val_size > len(test.labels):
        raise InputError(f"data.val_size = {d.val_size} exceeds the {len(test.labels)} test images it is drawn from")
    missing = sorted(set(params.skew.rare_classes) - set(np.unique(train.labels).tolist()))
    if missing:
        raise InputError(f"rare class(es) {missing} have no training images; raise data.train_size")
    return train, test


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--out", default="data/source", type=Path)
    args = p.parse_args(argv)
    params = load_params(args.params)
    train, test = load_source(params)
    with atomic_dir(args.out) as tmp:
        for split, digits in (("train", train), ("test", test)):
            np.save(tmp / f"{split}_images.npy", digits.images, allow_pickle=False)
            np.save(tmp / f"{split}_labels.npy", digits.labels, allow_pickle=False)
        write_json(
            tmp / "manifest.json",
            {
                "source": params.data.source,
                "seed": params.seed,
                "train": {"size": len(train.labels), "per_class": np.bincount(train.labels, minlength=10).tolist()},
                "test": {"size": len(test.labels), "per_class": np.bincount(test.labels, minlength=10).tolist()},
            },
        )


def read_source(directory: str | Path) -> tuple[Digits, Digits]:
    """Load the arrays `main` wrote."""
    directory = Path(directory)
    out = []
    for split in ("train", "test"):
        try:
            images = np.load(directory / f"{split}_images.npy", allow_pickle=False)
            labels = np.load(directory / f"{split}_labels.npy", allow_pickle=False)
        except (FileNotFoundError, ValueError) as err:
            raise InputError(f"{directory}: unreadable source arrays ({err}); run `dvc repro source`") from None
        out.append(Digits(images, labels))
    return out[0], out[1]


if __name__ == "__main__":
    exit_with(main)
