"""The pipeline's stages, one module each, run by `dvc repro` as
`python -m pipeline.stages.<stage>` (see dvc.yaml):

    source -> prepare -> oracle, train -> sample -> evaluate -> report

Each is a thin `main(argv)`: parse the arguments dvc.yaml gives (every path
comes from there), read params, call the library once, write. A stage never
imports another stage. What they share is here: the argument parser and the
one handler that turns any `RgfError` into one line and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from rich.console import Console

from pipeline.errors import RgfError

console = Console(stderr=True, soft_wrap=True)  # errors stay one grep-able line


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the --params option every stage takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    return p


def run(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> int:
    """Run a stage; turn bad input into one red line and exit code 2."""
    try:
        main(argv)
    except RgfError as err:
        console.print(f"[bold red]error:[/] {err}", highlight=False)
        return 2
    return 0


def exit_with(main: Callable[[list[str] | None], None]) -> None:
    """The `if __name__ == "__main__"` of every stage."""
    sys.exit(run(main))
