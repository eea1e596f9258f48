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

import yaml

from pipeline.stages import claim, console, exit_with, outputs, parser, read_params

VALID = "params.yaml passed the checks of pipeline/params.py\n"


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="data/params.ok")
    args = p.parse_args(argv)
    claim(files=[args.out], inputs=[args.params])
    params, started = read_params(args.params, "validate")
    with outputs(started, files=[args.out]) as (out,):
        out.write_text(VALID)
    print(f"validate: {args.params} is valid (profile {params.profile})")
    before = last_profile(Path(args.params).with_name("dvc.lock"))
    if before is not None and before != params.profile:
        console.print(
            f"[yellow]note:[/] {args.params} was composed from profile {params.profile}, the last run used "
            f"{before}: `dvc exp run -S key=value` composes conf/config.yaml's profile unless you also give "
            f"-S profile={before}",
            highlight=False,
        )


def last_profile(lock: Path) -> str | None:
    """The profile of the params the last `dvc repro` validated (dvc.lock), if any."""
    try:
        stages = yaml.safe_load(lock.read_text()).get("stages", {})
        return stages["validate"]["params"]["params.yaml"]["profile"]
    except (OSError, yaml.YAMLError, AttributeError, KeyError, TypeError):
        return None


if __name__ == "__main__":
    exit_with(main)
