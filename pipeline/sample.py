"""Stage `sample@<model>-<factor>-<dataset>`: M samples of one trained model.

Writes data/samples/<model>-<factor>-<dataset>/ with `images.npy`
(M, H, W, 3) uint8, a `meta.json` that names the run (the evaluate stage
checks it, so samples of another factor or model are refused) and `grid.png`,
the first samples at a glance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.config import CONTROLS, load_params
from pipeline.controls import control_samples
from pipeline.data.datasets import load_dataset, rng_for, write_json
from pipeline.factors import FACTORS
from pipeline.stage import InputError, atomic_dir, exit_with, parser


def run_name(model: str, factor: str, dataset: str) -> str:
    """The name a run has everywhere: stage, paths and tables."""
    return f"{model}-{factor}-{dataset}"


def image_grid(images: np.ndarray, columns: int = 10, pad: int = 2) -> np.ndarray:
    """(N, H, W, 3) -> one (rows*(H+pad)+pad, columns*(W+pad)+pad, 3) image."""
    n, h, w, c = images.shape
    rows = max(1, -(-n // columns))
    grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), 40, np.uint8)
    for i, im in enumerate(images):
        r, col = divmod(i, columns)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + col * (w + pad) : pad + col * (w + pad) + w] = im
    return grid


def save_png(path: Path, image: np.ndarray, zoom: int = 3) -> None:
    from PIL import Image

    Image.fromarray(image).resize((image.shape[1] * zoom, image.shape[0] * zoom), Image.NEAREST).save(path)


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--factor", required=True, choices=FACTORS)
    p.add_argument("--dataset", required=True, help="balanced or skewed_k<k>")
    p.add_argument("--data", type=Path, help="default: data/<factor>")
    p.add_argument("--out", type=Path, help="default: data/samples/<model>-<factor>-<dataset>")
    args = p.parse_args(argv)
    params = load_params(args.params)
    if args.dataset not in params.datasets:
        raise InputError(f"dataset {args.dataset!r} is not configured; choose one of {', '.join(params.datasets)}")
    if args.model not in CONTROLS:
        raise InputError(f"model {args.model!r} has no sampler yet; available: {', '.join(CONTROLS)}")
    data = args.data or Path("data") / args.factor
    name = run_name(args.model, args.factor, args.dataset)
    out = args.out or Path("data/samples") / name
    m = params.evaluation.num_samples
    rng = rng_for(params.seed, "sample", name)
    images = control_samples(args.model, load_dataset(data / args.dataset), load_dataset(data / "balanced"), m, rng)
    with atomic_dir(out) as tmp:
        np.save(tmp / "images.npy", images, allow_pickle=False)
        meta = {"run": name, "model": args.model, "factor": args.factor, "dataset": args.dataset}
        write_json(tmp / "meta.json", {**meta, "num_samples": m, "seed": params.seed})
        save_png(tmp / "grid.png", image_grid(images[:100]))
    print(f"sample@{name}: {m} samples -> {out}")


if __name__ == "__main__":
    exit_with(main)
