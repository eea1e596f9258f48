"""Stage `evaluate@<model>-<factor>-<k>`: learned or memorized, class by class.

Labels the samples of the balanced-trained and the skewed_k-trained model
with the factor's two oracles, counts per class how many carry the factor,
and z-tests the skewed proportion against the balanced one (method, step 5).
Writes metrics/<model>/<factor>/k<k>.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline.checkpoint import CheckpointError, pick_device
from pipeline.config import EvaluationParams, load_params
from pipeline.data.datasets import read_data_manifest, write_json
from pipeline.evaluation.stats import compare, counts_from_labels
from pipeline.sample import run_name
from pipeline.stage import InputError, check_factor, exit_with, parser


def read_samples(folder: Path, model: str, factor: str, dataset: str) -> np.ndarray:
    """Samples written by the sample stage, refusing those of another run."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        images = np.load(folder / "images.npy", allow_pickle=False)
    except (FileNotFoundError, ValueError) as err:
        raise InputError(
            f"{folder}: missing or corrupt samples ({err}); run `dvc repro sample@{folder.name}`"
        ) from None
    expected = {"model": model, "factor": factor, "dataset": dataset}
    found = {k: meta.get(k) for k in expected}
    if found != expected:
        raise InputError(f"{folder}: samples of {found}, expected {expected}; point --samples at the right run")
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise InputError(f"{folder}/images.npy: expected (M, H, W, 3) uint8, got {images.shape} {images.dtype}")
    return images


def skew_direction_of_total(data_manifest: dict, dataset: str) -> int:
    """-1 when the skewed set carries the factor less often than the balanced
    one (the usual case: only class k has it), +1 otherwise."""
    try:
        counts = data_manifest["datasets"][dataset]["counts"]
    except (KeyError, TypeError) as err:
        raise InputError(
            f"data manifest: cannot read the counts of {dataset} ({err}); rerun `dvc repro prepare`"
        ) from None
    present = sum(c["f1"] for c in counts.values())
    return -1 if present < sum(c["f0"] for c in counts.values()) else 1


def judge(
    label_oracle,
    factor_oracle,
    balanced,
    skewed,
    rare_class: int,
    ev: EvaluationParams,
    device,
    total_direction,
    num_classes: int = 10,
):
    """Metrics of one (model, factor, k): counts, proportions, z, verdicts."""
    from pipeline.evaluation.oracles import predict

    labelled = []
    for images in (balanced, skewed):
        labels, confidence = predict(label_oracle, images, device)
        factor, _ = predict(factor_oracle, images, device)
        labelled.append((counts_from_labels(labels, factor, num_classes), confidence))
    (counts_b, _), (counts_s, confidence_s) = labelled
    results = compare(
        counts_b, counts_s, rare_class, ev.test, ev.alpha, ev.correction, num_classes, total_direction=total_direction
    )
    return {
        "test": ev.test,
        "alpha": ev.alpha,
        "correction": ev.correction,
        # quality of the skewed model's samples: how sure the label oracle is
        "sample_confidence": float(confidence_s.mean()),
        "confident_fraction": float((confidence_s > 0.9).mean()),
        "classes": {c: r.to_dict() for c, r in results.items()},
    }


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--factor", required=True)
    p.add_argument("--rare-class", required=True, type=int)
    p.add_argument("--samples", type=Path, default=Path("data/samples"))
    p.add_argument("--data", type=Path, help="default: data/<factor>")
    p.add_argument("--oracles", type=Path, help="default: models/oracles/<factor>")
    p.add_argument("--oracle-metrics", type=Path, help="default: metrics/oracles/<factor>.json")
    p.add_argument("--out", type=Path, help="default: metrics/<model>/<factor>/k<k>.json")
    args = p.parse_args(argv)
    params = load_params(args.params)
    check_factor(args.factor, params)
    k, factor, model = args.rare_class, args.factor, args.model
    if k not in params.skew.rare_classes:
        raise InputError(f"rare class {k} is not in skew.rare_classes {params.skew.rare_classes}")
    dataset = f"skewed_k{k}"
    balanced = read_samples(args.samples / run_name(model, factor, "balanced"), model, factor, "balanced")
    skewed = read_samples(args.samples / run_name(model, factor, dataset), model, factor, dataset)
    data = args.data or Path("data") / factor
    data_manifest = read_data_manifest(data)
    total_direction = skew_direction_of_total(data_manifest, dataset)

    from pipeline.evaluation.oracles import OracleError, load_oracles

    device = pick_device(params.device)
    try:
        label_oracle, factor_oracle, accuracy = load_oracles(
            args.oracles or Path("models/oracles") / factor,
            args.oracle_metrics or Path("metrics/oracles") / f"{factor}.json",
            params.oracle.min_accuracy,
        )
    except (OracleError, CheckpointError) as err:
        raise InputError(str(err)) from None
    num_classes = data_manifest["num_classes"]
    metrics = judge(
        label_oracle, factor_oracle, balanced, skewed, k, params.evaluation, device, total_direction, num_classes
    )
    out = args.out or Path("metrics") / model / factor / f"k{k}.json"
    tmp = out.with_name(out.name + ".partial")
    write_json(
        tmp,
        {
            "model": model,
            "factor": factor,
            "rare_class": k,
            "source": data_manifest.get("source"),
            "class_names": data_manifest["class_names"],
            "factor_values": data_manifest.get("factor_values", ["absent", "present"]),
            "num_samples": len(skewed),
            "oracle_accuracy": accuracy,
            **metrics,
        },
    )
    tmp.replace(out)  # the old metrics survive any failure above
    verdicts = [r["verdict"] for c, r in metrics["classes"].items() if c != "total"]
    print(
        f"evaluate@{model}-{factor}-{k}: {verdicts.count('learned')} learned, {verdicts.count('memorized')} memorized"
    )


if __name__ == "__main__":
    exit_with(main)
