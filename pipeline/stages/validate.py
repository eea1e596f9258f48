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

import configparser
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
    if (problem := missing_remote(Path(args.params).resolve().parent)) is not None:
        console.print(f"[yellow]note:[/] {problem}", highlight=False)
    before = last_profile(Path(args.params).with_name("dvc.lock"))
    if before is not None and before != params.profile:
        console.print(
            f"[yellow]note:[/] {args.params} was composed from profile {params.profile}, the last run used "
            f"{before}: `dvc exp run -S key=value` composes conf/config.yaml's profile unless you also give "
            f"-S profile={before}",
            highlight=False,
        )


def missing_remote(root: Path) -> str | None:
    """A line saying the default DVC remote of the project at `root` is a
    folder that does not exist (a fresh clone not yet pointed at the team's
    storage: `dvc pull` and `--pull` would find nothing), or None."""
    config = configparser.ConfigParser(strict=False, interpolation=None)
    try:
        config.read([root / ".dvc" / "config", root / ".dvc" / "config.local"])
        name = config.get("core", "remote", fallback=None)
        url = config.get(f"'remote \"{name}\"'", "url", fallback=None) if name else None
    except configparser.Error:
        return None
    if not url or "://" in url:
        return None  # no remote, or one elsewhere (s3://, ssh://): DVC says itself
    folder = (root / ".dvc" / url).resolve()
    if folder.exists():
        return None
    return (
        f"the DVC remote '{name}' is {folder}, which does not exist: `dvc pull` and `--pull` find nothing there "
        f"and every stage is computed here; point this clone at the team's storage with "
        f"`dvc remote modify --local {name} url <path or URL>` (docs/sharing.md)"
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
