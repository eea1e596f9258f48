"""Training one run (method, step 3): a generative model, or a control, on
the images of one dataset of a factor, never on the factor or the labels.

`train_one` is what a worker process of the train stage gets: a `TrainJob`
names the run and its files and carries the params the stage started with
(never re-read from params.yaml, which may change meanwhile). A generative run writes its final checkpoint
(weights, the params that made them, epoch, code version) and resumes from
its last checkpoint in `resume_dir` when killed; a control "trains" by
recording which dataset it was given, so it travels the same path as the real
models. A generative run logs its per-epoch history with DVCLive for `dvc plots`.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline import registry
from pipeline.data.datasets import load_dataset
from pipeline.files import ControlRecord
from pipeline.params import Params
from pipeline.paths import run_name


@dataclass(frozen=True)
class TrainJob:
    """One run of the train stage, as sent to a worker process."""

    params: Params
    model: str
    factor: str
    dataset: str
    seed: int  # the replicate: initial weights, data order, noise
    data: Path  # data/<factor>
    out: Path  # models/<model>-<factor>-s<seed>/<dataset>
    history: Path | None  # plots/train/<model>-<factor>-s<seed>/<dataset>/ (DVCLive); None for a control
    resume_dir: Path  # models/resume
    live: bool  # draw a live progress bar (one process only)


def log_dir(params: Params) -> Path:
    """Where this run's TensorBoard events go: train.log_dir/<experiment>/,
    one folder per DVC experiment (`dvc exp run` names it in DVC_EXP_NAME),
    so a later experiment never writes into an earlier one's runs; a plain
    `dvc repro` writes to train.log_dir/workspace/. A relative log_dir is
    taken from the repo DVC names in DVC_ROOT: a queued experiment runs in a
    temporary copy that is deleted afterwards, and its logs must outlive it."""
    root = Path(os.environ.get("DVC_ROOT", "."))
    return root / params.train.log_dir / (os.environ.get("DVC_EXP_NAME") or "workspace")


def train_model(
    params: Params,
    model: str,
    factor: str,
    dataset: str,
    seed: int,
    data: Path,
    out: Path,
    resume_dir: Path,
    on_epoch: Callable[[int], None] | None = None,
    live: bool = True,
    curves: Path | None = None,
) -> list[dict]:
    """Train one generative run and write its final checkpoint; returns the
    history, logged per epoch into the DVCLive folder `curves` when given."""
    import torch

    from pipeline.generative import build
    from pipeline.generative.loop import Run, finish, probe_rows, train
    from pipeline.io import pick_device

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    torch.set_num_threads(params.train.threads)
    device = pick_device(params.device)
    images = load_dataset(data / dataset).images
    image_size = images.shape[1]
    torch.manual_seed(seed)  # initial weights
    method = build.build_method(model, params, image_size, device)
    run = Run(
        name=run_name(model, factor, dataset, seed),
        method=method,
        params=build.run_params(params, model, factor, dataset, seed, image_size),
        epochs=build.epochs(params, model),
        batch_size=build.batch_size(params, model),
        seed=seed,
        resume_dir=resume_dir,
        checkpoint_every=params.train.checkpoint_every,
        log_dir=log_dir(params),
        lr_key=f"{registry.family(model).section}.lr",
        channels_last=params.train.channels_last,
    )
    probe = None
    if registry.has_probe(model):
        val = load_dataset(data / "val")
        probe = lambda m: probe_rows(m.real_loss_per_image, val, params.skew.rare_classes, device)  # noqa: E731
    history = train(run, images, probe=probe, on_epoch=on_epoch, live=live, curves=curves)
    out.mkdir(parents=True, exist_ok=True)
    finish(run, out / "model.pt")
    return history


def record_control(job: TrainJob) -> None:
    """A control's "weights": which dataset it was given (its samples are drawn from data)."""
    manifest_sha = hashlib.sha256((job.data / "manifest.json").read_bytes()).hexdigest()
    record = ControlRecord(
        run=run_name(job.model, job.factor, job.dataset, job.seed),
        model=job.model,
        trained_on=job.dataset,
        data_manifest_sha256=manifest_sha,
    )
    record.write(job.out / "model.json")


def train_one(job: TrainJob) -> tuple[str, int, float]:
    """Run one job; returns (dataset, epochs trained, seconds)."""
    start = time.perf_counter()
    params = job.params
    if registry.is_control(job.model):
        record_control(job)
        history = []
    else:
        history = train_model(
            params,
            job.model,
            job.factor,
            job.dataset,
            job.seed,
            job.data,
            job.out,
            job.resume_dir,
            live=job.live,
            curves=job.history,
        )
    return job.dataset, len(history), time.perf_counter() - start
