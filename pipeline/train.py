"""Stage `train@<model>-<factor>`: one generative model, trained separately
on the images of every dataset of the factor (balanced, skewed_k<k>), never
on the factor or the labels (method, step 3).

The runs of a stage are independent and always needed together, so they train
side by side in `workers` single-threaded processes (on a CPU two such
processes beat one two-threaded one several times over). Run
<model>-<factor>-<dataset> writes models/<model>-<factor>/<dataset>/model.pt
(weights, the params that made them, epoch, code version) and
plots/train/<model>-<factor>/<dataset>.csv (per-epoch losses and, for GANs,
the discriminator probe of section 6.2). A killed run resumes from its last
checkpoint in models/resume/. The two controls "train" by recording which
dataset they were given, so they travel the same path as the real models.
"""

from __future__ import annotations

import csv
import hashlib
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from pipeline.config import CONTROLS, GENERATIVE, Params, load_params
from pipeline.data.datasets import load_dataset, write_json
from pipeline.stage import check_factor, exit_with, parser

NOT_SHAPING = {"epochs", "sampler", "sampling_steps"}


def run_params(params: Params, model: str, factor: str, dataset: str, image_size: int) -> dict:
    """Everything that shapes a run's weights; a checkpoint made under any
    other values is refused. Left out: `epochs`, so a finished run can be
    extended rather than retrained, and the DDPM sampler, which needs none."""
    family = params.gan if model == "gan_sd" else getattr(params, model)
    shaped = {k: v for k, v in family.model_dump().items() if k not in NOT_SHAPING}
    out = {
        "model": model,
        "factor": factor,
        "dataset": dataset,
        "seed": params.seed,
        "image_size": image_size,
        **shaped,
    }
    if model == "gan_sd":
        out.update(params.gan_sd.model_dump())
    return out


def epochs_of(params: Params, model: str) -> int:
    return (params.gan if model == "gan_sd" else getattr(params, model)).epochs


def batch_size_of(params: Params, model: str) -> int:
    return (params.gan if model == "gan_sd" else getattr(params, model)).batch_size


def write_history(path: Path, history: list[dict]) -> None:
    """Per-epoch rows as CSV for `dvc plots`; always at least the header."""
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = ["epoch"] + sorted({k for row in history for k in row} - {"epoch"})
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)


def train_model(
    params: Params, model: str, factor: str, dataset: str, data: Path, out: Path, on_epoch=None, live: bool = True
) -> list:
    """Train one generative run and write its final checkpoint; returns the history."""
    import torch

    from pipeline.checkpoint import pick_device
    from pipeline.methods import build_method
    from pipeline.sample import run_name
    from pipeline.training import Run, finish, probe_rows, train

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    torch.set_num_threads(params.train.threads)
    device = pick_device(params.device)
    name = run_name(model, factor, dataset)
    images = load_dataset(data / dataset).images
    image_size = images.shape[1]
    torch.manual_seed(params.seed)  # initial weights
    method = build_method(model, params, image_size, device)
    run = Run(
        name=name,
        method=method,
        params=run_params(params, model, factor, dataset, image_size),
        epochs=epochs_of(params, model),
        batch_size=batch_size_of(params, model),
        seed=params.seed,
        resume_dir=out.parent.parent / "resume",
        checkpoint_every=params.train.checkpoint_every,
        log_dir=Path(params.train.log_dir),
    )
    probe = None
    if model in ("gan", "gan_sd"):
        val = load_dataset(data / "val")
        probe = lambda m: probe_rows(m.real_loss_per_image, val, params.skew.rare_classes, device)  # noqa: E731
    history = train(run, images, probe=probe, on_epoch=on_epoch, live=live)
    out.mkdir(parents=True, exist_ok=True)
    finish(run, out / "model.pt")
    return history


def record_control(out: Path, name: str, model: str, dataset: str, data: Path) -> None:
    """A control's "weights": which dataset it was given (its samples are drawn from data)."""
    manifest_sha = hashlib.sha256((data / "manifest.json").read_bytes()).hexdigest()
    write_json(
        out / "model.json", {"run": name, "model": model, "trained_on": dataset, "data_manifest_sha256": manifest_sha}
    )


def _train_one(job) -> tuple[str, int, float]:
    params_path, model, factor, dataset, data, out, history_path, live = job
    start = time.perf_counter()
    params = load_params(params_path)
    if model in CONTROLS:
        record_control(out, f"{model}-{factor}-{dataset}", model, dataset, data)
        history = []
    else:
        history = train_model(params, model, factor, dataset, data, out, live=live)
    write_history(history_path, history)
    return dataset, len(history), time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--model", required=True, choices=GENERATIVE + CONTROLS)
    p.add_argument("--factor", required=True)
    p.add_argument("--data", type=Path, help="default: data/<factor>")
    p.add_argument("--out", type=Path, help="default: models/<model>-<factor>")
    p.add_argument("--history", type=Path, help="default: plots/train/<model>-<factor>")
    args = p.parse_args(argv)
    params = load_params(args.params)
    check_factor(args.factor, params)
    stem = f"{args.model}-{args.factor}"
    data = args.data or Path("data") / args.factor
    out = args.out or Path("models") / stem
    history = args.history or Path("plots/train") / stem
    for dataset in params.datasets:  # fail on missing data before any work
        load_dataset(data / dataset, mmap=True)
    workers = min(params.workers, len(params.datasets))
    live = workers == 1 or args.model in CONTROLS
    jobs = [
        (args.params, args.model, args.factor, d, data, out / d, history / f"{d}.csv", live) for d in params.datasets
    ]
    if workers > 1 and args.model in GENERATIVE:
        # spawn, not fork: a forked torch process can deadlock in OpenMP
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            results = list(pool.map(_train_one, jobs))
    else:
        results = [_train_one(job) for job in jobs]
    for dataset, epochs, seconds in results:
        print(f"train@{stem}: {dataset}: {epochs} epochs in {seconds:.1f} s")


if __name__ == "__main__":
    exit_with(main)
