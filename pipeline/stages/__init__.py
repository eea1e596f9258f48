"""The pipeline's stages, one module each, run by `dvc repro` as
`python -m pipeline.stages.<stage>` (see dvc.yaml):

    source -> prepare -> oracle, train -> sample -> evaluate -> report

Each is a thin `main(argv)`: parse the arguments dvc.yaml gives (every path
comes from there), read params, call the library once, write. A stage never
imports another stage. What they share is here: the argument parser, the
params a stage starts with, the writing of its outputs and the one handler
that turns any `RgfError` into one line and exit code 2.

What a stage promises when it fails (params, data, a full disk, Ctrl-C,
kill -9): its previous outputs stay as they were, readable. It writes every
output to a scratch path and replaces the old ones together at the end, only
if params.yaml still holds what the stage started with (a concurrent
`dvc exp run` may rewrite it mid-run; dvc.lock would then record params the
outputs were not made with). Under `dvc repro` the metrics and the report are
`persist: true`, so DVC does not delete them before their stage runs; the
cached outputs of oracle, train and sample (which DVC's run cache needs) it
does delete, and `dvc checkout` brings the last good ones back from its cache.
"""

from __future__ import annotations

import argparse
import errno
import signal
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from pipeline.errors import ParamsError, RgfError
from pipeline.io import WRITE_ERRORS, Owned, cannot_write, check_outputs, replacing
from pipeline.params import Params, load_params

console = Console(stderr=True, soft_wrap=True)  # errors stay one grep-able line


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the --params option every stage takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    return p


@dataclass(frozen=True)
class StartedWith:
    """The params file as a stage read it when it started."""

    stage: str  # e.g. train@vae-colour
    path: Path
    text: bytes | None

    def check_unchanged(self) -> None:
        """Refuse to write outputs when the params file changed since the start."""
        try:
            now = self.path.read_bytes()
        except OSError:
            now = None
        if now != self.text:
            raise ParamsError(
                f"{self.path} changed while {self.stage} ran; its outputs were not written: re-run `dvc repro`"
            )


def read_params(path: str | Path, stage: str) -> tuple[Params, StartedWith]:
    """The validated params, and the file's text to check before writing."""
    path = Path(path)
    started = StartedWith(stage, path, path.read_bytes() if path.is_file() else None)
    params = load_params(path)  # a missing or invalid file: one line
    started.check_unchanged()
    return params, started


def claim(folders: Mapping[Path, Owned] | None = None, files: Sequence[Path] = (), inputs: Sequence[Path] = ()) -> None:
    """Before any work: refuse outputs that are, hold or lie in the project's
    root, its code or the stage's inputs, and folders that are not this
    output's own (see `pipeline.io.replacing`)."""
    check_outputs(folders, files, inputs)


@contextmanager
def outputs(
    started: StartedWith, folders: Mapping[Path, Owned] | None = None, files: Sequence[Path] = ()
) -> Iterator[tuple[Path, ...]]:
    """Scratch paths for a stage's output folders and files, in that order.
    They replace the outputs together when the block succeeds and the params
    file is unchanged; on any failure the old outputs stay."""
    with replacing(folders, files, [Path(f).suffix == ".png" for f in files]) as tmp:
        yield tmp
        started.check_unchanged()


RESOURCES = "lower `workers`, `train.threads` or the batch size, or raise the limit (ulimit)"
MAP_FAILURES = ("failed to map segment", "cannot allocate memory", "Cannot allocate memory")


def os_problem(err: OSError) -> str:
    """One line for an OSError: the path, what the system said and what to do."""
    where = f"{err.filename}: " if err.filename else ""
    if err.errno in WRITE_ERRORS:
        return str(cannot_write(Path(err.filename or "."), err))
    if err.errno in (errno.EMFILE, errno.ENFILE):
        return f"{where}too many open files ({err.strerror}); {RESOURCES}"
    if err.errno in (errno.ENOMEM, errno.EAGAIN):
        return f"{where}out of memory or processes ({err.strerror}); {RESOURCES}"
    fixes = {
        errno.ENOENT: "check the path",
        errno.EISDIR: "give a file, not a folder",
        errno.ENOTDIR: "give a folder, not a file",
        errno.EACCES: "check its permissions",
        errno.EPERM: "check its permissions",
    }
    return f"{where}{err.strerror or err}; {fixes.get(err.errno, 'check the path and the machine')}"


def run(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> int:
    """Run a stage; turn bad input, a refused file or an exhausted resource
    into one red line and exit code 2, Ctrl-C into one line and exit code
    130."""
    try:
        main(argv)
    except RgfError as err:
        return _fail(str(err))
    except OSError as err:
        return _fail(os_problem(err))
    except UnicodeDecodeError as err:
        return _fail(f"a file is not UTF-8 text ({err.reason} at byte {err.start}); give the text file meant")
    except MemoryError:
        return _fail(f"out of memory; {RESOURCES}")
    except ImportError as err:  # a library that cannot be mapped into memory (ulimit -v)
        if not any(text in str(err) for text in MAP_FAILURES):
            raise
        return _fail(f"out of memory loading a library ({err}); {RESOURCES}")
    except KeyboardInterrupt:
        # A terminal's Ctrl-C reaches DVC and the stage together, and DVC may
        # pass it on once more: a second one while the interpreter shuts down
        # would kill the stage by signal instead of exit code 130.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        console.print(
            "[bold red]interrupted:[/] stopped; the previous outputs are unchanged "
            "(a training run resumes from its last checkpoint on the next `dvc repro`)",
            highlight=False,
        )
        return 130
    return 0


def _fail(message: str) -> int:
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return 2


def exit_with(main: Callable[[list[str] | None], None]) -> None:
    """The `if __name__ == "__main__"` of every stage."""
    sys.exit(run(main))
