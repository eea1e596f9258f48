"""The raw images of a study (`data.source`): MNIST (the published IDX
files, downloaded if allowed), the bundled 5,000-image subset, or a folder of
labelled images with a CSV manifest (CompCars, your own data), optionally
subsampled (small profiles), and the plain arrays the source stage keeps of
them under data/source. A manifest source also keeps each image's observed
factor (`<split>_factor.npy`)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np
from rich.progress import Progress

from pipeline.data.manifest import LabelledImages, load_manifest_source
from pipeline.data.mnist import MNIST_FILES, Digits, download_mnist, load_bundled, load_mnist_dir
from pipeline.errors import DataError, ParamsError
from pipeline.files import SourceManifest, SplitCounts
from pipeline.io import rng_for
from pipeline.params import Params

Images = Digits | LabelledImages
SPLITS = ("train", "test")


def subsample(images: Images, size: int | None, rng: np.random.Generator, split: str) -> Images:
    """A uniformly random subset of `size` images (all when size is None)."""
    if size is None:
        return images
    if size > len(images.labels):
        raise ParamsError(f"data.{split}_size = {size} but the source has only {len(images.labels)} {split} images")
    idx = np.sort(rng.choice(len(images.labels), size=size, replace=False))
    return type(images)(**{f.name: getattr(images, f.name)[idx] for f in fields(images)})


def load_source(params: Params, progress: Progress | None = None) -> tuple[Images, Images]:
    """(train, test) images as configured by the `data` section."""
    d = params.data
    if d.source == "manifest":
        train, test = load_manifest_source(d.manifest, rng_for(params.seed, "split"), progress)
    elif d.source == "mnist-bundled":
        train, test = load_bundled(d.bundled_test_fraction, params.seed)
    else:
        directory = Path(d.mnist_dir)
        if d.download and not all((directory / name).exists() for name in MNIST_FILES):
            download_mnist(directory)
        train, test = load_mnist_dir(directory)
    train = subsample(train, d.train_size, rng_for(params.seed, "subsample", "train"), "train")
    test = subsample(test, d.test_size, rng_for(params.seed, "subsample", "test"), "test")
    if d.val_size > len(test.labels):
        raise ParamsError(f"data.val_size = {d.val_size} exceeds the {len(test.labels)} test images it is drawn from")
    missing = sorted(set(params.skew.rare_classes) - set(np.unique(train.labels).tolist()))
    if missing:
        raise ParamsError(f"rare class(es) {missing} have no training images; raise data.train_size")
    return train, test


def write_source(folder: Path, train: Images, test: Images, params: Params) -> None:
    """The arrays of both splits and manifest.json into `folder`."""
    n = params.data.num_classes
    counts = {}
    for split, part in zip(SPLITS, (train, test), strict=True):
        for f in fields(part):
            np.save(folder / f"{split}_{f.name}.npy", getattr(part, f.name), allow_pickle=False)
        split_counts = {"size": len(part.labels), "per_class": np.bincount(part.labels, minlength=n).tolist()}
        if isinstance(part, LabelledImages):
            split_counts["present_per_class"] = np.bincount(part.labels[part.factor == 1], minlength=n).tolist()
        counts[split] = SplitCounts(**split_counts)
    SourceManifest(source=params.data.source, seed=params.seed, **counts).write(folder / "manifest.json")


def read_source(directory: str | Path) -> tuple[Images, Images]:
    """Load the arrays `write_source` wrote: Digits, or LabelledImages for a manifest source."""
    directory = Path(directory)
    out = []
    for split in SPLITS:
        try:
            arrays = {
                name: np.load(directory / f"{split}_{name}.npy", allow_pickle=False) for name in ("images", "labels")
            }
            if (directory / f"{split}_factor.npy").exists():
                arrays["factor"] = np.load(directory / f"{split}_factor.npy", allow_pickle=False)
                out.append(LabelledImages(**arrays))
            else:
                out.append(Digits(**arrays))
        except (FileNotFoundError, ValueError) as err:
            raise DataError(f"{directory}: unreadable source arrays ({err}); run `dvc repro source`") from None
    return out[0], out[1]
