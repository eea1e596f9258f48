"""Learned or memorized, class by class (method, step 5): label the samples
of the balanced-trained and the skewed-trained run with the factor's two
oracles, count per class how many carry the factor, and test the skewed
proportion against the balanced one; beside the verdicts, how good both
runs' samples are (Fréchet distance, precision and recall in the label
oracle's feature space against real test images, pipeline/evaluation/quality.py)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from pipeline import registry
from pipeline.data.datasets import FactorDataset
from pipeline.evaluation.quality import covered, frechet_distance, knn_sq_radii, quality_block
from pipeline.evaluation.stats import TESTS, compare, concentration, counts_from_labels
from pipeline.files import DataManifest, MetricsFile
from pipeline.generative.controls import degrade, draw_indices, sources
from pipeline.io import rng_for
from pipeline.names import BALANCED
from pipeline.names import skewed as skewed_name
from pipeline.oracle.fit import features, predict
from pipeline.oracle.network import OracleCNN
from pipeline.params import EvaluationParams

CONFIDENT = 0.9  # a sample the label oracle reads with p above this is "confident"
SAMPLE_FILTERS = ("none", "confident", "on_manifold", "both")
MANIFOLD_K = 3  # the k of the k-NN balls a sample must fall in (as precision's, Kynkaenniemi et al. 2019)
RUNS = ("balanced", "skewed")
CONCENTRATION = "concentration"  # the concentration test's row of a control's calibration


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


def on_manifold(real: Read, sample: Read, k: int = MANIFOLD_K) -> np.ndarray:
    """(M,) whether each sample lies on the real manifold of the class it is
    read as: inside some ball around a real test image of that class, of
    radius that image's distance to its k-th nearest real neighbour of the
    same class (the balls of improved precision, Kynkaenniemi et al. 2019,
    drawn per class). A sample read as a class with at most k real images is off."""
    inside = np.zeros(len(sample.labels), dtype=bool)
    for c in np.unique(sample.labels):
        real_c = real.features[real.labels == c]
        if len(real_c) <= k:
            continue
        mask = sample.labels == c
        inside[mask] = covered(sample.features[mask], real_c, knn_sq_radii(real_c, k))
    return inside


def kept(read: Read, manifold: np.ndarray | None, ev: EvaluationParams) -> np.ndarray:
    """(M,) the samples `ev.sample_filter` keeps: `confident`, those the label
    oracle reads with p >= ev.min_label_confidence; `on_manifold`, those on
    their class's real manifold (`on_manifold`); `both`; `none`, all. Samples
    the factor oracle reads below ev.min_factor_confidence are never kept."""
    keep = read.factor_confidence >= ev.min_factor_confidence
    if ev.sample_filter in ("confident", "both"):
        keep &= read.label_confidence >= ev.min_label_confidence
    if ev.sample_filter in ("on_manifold", "both"):
        if manifold is None:
            raise ValueError("sample_filter on_manifold needs the real test images' reads")
        keep &= manifold
    return keep


def oracle_bias(model: Read, real: Read, max_bias: float, num_classes: int) -> dict[str, dict]:
    """Per class, the share of f = 1 the oracles read on the model's balanced
    samples against their reading of the real balanced test images (each
    digit once with and once without the factor, so 1/2 up to the oracles'
    errors). A model trained on balanced data should match it; a gap beyond
    `max_bias` (`flagged`) is the oracles misreading this model's samples
    (blur read as thin, say), which the per-class test would take for a skew."""
    out = {}
    for c in range(num_classes):
        n_model, n_real = int((model.labels == c).sum()), int((real.labels == c).sum())
        p_model = float(model.factor[model.labels == c].mean()) if n_model else None
        p_data = float(real.factor[real.labels == c].mean()) if n_real else None
        gap = None if p_model is None or p_data is None else p_model - p_data
        out[str(c)] = {
            "p_model": p_model,
            "p_data": p_data,
            "n_model": n_model,
            "n_data": n_real,
            "difference": gap,
            "flagged": gap is not None and abs(gap) > max_bias,
        }
    return out


def low_quality(quality: dict[str, dict], ev: EvaluationParams) -> list[str]:
    """Why a comparison's samples fall below the study's quality thresholds ([] when they do not)."""
    reasons = []
    for run, block in quality.items():
        if ev.max_fd is not None and block["fd"] > ev.max_fd:
            reasons.append(f"{run}: FD {block['fd']:.1f} > evaluation.max_fd {ev.max_fd:g}")
        if ev.min_precision is not None and block["precision"] < ev.min_precision:
            reasons.append(f"{run}: precision {block['precision']:.2f} < evaluation.min_precision {ev.min_precision:g}")
    return reasons


def reads_arrays(reads: dict[str, Read], manifold: dict[str, np.ndarray | None], keep: dict[str, np.ndarray]) -> dict:
    """The per-sample reads of both runs as flat arrays (`<run>_<field>`), for
    `pipeline.files.write_reads`: what any later re-analysis needs without the images."""
    out = {}
    for run, r in reads.items():
        n = len(r.labels)
        out[f"{run}_index"] = np.arange(n, dtype=np.int32)
        out[f"{run}_label"] = r.labels.astype(np.int16)
        out[f"{run}_label_confidence"] = r.label_confidence.astype(np.float32)
        out[f"{run}_factor"] = r.factor.astype(np.int8)
        out[f"{run}_factor_confidence"] = r.factor_confidence.astype(np.float32)
        on = manifold[run]
        out[f"{run}_on_manifold"] = np.zeros(n, bool) if on is None else on
        out[f"{run}_kept"] = keep[run]
    return out


def _compare(counts: dict[str, np.ndarray], rare_class, ev, num_classes, total_direction) -> dict:
    return compare(
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
    real_read: Read | None = None,
) -> tuple[dict, dict]:
    """Metrics of one (model, factor, k) and the per-sample reads behind them.

    Metrics: counts, proportions, z and verdicts of every class from all
    samples (`classes`) and from the samples `ev.sample_filter` keeps
    (`classes_filtered`, with `kept` per run); the concentration test on both
    (pipeline/evaluation/stats.py); and, given the `real` test images and one
    generator per run (`rngs`: "balanced", "skewed"), the samples' quality
    and the oracles' bias on this model. Keyed by run, not by the
    comparison, a balanced run's quality is the same in its k = 1 and k = 2 rows.

    Samples whose factor-oracle confidence is below
    `ev.min_factor_confidence` (mixed ink, say) are dropped before counting."""
    reads = {"balanced": read_samples(label_oracle, factor_oracle, balanced, device)}
    reads["skewed"] = read_samples(label_oracle, factor_oracle, skewed, device)
    if real is not None and real_read is None:
        real_read = read_samples(label_oracle, factor_oracle, real.images, device)
    manifold = {run: None if real_read is None else on_manifold(real_read, r) for run, r in reads.items()}
    counts, filtered, dropped, keep = {}, {}, {}, {}
    for run, r in reads.items():
        sure = r.factor_confidence >= ev.min_factor_confidence
        counts[run] = counts_from_labels(r.labels[sure], r.factor[sure], num_classes)
        dropped[run] = int((~sure).sum())
        keep[run] = kept(r, manifold[run], ev)
        filtered[run] = counts_from_labels(r.labels[keep[run]], r.factor[keep[run]], num_classes)
    quality, bias = {}, {}
    if real_read is not None:
        for run, r in reads.items():
            block = quality_block(real_read.features, real.labels, r.features, r.labels, r.factor_confidence, rngs[run])
            quality[run] = block
        bias = oracle_bias(reads["balanced"], real_read, ev.max_oracle_bias, num_classes)
    confidence_s = reads["skewed"].label_confidence
    metrics = {
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
        "classes": _compare(counts, rare_class, ev, num_classes, total_direction),
        "sample_filter": ev.sample_filter,
        "min_label_confidence": ev.min_label_confidence,
        "kept": {run: int(k.sum()) for run, k in keep.items()},
        "classes_filtered": _compare(filtered, rare_class, ev, num_classes, total_direction),
        "concentration": concentration(counts["balanced"], counts["skewed"], rare_class, ev.alpha),
        "concentration_filtered": concentration(filtered["balanced"], filtered["skewed"], rare_class, ev.alpha),
        "oracle_bias": bias,
        "max_oracle_bias": ev.max_oracle_bias,
    }
    return metrics, reads_arrays(reads, manifold, keep)


def calibrate(
    model: str,
    rare_class: int,
    pools: dict[str, Read],
    ev: EvaluationParams,
    rng: np.random.Generator,
    total_direction: int,
    num_classes: int,
    keep: dict[str, np.ndarray] | None = None,
    skewed_set: str | None = None,
) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """Each test's flagged / defined classes over `ev.control_resamples`
    fresh draws of a control's samples (both runs), from the oracles' reading
    of every image the control draws from (`pools`: dataset -> Read). What is
    "flagged" is the control's `hit` (pipeline/registry.py): for the learner
    any significant verdict (a false positive), for the memorizer and the
    mixer a memorized one (a true positive); besides the per-class tests,
    the concentration test (`CONCENTRATION`: one comparison a draw). The second tally counts the same
    draws after the sample filter (`keep`: dataset -> the images it keeps;
    without it, every image the factor oracle reads surely enough).
    `skewed_set`: the skewed run's dataset (default skewed_k<k>)."""
    control = registry.control(model)
    tallies = [{test: {"flagged": 0, "defined": 0} for test in (*TESTS, CONCENTRATION)} for _ in range(2)]
    sizes = {name: len(read.labels) for name, read in pools.items()}
    for _ in range(ev.control_resamples):
        counts: list[list[np.ndarray]] = [[], []]
        for dataset in (BALANCED, skewed_set or skewed_name(rare_class)):
            idx = draw_indices(sizes, sources(model, dataset, ev.mixer_fraction), ev.num_samples, rng, dataset)
            labels = np.concatenate([pools[name].labels[i] for name, i in idx.items()])
            factor = np.concatenate([pools[name].factor[i] for name, i in idx.items()])
            conf = np.concatenate([pools[name].factor_confidence[i] for name, i in idx.items()])
            sure = conf >= ev.min_factor_confidence
            kept_ = sure if keep is None else np.concatenate([keep[name][i] for name, i in idx.items()])
            counts[0].append(counts_from_labels(labels[sure], factor[sure], num_classes))
            counts[1].append(counts_from_labels(labels[kept_], factor[kept_], num_classes))
        for tally, both in zip(tallies, counts, strict=True):
            results = compare(
                *both, rare_class, ev.test, ev.alpha, ev.correction, num_classes, total_direction, ev.min_count
            )
            for key, row in results.items():
                if key == "total" or row.reason is not None:
                    continue
                for test, verdict in row.verdicts.items():
                    tally[test]["defined"] += 1
                    tally[test]["flagged"] += int(control.flags(verdict))
            conc = concentration(*both, rare_class, ev.alpha)["verdict"]
            if conc != "undefined":
                tally[CONCENTRATION]["defined"] += 1
                tally[CONCENTRATION]["flagged"] += int(control.flags(conc))
    return tallies[0], tallies[1]


def match_fd(
    images: np.ndarray,
    target: float,
    real: np.ndarray,
    featurize,
    seed: int,
    low: float = 0.0,
    high: float = 4.0,
    steps: int = 12,
) -> tuple[float, float]:
    """(strength, FD): the `degrade` strength at which `images`' Fréchet
    distance to the real features `real` (in the label oracle's space,
    `featurize`: images -> (N, D)) comes closest to `target`, by bisection
    over [low, high] (FD grows with the strength); the noise of every try is
    drawn from `seed`, so the answer is a function of the images alone. When
    even `high` falls short, `high` and its FD."""

    def fd_at(strength: float) -> float:
        return frechet_distance(featurize(degrade(images, strength, np.random.default_rng(seed))), real)

    best = (high, fd_at(high))
    if best[1] <= target:
        return best
    best = min(best, (low, fd_at(low)), key=lambda t: abs(t[1] - target))
    for _ in range(steps):
        mid = (low + high) / 2
        fd = fd_at(mid)
        best = min(best, (mid, fd), key=lambda t: abs(t[1] - target))
        low, high = (mid, high) if fd < target else (low, mid)
    return best


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
    rare_fraction: float = 0.0,
) -> tuple[MetricsFile, dict]:
    """The metrics file of one (model, factor, k, r) from both runs' samples
    (`samples`: balanced and skewed_k<k>[_r<percent>] -> (M, H, W, 3) uint8) and the
    per-sample reads behind it; for a control, given the datasets it draws
    from (`pools`), also its calibration. A degraded control's samples and
    pools are first degraded to `ev.degraded_fd` (`match_fd`)."""
    label_oracle, factor_oracle, accuracy = oracles
    calibration, calibration_filtered, degradation = {}, {}, None
    skewed_name_k = skewed_name(rare_class, rare_fraction)
    # a control's draws per skew; r = 0 keeps the key it always had, so its results stay as they were
    skew_key = (rare_class,) if rare_fraction == 0 else (rare_class, skewed_name_k)
    # the oracles' reading of the real test images, once: degradation, calibration and judge all use it
    real_read = read_samples(label_oracle, factor_oracle, real.images, device) if registry.is_control(model) else None
    if registry.is_control(model) and registry.control(model).degraded:
        strength, fd = match_fd(
            samples[BALANCED],
            ev.degraded_fd,
            real_read.features,
            lambda x: features(label_oracle, x, device),
            seed,
        )
        noise = rng_for(seed, "degrade", model, factor, *skew_key)
        samples = {name: degrade(x, strength, noise) for name, x in samples.items()}
        if pools is not None:
            pools = {name: replace(ds, images=degrade(ds.images, strength, noise)) for name, ds in pools.items()}
        degradation = {"target_fd": ev.degraded_fd, "strength": strength, "fd": fd}
    if registry.is_control(model) and pools is not None and ev.control_resamples > 0:
        reads = {name: read_samples(label_oracle, factor_oracle, ds.images, device) for name, ds in pools.items()}
        keep = {name: kept(r, on_manifold(real_read, r), ev) for name, r in reads.items()}
        rng = rng_for(seed, "calibrate", model, factor, *skew_key)
        direction = data_manifest.skew_direction(skewed_name_k)
        calibration, calibration_filtered = calibrate(
            model, rare_class, reads, ev, rng, direction, data_manifest.num_classes, keep, skewed_name_k
        )
    skewed = samples[skewed_name_k]
    metrics, sample_reads = judge(
        label_oracle,
        factor_oracle,
        samples[BALANCED],
        skewed,
        rare_class,
        ev,
        device,
        data_manifest.skew_direction(skewed_name_k),
        data_manifest.num_classes,
        real=real,
        rngs={
            "balanced": rng_for(seed, "quality", model, factor, BALANCED),
            "skewed": rng_for(seed, "quality", model, factor, skewed_name_k),
        },
        real_read=real_read,
    )
    file = MetricsFile(
        model=model,
        factor=factor,
        rare_class=rare_class,
        seed=seed,
        source=data_manifest.source,
        rare_fraction=rare_fraction,
        class_names=data_manifest.class_names,
        factor_values=data_manifest.factor_values,
        num_samples=len(skewed),
        oracle_accuracy=accuracy,
        calibration=calibration,
        calibration_filtered=calibration_filtered or None,
        control_resamples=ev.control_resamples if calibration else 0,
        degradation=degradation,
        **metrics,
    )
    return file, sample_reads
