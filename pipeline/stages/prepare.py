"""Stage `prepare@<factor>`: the balanced and skewed datasets of one factor
(see pipeline/data/build.py for what data/<factor>/ holds)."""

from __future__ import annotations

import time
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipeline.data.build import build, write_datasets
from pipeline.paths import PREPARED
from pipeline.stages import claim, exit_with, outputs, parser, read_params


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--factor", required=True)
    p.add_argument("--source", required=True, type=Path, help="data/source")
    p.add_argument("--out", required=True, type=Path, help="data/<factor>")
    args = p.parse_args(argv)
    claim({args.out: PREPARED}, inputs=[args.source, args.params])
    params, started = read_params(args.params, f"prepare@{args.factor}")
    params.check_factor(args.factor)
    start = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=False) as progress:
        datasets = build(args.factor, params, args.source, params.workers, progress)
    with outputs(started, {args.out: PREPARED}) as (out,):
        write_datasets(out, args.factor, datasets, params)
    elapsed = time.perf_counter() - start
    n = sum(len(ds.labels) for ds in datasets.values())
    print(f"prepare@{args.factor}: {len(datasets)} datasets, {n} images in {elapsed:.1f} s -> {args.out}")


if __name__ == "__main__":
    exit_with(main)
