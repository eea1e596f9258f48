"""What every stage does with files and randomness: seeded generators, stable
JSON, atomic writes, self-describing checkpoints and the device.

An output is written to a scratch path beside it and replaces the old one
only when complete, so a failure (a bug, a full disk, Ctrl-C, kill -9) leaves
the last good output readable; a full disk is one line naming the path. A
folder is replaced only if it is empty or holds the file that marks it as
this output (its `signature`), so a mistyped `--out data` is refused rather
than wiped.

Checkpoints hold weights plus the params that produced them, the epoch and
the code version, are written atomically and loaded with `weights_only=True`;
a checkpoint made under other params is refused rather than silently reused.
torch is imported only where a checkpoint or a device is asked for.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import subprocess
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import CheckpointError, ParamsError, RgfError

if TYPE_CHECKING:
    import torch


def rng_for(seed: int, *key: str | int) -> np.random.Generator:
    """An independent generator for one named piece of work, so that results
    do not depend on the order or the process in which pieces run."""
    ints = [k if isinstance(k, int) else zlib.crc32(k.encode()) for k in key]
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=ints))


def write_json(path: Path, obj: Any) -> None:
    """Stable, diff-friendly JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


# what a write fails with when the disk, the quota or the file system says no;
# None: numpy's short write ("235200 requested and 65408 written") has no errno
WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, None}


def cannot_write(path: Path, err: OSError) -> RgfError:
    """One line for a write that the file system refused: which output, why."""
    where = f" ({err.filename})" if err.filename and str(err.filename) != str(path) else ""
    return RgfError(
        f"{path}: cannot write{where}: {err.strerror or err}; the previous version is unchanged: free space and re-run"
    )


def _scratch(path: Path, tag: str = "partial") -> Path:
    return path.with_name(f"{path.name}.{tag}")


@contextmanager
def atomic_dir(out: Path, signature: str | None = None) -> Iterator[Path]:
    """Yield a scratch folder that replaces `out` only if the block succeeds.

    With `signature` (a file every version of this output holds), an existing
    `out` that is not empty and lacks it is refused: it holds things this
    output did not write."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RgfError(f"{out}: a file, not an output folder; give the output folder's path")
    tmp = _scratch(out)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        yield tmp
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if err.errno in WRITE_ERRORS:
            raise cannot_write(out, err) from None
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if signature is not None and out.is_dir() and any(out.iterdir()) and not (out / signature).exists():
        shutil.rmtree(tmp, ignore_errors=True)
        raise RgfError(
            f"{out}: holds files this output did not write (no {signature}); refusing to replace it: "
            "give an empty or new folder, or the output's own path (see dvc.yaml)"
        )
    old = _scratch(out, "old.partial")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_file(path: Path, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a scratch path that replaces the file `path` only if the block
    succeeds. `keep_suffix` ends the scratch name in path's suffix (for
    writers that choose the format by it)."""
    path = Path(path)
    if path.is_dir():
        raise RgfError(f"{path}: a folder, not a file; give the output file's path")
    tmp = path.with_name(f"{path.stem}.partial{path.suffix}") if keep_suffix else _scratch(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.unlink(missing_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.errno in WRITE_ERRORS:
            raise cannot_write(path, err) from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def code_version() -> str:
    """Package version plus the git commit when run from a checkout."""
    try:
        v = version("rgf")
    except PackageNotFoundError:
        v = "unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        return f"{v}+{commit}"
    except (OSError, subprocess.SubprocessError):
        return v


def save_checkpoint(path: str | Path, state: dict, params: dict, epoch: int, **extra: Any) -> None:
    """Write {state, params, epoch, code_version, **extra} to `path` atomically.
    `state` maps names to state_dicts; `params` must be plain JSON-like data."""
    import torch

    buffer = io.BytesIO()  # serialised first: a full disk is then an OSError of the write
    torch.save({"state": state, "params": params, "epoch": epoch, "code_version": code_version(), **extra}, buffer)
    with atomic_file(Path(path)) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def load_checkpoint(path: str | Path, params: dict | None = None) -> dict:
    """Read a checkpoint; with `params`, refuse one made under different params."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint (run `dvc repro` to train it)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a bad file
        first = str(err).split(". ")[0].strip().rstrip(".")  # torch appends a paragraph of advice
        raise CheckpointError(
            f"{path}: unreadable checkpoint, truncated or corrupt ({type(err).__name__}: {first}); "
            "delete it and retrain"
        ) from None
    if not isinstance(ckpt, dict) or not {"state", "params", "epoch"} <= set(ckpt):
        raise CheckpointError(f"{path}: not an rgf checkpoint (no state/params/epoch)")
    if params is not None and ckpt["params"] != params:
        diff = sorted(k for k in set(params) | set(ckpt["params"]) if params.get(k) != ckpt["params"].get(k))
        raise CheckpointError(
            f"{path}: made under other params (differs in: {', '.join(diff)}); "
            "delete it or restore the params that made it"
        )
    return ckpt


def pick_device(choice: str = "auto") -> torch.device:
    """`auto` takes CUDA when present; asking for `cuda` without one is an error."""
    import torch

    if choice == "cuda" and not torch.cuda.is_available():
        raise ParamsError("device: cuda requested but no CUDA device is available; set device: auto or cpu")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)
