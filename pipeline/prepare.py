"""Stage `prepare@<factor>`: the balanced and skewed datasets of one factor.

Writes under data/<factor>/ one folder per dataset
  balanced, skewed_k<k>  the generative models' training sets (method, step 1)
  test                   every test digit twice, without and with the factor
  val                    a balanced held-out set for the discriminator probe
and manifest.json with counts per (class, f), class names, parameters and
file hashes. For a manifest source the factor is observed, not rendered:
`test` is the held-out split as it is, and the datasets are selections (see
pipeline/data/datasets.py).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipeline.config import Params, load_params
from pipeline.data.datasets import (
    FactorDataset,
    assemble,
    balanced_factor,
    both_ways,
    capacity,
    counts,
    present_share,
    rng_for,
    save_dataset,
    select_observed,
    skewed_factor,
    write_json,
)
from pipeline.data.manifest import LabelledImages
from pipeline.data.render import render_split
from pipeline.source import read_source
from pipeline.stage import InputError, atomic_dir, check_factor, exit_with, parser


def factor_values(factor: str, params: Params) -> list[str]:
    """Names of f=0 and f=1, for tables."""
    if params.data.source == "manifest":
        return list(params.data.manifest.factor_values)
    return ["red", "green"] if factor == "colour" else ["plain", factor]


def class_names(params: Params) -> list[str]:
    if params.data.source == "manifest":
        return list(params.data.manifest.classes)
    return [str(c) for c in range(params.data.num_classes)]


def build(factor: str, params: Params, source: Path, workers: int, progress: Progress | None = None) -> dict:
    """All datasets of `factor`, keyed by name."""
    train, test = read_source(source)
    if isinstance(train, LabelledImages):
        return build_observed(factor, train, test, params)
    seed = params.seed
    absent, present, green = render_split(factor, train.images, params.perturb, seed, "train", workers, progress)
    t_absent, t_present, t_green = render_split(factor, test.images, params.perturb, seed, "test", workers, progress)

    out = {
        "balanced": assemble(
            absent, present, train.labels, balanced_factor(train.labels, rng_for(seed, "balanced", factor)), green
        )
    }
    for k in params.skew.rare_classes:
        f = skewed_factor(train.labels, k, params.skew.rare_fraction, rng_for(seed, "skewed", factor, k))
        out[f"skewed_k{k}"] = assemble(absent, present, train.labels, f, green)
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
    shares = {"balanced": present_share(n, None)}
    for k in params.skew.rare_classes:
        shares[f"skewed_k{k}"] = present_share(n, k, params.skew.rare_fraction)
    # the same number of images per class in every dataset: the smallest any of them allows
    sizes = np.min([capacity(train.labels, train.factor, share) for share in shares.values()], axis=0)
    if (empty := np.flatnonzero(sizes == 0)).size:
        names = [params.data.manifest.classes[c] for c in empty]
        raise InputError(
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


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--factor", required=True)
    p.add_argument("--source", default="data/source", type=Path)
    p.add_argument("--out", type=Path, help="default: data/<factor>")
    args = p.parse_args(argv)
    params = load_params(args.params)
    check_factor(args.factor, params)
    out_dir = args.out or Path("data") / args.factor
    start = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=False) as progress:
        datasets = build(args.factor, params, args.source, params.workers, progress)
    manifest = {
        "factor": args.factor,
        "source": params.data.source,
        "seed": params.seed,
        "skew": params.skew.model_dump(),
        "num_classes": params.data.num_classes,
        "class_names": class_names(params),
        "factor_values": factor_values(args.factor, params),
        "image_size": int(datasets["balanced"].images.shape[1]),
        "datasets": {},
    }
    if params.data.source == "manifest":
        manifest["manifest"] = params.data.manifest.model_dump()
    else:
        manifest["perturb"] = {"scale": params.perturb.scale, **getattr(params.perturb, args.factor).model_dump()}
    with atomic_dir(out_dir) as tmp:
        for name, ds in datasets.items():
            files = save_dataset(ds, tmp / name)
            manifest["datasets"][name] = {
                "size": len(ds.labels),
                "counts": counts(ds, params.data.num_classes),
                "sha256": files,
            }
        write_json(tmp / "manifest.json", manifest)
    elapsed = time.perf_counter() - start
    n = sum(len(ds.labels) for ds in datasets.values())
    print(f"prepare@{args.factor}: {len(datasets)} datasets, {n} images in {elapsed:.1f} s -> {out_dir}")


if __name__ == "__main__":
    exit_with(main)
