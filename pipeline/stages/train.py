"""Stage `train-<model>@<factor>-<seed>`: one generative model, trained separately
on the images of every dataset of the factor (balanced, skewed_k<k>), never
on the factor or the labels (method, step 3).

The runs of a stage are independent and always needed together, so they train
side by side in `workers` single-threaded processes (on a CPU two such
processes beat one two-threaded one several times over). Run
<model>-<factor>-<dataset>-s<seed> writes <out>/<dataset>/model.pt and its
DVCLive curves in <history>/<dataset>/ (see pipeline/generative/fit.py; a
control has no curves and no --history); both folders are
replaced only when every run has finished, the first run to fail stops the
others (pipeline/workers.py), and a stopped or killed run resumes from its
last checkpoint in <resume>.
"""

from __future__ import annotations

from pathlib import Path

from pipeline import registry
from pipeline.data.datasets import load_dataset
from pipeline.errors import ParamsError
from pipeline.generative.fit import TrainJob, train_one
from pipeline.paths import HISTORY, TRAINED, run_name, train_stage
from pipeline.stages import claim, exit_with, outputs, parser, read_params
from pipeline.workers import run_jobs


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--model", required=True, choices=registry.FAMILIES + registry.CONTROLS)
    p.add_argument("--factor", required=True)
    p.add_argument("--seed", required=True, type=int, help="one of seeds")
    p.add_argument("--data", required=True, type=Path, help="data/<factor>")
    p.add_argument("--out", required=True, type=Path, help="models/<model>-<factor>-s<seed>")
    p.add_argument("--history", type=Path, help="plots/train/<model>-<factor>-s<seed> (a family's curves)")
    p.add_argument("--resume", required=True, type=Path, help="models/resume (checkpoints of unfinished runs)")
    args = p.parse_args(argv)
    stage = train_stage(args.model, args.factor, args.seed)
    family = registry.is_family(args.model)
    if family != (args.history is not None):
        need = "needs --history (its curves' folder)" if family else "has no curves: leave out --history"
        raise ParamsError(f"{stage}: {args.model} {need}")
    signatures = {args.out: TRAINED} | ({args.history: HISTORY} if family else {})
    claim(signatures, inputs=[args.data, args.resume, args.params])
    params, started = read_params(args.params, stage)
    params.check_factor(args.factor)
    params.check_seed(args.seed)
    for dataset in params.datasets:  # fail on missing data before any work
        load_dataset(args.data / dataset, mmap=True)
    # the controls only record their dataset: no processes for them
    workers = min(params.workers, len(params.datasets)) if family else 1
    try:
        with outputs(started, signatures) as (out, *history):
            jobs = [
                TrainJob(
                    params=params,
                    model=args.model,
                    factor=args.factor,
                    dataset=d,
                    seed=args.seed,
                    data=args.data,
                    out=out / d,
                    history=history[0] / d if history else None,
                    resume_dir=args.resume,
                    live=workers == 1,
                )
                for d in params.datasets
            ]
            results = run_jobs(train_one, jobs, workers)
    finally:  # a checkpoint half-written by a stopped worker is no resume file
        for dataset in params.datasets:
            name = run_name(args.model, args.factor, dataset, args.seed)
            for tmp in args.resume.glob(f".{name}-*.pt.partial-*"):  # pipeline.io's scratch names
                tmp.unlink(missing_ok=True)
    for dataset, epochs, seconds in results:
        print(f"{stage}: {dataset}: {epochs} epochs in {seconds:.1f} s")


if __name__ == "__main__":
    exit_with(main)
