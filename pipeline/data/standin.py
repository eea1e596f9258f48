"""A synthetic stand-in for the CompCars subset (no real CompCars here).

Front views of two "makes" that differ in shape, each black or white, on
varied backgrounds, written as PNG files plus a manifest.csv in the layout
the `manifest` source reads: enough to run the whole study end to end and to
check that the controls come out as they must. Not a benchmark of anything.

- "Volkswagen": a low, wide body with a rounded cabin and round lights;
- "Toyota": a tall, boxy body with a flat cabin and square lights.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pipeline.io import atomic_dir
from pipeline.paths import STANDIN_CARS

MAKES = ("Volkswagen", "Toyota")
COLOURS = {"black": (25, 45), "white": (210, 240)}  # body grey level range
WIDTH, HEIGHT = 96, 72  # not square, like the surveillance crops


def _background(rng: np.random.Generator) -> Image.Image:
    # a vertical blend of two random colours with pixel noise
    top, bottom = rng.integers(60, 200, size=(2, 3))
    t = np.linspace(0, 1, HEIGHT)[:, None, None]
    img = (1 - t) * top + t * bottom + rng.normal(0, 8, size=(HEIGHT, WIDTH, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def draw_car(make: str, colour: str, rng: np.random.Generator) -> Image.Image:
    """One stand-in image of `make` in `colour`, randomly placed and sized."""
    img = _background(rng)
    draw = ImageDraw.Draw(img)
    body = tuple([int(rng.integers(*COLOURS[colour]))] * 3)
    glass, dark = (90, 110, 130), (15, 15, 15)
    s = rng.uniform(0.8, 1.0)
    cx = WIDTH / 2 + rng.uniform(-6, 6)
    base = HEIGHT * 0.85 + rng.uniform(-4, 4)
    w = WIDTH * 0.8 * s
    if make == MAKES[0]:
        h = HEIGHT * 0.35 * s
        draw.rounded_rectangle((cx - w / 2, base - h, cx + w / 2, base), radius=int(h / 2), fill=body)
        draw.ellipse((cx - w / 3, base - 2.1 * h, cx + w / 3, base - 0.6 * h), fill=body)
        draw.ellipse((cx - w / 4, base - 1.9 * h, cx + w / 4, base - 1.1 * h), fill=glass)
        for x in (cx - w / 2.8, cx + w / 2.8):
            draw.ellipse((x - 5 * s, base - h / 2 - 5 * s, x + 5 * s, base - h / 2 + 5 * s), fill=(250, 250, 200))
    elif make == MAKES[1]:
        h = HEIGHT * 0.5 * s
        draw.rectangle((cx - w / 2, base - h, cx + w / 2, base), fill=body)
        draw.rectangle((cx - w / 2.4, base - 1.5 * h, cx + w / 2.4, base - 0.9 * h), fill=body)
        draw.rectangle((cx - w / 2.8, base - 1.4 * h, cx + w / 2.8, base - h), fill=glass)
        for x in (cx - w / 2.8, cx + w / 2.8):
            draw.rectangle((x - 6 * s, base - h / 2 - 4 * s, x + 6 * s, base - h / 2 + 4 * s), fill=(250, 250, 200))
    else:
        raise ValueError(f"unknown stand-in make {make!r}; choose from {MAKES}")
    draw.rectangle((cx - w / 6, base - 0.25 * HEIGHT * s * 0.5, cx + w / 6, base - 2), fill=dark)  # grille
    return img


def write_standin(folder: str | Path, per_cell: int, seed: int = 0) -> Path:
    """`per_cell` images of every make x colour under folder/image/ and
    folder/manifest.csv (path,make,colour); returns the manifest's path."""
    folder = Path(folder)
    with atomic_dir(folder, STANDIN_CARS) as tmp:  # never over a folder it did not write (a real CompCars copy)
        (tmp / "image").mkdir()
        rng = np.random.default_rng(seed)
        rows = []
        for make in MAKES:
            for colour in COLOURS:
                for i in range(per_cell):
                    rel = f"image/{make.lower()}_{colour}_{i:04d}.png"
                    draw_car(make, colour, rng).save(tmp / rel)
                    rows.append((rel, make, colour))
        with (tmp / "manifest.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(("path", "make", "colour"))
            writer.writerows(rows)
    return folder / "manifest.csv"
