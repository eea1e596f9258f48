"""Stage `imported@<model>-<factor>-<dataset>-<seed>`: an outside model's samples into the study.

Reads the samples `rgf import-samples` kept in imports/<model>/ (a model
trained outside rgf on the exported balanced and skewed sets), checks them
again (shape, range, count) and writes them where the sample stage writes a
built-in model's: --out/images.npy with the meta.json the evaluate stage
checks, and the grid of the first 100 (--grid). From there they are judged
like any model's.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import RgfError
from pipeline.files import SampleMeta, write_samples
from pipeline.generative.imported import load_samples
from pipeline.generative.sampling import GRID, image_grid, save_png
from pipeline.paths import SAMPLES, imported_stage, run_name
from pipeline.stages import claim, exit_with, outputs, parser, read_params


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="one of imported")
    p.add_argument("--factor", required=True)
    p.add_argument("--dataset", required=True, help="balanced or skewed_k<k>[_r<percent>] (one of datasets)")
    p.add_argument("--seed", required=True, type=int, help="one of seeds")
    p.add_argument("--source", required=True, type=Path, help="imports/<model>/<factor>-<dataset>-s<seed>.npz")
    p.add_argument("--out", required=True, type=Path, help="data/samples/<run>")
    p.add_argument("--grid", required=True, type=Path, help="plots/samples/<run>.png")
    args = p.parse_args(argv)
    stage = imported_stage(args.model, args.factor, args.dataset, args.seed)
    claim({args.out: SAMPLES}, [args.grid], inputs=[args.source, args.params])
    params, started = read_params(args.params, stage)
    params.check_factor(args.factor)
    params.check_seed(args.seed)
    if args.model not in params.imported:
        raise RgfError(f"model {args.model!r} is not in imported {params.imported}; add it (`-S 'imported=[...]'`)")
    if args.dataset not in params.datasets:
        raise RgfError(f"dataset {args.dataset!r} is not configured; choose one of {', '.join(params.datasets)}")
    images = load_samples(args.source, params.image_size, params.evaluation.num_samples)
    name = run_name(args.model, args.factor, args.dataset, args.seed)
    meta = SampleMeta(
        run=name, model=args.model, factor=args.factor, dataset=args.dataset, num_samples=len(images), seed=args.seed
    )
    with outputs(started, {args.out: SAMPLES}, [args.grid]) as (out, grid):
        write_samples(out, images, meta)
        save_png(grid, image_grid(images[:GRID]))
    print(f"{stage}: {len(images)} samples of {args.source} -> {args.out}")


if __name__ == "__main__":
    exit_with(main)
