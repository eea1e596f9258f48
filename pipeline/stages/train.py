"""Stage `train@<model>-<factor>`: one generative model, trained separately
on the images of every dataset of the factor (balanced, skewed_k<k>), never
on the factor or the labels (method, step 3).

The runs of a stage are independent and always needed together, so they train
side by side in `workers` single-threaded processes (on a CPU two such
processes beat one two-threaded one several times over). Run
<model>-<factor>-<dataset> writes <out>/<dataset>/model.pt and
<history>/<dataset>.csv (see pipeline/generative/fit.py); a killed run
resumes from its last checkpoint in <resume>.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from pipeline.data.datasets import load_dataset
from pipeline.generative.fit import TrainJob, train_one
from pipeline.names import CONTROLS, GENERATIVE, MODELS
from pipeline.params import load_params
from pipeline.stages import exit_with, parser


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--model", required=True, choices=MODELS)
    p.add_argument("--factor", required=True)
    p.add_argument("--data", required=True, type=Path, help="data/<factor>")
    p.add_argument("--out", required=True, type=Path, help="models/<model>-<factor>")
    p.add_argument("--history", required=True, type=Path, help="plots/train/<model>-<factor>")
    p.add_argument("--resume", required=True, type=Path, help="models/resume (checkpoints of unfinished runs)")
    args = p.parse_args(argv)
    params = load_params(args.params)
    params.check_factor(args.factor)
    for dataset in params.datasets:  # fail on missing data before any work
        load_dataset(args.data / dataset, mmap=True)
    workers = min(params.workers, len(params.datasets))
    live = workers == 1 or args.model in CONTROLS
    jobs = [
        TrainJob(
            params_path=Path(args.params),
            model=args.model,
            factor=args.factor,
            dataset=d,
            data=args.data,
            out=args.out / d,
            history=args.history / f"{d}.csv",
            resume_dir=args.resume,
            live=live,
        )
        for d in params.datasets
    ]
    if workers > 1 and args.model in GENERATIVE:
        # spawn, not fork: a forked torch process can deadlock in OpenMP
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            results = list(pool.map(train_one, jobs))
    else:
        results = [train_one(job) for job in jobs]
    for dataset, epochs, seconds in results:
        print(f"train@{args.model}-{args.factor}: {dataset}: {epochs} epochs in {seconds:.1f} s")


if __name__ == "__main__":
    exit_with(main)
