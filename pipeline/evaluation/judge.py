"""Learned or memorized, class by class (method, step 5): label the samples
of the balanced-trained and the skewed-trained run with the factor's two
oracles, count per class how many carry the factor, and test the skewed
proportion against the balanced one; beside the verdicts, how good both
runs' samples are (Fréchet distance, precision and recall in the label
oracle's feature space against real test images, pipeline/evaluation/quality.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pipeline import registry
from pipeline.data.datasets import FactorDataset
from pipeline.evaluation.quality import quality_block
from pipeline.evaluation.stats import TESTS, compare, counts_from_labels
from pipeline.files import DataManifest, MetricsFile
from pipeline.generative.controls import draw_indices, sources
from pipeline.io import rng_for
from pipeline.names import BALANCED
from pipeline.names import skewed as skewed_name
from pipeline.oracle.fit import features, predict
from pipeline.oracle.network import OracleCNN
from pipeline.params import EvaluationParams

CONFIDENT = 0.9  # a sample the label oracle reads with p above this is "confident"


@dataclass(frozen=True)
class Read:
    """One run's samples as the oracles read them."""

    labels: np.ndarray  # (M,) the label oracle's class
    label_confidence: np.ndarray  # (M,) its top probability
    factor: np.ndarray  # (M,) the factor oracle's f
    factor_confidence: np.ndarray  # (M,) its top probability
    features: np.ndarray  # (M, D) the label oracle's penultimate features


def read_samples(label_oracle: OracleCNN, factor_oracle: OracleCNN, images: np.ndarray, device) -> Read:
    """Label, factor and features of every sample."""
    labels, label_confidence = predict(label_oracle, images, device)
    factor, factor_confidence = predict(factor_oracle, images, device)
    return Read(labels, label_confidence, factor, factor_confidence, features(label_oracle, images, device))


def low_quality(quality: dict[str, dict], ev: EvaluationParams) -> list[str]:
    """Why a comparison's samples fall below the study's quality thresholds ([] when they do not)."""
    reasons = []
    for run, block in quality.items():
        if ev.max_fd is not None and block["fd"] > ev.max_fd:
            reasons.append(f"{run}: FD {block['fd']:.1f} > evaluation.max_fd {ev.max_fd:g}")
        if ev.min_precision is not None and block["precision"] < ev.min_precision:
            reasons.append(f"{run}: precision {block['precision']:.2f} < evaluation.min_precision {ev.min_precision:g}")
    return reasons


def judge(
    label_oracle: OracleCNN,
    factor_oracle: OracleCNN,
    balanced: np.ndarray,
    skewed: np.ndarray,
    rare_class: int,
    ev: EvaluationParams,
    device: torch.device | str,
    total_direction: int,
    num_classes: int = 10,
    real: FactorDataset | None = None,
    rngs: dict[str, np.random.Generator] | None = None,
) -> dict:
    """Metrics of one (model, factor, k): counts, proportions, z, verdicts,
    and, given the `real` test images and one generator per run (`rngs`:
    "balanced", "skewed"), the samples' quality. Keyed by run, not by the
    comparison, a balanced run's quality is the same in its k = 1 and k = 2 rows.

    Samples whose factor-oracle confidence is below
    `ev.min_factor_confidence` (mixed ink, say) are dropped before counting."""
    reads = {"balanced": read_samples(label_oracle, factor_oracle, balanced, device)}
    reads["skewed"] = read_samples(label_oracle, factor_oracle, skewed, device)
    counts, dropped = {}, {}
    for run, r in reads.items():
        keep = r.factor_confidence >= ev.min_factor_confidence
        counts[run] = counts_from_labels(r.labels[keep], r.factor[keep], num_classes)
        dropped[run] = int((~keep).sum())
    results = compare(
        counts["balanced"],
        counts["skewed"],
        rare_class,
        ev.test,
        ev.alpha,
        ev.correction,
        num_classes,
        total_direction=total_direction,
        min_count=ev.min_count,
    )
    quality = {}
    if real is not None:
        real_features = features(label_oracle, real.images, device)
        for run, r in reads.items():
            block = quality_block(real_features, real.labels, r.features, r.labels, r.factor_confidence, rngs[run])
            quality[run] = block
    confidence_s = reads["skewed"].label_confidence
    return {
        "test": ev.test,
        "alpha": ev.alpha,
        "correction": ev.correction,
        "min_count": ev.min_count,
        "min_factor_confidence": ev.min_factor_confidence,
        "dropped": dropped,
        # quality of the skewed model's samples: how sure the label oracle is
        "sample_confidence": float(confidence_s.mean()),
        "confident_fraction": float((confidence_s > CONFIDENT).mean()),
        "quality": quality,
        "low_quality": low_quality(quality, ev),
        "classes": results,
    }


def calibrate(
    model: str,
    rare_class: int,
    pools: dict[str, Read],
    ev: EvaluationParams,
    rng: np.random.Generator,
    total_direction: int,
    num_classes: int,
) -> dict[str, dict[str, int]]:
    """Each test's flagged / defined classes over `ev.control_resamples`
    fresh draws of a control's samples (both runs), from the oracles' reading
    of every image the control draws from (`pools`: dataset -> Read). What is
    "flagged" is the control's `hit` (pipeline/registry.py): for the learner
    any significant verdict (a false positive), for the memorizer and the
    mixer a memorized one (a true positive)."""
    control = registry.control(model)
    tally = {test: {"flagged": 0, "defined": 0} for test in TESTS}
    sizes = {name: len(read.labels) for name, read in pools.items()}
    for _ in range(ev.control_resamples):
        counts = []
        for dataset in (BALANCED, skewed_name(rare_class)):
            idx = draw_indices(sizes, sources(model, dataset, ev.mixer_fraction), ev.num_samples, rng)
            labels = np.concatenate([pools[name].labels[i] for name, i in idx.items()])
            factor = np.concatenate([pools[name].factor[i] for name, i in idx.items()])
            conf = np.concatenate([pools[name].factor_confidence[i] for name, i in idx.items()])
            keep = conf >= ev.min_factor_confidence
            counts.append(counts_from_labels(labels[keep], factor[keep], num_classes))
        results = compare(
            *counts, rare_class, ev.test, ev.alpha, ev.correction, num_classes, total_direction, ev.min_count
        )
        for key, row in results.items():
            if key == "total" or row.reason is not None:
                continue
            for test, verdict in row.verdicts.items():
                tally[test]["defined"] += 1
                tally[test]["flagged"] += int(control.flags(verdict))
    return tally


def evaluate_run(
    model: str,
    factor: str,
    rare_class: int,
    samples: dict[str, np.ndarray],
    data_manifest: DataManifest,
    real: FactorDataset,
    oracles: tuple[OracleCNN, OracleCNN, dict],
    ev: EvaluationParams,
    device: torch.device | str,
    seed: int,
    pools: dict[str, FactorDataset] | None = None,
) -> MetricsFile:
    """The metrics file of one (model, factor, k) from both runs' samples
    (`samples`: balanced and skewed_k<k> -> (M, H, W, 3) uint8); for a
    control, given the datasets it draws from (`pools`), also its calibration."""
    label_oracle, factor_oracle, accuracy = oracles
    calibration = {}
    if registry.is_control(model) and pools is not None and ev.control_resamples > 0:
        reads = {name: read_samples(label_oracle, factor_oracle, ds.images, device) for name, ds in pools.items()}
        rng = rng_for(seed, "calibrate", model, factor, rare_class)
        direction = data_manifest.skew_direction(skewed_name(rare_class))
        calibration = calibrate(model, rare_class, reads, ev, rng, direction, data_manifest.num_classes)
    skewed = samples[skewed_name(rare_class)]
    metrics = judge(
        label_oracle,
        factor_oracle,
        samples[BALANCED],
        skewed,
        rare_class,
        ev,
        device,
        data_manifest.skew_direction(skewed_name(rare_class)),
        data_manifest.num_classes,
        real=real,
        rngs={
            "balanced": rng_for(seed, "quality", model, factor, BALANCED),
            "skewed": rng_for(seed, "quality", model, factor, skewed_name(rare_class)),
        },
    )
    return MetricsFile(
        model=model,
        factor=factor,
        rare_class=rare_class,
        seed=seed,
        source=data_manifest.source,
        rare_fraction=float(data_manifest.skew["rare_fraction"]),
        class_names=data_manifest.class_names,
        factor_values=data_manifest.factor_values,
        num_samples=len(skewed),
        oracle_accuracy=accuracy,
        calibration=calibration,
        control_resamples=ev.control_resamples if calibration else 0,
        **metrics,
    )
