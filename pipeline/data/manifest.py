"""Labelled images from a folder and a CSV manifest: the `manifest` source.

This is how rgf runs on data other than MNIST (CompCars in the paper, or any
user's images): a CSV with one row per image names its file (relative to the
folder), its class and its factor value, e.g. for CompCars

    path,make,colour
    image/1/8f3b.jpg,Volkswagen,white

A "class" and a "factor" are just two categorical columns chosen in
`data.manifest`; an optional split column ("train"/"test") fixes the oracles'
test images, otherwise a seeded split stratified by (class, factor) is drawn.
Every row is checked before any image is decoded, so a typo in row 900 stops
the run in a second, not after the decoding; a path that leads out of the
folder (`..`, an absolute path, a symlink) is refused before any file is
opened.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from rich.progress import Progress

from pipeline.errors import DataError
from pipeline.params import ManifestParams

SPLITS = ("train", "test")
_SHOWN = 5  # offending rows quoted in an error


@dataclass(frozen=True, eq=False)
class LabelledImages:
    """RGB images with an observed class and binary factor (1 = present)."""

    images: np.ndarray  # (N, S, S, 3) uint8
    labels: np.ndarray  # (N,) int64, index into data.manifest.classes
    factor: np.ndarray  # (N,) uint8

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[3] != 3 or self.images.dtype != np.uint8:
            raise ValueError(f"images must be (N, S, S, 3) uint8, got {self.images.shape} {self.images.dtype}")
        if not len(self.images) == len(self.labels) == len(self.factor):
            raise ValueError("images, labels and factor must have the same length")

    def take(self, idx: np.ndarray) -> LabelledImages:
        return LabelledImages(self.images[idx], self.labels[idx], self.factor[idx])


def _rows(mask: pd.Series) -> str:
    # CSV line numbers: the header is line 1
    lines = (mask[mask].index + 2).tolist()
    more = f" and {len(lines) - _SHOWN} more" if len(lines) > _SHOWN else ""
    return ", ".join(map(str, lines[:_SHOWN])) + more


def _check_values(table: pd.DataFrame, column: str, allowed, where: str, key: str) -> None:
    bad = ~table[column].isin(allowed)
    if bad.any():
        values = sorted(set(table.loc[bad, column]))[:_SHOWN]
        raise DataError(
            f"{where}: unknown {column} {values} on line(s) {_rows(bad)}; "
            f"allowed: {list(allowed)} (data.manifest.{key}); fix the rows or the list"
        )


def _read_csv(params: ManifestParams) -> tuple[Path, pd.DataFrame]:
    """(the CSV's path, its rows as strings), the folder, file and columns checked."""
    root = Path(params.root)
    if not root.is_dir():
        raise DataError(f"data.manifest.root = {params.root}: no such folder; point it at your images")
    where = root / params.file
    if not where.is_file():
        raise DataError(
            f"{where}: no manifest; write a CSV with columns "
            f"{params.path_column},{params.class_column},{params.factor_column} (see README, "
            "'Your own labelled images'), or build one from the CompCars release with `rgf compcars-manifest`"
        )
    try:
        table = pd.read_csv(where, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"{where}: not a readable CSV ({err})") from None
    needed = [params.path_column, params.class_column, params.factor_column]
    if params.split_column:
        needed.append(params.split_column)
    if missing := [c for c in needed if c not in table.columns]:
        raise DataError(f"{where}: no column(s) {missing}; it has {list(table.columns)}")
    if table.empty:
        raise DataError(f"{where}: no rows")
    return where, table


def _check_rows(table: pd.DataFrame, params: ManifestParams, where: Path) -> pd.Series:
    """The image files of the rows (absolute), every row's values and file checked."""
    _check_values(table, params.class_column, params.classes, str(where), "classes")
    _check_values(table, params.factor_column, params.factor_values, str(where), "factor_values")
    if params.split_column:
        _check_values(table, params.split_column, SPLITS, str(where), "split_column")
    paths = table[params.path_column]
    root = Path(params.root).resolve()
    # resolving reads symlinks but opens nothing: `..`, an absolute path or a
    # symlink out of the folder is caught here, and two spellings of one file
    # (`./image/x.png`, `image/x.png`) meet as one path
    files = paths.map(lambda p: _resolve(root / p))
    outside = paths.map(lambda p: Path(p).is_absolute()) | ~files.map(lambda f: f.is_relative_to(root))
    if outside.any():
        first = paths[outside].iloc[0]
        raise DataError(
            f"{where}: {outside.sum()} path(s) lead outside data.manifest.root {root}, e.g. {first!r} "
            f"(line(s) {_rows(outside)}); paths must be relative to the root and stay in it (no .., no symlink out)"
        )
    if (dup := files.duplicated(keep=False)).any():
        spellings = sorted(set(paths[dup]))[:_SHOWN]
        raise DataError(f"{where}: the same image is listed twice on lines {_rows(dup)} (as {spellings}); keep one row")
    if (absent := ~files.map(Path.is_file)).any():
        first = paths[absent].iloc[0]
        raise DataError(f"{where}: {absent.sum()} image(s) not found, e.g. {root / first} (line(s) {_rows(absent)})")
    return files


def _resolve(path: Path) -> Path:
    """The absolute path with symlinks and `..` followed; a symlink loop, which
    cannot be opened anyway, stays as written (with `..` removed)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return Path(os.path.normpath(path))


def read_manifest(params: ManifestParams) -> pd.DataFrame:
    """The checked manifest as a table with columns path (absolute), label,
    factor and, when the manifest has a split column, split."""
    where, table = _read_csv(params)
    files = _check_rows(table, params, where)
    out = pd.DataFrame(
        {
            "path": files.map(str),
            "label": table[params.class_column].map({c: i for i, c in enumerate(params.classes)}).astype(np.int64),
            "factor": (table[params.factor_column] == params.factor_values[1]).astype(np.uint8),
        }
    )
    if params.split_column:
        out["split"] = table[params.split_column]
    return out


def load_image(path: str, size: int) -> np.ndarray:
    """(size, size, 3) uint8: the image as RGB, resized (aspect not kept) with
    a Lanczos filter, which PIL applies deterministically. An image over PIL's
    pixel limit (Image.MAX_IMAGE_PIXELS), a possible decompression bomb, is
    refused before it is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                rgb = im.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DataError(
            f"{path}: refused as a possible decompression bomb ({err}); shrink it or drop its row"
        ) from None
    except (UnidentifiedImageError, OSError) as err:
        raise DataError(f"{path}: not a readable image ({err})") from None
    return np.asarray(rgb, dtype=np.uint8)


def stratified_test_mask(
    labels: np.ndarray, factor: np.ndarray, fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """round(fraction * n) test rows in every (class, factor) cell."""
    test = np.zeros(len(labels), dtype=bool)
    for c, f in sorted(set(zip(labels.tolist(), factor.tolist(), strict=True))):
        idx = np.flatnonzero((labels == c) & (factor == f))
        test[rng.choice(idx, size=int(round(fraction * len(idx))), replace=False)] = True
    return test


def load_manifest_source(
    params: ManifestParams, rng: np.random.Generator, progress: Progress | None = None
) -> tuple[LabelledImages, LabelledImages]:
    """(train, test) images of a manifest, decoded and resized."""
    table = read_manifest(params)
    labels, factor = table["label"].to_numpy(), table["factor"].to_numpy()
    if "split" in table:
        test = (table["split"] == "test").to_numpy()
    else:
        test = stratified_test_mask(labels, factor, params.test_fraction, rng)
    paths = table["path"].tolist()
    task = progress.add_task("decode images", total=len(paths)) if progress else None
    images = np.empty((len(paths), params.image_size, params.image_size, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        images[i] = load_image(path, params.image_size)
        if progress:
            progress.advance(task)
    everything = LabelledImages(images, labels, factor)
    return everything.take(np.flatnonzero(~test)), everything.take(np.flatnonzero(test))
