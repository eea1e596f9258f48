"""Samples of a model trained outside rgf (registry kind `Imported`).

A researcher trains their own model (a StyleGAN2, a VQ-VAE, a latent
diffusion model) on the balanced and skewed sets `rgf export-data` writes,
never on f or y, draws M samples from each, and brings them back with
`rgf import-samples`; from there they go through the same oracles,
statistics, quality measures and report as a built-in model's.

Accepted: an .npz (its `images` array, or its only array), an .npy, or a
folder of PNG files (read in name order). Images are (M, S, S, 3), uint8 in
0-255 or floats in [0, 1], S the study's image size, at least
`evaluation.num_samples` of them (the first M are used). Anything else is
refused with one line that says what was found and how to fix it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from pipeline import registry
from pipeline.errors import DataError, RgfError

NAME = re.compile(r"^[a-z][a-z0-9_]*$")  # a name for paths, stage names and tables
PNG_SUFFIXES = (".png",)


def check_name(name: str) -> None:
    """An imported model's name: lower-case letters, digits and _, not a built-in model's."""
    if not NAME.match(name):
        raise RgfError(f"model name {name!r}: use lower-case letters, digits and _ (starting with a letter)")
    if name in registry.MODELS:
        raise RgfError(f"model name {name!r} is a built-in model's; give your model its own name")


def read_images(source: Path) -> np.ndarray:
    """The array of images in `source` (.npz, .npy or a folder of PNGs), unchecked."""
    source = Path(source)
    if source.is_dir():
        return _read_pngs(source)
    if not source.is_file():
        raise DataError(f"{source}: no such file or folder")
    if source.suffix not in (".npz", ".npy"):
        raise DataError(f"{source}: expected an .npz, an .npy or a folder of PNGs")
    try:
        if source.suffix == ".npy":
            return np.load(source, allow_pickle=False)
        with np.load(source, allow_pickle=False) as archive:
            keys = list(archive.keys())
            if "images" not in keys and len(keys) != 1:
                raise DataError(f"{source}: arrays {keys}; name the samples `images` or keep one array")
            return archive["images" if "images" in keys else keys[0]]
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{source}: not a readable NumPy file ({err})") from None


def _read_pngs(folder: Path) -> np.ndarray:
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in PNG_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: no .png files; give a folder of PNGs, an .npz or an .npy")
    images = []
    for path in files:
        with Image.open(path) as im:
            if im.mode != "RGB":
                raise DataError(f"{path}: mode {im.mode}, expected RGB (the colour factor lives in the channels)")
            images.append(np.asarray(im))
    if len({im.shape for im in images}) != 1:
        raise DataError(f"{folder}: the PNGs differ in size; give images of one size")
    return np.stack(images)


def check_images(images: np.ndarray, image_size: int, num_samples: int, where: str) -> np.ndarray:
    """The first `num_samples` images as (M, S, S, 3) uint8, or one line on what is wrong."""
    expected = f"(M, {image_size}, {image_size}, 3)"
    if images.ndim != 4:
        raise DataError(f"{where}: shape {images.shape}, expected {expected} images")
    if images.shape[1] == 3 and images.shape[3] != 3:
        raise DataError(f"{where}: shape {images.shape} is channels-first; transpose to {expected}")
    if images.shape[1:] != (image_size, image_size, 3):
        raise DataError(
            f"{where}: shape {images.shape}, expected {expected} (the study's images are {image_size} px RGB)"
        )
    if len(images) < num_samples:
        raise DataError(f"{where}: {len(images)} samples, fewer than evaluation.num_samples = {num_samples}; draw more")
    images = images[:num_samples]
    if images.dtype == np.uint8:
        return np.ascontiguousarray(images)
    if not np.issubdtype(images.dtype, np.floating):
        raise DataError(f"{where}: dtype {images.dtype}, expected uint8 (0-255) or floats in [0, 1]")
    if not np.isfinite(images).all():
        raise DataError(f"{where}: NaN or infinite values; check the model's sampler")
    low, high = float(images.min()), float(images.max())
    if low < 0 or high > 1:
        hint = "; a [-1, 1] output becomes (x + 1) / 2" if low >= -1 and high <= 1 else ""
        raise DataError(f"{where}: float values in [{low:.3g}, {high:.3g}], expected [0, 1]{hint}")
    return (images * 255).round().astype(np.uint8)


def load_samples(source: Path, image_size: int, num_samples: int) -> np.ndarray:
    """(M, S, S, 3) uint8 samples of an outside model from `source`, checked."""
    return check_images(read_images(source), image_size, num_samples, str(source))


def import_path(root: Path, model: str, factor: str, dataset: str, seed: int) -> Path:
    """Where `rgf import-samples` keeps a run's samples: <root>/<model>/<factor>-<dataset>-s<seed>.npz."""
    return Path(root) / model / f"{factor}-{dataset}-s{seed}.npz"


def save_samples(path: Path, images: np.ndarray) -> None:
    """Compressed .npz with one `images` array."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, images=images)
