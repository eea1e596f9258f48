"""Stage `prepare@<factor>`: the balanced and skewed datasets of one factor.

Writes under data/<factor>/ one folder per dataset
  balanced, skewed_k<k>  the generative models' training sets (method, step 1)
  test                   every test digit twice, without and with the factor
  val                    a balanced held-out set for the discriminator probe
and manifest.json with counts per (class, f), parameters and file hashes.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipeline.config import Params, load_params
from pipeline.data.datasets import (
    assemble,
    balanced_factor,
    both_ways,
    counts,
    rng_for,
    save_dataset,
    skewed_factor,
    write_json,
)
from pipeline.data.render import render_split
from pipeline.factors import FACTORS
from pipeline.source import read_source
from pipeline.stage import atomic_dir, exit_with, parser


def build(factor: str, params: Params, source: Path, workers: int, progress: Progress | None = None) -> dict:
    """All datasets of `factor`, keyed by name."""
    train, test = read_source(source)
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


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--factor", required=True, choices=FACTORS)
    p.add_argument("--source", default="data/source", type=Path)
    p.add_argument("--out", type=Path, help="default: data/<factor>")
    args = p.parse_args(argv)
    params = load_params(args.params)
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
        "perturb": {"scale": params.perturb.scale, **getattr(params.perturb, args.factor).model_dump()},
        "datasets": {},
    }
    with atomic_dir(out_dir) as tmp:
        for name, ds in datasets.items():
            files = save_dataset(ds, tmp / name)
            manifest["datasets"][name] = {"size": len(ds.labels), "counts": counts(ds), "sha256": files}
        write_json(tmp / "manifest.json", manifest)
    elapsed = time.perf_counter() - start
    n = sum(len(ds.labels) for ds in datasets.values())
    print(f"prepare@{args.factor}: {len(datasets)} datasets, {n} images in {elapsed:.1f} s -> {out_dir}")


if __name__ == "__main__":
    exit_with(main)
