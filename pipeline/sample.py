"""Stage `sample@<model>-<factor>-<dataset>`: M samples of one trained model.

Writes data/samples/<model>-<factor>-<dataset>/ with `images.npy`
(M, H, W, 3) uint8 and a `meta.json` that names the run (the evaluate stage
checks it, so samples of another factor or model are refused), and
plots/samples/<run>.png, the first 100 samples at a glance (paper Fig. 2;
`dvc plots show` renders it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.config import CONTROLS, GENERATIVE, Params, load_params
from pipeline.controls import control_samples
from pipeline.data.datasets import load_dataset, rng_for, write_json
from pipeline.stage import InputError, atomic_dir, check_factor, exit_with, parser


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


def generate(
    params: Params,
    model: str,
    factor: str,
    dataset: str,
    model_dir: Path,
    num_samples: int,
    seed_name: str,
    image_size: int = 28,
):
    """(M, S, S, 3) uint8 samples of a trained model; refuses a checkpoint
    made under other params than the current ones."""
    import torch

    from pipeline.checkpoint import CheckpointError, load_checkpoint, pick_device
    from pipeline.methods import build_method
    from pipeline.train import run_params

    torch.set_num_threads(params.train.threads)
    device = pick_device(params.device)
    try:
        ckpt = load_checkpoint(model_dir / "model.pt", run_params(params, model, factor, dataset, image_size))
    except CheckpointError as err:
        raise InputError(str(err)) from None
    method = build_method(model, params, image_size, device)
    method.load_state_dict(ckpt["state"]["method"])
    gen = torch.Generator(device=device).manual_seed(int(rng_for(params.seed, "sample", seed_name).integers(2**62)))
    batches = []
    for i in range(0, num_samples, params.train.sample_batch):
        x = method.sample(min(params.train.sample_batch, num_samples - i), gen)  # (B, 3, H, W) in [0, 1]
        batches.append((x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(batches)


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--factor", required=True)
    p.add_argument("--dataset", required=True, help="balanced or skewed_k<k>")
    p.add_argument("--data", type=Path, help="default: data/<factor>")
    p.add_argument("--model-dir", type=Path, help="default: models/<model>-<factor>/<dataset>")
    p.add_argument("--out", type=Path, help="default: data/samples/<model>-<factor>-<dataset>")
    p.add_argument("--grid", type=Path, help="PNG of the first samples (default: plots/samples/<run>.png)")
    args = p.parse_args(argv)
    params = load_params(args.params)
    check_factor(args.factor, params)
    if args.dataset not in params.datasets:
        raise InputError(f"dataset {args.dataset!r} is not configured; choose one of {', '.join(params.datasets)}")
    if args.model not in CONTROLS + GENERATIVE:
        raise InputError(f"model {args.model!r} has no sampler; available: {', '.join(GENERATIVE + CONTROLS)}")
    data = args.data or Path("data") / args.factor
    name = run_name(args.model, args.factor, args.dataset)
    out = args.out or Path("data/samples") / name
    m = params.evaluation.num_samples
    if args.model in CONTROLS:
        rng = rng_for(params.seed, "sample", name)
        images = control_samples(args.model, load_dataset(data / args.dataset), load_dataset(data / "balanced"), m, rng)
    else:
        model_dir = args.model_dir or Path("models") / f"{args.model}-{args.factor}" / args.dataset
        image_size = load_dataset(data / args.dataset, mmap=True).images.shape[1]
        images = generate(params, args.model, args.factor, args.dataset, model_dir, m, name, image_size)
    with atomic_dir(out) as tmp:
        np.save(tmp / "images.npy", images, allow_pickle=False)
        meta = {"run": name, "model": args.model, "factor": args.factor, "dataset": args.dataset}
        write_json(tmp / "meta.json", {**meta, "num_samples": m, "seed": params.seed})
    grid = args.grid or Path("plots/samples") / f"{name}.png"
    grid.parent.mkdir(parents=True, exist_ok=True)
    save_png(grid, image_grid(images[:100]))
    print(f"sample@{name}: {m} samples -> {out}, grid -> {grid}")


if __name__ == "__main__":
    exit_with(main)
