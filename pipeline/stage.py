"""What every stage entry point shares: argument parsing around params.yaml,
clear one-line errors instead of tracebacks for bad input, and atomic output
folders so a failed run never leaves half-written results behind."""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console

from pipeline.config import Params, ParamsError
from pipeline.data.datasets import DatasetError
from pipeline.data.idx import IdxError
from pipeline.data.manifest import ManifestError
from pipeline.data.mnist import ChecksumError, DataUnavailableError
from pipeline.factors import FACTORS


class InputError(ValueError):
    """Bad input a stage or command detected itself (wrong shape, size, ...)."""


USER_ERRORS = (ParamsError, DatasetError, IdxError, ChecksumError, DataUnavailableError, ManifestError, InputError)
console = Console(stderr=True, soft_wrap=True)  # errors stay one grep-able line


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    return p


def check_factor(factor: str, params: Params) -> None:
    """A stage's --factor must exist for the configured source: an MNIST
    factor, or the factor column of a manifest."""
    if params.data.source == "manifest":
        allowed = [params.data.manifest.factor_column]
    else:
        allowed = list(FACTORS)
    if factor not in allowed:
        raise InputError(f"factor {factor!r} does not exist for source {params.data.source}; choose from {allowed}")


def run(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> int:
    """Run a stage; turn bad input into one red line and exit code 2."""
    try:
        main(argv)
    except USER_ERRORS as err:
        console.print(f"[bold red]error:[/] {err}", highlight=False)
        return 2
    return 0


@contextmanager
def atomic_dir(out: Path):
    """Yield a scratch folder that replaces `out` only if the block succeeds."""
    out = Path(out)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def exit_with(main: Callable[[list[str] | None], None]) -> None:
    sys.exit(run(main))
