"""Stage `sample-<model>@<factor>-<dataset>-<seed>`: M samples of one trained run.

Writes --out/images.npy (M, H, W, 3) uint8 with a meta.json that names the
run (the evaluate stage checks it, so samples of another factor or model are
refused), and --grid, the first 100 samples at a glance (paper Fig. 2;
`dvc plots show` renders it).
"""

from __future__ import annotations

from pathlib import Path

from pipeline import registry
from pipeline.errors import RgfError
from pipeline.files import SampleMeta, write_samples
from pipeline.generative.sampling import GRID, image_grid, samples_of, save_png
from pipeline.paths import SAMPLES, run_name, sample_stage
from pipeline.stages import claim, exit_with, outputs, parser, read_params


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--factor", required=True)
    p.add_argument("--dataset", required=True, help="balanced or skewed_k<k>[_r<percent>] (one of datasets)")
    p.add_argument("--seed", required=True, type=int, help="one of seeds")
    p.add_argument("--data", required=True, type=Path, help="data/<factor>")
    p.add_argument("--model-dir", required=True, type=Path, help="models/<model>-<factor>-s<seed>/<dataset>")
    p.add_argument("--out", required=True, type=Path, help="data/samples/<run>")
    p.add_argument("--grid", required=True, type=Path, help="plots/samples/<run>.png")
    args = p.parse_args(argv)
    name = run_name(args.model, args.factor, args.dataset, args.seed)
    stage = sample_stage(args.model, args.factor, args.dataset, args.seed)
    claim({args.out: SAMPLES}, [args.grid], inputs=[args.data, args.model_dir, args.params])
    params, started = read_params(args.params, stage)
    params.check_factor(args.factor)
    params.check_seed(args.seed)
    if args.dataset not in params.datasets:
        raise RgfError(f"dataset {args.dataset!r} is not configured; choose one of {', '.join(params.datasets)}")
    sampled = registry.FAMILIES + registry.CONTROLS
    if args.model not in sampled:
        raise RgfError(f"model {args.model!r} has no sampler; available: {', '.join(sampled)}")
    images = samples_of(params, args.model, args.factor, args.dataset, args.seed, args.data, args.model_dir)
    meta = SampleMeta(
        run=name,
        model=args.model,
        factor=args.factor,
        dataset=args.dataset,
        num_samples=len(images),
        seed=args.seed,
    )
    with outputs(started, {args.out: SAMPLES}, [args.grid]) as (out, grid):
        write_samples(out, images, meta)
        save_png(grid, image_grid(images[:GRID]))
    print(f"{stage}: {len(images)} samples -> {args.out}, grid -> {args.grid}")


if __name__ == "__main__":
    exit_with(main)
