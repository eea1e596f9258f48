"""A manifest for the paper's CompCars subset, built from the official release.

Assumptions about the surveillance part of the release (folder `sv_data`,
Yang et al. 2015), checked as they are used:
- image/<model id>/<name>.jpg holds the images;
- sv_make_model_name.mat has a cell array `sv_make_model_name` whose row i
  (1-based model id i) starts with the make's name;
- color_list.mat has a cell array `color_list` of rows (image path relative
  to image/, colour code) with codes -1 unknown, 0 black, 1 white, 2 red,
  3 yellow, 4 blue, 5 green, 6 purple, 7 brown, 8 champagne, 9 silver;
- train_surveillance.txt / test_surveillance.txt, when present, list image
  paths of the release's split; it becomes the manifest's split column.
Anything else (a missing file, a make not in the release) stops with an error
naming it. The paper keeps two makes with an even split, so by default every
make is subsampled (seeded) to the size of the smallest.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io

from pipeline.errors import DataError

COLOUR_CODES = {
    0: "black",
    1: "white",
    2: "red",
    3: "yellow",
    4: "blue",
    5: "green",
    6: "purple",
    7: "brown",
    8: "champagne",
    9: "silver",
}


def _loadmat(path: Path, variable: str):
    if not path.is_file():
        raise DataError(f"{path}: missing; is this the release's sv_data folder?")
    try:
        return scipy.io.loadmat(path, simplify_cells=True)[variable]
    except KeyError:
        raise DataError(f"{path}: has no variable '{variable}'") from None
    except (ValueError, OSError, TypeError) as err:
        raise DataError(f"{path}: not a readable .mat file ({err})") from None


def _split_of(sv_data: Path) -> dict[str, str]:
    split = {}
    for name in ("train", "test"):
        listing = sv_data / f"{name}_surveillance.txt"
        if listing.is_file():
            split.update({line.strip(): name for line in listing.read_text().splitlines() if line.strip()})
    return split


def compcars_manifest(
    sv_data: str | Path,
    makes: Sequence[str] = ("Volkswagen", "Toyota"),
    colours: Sequence[str] = ("black", "white"),
    even_makes: bool = True,
    seed: int = 0,
) -> pd.DataFrame:
    """Rows (path relative to sv_data, make, colour[, split]) of the
    surveillance images of `makes` whose colour is one of `colours`."""
    sv_data = Path(sv_data)
    names = _loadmat(sv_data / "sv_make_model_name.mat", "sv_make_model_name")
    make_of_model = {i + 1: str(row[0]).strip() for i, row in enumerate(names)}
    known = {m.lower(): m for m in make_of_model.values()}
    if missing := [m for m in makes if m.lower() not in known]:
        raise DataError(f"make(s) {missing} are not in sv_make_model_name.mat; it has {sorted(known.values())}")
    if unknown := [c for c in colours if c not in COLOUR_CODES.values()]:
        raise DataError(f"colour(s) {unknown} unknown; CompCars colours: {list(COLOUR_CODES.values())}")
    wanted_makes = {m.lower(): m for m in makes}
    split = _split_of(sv_data)
    rows = []
    for entry in _loadmat(sv_data / "color_list.mat", "color_list"):
        rel, code = str(entry[0]), int(entry[1])
        colour = COLOUR_CODES.get(code)
        make = make_of_model.get(int(rel.split("/")[0]), "") if rel.split("/")[0].isdigit() else ""
        if colour in colours and make.lower() in wanted_makes:
            rows.append({"path": f"image/{rel}", "make": wanted_makes[make.lower()], "colour": colour})
            if split:
                rows[-1]["split"] = split.get(rel, "train")
    table = pd.DataFrame(rows, columns=["path", "make", "colour"] + (["split"] if split else []))
    if table.empty:
        raise DataError(f"{sv_data}: no image of {list(makes)} in {list(colours)}")
    if even_makes:
        smallest = table["make"].value_counts().min()
        rng = np.random.default_rng(seed)
        keep = [rng.choice(idx, size=smallest, replace=False) for idx in table.groupby("make").indices.values()]
        table = table.loc[np.sort(np.concatenate(keep))].reset_index(drop=True)
    return table
