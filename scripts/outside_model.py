"""A model trained outside rgf, for the README's worked example and the tests:
probabilistic PCA (Tipping & Bishop 1999) on the images of one exported
training set, in NumPy alone, knowing nothing of rgf.

    python scripts/outside_model.py exported/colour samples/ppca --components 24 --samples 1000 --seed 0

For every set of the export (export.json names them) it fits
x = mu + W z + sigma eps, z ~ N(0, I_q), eps ~ N(0, I), by the closed form
(W from the top q principal directions, sigma^2 the mean of the rest of the
spectrum), draws --samples images and writes <out>/<set>.npz (`images`,
(M, S, S, 3) uint8). Like any generative model of the study it sees
images only: no labels, no factor.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def fit_ppca(images: np.ndarray, q: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(mu, W, sigma^2) of probabilistic PCA with q components, images (N, ...) uint8."""
    x = images.reshape(len(images), -1).astype(np.float64) / 255
    mu = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mu, full_matrices=False)
    eig = s**2 / (len(x) - 1)
    sigma2 = float(eig[q:].mean())
    w = vt[:q].T * np.sqrt(np.maximum(eig[:q] - sigma2, 0))
    return mu, w, sigma2


def sample_ppca(mu, w, sigma2, n: int, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    z = rng.standard_normal((n, w.shape[1]))
    x = mu + z @ w.T + np.sqrt(sigma2) * rng.standard_normal((n, len(mu)))
    return (np.clip(x, 0, 1) * 255).round().astype(np.uint8).reshape(n, *shape)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("export", type=Path, help="a folder written by `rgf export-data --format npz`")
    p.add_argument("out", type=Path, help="folder for <set>.npz")
    p.add_argument("--components", type=int, default=24)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    record = json.loads((args.export / "export.json").read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    for offset, name in enumerate(sorted(record["datasets"])):
        with np.load(args.export / record["datasets"][name]["path"]) as archive:
            images = archive["images"]
        mu, w, sigma2 = fit_ppca(images, args.components)
        rng = np.random.default_rng([args.seed, offset])
        samples = sample_ppca(mu, w, sigma2, args.samples, images.shape[1:], rng)
        np.savez_compressed(args.out / f"{name}.npz", images=samples)
        print(f"{name}: fitted on {len(images)} images, {len(samples)} samples -> {args.out / name}.npz")


if __name__ == "__main__":
    main()
