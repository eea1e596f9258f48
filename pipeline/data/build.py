"""All datasets of one factor (method, step 1), and their manifest.

Under data/<factor>/ one folder per dataset
  balanced, skewed_k<k>[_r<percent>]  the generative models' training sets (names.datasets)
  test                   every test digit twice, without and with the factor
  val                    a balanced held-out set for the discriminator probe
and manifest.json with counts per (class, f), class names, parameters and
file hashes. For a manifest source the factor is observed, not rendered:
`test` is the held-out split as it is, and the datasets are selections (see
pipeline/data/datasets.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.progress import Progress

from pipeline.data.datasets import (
    FactorDataset,
    assemble,
    balanced_factor,
    both_ways,
    capacity,
    counts,
    present_share,
    save_dataset,
    select_observed,
    skewed_factor,
)
from pipeline.data.manifest import LabelledImages
from pipeline.data.render import render_split
from pipeline.data.sources import read_source
from pipeline.errors import DataError
from pipeline.files import DataManifest, DatasetEntry
from pipeline.io import rng_for
from pipeline.names import BALANCED, skewed
from pipeline.params import Params


def build(factor: str, params: Params, source: Path, workers: int, progress: Progress | None = None) -> dict:
    """All datasets of `factor`, keyed by name."""
    train, test = read_source(source)
    if isinstance(train, LabelledImages):
        return build_observed(factor, train, test, params)
    seed = params.seed
    absent, present, green = render_split(factor, train.images, params.perturb, seed, "train", workers, progress)
    t_absent, t_present, t_green = render_split(factor, test.images, params.perturb, seed, "test", workers, progress)

    out = {
        BALANCED: assemble(
            absent, present, train.labels, balanced_factor(train.labels, rng_for(seed, "balanced", factor)), green
        )
    }
    for k in params.skew.rare_classes:
        for r in params.skew.rare_fractions:  # each r draws from k's stream: one r alone gives the set it always gave
            f = skewed_factor(train.labels, k, r, rng_for(seed, "skewed", factor, k))
            out[skewed(k, r)] = assemble(absent, present, train.labels, f, green)
    out["test"] = both_ways(t_absent, t_present, test.labels, t_green)
    val = rng_for(seed, "val", factor).choice(len(test.labels), size=params.data.val_size, replace=False)
    val.sort()
    val_f = balanced_factor(test.labels[val], rng_for(seed, "val-factor", factor))
    out["val"] = assemble(t_absent[val], t_present[val], test.labels[val], val_f, t_green[val])
    return out


def _observed(images: LabelledImages, idx: np.ndarray) -> FactorDataset:
    part = images.take(idx)
    return FactorDataset(part.images, part.labels, part.factor, np.zeros(len(idx), dtype=bool))


def build_observed(factor: str, train: LabelledImages, test: LabelledImages, params: Params) -> dict:
    """The datasets of a factor observed in the images (a manifest source)."""
    n, seed = params.data.num_classes, params.seed
    shares = {BALANCED: present_share(n, None)}
    for k in params.skew.rare_classes:
        for r in params.skew.rare_fractions:
            shares[skewed(k, r)] = present_share(n, k, r)
    # the same number of images per class in every dataset: the smallest any of them allows (so a
    # fraction added to skew.rare_fractions can shrink every set of a manifest source, the balanced one too)
    sizes = np.min([capacity(train.labels, train.factor, share) for share in shares.values()], axis=0)
    if (empty := np.flatnonzero(sizes == 0)).size:
        names = [params.data.manifest.classes[c] for c in empty]
        raise DataError(
            f"class(es) {names} cannot be balanced and skewed: each needs training images "
            f"both with and without {factor}; add such images to the manifest"
        )
    out = {
        name: _observed(train, select_observed(train.labels, train.factor, share, sizes, rng_for(seed, name, factor)))
        for name, share in shares.items()
    }
    out["test"] = _observed(test, np.arange(len(test.labels)))
    half = present_share(n, None)
    val_sizes = np.minimum(capacity(test.labels, test.factor, half), params.data.val_size // n)
    out["val"] = _observed(
        test, select_observed(test.labels, test.factor, half, val_sizes, rng_for(seed, "val", factor))
    )
    return out


def write_datasets(folder: Path, factor: str, datasets: dict[str, FactorDataset], params: Params) -> None:
    """Every dataset's arrays and the manifest describing them into `folder`."""
    entries = {}
    for name, ds in datasets.items():
        files = save_dataset(ds, folder / name)
        entries[name] = DatasetEntry(size=len(ds.labels), counts=counts(ds, params.data.num_classes), sha256=files)
    if params.data.source == "manifest":
        origin = {"manifest": params.data.manifest.model_dump()}
    else:
        p = params.perturb
        origin = {"perturb": {"scale": p.scale, "baseline": p.baseline, **getattr(p, factor).model_dump()}}
    manifest = DataManifest(
        factor=factor,
        source=params.data.source,
        seed=params.seed,
        skew=params.skew.model_dump(),
        num_classes=params.data.num_classes,
        class_names=params.class_names(),
        factor_values=params.factor_values(factor),
        image_size=int(datasets[BALANCED].images.shape[1]),
        datasets=entries,
        **origin,
    )
    manifest.write(folder / "manifest.json")
