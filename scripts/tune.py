"""Quality per CPU-minute of one model design, measured outside DVC.

    python scripts/tune.py --label "GAN, hinge + SN" --model gan -S gan.loss=hinge -S gan.spectral_norm=true

Trains the model on the balanced and the skewed_k<k> dataset of a prepared
factor (side by side, one single-threaded process each, as the train stage
does), draws `evaluation.num_samples` samples of each, reads them with the
factor's oracles and appends one JSON line to --out: the design (the -S
overrides of params.yaml), the training seconds of each run, FD, precision
and recall against the real test digits (label-oracle features; the real
halves drawn from the same seed for every design of a model, so rows of one
model compare), and the label oracle's mean confidence. reports/tuning.md
is written from these lines (`python scripts/tune.py --table` prints them
as a Markdown table).

It needs the prepared data and the oracles of the factor (`dvc repro
oracle@colour`), and writes nothing else: the study's outputs, dvc.lock and
the run cache stay as they are, so designs can be tried without re-running
the pipeline (whose code deps would re-run every stage after an edit).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from pipeline.data.datasets import load_dataset
from pipeline.errors import ParamsError
from pipeline.evaluation.judge import read_samples
from pipeline.evaluation.quality import quality_block
from pipeline.generative.fit import train_model
from pipeline.generative.sampling import generate
from pipeline.io import rng_for
from pipeline.names import BALANCED, skewed
from pipeline.oracle.fit import load_oracles
from pipeline.params import Params, parse_params
from pipeline.stages import exit_with
from pipeline.workers import run_jobs


def with_overrides(raw: dict, overrides: list[str]) -> dict:
    """params as a mapping with each `key.sub=value` set (value read as YAML)."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ParamsError(f"-S {item}: expected key=value, e.g. -S gan.loss=hinge")
        *parents, last = key.split(".")
        section = raw
        for name in parents:
            section = section.setdefault(name, {})
        section[last] = yaml.safe_load(value)
    return raw


@dataclass(frozen=True)
class Job:
    params: Params
    model: str
    factor: str
    dataset: str
    seed: int
    data: Path
    out: Path


def train_and_sample(job: Job) -> tuple[float, float, np.ndarray]:
    """Seconds spent training (wall, and this process's CPU time, which a
    busy machine inflates less), and the run's samples."""
    start, cpu = time.perf_counter(), time.process_time()
    train_model(
        job.params, job.model, job.factor, job.dataset, job.seed, job.data, job.out, job.out / "resume", live=False
    )
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    image_size = load_dataset(job.data / job.dataset, mmap=True).images.shape[1]
    samples = generate(
        job.params, job.model, job.factor, job.dataset, job.seed, job.out, job.params.evaluation.num_samples, image_size
    )
    return seconds, cpu, samples


def table(path: Path) -> str:
    """The lines of `path` as a Markdown table: one row per design, the
    balanced / skewed run's figures side by side."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    out = [
        "| design | train CPU min (b / s) | FD (b / s) | precision (b / s) | recall (b / s) | confidence (b / s) |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        runs = [row[k] for k in row if k.startswith(("balanced", "skewed"))]
        for run in runs:  # CPU seconds where recorded; the first rows have wall seconds only, marked
            run["train"] = run.get("train_cpu_seconds", run["train_seconds"])
        wall = "" if "train_cpu_seconds" in runs[0] else " (wall)"

        def cell(key, f, runs=runs):
            return " / ".join(f(run[key]) for run in runs)

        out.append(
            f"| {row['label']} | {cell('train', lambda v: f'{v / 60:.1f}')}{wall} | {cell('fd', '{:.1f}'.format)} "
            f"| {cell('precision', '{:.2f}'.format)} | {cell('recall', '{:.2f}'.format)} "
            f"| {cell('confidence', '{:.2f}'.format)} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    if argv is None and sys.argv[1:2] == ["--table"]:  # python scripts/tune.py --table [FILE]
        print(table(Path(sys.argv[2] if len(sys.argv) > 2 else "reports/tuning.jsonl")))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--label", required=True, help="the design's name in the table")
    p.add_argument("-S", dest="overrides", action="append", default=[], help="key=value over params.yaml")
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--factor", default="colour")
    p.add_argument("--rare-class", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("reports/tuning.jsonl"))
    args = p.parse_args(argv)
    raw = yaml.safe_load(args.params.read_text())
    scratch = tempfile.TemporaryDirectory(prefix="rgf-tune-")
    # TensorBoard's events go to the scratch folder too: the run names are the pipeline's own
    overrides = [*args.overrides, f"train.log_dir={Path(scratch.name) / 'logs'}"]
    params = parse_params(with_overrides(raw, overrides), f"{args.params} with -S")
    data = Path("data") / args.factor
    label_oracle, factor_oracle, _ = load_oracles(
        Path("models/oracles") / args.factor, Path("metrics/oracles") / f"{args.factor}.json", 0.0, args.factor, data
    )
    seed = params.seeds[0]
    datasets = [BALANCED, skewed(args.rare_class)]
    with scratch as tmp:
        jobs = [Job(params, args.model, args.factor, d, seed, data, Path(tmp) / d) for d in datasets]
        started = time.perf_counter()
        results = run_jobs(train_and_sample, jobs, min(params.workers, 2))
        wall = time.perf_counter() - started
    test = load_dataset(data / "test")
    real = read_samples(label_oracle, factor_oracle, test.images, "cpu")
    row = {
        "label": args.label,
        "model": args.model,
        "factor": args.factor,
        "overrides": args.overrides,
        "wall_seconds": round(wall, 1),
    }
    for dataset, (seconds, cpu, samples) in zip(datasets, results, strict=True):
        read = read_samples(label_oracle, factor_oracle, samples, "cpu")
        # the same real halves for every design of this model
        rng = rng_for(seed, "tune", args.model, args.factor, dataset)
        q = quality_block(real.features, test.labels, read.features, read.labels, read.factor_confidence, rng)
        row[dataset] = {
            "train_seconds": round(seconds, 1),
            "train_cpu_seconds": round(cpu, 1),
            "fd": round(q["fd"], 2),
            "precision": round(q["precision"], 3),
            "recall": round(q["recall"], 3),
            "baseline_fd": round(q["baseline"]["fd"], 2),
            "confidence": round(float(read.label_confidence.mean()), 3),
            "factor_share": round(float(read.factor.mean()), 3),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as f:
        f.write(json.dumps(row) + "\n")
    json.dump(row, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    exit_with(main)
