"""What every stage does with files and randomness: seeded generators, stable
JSON, atomic writes, self-describing checkpoints and the device.

Checkpoints hold weights plus the params that produced them, the epoch and
the code version, are written atomically and loaded with `weights_only=True`;
a checkpoint made under other params is refused rather than silently reused.
torch is imported only where a checkpoint or a device is asked for.
"""

from __future__ import annotations

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

from pipeline.errors import CheckpointError, ParamsError

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


@contextmanager
def atomic_dir(out: Path) -> Iterator[Path]:
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

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"state": state, "params": params, "epoch": epoch, "code_version": code_version(), **extra}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, params: dict | None = None) -> dict:
    """Read a checkpoint; with `params`, refuse one made under different params."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint (run `dvc repro` to train it)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a bad file
        raise CheckpointError(
            f"{path}: unreadable checkpoint ({type(err).__name__}: {err}); delete it and retrain"
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
