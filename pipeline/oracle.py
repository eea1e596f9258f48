"""Stage `oracle@<factor>`: train the label and factor oracles of one factor.

Both CNNs (section 5.2) learn from the balanced training split only and are
scored on the test split, where every test digit appears without and with the
factor. Writes models/oracles/<factor>/{label,factor}.pt and
metrics/oracles/<factor>.json. The accuracy gate is enforced where the oracles
are used (`load_oracles`), so the numbers are written even when an oracle
falls short.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipeline.checkpoint import pick_device, save_checkpoint
from pipeline.config import load_params
from pipeline.data.datasets import load_dataset, read_data_manifest, rng_for, write_json
from pipeline.evaluation.oracles import TARGETS, oracle_metrics, train_oracle
from pipeline.stage import InputError, atomic_dir, check_factor, console, exit_with, parser


def _train_target(job, live: bool = False):
    """Train one oracle ("label" or "factor") on the balanced training split."""
    params_path, factor, data_dir, target, num_outputs = job
    params = load_params(params_path)
    if not live:
        torch.set_num_threads(1)
    train = load_dataset(data_dir / "balanced")
    y = train.labels if target == "label" else train.factor
    # an independent seed per oracle, stable across runs and factors' order
    seed = int(rng_for(params.seed, "oracle", factor, target).integers(2**62))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, disable=not live) as progress:
        model = train_oracle(
            train.images,
            y,
            num_outputs,
            params.oracle,
            seed,
            pick_device(params.device),
            progress,
            f"{target} oracle",
        )
    if not live:
        print(f"oracle@{factor}: {target} oracle trained ({params.oracle.epochs} epochs)", flush=True)
    return model.cpu()


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--factor", required=True)
    p.add_argument("--data", type=Path, help="default: data/<factor>")
    p.add_argument("--out", type=Path, help="default: models/oracles/<factor>")
    p.add_argument("--metrics", type=Path, help="default: metrics/oracles/<factor>.json")
    args = p.parse_args(argv)
    params = load_params(args.params)
    check_factor(args.factor, params)
    data_dir = args.data or Path("data") / args.factor
    out_dir = args.out or Path("models/oracles") / args.factor
    metrics_path = args.metrics or Path("metrics/oracles") / f"{args.factor}.json"
    train = load_dataset(data_dir / "balanced")
    test = load_dataset(data_dir / "test")
    if len(train.labels) == 0 or len(test.labels) == 0:
        raise InputError(f"{data_dir}: empty balanced or test split; rebuild with `dvc repro prepare@{args.factor}`")
    device = pick_device(params.device)
    start = time.perf_counter()
    opts = params.oracle
    # the label oracle has one output per class, the factor oracle two
    outputs = {"label": read_data_manifest(data_dir)["num_classes"], "factor": 2}
    jobs = [(args.params, args.factor, data_dir, target, outputs[target]) for target in TARGETS]
    if params.workers > 1 and device.type == "cpu":
        # the two oracles are independent: two single-threaded processes beat
        # one two-threaded process several times over on a CPU
        with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
            models = dict(zip(TARGETS, pool.map(_train_target, jobs), strict=True))
    else:
        torch.set_num_threads(params.train.threads if device.type == "cpu" else torch.get_num_threads())
        models = {target: _train_target(job, live=True) for target, job in zip(TARGETS, jobs, strict=True)}
    scores = oracle_metrics(models["label"], models["factor"], test, device)
    passed = all(scores[t]["accuracy"] >= opts.min_accuracy for t in TARGETS)

    with atomic_dir(out_dir) as tmp:
        for target, model in models.items():
            ckpt_params = {
                "factor": args.factor,
                "target": target,
                "num_outputs": outputs[target],
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
