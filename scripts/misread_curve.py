"""How far misreads alone move a verdict: the degraded learner's false-positive
rate and the degraded memorizer's true-positive rate against the FD their
images are degraded to, under every sample filter.

Reads a prepared factor folder and its oracles (what `dvc repro` leaves in a
workspace), degrades the balanced and skewed sets as the degraded controls
do (pipeline/generative/controls.py, `degrade`, matched to each target FD
with pipeline/evaluation/judge.py, `match_fd`), and calibrates both controls
on each (judge.calibrate) with the params' test, alpha and min_count. Writes
a CSV and prints a table. Used to choose evaluation.max_fd and
evaluation.sample_filter (README, "Quality gates"); about 2 minutes a target
on 2 cores.

    python scripts/misread_curve.py --data data/colour --oracles models/oracles/colour \
        --oracle-metrics metrics/oracles/colour.json --out reports/misreads/colour.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console

from pipeline.data.datasets import load_dataset
from pipeline.evaluation.judge import SAMPLE_FILTERS, calibrate, kept, match_fd, on_manifold, read_samples
from pipeline.evaluation.quality import frechet_distance, precision_recall
from pipeline.evaluation.stats import TESTS, wilson
from pipeline.files import read_data_manifest
from pipeline.generative.controls import degrade
from pipeline.names import BALANCED, skewed
from pipeline.oracle.fit import features, load_oracles
from pipeline.params import load_params


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--oracles", type=Path, required=True)
    p.add_argument("--oracle-metrics", type=Path, required=True)
    p.add_argument("--rare-class", type=int, default=1)
    p.add_argument("--targets", type=float, nargs="+", default=[0, 20, 40, 60, 80, 100, 120])
    p.add_argument("--resamples", type=int, default=100)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    params = load_params(args.params)
    manifest = read_data_manifest(args.data)
    label_oracle, factor_oracle, _ = load_oracles(args.oracles, args.oracle_metrics, params.oracle.min_accuracy)
    names = (BALANCED, skewed(args.rare_class))
    pools = {name: load_dataset(args.data / name) for name in names}
    real = load_dataset(args.data / "test")
    real_features = features(label_oracle, real.images, "cpu")
    real_read = read_samples(label_oracle, factor_oracle, real.images, "cpu")
    probe = pools[BALANCED].images[: params.evaluation.num_samples]
    direction = manifest.skew_direction(skewed(args.rare_class))
    console = Console()
    records = []
    for target in args.targets:
        if target > 0:
            strength, _ = match_fd(probe, target, real_features, lambda x: features(label_oracle, x, "cpu"), 0)
        else:
            strength = 0.0
        noise = np.random.default_rng(1)
        images = {name: degrade(ds.images, strength, noise) for name, ds in pools.items()}
        reads = {name: read_samples(label_oracle, factor_oracle, x, "cpu") for name, x in images.items()}
        fd = frechet_distance(reads[BALANCED].features[: len(probe)], real_features)
        precision = precision_recall(real_features, reads[BALANCED].features[: len(probe)])["precision"]
        confidence = float(reads[BALANCED].label_confidence.mean())
        manifold = {name: on_manifold(real_read, r) for name, r in reads.items()}
        for sample_filter in SAMPLE_FILTERS:
            ev = params.evaluation.model_copy(
                update={"sample_filter": sample_filter, "control_resamples": args.resamples}
            )
            keep = {name: kept(r, manifold[name], ev) for name, r in reads.items()}
            for control in ("degraded-learner", "degraded-memorizer"):
                rng = np.random.default_rng(2)
                _, tally = calibrate(control, args.rare_class, reads, ev, rng, direction, manifest.num_classes, keep)
                for test in TESTS:
                    flagged, defined = tally[test]["flagged"], tally[test]["defined"]
                    lo, hi = wilson(flagged, defined) or (np.nan, np.nan)
                    records.append(
                        {
                            "target_fd": target,
                            "fd": round(fd, 2),
                            "strength": round(strength, 4),
                            "precision": round(precision, 3),
                            "label_confidence": round(confidence, 3),
                            "sample_filter": sample_filter,
                            "kept": round(float(np.mean(keep[BALANCED])), 3),
                            "control": control,
                            "test": test,
                            "flagged": flagged,
                            "defined": defined,
                            "rate": flagged / defined if defined else np.nan,
                            "ci_low": lo,
                            "ci_high": hi,
                        }
                    )
        console.print(
            f"target FD {target:g}: strength {strength:.3f}, FD {fd:.1f}, precision {precision:.2f}, "
            f"label confidence {confidence:.2f}"
        )
    df = pd.DataFrame.from_records(records)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out, index=False)
    test = params.evaluation.test
    view = df[df["test"] == test].pivot_table(
        index=["target_fd", "fd", "precision", "sample_filter", "kept"], columns="control", values="rate"
    )
    console.print(f"rates under the configured test ({test}):")
    console.print(view.round(3).to_string())


if __name__ == "__main__":
    main()
