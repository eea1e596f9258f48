"""The one training loop that drives every model family (method, step 3).

The loop only sees images: never the factor f, never the label y. It owns the
data order, seeding, resumable checkpoints, TensorBoard logs, progress and the
per-epoch history (losses, and for GANs the discriminator probe of section
6.2), logged with DVCLive as the run's curves. What a model family does in a step is the method object's business.

A resume checkpoint is keyed by the params that shape the weights and by the
code that does (`code_digest`): after an edit of the family's module, the
Method interface or this loop, a killed run starts over instead of finishing
old weights with new code. A non-finite loss stops the run at once.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipeline.data.datasets import FactorDataset
from pipeline.errors import CheckpointError, ParamsError
from pipeline.files import Curves
from pipeline.io import load_checkpoint, rng_for, save_checkpoint


@dataclass
class Run:
    """One training run: which method on which images, and where its files go."""

    name: str  # e.g. gan_sd-thick-skewed_k1
    method: torch.nn.Module
    params: dict  # everything that shaped the weights (compared on resume)
    epochs: int
    batch_size: int
    seed: int
    resume_dir: Path
    checkpoint_every: int = 5
    log_dir: Path | None = None
    lr_key: str = "lr"  # the params key named when the loss diverges, e.g. vae.lr
    channels_last: bool = False  # train on NHWC weights and images (same math, other float rounding)
    history: list[dict] = field(default_factory=list)
    code: str = ""  # code_digest(method), set from the method when empty

    def __post_init__(self) -> None:
        self.code = self.code or code_digest(self.method)

    @property
    def resume_path(self) -> Path:
        # keyed by the params and the code, so a run under other params or
        # after a code change never picks it up
        key = json.dumps({"params": self.params, "code": self.code}, sort_keys=True)
        return self.resume_dir / f"{self.name}-{hashlib.sha256(key.encode()).hexdigest()[:10]}.pt"


def weight_code(method: torch.nn.Module) -> list[Path]:
    """The source files whose code shapes a run's weights: the modules of the
    method's classes (its family's file, the Method interface) and this loop."""
    files = {Path(inspect.getsourcefile(c)) for c in type(method).__mro__ if c.__module__.startswith("pipeline.")}
    return sorted(files | {Path(__file__)})


def code_digest(method: torch.nn.Module) -> str:
    """sha256 over `weight_code(method)`: changes with any edit of those files."""
    digest = hashlib.sha256()
    for path in weight_code(method):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def images_to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> uint8 (N, 3, H, W) on the device; the whole
    training set stays there (60k MNIST digits are 141 MB)."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous().to(device)


def _epoch_order(seed: int, name: str, epoch: int, n: int) -> torch.Tensor:
    # each epoch's order and RNG stream derive from (seed, run, epoch), so a
    # resumed run continues exactly as an uninterrupted one would
    gen = rng_for(seed, "train", name, epoch)
    torch.manual_seed(int(gen.integers(2**62)))
    return torch.from_numpy(gen.permutation(n))


def _state(run: Run) -> dict:
    opts = getattr(run.method, "optimizers", {})
    return {"method": run.method.state_dict(), "optimizers": {k: o.state_dict() for k, o in opts.items()}}


def _restore(run: Run, ckpt: dict) -> None:
    run.method.load_state_dict(ckpt["state"]["method"])
    for k, o in getattr(run.method, "optimizers", {}).items():
        o.load_state_dict(ckpt["state"]["optimizers"][k])
    run.history = json.loads(ckpt.get("history", "[]"))


def _resume(run: Run) -> int:
    """Restore the run from its resume checkpoint, if any; the epoch to start from."""
    if not run.resume_path.exists():
        others = sorted(run.resume_dir.glob(f"{run.name}-{'?' * 10}.pt"))
        if others:
            print(
                f"{run.name}: not resuming from {others[0]}: saved under other params or by other code; "
                "training from epoch 1",
                flush=True,
            )
        return 0
    try:
        ckpt = load_checkpoint(run.resume_path, run.params)
    except CheckpointError as err:
        raise CheckpointError(f"{err}. It cannot be resumed: delete it and {run.name} starts over") from None
    _restore(run, ckpt)
    return ckpt["epoch"]


def _in_layout(run: Run, data: torch.Tensor) -> torch.Tensor:
    """Put the method's 4-d weights in the run's memory layout, and the
    images its batches are cut from (NHWC when run.channels_last)."""
    if not run.channels_last:
        return data
    run.method.to(memory_format=torch.channels_last)
    return data.contiguous(memory_format=torch.channels_last)


def _epoch(run: Run, data: torch.Tensor, epoch: int) -> dict[str, float]:
    """One pass over uint8 (N, 3, H, W) `data` in this epoch's seeded order; the mean of each loss."""
    order = _epoch_order(run.seed, run.name, epoch, len(data)).to(data.device)
    sums: dict[str, float] = {}
    steps = 0
    for i in range(0, len(data), run.batch_size):
        x = data[order[i : i + run.batch_size]].float().div_(255.0)
        for key, value in run.method.train_step(x, epoch).items():
            if not math.isfinite(value):
                lr = f" (now {run.params['lr']})" if "lr" in run.params else ""
                raise ParamsError(
                    f"{run.name}: loss '{key}' is {value} in epoch {epoch + 1}: training diverged; "
                    f"lower {run.lr_key}{lr} and re-run"
                )
            sums[key] = sums.get(key, 0.0) + value
        steps += 1
    return {k: v / steps for k, v in sums.items()}


def train(
    run: Run,
    images: np.ndarray,
    probe: Callable[[torch.nn.Module], dict[str, float]] | None = None,
    on_epoch: Callable[[int], None] | None = None,
    live: bool = True,
    curves: Path | None = None,
) -> list[dict]:
    """Train `run.method` on uint8 (N, H, W, 3) images for `run.epochs` epochs,
    resuming from the last checkpoint of the same run and params. Returns the
    per-epoch history (losses, probe values), which is also logged epoch by
    epoch with DVCLive into `curves` when given (a resumed run's earlier
    epochs first, from its checkpoint)."""
    device = next(run.method.parameters()).device
    data = _in_layout(run, images_to_tensor(images, device))
    start = _resume(run)
    writer = _writer(run)
    logger = Curves(curves) if curves is not None else None
    for row in run.history if logger is not None else []:
        logger.log(row)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[loss]}"),
    )
    # several runs in parallel processes would fight over one live bar
    if start:
        print(f"{run.name}: resumed at epoch {start} from {run.resume_path}", flush=True)
    with Progress(*columns, disable=not live) as progress:
        label = f"{run.name}" + (f" (resumed at epoch {start})" if start else "")
        task = progress.add_task(label, total=run.epochs, completed=start, loss="")
        for epoch in range(start, run.epochs):
            row = {"epoch": epoch + 1, **_epoch(run, data, epoch)}
            if probe is not None:
                row.update(probe(run.method))
            run.history.append(row)
            _log(writer, row, run, epoch)
            if logger is not None:
                logger.log(row)
            losses = " ".join(f"{k} {v:.3f}" for k, v in row.items() if k != "epoch")
            progress.update(task, advance=1, loss=losses)
            if not live:
                print(f"{run.name} epoch {epoch + 1}/{run.epochs} {losses}", flush=True)
            if (epoch + 1) % run.checkpoint_every == 0 and epoch + 1 < run.epochs:
                save_checkpoint(
                    run.resume_path, _state(run), run.params, epoch + 1, history=json.dumps(run.history), code=run.code
                )
            if on_epoch is not None:
                on_epoch(epoch + 1)
    run.method.after_training(data, run.seed)
    if writer is not None:
        _log_samples(writer, run, run.epochs)  # the last epoch's, as the sample stage will draw them
        writer.close()
    return run.history


def finish(run: Run, out: Path) -> None:
    """Write the final self-describing checkpoint and drop the resume file."""
    save_checkpoint(out, {"method": run.method.state_dict()}, run.params, run.epochs, history=json.dumps(run.history))
    run.resume_path.unlink(missing_ok=True)


def _writer(run: Run):
    if run.log_dir is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(run.log_dir / run.name))


def _log(writer, row: dict, run: Run, epoch: int) -> None:
    if writer is None:
        return
    for key, value in row.items():
        if key != "epoch":
            writer.add_scalar(key, value, epoch + 1)
    if (epoch + 1) % run.checkpoint_every == 0 and epoch + 1 < run.epochs:  # the last: after after_training
        _log_samples(writer, run, epoch + 1)


def _log_samples(writer, run: Run, epoch: int) -> None:
    gen = torch.Generator(device=next(run.method.parameters()).device).manual_seed(run.seed)
    samples = run.method.sample(64, gen)  # (64, 3, H, W) in [0, 1]
    writer.add_images("samples", samples, epoch)


def probe_rows(
    real_loss: Callable[[torch.Tensor], torch.Tensor], val: FactorDataset, classes: list[int], device: torch.device
) -> dict[str, float]:
    """Discriminator probe (paper section 6.2, Fig. 3): D's BCE w.r.t. the
    "real" label on held-out images of each rare class k, with and without
    the factor. Below log 2 the discriminator calls them real."""
    row = {}
    for k in classes:
        for present, tag in ((1, "with"), (0, "without")):
            mask = (val.labels == k) & (val.factor == present)
            if mask.any():
                x = images_to_tensor(val.images[mask], device).float().div_(255.0)
                row[f"d_loss_k{k}_{tag}"] = float(real_loss(x).mean())
    return row
