"""Stage `evaluate@<model>-<factor>-<skew>-<seed>`: learned or memorized, class by class.

Labels the samples of the balanced-trained run and of the run trained on one
skew's skewed set (rare class k, rare fraction r: k1, k1_r5) with the
factor's two oracles and tests every class (method, step 5; see
pipeline/evaluation/judge.py). Writes --out, metrics/<model>/<factor>/<skew>-s<seed>.json,
and --reads, reads/<model>/<factor>/<skew>-s<seed>.npz: how the oracles read
every sample, so any later analysis needs no image again.
"""

from __future__ import annotations

from pathlib import Path

from pipeline import registry
from pipeline.data.datasets import load_dataset
from pipeline.errors import RgfError
from pipeline.evaluation.judge import evaluate_run
from pipeline.files import read_data_manifest, read_samples, write_reads
from pipeline.io import pick_device
from pipeline.names import BALANCED, parse_skew, skewed
from pipeline.oracle.fit import load_oracles
from pipeline.paths import evaluate_stage, run_name
from pipeline.stages import claim, exit_with, outputs, parser, read_params


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--factor", required=True)
    p.add_argument("--skew", required=True, help="k<k>[_r<percent>], one of skews: the rare class and fraction")
    p.add_argument("--seed", required=True, type=int, help="one of seeds")
    p.add_argument("--samples", required=True, type=Path, help="data/samples")
    p.add_argument("--data", required=True, type=Path, help="data/<factor>")
    p.add_argument("--oracles", required=True, type=Path, help="models/oracles/<factor>")
    p.add_argument("--oracle-metrics", required=True, type=Path, help="metrics/oracles/<factor>.json")
    p.add_argument("--out", required=True, type=Path, help="metrics/<model>/<factor>/<skew>-s<seed>.json")
    p.add_argument("--reads", required=True, type=Path, help="reads/<model>/<factor>/<skew>-s<seed>.npz")
    args = p.parse_args(argv)
    factor, model, seed = args.factor, args.model, args.seed
    stage = evaluate_stage(model, factor, args.skew, seed)
    inputs = [args.samples, args.data, args.oracles, args.oracle_metrics, args.params]
    claim(files=[args.out, args.reads], inputs=inputs)
    params, started = read_params(args.params, stage)
    params.check_factor(factor)
    params.check_seed(seed)
    if args.skew not in params.skews:
        fix = "set skew.rare_classes and skew.rare_fractions to include it"
        raise RgfError(f"--skew {args.skew}: not one of this study's skews {params.skews}; {fix}")
    k, r = parse_skew(args.skew)
    samples = {
        dataset: read_samples(
            args.samples / run_name(model, factor, dataset, seed), model, factor, dataset, seed, params.image_size
        )
        for dataset in (BALANCED, skewed(k, r))
    }
    data_manifest = read_data_manifest(args.data)
    if data_manifest.factor != factor:
        raise RgfError(
            f"--data {args.data}: holds the {data_manifest.factor} datasets, not {factor}'s; give data/{factor}"
        )
    oracles = load_oracles(args.oracles, args.oracle_metrics, params.oracle.min_accuracy, factor, args.data)
    metrics, reads = evaluate_run(
        model,
        factor,
        k,
        samples,
        data_manifest,
        load_dataset(args.data / "test"),
        oracles,
        params.evaluation,
        pick_device(params.device),
        seed,
        {name: load_dataset(args.data / name) for name in samples} if registry.is_control(model) else None,
        rare_fraction=r,
    )
    with outputs(started, files=[args.out, args.reads]) as (out, reads_out):
        metrics.write(out)
        write_reads(reads_out, reads)
    verdicts = [r.verdict for c, r in metrics.classes.items() if c != "total"]
    counts = f"{verdicts.count('learned')} learned, {verdicts.count('memorized')} memorized"
    print(f"{stage}: {counts}")
    if (d := metrics.degradation) is not None and abs(d.fd - d.target_fd) > 0.05 * d.target_fd:
        print(
            f"{stage}: degraded to FD {d.fd:.1f}, not evaluation.degraded_fd {d.target_fd:g} (strength {d.strength:g})"
        )


if __name__ == "__main__":
    exit_with(main)
