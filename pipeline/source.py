"""Stage `source`: bring the raw digits into the pipeline.

Reads MNIST (the published IDX files, downloaded if allowed), the bundled
5,000-image subset, or a folder of labelled images with a CSV manifest
(CompCars, your own data), optionally subsamples it (small profiles), and
writes plain arrays under data/source with a manifest. A manifest source
also writes each image's observed factor (`<split>_factor.npy`). Raw data enters DVC here, so
queued experiments, which run in a copy of the repo without git-ignored
files, get it from the DVC cache.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np
from rich.progress import Progress

from pipeline.config import Params, load_params
from pipeline.data.datasets import rng_for, write_json
from pipeline.data.manifest import LabelledImages, load_manifest_source
from pipeline.data.mnist import MNIST_FILES, Digits, download_mnist, load_bundled, load_mnist_dir
from pipeline.stage import InputError, atomic_dir, exit_with, parser

Images = Digits | LabelledImages


def subsample(images: Images, size: int | None, rng: np.random.Generator, split: str) -> Images:
    """A uniformly random subset of `size` images (all when size is None)."""
    if size is None:
        return images
    if size > len(images.labels):
        raise InputError(f"data.{split}_size = {size} but the source has only {len(images.labels)} {split} images")
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
    with Progress(transient=True) as progress:
        train, test = load_source(params, progress)
    n = params.data.num_classes
    with atomic_dir(args.out) as tmp:
        manifest = {"source": params.data.source, "seed": params.seed}
        for split, part in (("train", train), ("test", test)):
            for f in fields(part):
                np.save(tmp / f"{split}_{f.name}.npy", getattr(part, f.name), allow_pickle=False)
            manifest[split] = {"size": len(part.labels), "per_class": np.bincount(part.labels, minlength=n).tolist()}
            if isinstance(part, LabelledImages):
                manifest[split]["present_per_class"] = np.bincount(part.labels[part.factor == 1], minlength=n).tolist()
        write_json(tmp / "manifest.json", manifest)
    print(f"source: {len(train.labels)} train and {len(test.labels)} test images from {params.data.source}")


def read_source(directory: str | Path) -> tuple[Images, Images]:
    """Load the arrays `main` wrote: Digits, or LabelledImages for a manifest source."""
    directory = Path(directory)
    out = []
    for split in ("train", "test"):
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
            raise InputError(f"{directory}: unreadable source arrays ({err}); run `dvc repro source`") from None
    return out[0], out[1]


if __name__ == "__main__":
    exit_with(main)
