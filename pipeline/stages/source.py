"""Stage `source`: bring the raw images into the pipeline.

Reads MNIST, the bundled 5,000-digit subset or a manifest folder
(`data.source`, see pipeline/data/sources.py) and writes plain arrays and a
manifest to --out. Raw data enters DVC here, so queued experiments, which run
in a copy of the repo without git-ignored files, get it from the DVC cache.
"""

from __future__ import annotations

from pathlib import Path

from rich.progress import Progress

from pipeline.data.sources import load_source, write_source
from pipeline.paths import SOURCE
from pipeline.stages import claim, exit_with, outputs, parser, read_params


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="data/source")
    args = p.parse_args(argv)
    claim({args.out: SOURCE}, inputs=[args.params])
    params, started = read_params(args.params, "source")
    with Progress(transient=True) as progress:
        train, test = load_source(params, progress)
    with outputs(started, {args.out: SOURCE}) as (out,):
        write_source(out, train, test, params)
    print(f"source: {len(train.labels)} train and {len(test.labels)} test images from {params.data.source}")


if __name__ == "__main__":
    exit_with(main)
