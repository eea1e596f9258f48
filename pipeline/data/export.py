"""The study's training sets for a model trained outside rgf (`rgf export-data`).

Exports the images of every training set of a factor (balanced,
skewed_k<k>[_r<percent>]), and nothing else: the method never gives a generative model f
or y, so neither labels nor the factor leave with them. Beside them,
export.json records where they came from (the data manifest's hash), each
set's count and sha256, and how to bring samples back (`rgf import-samples`).

    <out>/export.json
    <out>/<dataset>.npz          format npz: one `images` array (N, S, S, 3) uint8
    <out>/<dataset>/00000.png    format png: one RGB file per image
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import numpy as np

from pipeline.data.datasets import load_dataset
from pipeline.errors import RgfError
from pipeline.files import read_data_manifest
from pipeline.io import atomic_dir, check_outputs, write_json
from pipeline.paths import EXPORT

SIGNATURE = "export.json"


def export_sets(
    data: Path, datasets: list[str], out: Path, fmt: Literal["npz", "png"], num_samples: int, seeds: list[int]
) -> dict:
    """Write the images of `datasets` of data/<factor> (`data`) to `out`; returns export.json's content."""
    out = Path(out)
    check_outputs({out: EXPORT}, inputs=[data])
    manifest = read_data_manifest(data)
    missing = [d for d in datasets if d not in manifest.datasets]
    if missing:
        raise RgfError(f"{data}: no dataset {missing}; rebuild it with `dvc repro prepare@{manifest.factor}`")
    record = {
        "factor": manifest.factor,
        "source": manifest.source,
        "image_size": manifest.image_size,
        "data_manifest_sha256": hashlib.sha256((Path(data) / "manifest.json").read_bytes()).hexdigest(),
        "format": fmt,
        "datasets": {},
        "bring_back": (
            f"train one model per set, never on labels or the factor; draw {num_samples} samples from each and "
            "bring each set's samples back with `rgf import-samples SAMPLES --model <name> "
            f"--factor {manifest.factor} --dataset <set> --seed <seed>` (seeds: {seeds})"
        ),
    }
    with atomic_dir(out, EXPORT) as tmp:
        for name in datasets:
            images = np.ascontiguousarray(load_dataset(Path(data) / name).images)
            if fmt == "npz":
                np.savez_compressed(tmp / f"{name}.npz", images=images)
            else:
                _write_pngs(tmp / name, images)
            record["datasets"][name] = {
                "count": len(images),
                "images_sha256": hashlib.sha256(images.tobytes()).hexdigest(),
                "path": f"{name}.npz" if fmt == "npz" else f"{name}/",
            }
        write_json(tmp / SIGNATURE, record)
    return record


def _write_pngs(folder: Path, images: np.ndarray) -> None:
    from PIL import Image

    folder.mkdir()
    width = max(5, len(str(len(images) - 1)))
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:0{width}d}.png")
