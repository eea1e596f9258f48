"""Learned or memorized, class by class (method, step 5): label the samples
of the balanced-trained and the skewed-trained run with the factor's two
oracles, count per class how many carry the factor, and test the skewed
proportion against the balanced one."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.evaluation.stats import compare, counts_from_labels
from pipeline.files import DataManifest, MetricsFile
from pipeline.names import skewed as skewed_name
from pipeline.oracle.fit import predict
from pipeline.oracle.network import OracleCNN
from pipeline.params import EvaluationParams

CONFIDENT = 0.9  # a sample the label oracle reads with p above this is "confident"


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
) -> dict:
    """Metrics of one (model, factor, k): counts, proportions, z, verdicts."""
    labelled = []
    for images in (balanced, skewed):
        labels, confidence = predict(label_oracle, images, device)
        factor, _ = predict(factor_oracle, images, device)
        labelled.append((counts_from_labels(labels, factor, num_classes), confidence))
    (counts_b, _), (counts_s, confidence_s) = labelled
    results = compare(
        counts_b,
        counts_s,
        rare_class,
        ev.test,
        ev.alpha,
        ev.correction,
        num_classes,
        total_direction=total_direction,
        min_count=ev.min_count,
    )
    return {
        "test": ev.test,
        "alpha": ev.alpha,
        "correction": ev.correction,
        "min_count": ev.min_count,
        # quality of the skewed model's samples: how sure the label oracle is
        "sample_confidence": float(confidence_s.mean()),
        "confident_fraction": float((confidence_s > CONFIDENT).mean()),
        "classes": results,
    }


def evaluate_run(
    model: str,
    factor: str,
    rare_class: int,
    balanced: np.ndarray,
    skewed: np.ndarray,
    data_manifest: DataManifest,
    oracles: tuple[OracleCNN, OracleCNN, dict],
    ev: EvaluationParams,
    device: torch.device | str,
) -> MetricsFile:
    """The metrics file of one (model, factor, k) from both runs' samples."""
    label_oracle, factor_oracle, accuracy = oracles
    metrics = judge(
        label_oracle,
        factor_oracle,
        balanced,
        skewed,
        rare_class,
        ev,
        device,
        data_manifest.skew_direction(skewed_name(rare_class)),
        data_manifest.num_classes,
    )
    return MetricsFile(
        model=model,
        factor=factor,
        rare_class=rare_class,
        source=data_manifest.source,
        class_names=data_manifest.class_names,
        factor_values=data_manifest.factor_values,
        num_samples=len(skewed),
        oracle_accuracy=accuracy,
        **metrics,
    )
