"""`rgf`: the command line around the pipeline's library functions.

    rgf perturb --factor thin --input digits.npy --output thin.npy --seed 0
    rgf download --dest data/raw/mnist
    rgf check-params [params.yaml]
    rgf report [--metrics metrics]
    rgf compcars-manifest /path/to/sv_data [--makes Volkswagen Toyota] [--colours black white]
    rgf standin-cars DIR [--per-cell 60]

The stages themselves run through `dvc repro` (see dvc.yaml).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pipeline.data.mnist import MIRRORS, download_mnist
from pipeline.errors import RgfError
from pipeline.factors import perturb
from pipeline.io import rng_for
from pipeline.names import MORPHOLOGICAL
from pipeline.params import load_params
from pipeline.stages import console, run


def read_grey_digits(path: Path) -> np.ndarray:
    """An (N, 28, 28) uint8 array from a .npy file, or a clear RgfError."""
    try:
        images = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise RgfError(f"{path}: no such file") from None
    except ValueError as err:
        raise RgfError(f"{path}: not a readable .npy array ({err})") from None
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise RgfError(f"{path}: expected shape (N, 28, 28), got {images.shape}")
    if images.dtype != np.uint8:
        raise RgfError(f"{path}: expected dtype uint8 (grey levels 0..255), got {images.dtype}")
    return images


def _perturb(args: argparse.Namespace) -> None:
    images = read_grey_digits(args.input)
    params = load_params(args.params).perturb
    out = np.empty_like(images)
    size = params.chunk_size
    for i in range(0, len(images), size):
        # one generator per fixed-size chunk, as in the prepare stage
        rng = rng_for(args.seed, "perturb", args.factor, i // size)
        out[i : i + size] = perturb(args.factor, images[i : i + size], params, rng)
    np.save(args.output, out, allow_pickle=False)
    console.print(f"{args.factor}: {len(out)} digits -> {args.output}")


def _download(args: argparse.Namespace) -> None:
    path = download_mnist(args.dest, mirrors=args.mirror or MIRRORS)
    console.print(f"MNIST files verified in {path}")


def _check_params(args: argparse.Namespace) -> None:
    params = load_params(args.path)
    console.print(f"{args.path}: valid (profile {params.profile}, factors {', '.join(params.factors)})")


def _report(args: argparse.Namespace) -> None:
    from pipeline.evaluation.report import print_report

    print_report(args.metrics, params=load_params(args.params) if args.params.exists() else None)


def _compcars_manifest(args: argparse.Namespace) -> None:
    from pipeline.data.compcars import compcars_manifest

    table = compcars_manifest(args.sv_data, args.makes, args.colours, not args.all_images, args.seed)
    out = args.out or args.sv_data / "manifest.csv"
    table.to_csv(out, index=False)
    counts = table.groupby(["make", "colour"]).size().to_dict()
    console.print(f"{len(table)} images -> {out}: " + ", ".join(f"{m} {c} {n}" for (m, c), n in counts.items()))


def _standin_cars(args: argparse.Namespace) -> None:
    from pipeline.data.standin import write_standin

    manifest = write_standin(args.folder, args.per_cell, args.seed)
    console.print(f"stand-in cars ({args.per_cell} per make x colour) -> {manifest}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rgf", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    pt = sub.add_parser("perturb", help="apply a Morpho-MNIST perturbation to an (N, 28, 28) uint8 .npy")
    pt.add_argument("--factor", required=True, choices=MORPHOLOGICAL)
    pt.add_argument("--input", required=True, type=Path)
    pt.add_argument("--output", required=True, type=Path)
    pt.add_argument("--seed", type=int, default=0)
    pt.add_argument("--params", type=Path, default=Path("params.yaml"), help="perturbation settings (perturb.*)")
    pt.set_defaults(func=_perturb)

    dl = sub.add_parser("download", help="fetch the four MNIST files with md5 verification")
    dl.add_argument("--dest", type=Path, default=Path("data/raw/mnist"))
    dl.add_argument("--mirror", action="append", help="base URL to try (repeatable)")
    dl.set_defaults(func=_download)

    cp = sub.add_parser("check-params", help="validate a params file")
    cp.add_argument("path", nargs="?", type=Path, default=Path("params.yaml"))
    cp.set_defaults(func=_check_params)

    rp = sub.add_parser("report", help="print the study's tables (from metrics/) in the terminal")
    rp.add_argument("--metrics", type=Path, default=Path("metrics"))
    rp.add_argument("--params", type=Path, default=Path("params.yaml"), help="keep to this study (if the file exists)")
    rp.set_defaults(func=_report)

    cc = sub.add_parser("compcars-manifest", help="write manifest.csv for the paper's CompCars subset")
    cc.add_argument("sv_data", type=Path, help="the release's surveillance folder (sv_data)")
    cc.add_argument("--makes", nargs="+", default=["Volkswagen", "Toyota"])
    cc.add_argument("--colours", nargs="+", default=["black", "white"])
    cc.add_argument("--all-images", action="store_true", help="keep every image (default: even make split)")
    cc.add_argument("--seed", type=int, default=0)
    cc.add_argument("--out", type=Path, help="default: <sv_data>/manifest.csv")
    cc.set_defaults(func=_compcars_manifest)

    sc = sub.add_parser("standin-cars", help="write synthetic two-make car images + manifest (a CompCars stand-in)")
    sc.add_argument("folder", type=Path)
    sc.add_argument("--per-cell", type=int, default=60, help="images per make x colour")
    sc.add_argument("--seed", type=int, default=0)
    sc.set_defaults(func=_standin_cars)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(lambda _: args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
