"""Stage `validate`: check params.yaml, whatever key changed.

DVC re-runs a stage only when something it tracks changes, and no other
stage tracks every key: a bad value of an untracked one (`dvc exp run -S
workers=0`, `-S +fooo=1`) would be recorded as a successful experiment in
which nothing ran. This stage tracks the whole file and `source`, which every
other stage descends from, depends on its output: any change is checked
before any work. The output is the same for every valid file, so a change
re-runs only the stages that track the changed keys.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.stages import exit_with, outputs, parser, read_params

VALID = "params.yaml passed the checks of pipeline/params.py\n"


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="data/params.ok")
    args = p.parse_args(argv)
    params, started = read_params(args.params, "validate")
    with outputs(started, files=[args.out]) as (out,):
        out.write_text(VALID)
    print(f"validate: {args.params} is valid (profile {params.profile})")


if __name__ == "__main__":
    exit_with(main)
