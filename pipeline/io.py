"""What every stage does with files and randomness: seeded generators, stable
JSON, atomic writes, self-describing checkpoints and the device.

An output is written to a scratch path beside it and replaces the old one
only when complete, so a failure (a bug, a full disk, Ctrl-C, kill -9) leaves
the last good output readable; a full disk is one line naming the path. A
command's outputs are replaced together, under a lock, after every check has
passed twice (before the work and before the swap). A folder is replaced
only if it is empty or marked as this very output (its MARKER file; a folder
DVC draws whole, which can hold no marker, by every file matching its
layout), so a mistyped `--out data` is refused rather than wiped; no output may be, hold or
lie in the project's root, its .git, .dvc or code, or the command's inputs.

Checkpoints hold weights plus the params that produced them, the epoch and
the code version, are written atomically and loaded with `weights_only=True`;
a checkpoint made under other params is refused rather than silently reused.
torch is imported only where a checkpoint or a device is asked for.
"""

from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path, PurePath
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


# the file that marks a folder as an output of rgf, holding which output it is
MARKER = ".rgf-output"
# what a project's root holds that no output may be, hold or lie inside
PROTECTED = (".git", ".dvc", "pipeline", "tests", "scripts", "conf", "hydra_plugins", "references")


@dataclass(frozen=True)
class Owned:
    """An output folder: which output it is (written to its MARKER file) and,
    for folders written before markers existed, the names that all together
    mark it as this output.

    A folder that another tool reads whole, file by file, carries no marker
    (DVC's plots would try to draw it): it has a `layout` instead, the path
    patterns (relative, `*` within one name) that every file in it matches,
    and a folder is this output when every file of it does."""

    kind: str
    legacy: tuple[str, ...] = ()
    layout: tuple[str, ...] = ()

    @property
    def marked(self) -> bool:
        return not self.layout

    def fits_layout(self, folder: Path) -> bool:
        """Every file under `folder` matches one of `layout`'s patterns."""
        files = [p.relative_to(folder) for p in folder.rglob("*") if not p.is_dir()]
        return bool(self.layout) and all(any(_matches(f, q) for q in self.layout) for f in files)


def _matches(path: Path, pattern: str) -> bool:
    # PurePath.match anchors at the right only: the part counts must agree too
    return len(path.parts) == len(PurePath(pattern).parts) and path.match(pattern)


def project_root(start: Path) -> Path | None:
    """The nearest folder at or above `start` that holds .git, .dvc or dvc.yaml."""
    start = Path(start).resolve()
    for folder in (start, *start.parents):
        if (folder / ".git").exists() or (folder / ".dvc").is_dir() or (folder / "dvc.yaml").is_file():
            return folder
    return None


def _nearest_existing(path: Path) -> Path:
    for folder in (path, *path.parents):
        if folder.exists():
            return folder
    return path


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_output(out: Path, inputs: Sequence[Path] = (), name: str = "--out") -> None:
    """Refuse, before any work, an output path that is, holds or lies inside
    the project's root, its .git, .dvc or code, or one of the command's own
    inputs."""
    target = Path(out).resolve()
    roots = {r for r in (project_root(Path.cwd()), project_root(_nearest_existing(target))) if r is not None}
    for root in roots:
        if _within(root, target):
            raise RgfError(f"{name} {out}: is or holds the project's root {root}; give a folder of its own inside it")
        for part in PROTECTED:
            if (root / part).exists() and _within(target, (root / part).resolve()):
                raise RgfError(f"{name} {out}: lies in the project's {part}/; give a folder outside it")
    for given in inputs:
        source = Path(given).resolve()
        if _within(target, source) or _within(source, target):
            raise RgfError(f"{name} {out}: is, holds or lies inside the input {given}; give another output path")


def owner(folder: Path) -> str | None:
    """The output a folder's marker names, None without one."""
    try:
        return (folder / MARKER).read_text().strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def check_owned(out: Path, owned: Owned) -> None:
    """An output folder may be replaced only when it is missing, empty or this
    output's own (its marker, all of its legacy names, or, for an unmarked
    output, every file in it matching its layout)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RgfError(f"{out}: a file, not an output folder; give the output folder's path")
    if not out.is_dir() or not any(out.iterdir()):
        return
    mark = owner(out)
    if mark == owned.kind:
        return
    if mark is not None:
        raise RgfError(
            f"{out}: holds rgf's {mark} output, not its {owned.kind}; refusing to replace it: give its own path"
        )
    if owned.legacy and all((out / name).exists() for name in owned.legacy):
        return
    if owned.layout and owned.fits_layout(out):
        return
    raise RgfError(
        f"{out}: holds files this output ({owned.kind}) did not write; refusing to replace it: "
        "give an empty or new folder, or the output's own path (see dvc.yaml)"
    )


def check_outputs(
    folders: Mapping[Path, Owned] | None = None, files: Sequence[Path] = (), inputs: Sequence[Path] = ()
) -> None:
    """Every check of `replacing`, to run before any work."""
    for path, owned in (folders or {}).items():
        check_output(path, inputs)
        check_owned(_target(path), owned)
        check_writable(path)
    for path in files:
        check_output(path, inputs)
        if _target(path).is_dir():
            raise RgfError(f"{path}: a folder, not a file; give the output file's path")
        check_writable(path)


def check_writable(out: Path) -> None:
    """The output's folder (or the nearest one that exists) takes a new file:
    a scratch file is made and removed there (permissions alone do not say,
    for root or a read-only mount)."""
    folder = _nearest_existing(_target(Path(out)).parent.resolve())
    try:
        fd, probe = tempfile.mkstemp(prefix=".rgf-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise RgfError(
            f"{out}: cannot write in {folder} ({err.strerror or err}); give a folder you can write"
        ) from None


def _target(path: Path) -> Path:
    """The path to replace: a symbolic link's target (the link stays)."""
    path = Path(path)
    return path.resolve() if path.is_symlink() else path


def _scratch_name(path: Path, tag: str, suffix: bool = False) -> Path:
    """A fresh name beside `path` no other process uses."""
    token = f"{os.getpid()}-{secrets.token_hex(3)}"
    if suffix:
        return path.with_name(f".{path.stem}.{tag}-{token}{path.suffix}")
    return path.with_name(f".{path.name}.{tag}-{token}")


def _keep_copy(path: Path, old: Path) -> None:
    try:
        os.link(path, old)
    except OSError:  # a file system without hard links
        shutil.copy2(path, old)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tidy(target: Path) -> None:
    """Scratch left beside `target` by a process that died (kill -9): its
    half-written output goes; an old version it had moved aside while
    swapping comes back if `target` is missing."""
    name, stem, suffix = (re.escape(x) for x in (target.name, target.stem, target.suffix))
    scratch = re.compile(rf"\.(?:{name}|{stem})\.(partial|old)-(\d+)-[0-9a-f]{{6}}(?:{suffix})?")
    for leftover in target.parent.iterdir():
        found = scratch.fullmatch(leftover.name)
        if found is None or _alive(int(found.group(2))):
            continue
        if found.group(1) == "old" and not target.exists():
            leftover.rename(target)
        else:
            _remove(leftover)


@contextmanager
def _locked(folders: Sequence[Path]) -> Iterator[None]:
    """Exclusive locks on `folders` (the outputs' parents), so that two
    commands replacing the same outputs take turns rather than collide."""
    with ExitStack() as stack:
        for folder in sorted({Path(f).resolve() for f in folders}):
            fd = os.open(folder, os.O_RDONLY)
            stack.callback(os.close, fd)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def replacing(
    folders: Mapping[Path, Owned] | None = None, files: Sequence[Path] = (), keep_suffix: Sequence[bool] = ()
) -> Iterator[tuple[Path, ...]]:
    """Scratch paths for output folders (each marked as its Owned.kind) and
    files, in that order, that replace the outputs together only if the block
    succeeds: every check runs before the block and again, under a lock,
    before the first output is touched; a failure while swapping puts back
    what was swapped. A symbolic link to a folder keeps pointing at it (the
    folder it names is replaced)."""
    folders = dict(folders or {})
    check_outputs(folders, files)
    targets = [_target(p) for p in [*folders, *files]]
    suffixes = list(keep_suffix) + [False] * len(files)
    scratch: list[Path] = []
    try:
        for target in targets:
            if target.parent.is_dir():
                _tidy(target)
        for path, owned in folders.items():
            target = _target(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = _scratch_name(target, "partial")
            tmp.mkdir()
            scratch.append(tmp)
            if owned.marked:
                (tmp / MARKER).write_text(owned.kind + "\n")
        for path, suffix in zip(files, suffixes, strict=False):
            target = _target(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            scratch.append(_scratch_name(target, "partial", suffix))
        yield tuple(scratch)
        with _locked([t.parent for t in targets]):
            check_outputs(folders, files)
            _swap(list(zip(scratch, targets, strict=True)))
    except OSError as err:
        if err.errno in WRITE_ERRORS:
            raise cannot_write(targets[0] if len(targets) == 1 else targets[0].parent, err) from None
        raise
    finally:
        for tmp in scratch:
            _remove(tmp)


def _put(tmp: Path, target: Path) -> Path | None:
    """Rename `tmp` onto `target`; the old version, if any, waits under a
    scratch name (a folder renamed aside, a file hard-linked so that it is
    replaced in one step). Returns where the old version waits."""
    if not tmp.exists():
        raise RgfError(f"{target}: the output was never written; the previous version is unchanged")
    old = _scratch_name(target, "old") if target.exists() else None
    if old is not None and target.is_dir():
        target.rename(old)
        tmp.rename(target)
        return old
    if old is not None:
        _keep_copy(target, old)
    os.replace(tmp, target)
    return old


def _put_back(target: Path, old: Path | None) -> None:
    if old is None or old.is_dir():
        _remove(target)
    if old is not None:
        os.replace(old, target) if not old.is_dir() else old.rename(target)


def _swap(pairs: list[tuple[Path, Path]]) -> None:
    """Rename each scratch onto its target, all or none."""
    done: list[tuple[Path, Path | None]] = []
    try:
        for tmp, target in pairs:
            done.append((target, _put(tmp, target)))
    except BaseException:
        for target, old in reversed(done):
            _put_back(target, old)
        raise
    for _, old in done:
        if old is not None:
            _remove(old)


@contextmanager
def atomic_dir(out: Path, owned: Owned | str) -> Iterator[Path]:
    """`replacing` for one output folder."""
    with replacing({Path(out): owned if isinstance(owned, Owned) else Owned(owned)}) as (tmp,):
        yield tmp


@contextmanager
def atomic_entries(out: Path, owned: Owned) -> Iterator[Path]:
    """Yield a scratch folder; when the block succeeds, each entry written in
    it replaces the entry of that name in `out` (together, under a lock) and
    whatever else `out` holds stays: a collector's folder may hold a reading
    someone wrote beside its results. `out` must be new, empty or `owned`'s."""
    check_outputs({Path(out): owned})
    target = _target(Path(out))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _scratch_name(target, "partial")
    try:
        tmp.mkdir()
        (tmp / MARKER).write_text(owned.kind + "\n")
        yield tmp
        with _locked([target.parent]):
            check_owned(target, owned)
            if not target.exists():
                tmp.rename(target)
            else:
                _swap([(entry, target / entry.name) for entry in sorted(tmp.iterdir())])
    except OSError as err:
        if err.errno in WRITE_ERRORS:
            raise cannot_write(target, err) from None
        raise
    finally:
        _remove(tmp)


@contextmanager
def atomic_file(path: Path, keep_suffix: bool = False) -> Iterator[Path]:
    """`replacing` for one output file. `keep_suffix` ends the scratch name in
    path's suffix (for writers that choose the format by it)."""
    with replacing(files=[Path(path)], keep_suffix=[keep_suffix]) as (tmp,):
        yield tmp


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
