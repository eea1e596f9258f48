"""Fitting, applying and loading the two oracles of one factor (section 5.2).

The label oracle reads a digit's class (10 outputs), the factor oracle whether
the factor is present (2 outputs). Both are trained on the balanced training
split only, so neither has seen the skew the generative models are tested on.
Their test accuracy is the quality gate of the evaluation: counts read by an
oracle that cannot tell the classes or the factor apart mean nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipeline.data.datasets import FactorDataset, load_dataset
from pipeline.errors import CheckpointError, OracleError
from pipeline.files import OracleMetrics, read, read_data_manifest
from pipeline.io import load_checkpoint, pick_device, rng_for, save_checkpoint
from pipeline.names import BALANCED, TARGETS
from pipeline.oracle.network import OracleCNN
from pipeline.params import OracleParams, Params, load_params
from pipeline.workers import run_jobs


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) images -> float (N, C, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)


def train_oracle(
    images: np.ndarray,
    targets: np.ndarray,
    num_outputs: int,
    params: OracleParams,
    seed: int,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
    description: str = "oracle",
    history: list[dict] | None = None,
) -> OracleCNN:
    """Train an OracleCNN with SGD + momentum and cross-entropy (section 5.2).
    On CPU the same seed gives identical weights. Each epoch's mean loss and
    training accuracy (on the batches as they were trained) are appended to
    `history` when given."""
    device = torch.device(device)
    torch.manual_seed(seed)  # the initial weights and the dropout masks
    model = OracleCNN(num_outputs, channels=images.shape[3], image_size=images.shape[1]).to(device)
    optimiser = torch.optim.SGD(model.parameters(), lr=params.lr, momentum=params.momentum)
    # uint8 stays uint8 until a batch is drawn: 4x less memory for 60k digits
    x_all = torch.from_numpy(np.ascontiguousarray(images))
    y_all = torch.as_tensor(np.asarray(targets), dtype=torch.int64)
    # a generator of its own, so the order does not depend on the model's draws
    order_rng = torch.Generator().manual_seed(seed)
    n = len(y_all)
    steps = -(-n // params.batch_size)
    task = progress.add_task(description, total=params.epochs * steps) if progress is not None else None
    model.train()
    for epoch in range(params.epochs):
        perm = torch.randperm(n, generator=order_rng)
        loss_sum, correct = 0.0, 0
        for start in range(0, n, params.batch_size):
            idx = perm[start : start + params.batch_size]
            x = x_all[idx].to(device).permute(0, 3, 1, 2).float().div_(255.0)
            y = y_all[idx].to(device)
            optimiser.zero_grad(set_to_none=True)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            loss.backward()
            optimiser.step()
            if history is not None:
                loss_sum += loss.item() * len(idx)
                correct += int((logits.argmax(1) == y).sum())
            if task is not None:
                progress.advance(task)
        if history is not None:
            history.append({"epoch": epoch + 1, "loss": loss_sum / n, "accuracy": correct / n})
    model.eval()
    return model


@torch.no_grad()
def predict(
    model: OracleCNN, images: np.ndarray, device: torch.device | str = "cpu", batch_size: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """(argmax class (N,) int64, its softmax probability (N,) float64)."""
    device = torch.device(device)
    model = model.to(device).eval()
    classes, confidence = [], []
    for start in range(0, len(images), batch_size):
        probs = F.softmax(model(to_tensor(images[start : start + batch_size]).to(device)), dim=1)
        p, c = probs.max(dim=1)
        classes.append(c.cpu().numpy().astype(np.int64))
        confidence.append(p.cpu().double().numpy())
    if not classes:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    return np.concatenate(classes), np.concatenate(confidence)


@torch.no_grad()
def features(
    model: OracleCNN, images: np.ndarray, device: torch.device | str = "cpu", batch_size: int = 1024
) -> np.ndarray:
    """The oracle's penultimate features (N, 128) float64 of uint8 (N, H, W, C) images."""
    device = torch.device(device)
    model = model.to(device).eval()
    out = [
        model.features(to_tensor(images[start : start + batch_size]).to(device)).cpu().double().numpy()
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros((0, model.fc1.out_features), np.float64)


def accuracy_report(predicted: np.ndarray, targets: np.ndarray, labels: np.ndarray) -> dict:
    """Overall accuracy and accuracy within each digit class (JSON-ready)."""
    correct = np.asarray(predicted) == np.asarray(targets)
    per_class = {str(c): float(correct[labels == c].mean()) for c in np.unique(labels).tolist()}
    return {"accuracy": float(correct.mean()) if len(correct) else 0.0, "per_class": per_class}


def oracle_metrics(
    label_oracle: OracleCNN, factor_oracle: OracleCNN, test: FactorDataset, device: torch.device | str = "cpu"
) -> dict:
    """Test accuracy of both oracles, overall and per digit class:
    {"label": {"accuracy", "per_class"}, "factor": {...}}."""
    label_pred, _ = predict(label_oracle, test.images, device)
    factor_pred, _ = predict(factor_oracle, test.images, device)
    return {
        "label": accuracy_report(label_pred, test.labels, test.labels),
        "factor": accuracy_report(factor_pred, test.factor, test.labels),
    }


def _load_model(path: Path, target: str, rebuild: str) -> tuple[OracleCNN, dict]:
    try:
        ckpt = load_checkpoint(path)
        p = ckpt["params"]
        model = OracleCNN(p["num_outputs"], p.get("channels", 3), p.get("image_size", 28))
        model.load_state_dict(ckpt["state"]["model"])
    except CheckpointError as err:
        raise OracleError(f"{target} oracle: {err}; rebuild it with `{rebuild}`") from None
    except (KeyError, TypeError, RuntimeError) as err:
        raise OracleError(
            f"{path}: not an oracle checkpoint ({type(err).__name__}: {err}); rebuild it with `{rebuild}`"
        ) from None
    if p.get("target") not in (None, target):
        raise OracleError(f"{path}: holds the {p['target']} oracle, expected the {target} oracle; `{rebuild}`")
    return model.eval(), ckpt


def manifest_digest(data: Path) -> str:
    """sha256 of a prepared data folder's manifest.json: what ties oracles to the data they learnt."""
    return hashlib.sha256((Path(data) / "manifest.json").read_bytes()).hexdigest()


def load_oracles(
    model_dir: str | Path,
    metrics_path: str | Path,
    min_accuracy: float,
    factor: str | None = None,
    data: Path | None = None,
) -> tuple[OracleCNN, OracleCNN, dict]:
    """Load label.pt and factor.pt from `model_dir` and their test metrics;
    refuse oracles whose test accuracy is below `min_accuracy` (section 5.2),
    and, given them, oracles of another factor than `factor` or trained on
    other data than `data` (a prepared folder).
    Returns (label_oracle, factor_oracle, {"label": acc, "factor": acc})."""
    model_dir, metrics_path = Path(model_dir), Path(metrics_path)
    factor = factor or model_dir.name
    rebuild = f"dvc repro oracle@{factor}"
    fix = f"train the oracles with `{rebuild}`"
    metrics = read(OracleMetrics, metrics_path, fix, OracleError)
    if metrics.factor_name != factor:
        raise OracleError(f"{metrics_path}: scores the oracles of {metrics.factor_name}, not {factor}; `{rebuild}`")
    accuracy = {t: getattr(metrics, t).accuracy for t in TARGETS}
    loaded = {t: _load_model(model_dir / f"{t}.pt", t, rebuild) for t in TARGETS}
    digest = manifest_digest(data) if data is not None else None
    for t, (_, ckpt) in loaded.items():
        if ckpt["params"].get("factor", factor) != factor:
            raise OracleError(
                f"{model_dir / t}.pt: the {t} oracle of {ckpt['params']['factor']}, not of {factor}; "
                f"give --oracles models/oracles/{factor} or `{rebuild}`"
            )
        if digest is not None and ckpt.get("data_manifest_sha256", digest) != digest:
            raise OracleError(
                f"{model_dir / t}.pt: trained on other data than {data} (its manifest differs); `{rebuild}`"
            )
    models = {t: model for t, (model, _) in loaded.items()}
    for t in TARGETS:
        if accuracy[t] < min_accuracy:
            raise OracleError(
                f"{t} oracle of {factor}: test accuracy {accuracy[t]:.4f} is below oracle.min_accuracy "
                f"{min_accuracy:.4f}, so its counts cannot be trusted; raise oracle.epochs or use more "
                f"data, then `{rebuild}`"
            )
    return models["label"], models["factor"], accuracy


@dataclass(frozen=True)
class OracleJob:
    """One oracle of the oracle stage, as sent to a worker process."""

    params_path: Path
    factor: str
    data: Path  # data/<factor>
    target: str  # "label" or "factor"
    num_outputs: int
    live: bool = False  # draw a live progress bar (one process only)


def fit_target(job: OracleJob) -> tuple[OracleCNN, list[dict]]:
    """Train one oracle ("label" or "factor") on the balanced training split;
    the model and its per-epoch history."""
    params = load_params(job.params_path)
    if not job.live:
        torch.set_num_threads(1)
    train = load_dataset(job.data / BALANCED)
    y = train.labels if job.target == "label" else train.factor
    # an independent seed per oracle, stable across runs and factors' order
    seed = int(rng_for(params.seed, "oracle", job.factor, job.target).integers(2**62))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    history: list[dict] = []
    with Progress(*columns, disable=not job.live) as progress:
        model = train_oracle(
            train.images,
            y,
            job.num_outputs,
            params.oracle,
            seed,
            pick_device(params.device),
            progress,
            f"{job.target} oracle",
            history,
        )
    if not job.live:
        print(f"oracle@{job.factor}: {job.target} oracle trained ({params.oracle.epochs} epochs)", flush=True)
    return model.cpu(), history


def fit_oracles(
    params_path: Path, params: Params, factor: str, data: Path
) -> tuple[dict[str, OracleCNN], dict[str, list[dict]]]:
    """Both oracles of `factor`, trained on data/<factor>/balanced: in two
    single-threaded processes on a CPU (several times faster than one
    two-threaded process), else one after the other. On a CPU each trains on
    one thread either way: the number of threads changes the order of float
    sums, so the oracles' bytes would otherwise depend on `workers`, which
    the oracle stage does not track (DVC would then re-run it only for other
    reasons and get other bytes). Returns the models and their histories."""
    num_classes = read_data_manifest(data).num_classes
    # the label oracle has one output per class, the factor oracle two
    outputs = {"label": num_classes, "factor": 2}
    device = pick_device(params.device)
    if params.workers > 1 and device.type == "cpu":
        jobs = [OracleJob(params_path, factor, data, t, outputs[t]) for t in TARGETS]
        fits = dict(zip(TARGETS, run_jobs(fit_target, jobs, 2), strict=True))
    else:
        torch.set_num_threads(1 if device.type == "cpu" else torch.get_num_threads())
        fits = {t: fit_target(OracleJob(params_path, factor, data, t, outputs[t], live=True)) for t in TARGETS}
    return {t: model for t, (model, _) in fits.items()}, {t: history for t, (_, history) in fits.items()}


def save_oracles(
    folder: Path, models: dict[str, OracleCNN], factor: str, train: FactorDataset, params: Params, data: Path
) -> None:
    """<target>.pt for both oracles: weights, the settings that made them and
    the digest of the data folder (`data`) they learnt from."""
    for target, model in models.items():
        ckpt_params = {
            "factor": factor,
            "target": target,
            "num_outputs": model.fc2.out_features,
            "channels": train.images.shape[3],
            "image_size": train.images.shape[1],
            **params.oracle.model_dump(),
            "seed": params.seed,
        }
        state = {k: v.cpu() for k, v in model.state_dict().items()}
        save_checkpoint(
            folder / f"{target}.pt",
            state={"model": state},
            params=ckpt_params,
            epoch=params.oracle.epochs,
            data_manifest_sha256=manifest_digest(data),
        )


def score_oracles(
    models: dict[str, OracleCNN], factor: str, train: FactorDataset, test: FactorDataset, params: Params
) -> OracleMetrics:
    """Both oracles' test accuracy, overall and per class, against the gate."""
    scores = oracle_metrics(models["label"], models["factor"], test, pick_device(params.device))
    opts = params.oracle
    return OracleMetrics(
        factor_name=factor,
        **scores,
        min_accuracy=opts.min_accuracy,
        passed=all(scores[t]["accuracy"] >= opts.min_accuracy for t in TARGETS),
        epochs=opts.epochs,
        train_size=len(train.labels),
        test_size=len(test.labels),
    )
