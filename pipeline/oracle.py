"""Stage `oracle@<factor>`: train the label and factor oracles of one factor.

Both CNNs (section 5.2) learn from the balanced training split only and are
scored on the test split, where every test digit appears without and with the
factor. Writes models/oracles/<factor>/{label,factor}.pt and
metrics/oracles/<factor>.json. The accuracy gate is enforced where the oracles
are used (`load_oracles`), so the numbers are written even when an oracle
falls short.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipeline.checkpoint import pick_device, save_checkpoint
from pipeline.config import load_params
from pipeline.data.datasets import load_dataset, rng_for, write_json
from pipeline.evaluation.oracles import NUM_OUTPUTS, TARGETS, oracle_metrics, train_oracle
from pipeline.factors import FACTORS
from pipeline.stage import InputError, atomic_dir, console, exit_with, parser


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--factor", required=True, choices=FACTORS)
    p.add_argument("--data", type=Path, help="default: data/<factor>")
    p.add_argument("--out", type=Path, help="default: models/oracles/<factor>")
    p.add_argument("--metrics", type=Path, help="default: metrics/oracles/<factor>.json")
    args = p.parse_args(argv)
    params = load_params(args.params)
    data_dir = args.data or Path("data") / args.factor
    out_dir = args.out or Path("models/oracles") / args.factor
    metrics_path = args.metrics or Path("metrics/oracles") / f"{args.factor}.json"
    train = load_dataset(data_dir / "balanced")
    test = load_dataset(data_dir / "test")
    if len(train.labels) == 0 or len(test.labels) == 0:
        raise InputError(f"{data_dir}: empty balanced or test split; rebuild with `dvc repro prepare@{args.factor}`")
    device = pick_device(params.device)
    # this stage runs alone, so it may take every core
    torch.set_num_threads(os.cpu_count() or 1)

    start = time.perf_counter()
    opts = params.oracle
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    models = {}
    with Progress(*columns, transient=False) as progress:
        for target in TARGETS:
            y = train.labels if target == "label" else train.factor
            # an independent seed per oracle, stable across runs and factors' order
            seed = int(rng_for(params.seed, "oracle", args.factor, target).integers(2**62))
            models[target] = train_oracle(
                train.images, y, NUM_OUTPUTS[target], opts, seed, device, progress, f"{target} oracle"
            )
    scores = oracle_metrics(models["label"], models["factor"], test, device)
    passed = all(scores[t]["accuracy"] >= opts.min_accuracy for t in TARGETS)

    with atomic_dir(out_dir) as tmp:
        for target, model in models.items():
            ckpt_params = {
                "factor": args.factor,
                "target": target,
                "num_outputs": NUM_OUTPUTS[target],
                "channels": train.images.shape[3],
                "image_size": train.images.shape[1],
                **opts.model_dump(),
                "seed": params.seed,
            }
            state = {k: v.cpu() for k, v in model.state_dict().items()}
            save_checkpoint(tmp / f"{target}.pt", state={"model": state}, params=ckpt_params, epoch=opts.epochs)
    # "factor" names the factor oracle's scores, so the factor itself is "factor_name"
    metrics = {
        "factor_name": args.factor,
        **scores,
        "min_accuracy": opts.min_accuracy,
        "passed": passed,
        "epochs": opts.epochs,
        "train_size": len(train.labels),
        "test_size": len(test.labels),
    }
    write_json(metrics_path, metrics)
    elapsed = time.perf_counter() - start

    acc = {t: scores[t]["accuracy"] for t in TARGETS}
    if not passed:
        low = ", ".join(f"{t} {acc[t]:.4f}" for t in TARGETS if acc[t] < opts.min_accuracy)
        console.print(
            f"[bold red]warning:[/] oracle@{args.factor}: {low} below oracle.min_accuracy {opts.min_accuracy}; "
            "the evaluate stage will refuse these oracles (raise oracle.epochs or use more data)",
            highlight=False,
        )
    print(
        f"oracle@{args.factor}: label {acc['label']:.4f}, factor {acc['factor']:.4f} on {len(test.labels)} test "
        f"images ({opts.epochs} epochs, {len(train.labels)} train) in {elapsed:.1f} s -> {out_dir}"
    )


if __name__ == "__main__":
    exit_with(main)
