"""How runs, stages and their files are named, in one place.

A run is one model trained on one dataset of one factor, for one seed
(`gan_sd-thick-skewed_k1-s0`); a comparison is a model's balanced run
against its run on the skewed set of one skew (rare class k, rare fraction
r; `pipeline.names.skew_label`: k1, or k1_r5 for r = 0.05), and its verdicts
live in one metrics file:

    models/<model>-<factor>-s<seed>/<dataset>/          train   (one folder per stage)
    plots/train/<model>-<factor>-s<seed>/<dataset>/     train   (DVCLive: plots/metrics/<term>.tsv)
    data/samples/<model>-<factor>-<dataset>-s<seed>/    sample (imported: from imports/<model>/)
    metrics/<model>/<factor>/<skew>-s<seed>.json        evaluate (k1-s0.json, k1_r5-s0.json)

dvc.yaml spells the same paths (its matrix cannot call Python); a test
keeps the two in step.

Each output folder carries a marker naming which output it is (OWNED), so a
command replaces only a folder it wrote: the source stage never replaces
prepared data, a report never replaces a study someone assembled.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.io import Owned
from pipeline.names import skew_label

METRICS_GLOB = "*/*/k*-s*.json"  # under the metrics folder; metrics/oracles/ is skipped by its depth

# which output a folder is, and (for folders written before markers) the names that mark it
SOURCE = Owned("source", ("manifest.json", "train_images.npy"))
PREPARED = Owned("prepared", ("manifest.json", "balanced", "test", "val"))
ORACLES = Owned("oracles", ("label.pt", "factor.pt"))
TRAINED = Owned("trained", ("balanced/model.pt",))
# DVCLive's folders, drawn whole by `dvc plots`: no marker, every file a curve (pipeline.files.Curves)
# (a run's datasets, an oracle's targets: the two cannot take each other's folder)
HISTORY = Owned("history", ("balanced.csv",), layout=("balanced/plots/metrics/*.tsv", "skewed_k*/plots/metrics/*.tsv"))
ORACLE_CURVES = Owned("oracle-curves", layout=("label/plots/metrics/*.tsv", "factor/plots/metrics/*.tsv"))
SAMPLES = Owned("samples", ("meta.json", "images.npy"))
TABLES = Owned("tables", ("README.md", "summary.csv"))
PLOT_DATA = Owned("plot-data", ("z", "quality.csv"))
STUDY = Owned("study", ("params.yaml", "metrics"))  # the project root is refused before this
STUDY_METRICS = Owned("metrics")  # a study's metrics/ (assembled), legacy: whatever metrics files it holds
RARITY = Owned("rarity", ("curve.csv", "null.csv"))
PAPER = Owned("paper", ("comparison.json", "cells.csv"))
EXPORT = Owned("export", ("export.json",))
STANDIN_CARS = Owned("standin-cars")  # no legacy: a CompCars folder holds the same names


def run_name(model: str, factor: str, dataset: str, seed: int) -> str:
    """The name a run has everywhere: paths, checkpoints, logs (gan_sd-thick-skewed_k1-s0)."""
    return f"{model}-{factor}-{dataset}-s{seed}"


def train_name(model: str, factor: str, seed: int) -> str:
    """The folder of one model's runs on every dataset of a factor, for one seed (gan_sd-thick-s0)."""
    return f"{model}-{factor}-s{seed}"


def model_of(train_folder: str, models: tuple[str, ...]) -> str | None:
    """The model of a train folder's name (gan_sd of gan_sd-thick-s0): the
    longest of `models` it starts with, None when none does."""
    return max((m for m in models if train_folder.startswith(f"{m}-")), key=len, default=None)


def metrics_key(model: str, factor: str, rare_class: int, seed: int, rare_fraction: float = 0.0) -> str:
    """model/factor/<skew>-s<seed>: a metrics file's path under the metrics
    folder, without .json (vae/thin/k1-s0; at r = 0.05 vae/thin/k1_r5-s0)."""
    return f"{model}/{factor}/{skew_label(rare_class, rare_fraction)}-s{seed}"


def metrics_path(
    root: Path | str, model: str, factor: str, rare_class: int, seed: int, rare_fraction: float = 0.0
) -> Path:
    """<root>/<model>/<factor>/<skew>-s<seed>.json."""
    return Path(root) / f"{metrics_key(model, factor, rare_class, seed, rare_fraction)}.json"


def key_of(m: dict) -> str:
    """metrics_key of a metrics dict."""
    return metrics_key(m["model"], m["factor"], m["rare_class"], m["seed"], m.get("rare_fraction", 0.0))


def path_key(path: Path) -> tuple[str, str, str]:
    """(model, factor, <skew>-s<seed>) as a metrics file's path says them."""
    return path.parent.parent.name, path.parent.name, path.stem


def train_stage(model: str, factor: str, seed: int) -> str:
    """The DVC stage that trains a model on a factor for one seed: train-<model>@<factor>-<seed>."""
    return f"train-{model}@{factor}-{seed}"


def sample_stage(model: str, factor: str, dataset: str, seed: int) -> str:
    """sample-<model>@<factor>-<dataset>-<seed>."""
    return f"sample-{model}@{factor}-{dataset}-{seed}"


def imported_stage(model: str, factor: str, dataset: str, seed: int) -> str:
    """imported@<model>-<factor>-<dataset>-<seed>: an outside model's samples brought into the study."""
    return f"imported@{model}-{factor}-{dataset}-{seed}"


def evaluate_stage(model: str, factor: str, skew: str, seed: int) -> str:
    """evaluate@<model>-<factor>-<skew>-<seed> (skew: k1, k1_r5)."""
    return f"evaluate@{model}-{factor}-{skew}-{seed}"
