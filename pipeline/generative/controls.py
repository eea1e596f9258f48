"""Three "models" that need no training and prove the instrument.

- data-memorizer: its samples are images drawn from the very training set it
  was given. Trained on a skewed set it reproduces the skew exactly, so every
  defined class must come out memorized.
- data-learner: its samples are drawn from the balanced set whatever it was
  given, so the factor is generalised by construction and every memorized
  verdict it gets is a false positive.
- data-mixer: a known, partial effect. Trained on a skewed set, a fraction q
  (`evaluation.mixer_fraction`) of its samples come from that set and the
  rest from the balanced one, so in class k P(f=1) moves from 1/2 to
  q + (1 - q)/2 and elsewhere to (1 - q)/2: how often a test calls that
  memorized is its power at that effect size.

All three go through the same sample -> oracle -> statistics -> report path
as the real models; the evaluate stage also redraws their samples many times
(`evaluation.control_resamples`) to measure each test's false- and
true-positive rates with intervals.

Two runs of a control draw from disjoint halves of the balanced set (`pool`):
two models trained apart share no sample, and a learner whose two runs
shared images would show a false-positive rate below theirs.

The degraded memorizer and learner (registry entries with `degraded`) draw
like the plain ones; the evaluate stage then warps, blurs and noises their images
(`degrade`) until the label oracle's Fréchet distance reaches
`evaluation.degraded_fd`, the generative models' quality, so their verdicts
show how far misreads alone move a verdict.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates

from pipeline import registry
from pipeline.data.datasets import FactorDataset
from pipeline.names import BALANCED

HALVES_SEED = 0  # the permutation that splits the balanced set between a control's two runs


def sources(model: str, dataset: str, mixer_fraction: float) -> dict[str, float]:
    """Which datasets a control trained on `dataset` draws its samples from,
    and the share of samples from each (its registry entry's `draws`)."""
    draws = registry.control(model).draws
    if draws == "given":
        return {dataset: 1.0}
    if draws == "balanced" or dataset == BALANCED:
        return {BALANCED: 1.0}
    return {dataset: mixer_fraction, BALANCED: 1 - mixer_fraction}  # mixed


def pool(dataset: str, source: str, size: int) -> np.ndarray:
    """The images of `source` (of `size` images) a control's run on `dataset`
    may draw: all of them, but of the balanced set only one half, split by a
    fixed permutation (the same on every machine and for every seed, blind to
    the set's order): the first half for the run on the balanced set, the
    second for a run on a skewed set, so a control's two runs never share an image."""
    every = np.arange(size)
    if source != BALANCED:
        return every
    order = np.random.default_rng(HALVES_SEED).permutation(size)
    return np.sort(order[: size // 2] if dataset == BALANCED else order[size // 2 :])


def draw_indices(
    sizes: dict[str, int], shares: dict[str, float], num_samples: int, rng: np.random.Generator, dataset: str
) -> dict[str, np.ndarray]:
    """Sorted indices into each source (sizes: name -> images), round(share x
    M) from each but the last, which takes the rest; uniform over the run's
    `pool` of each source, without replacement when the pool is large enough."""
    out, left = {}, num_samples
    names = list(shares)
    for i, name in enumerate(names):
        m = left if i == len(names) - 1 else int(round(shares[name] * num_samples))
        left -= m
        allowed = pool(dataset, name, sizes[name])
        out[name] = np.sort(allowed[rng.choice(len(allowed), size=m, replace=m > len(allowed))])
    return out


ELASTIC_SIGMA = 4.0  # smoothing of the displacement field, in pixels (Simard et al. 2003, section 2)


def _elastic(images: np.ndarray, alpha: float, rng: np.random.Generator, chunk: int = 512) -> np.ndarray:
    """Elastic distortion (Simard et al. 2003): each image resampled (bilinear)
    along a random displacement field, uniform noise in [-1, 1] smoothed by a
    Gaussian of ELASTIC_SIGMA pixels and scaled by `alpha`; float32 out."""
    n, h, w, c = images.shape
    out = np.empty(images.shape, np.float32)
    grid_y, grid_x = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    for start in range(0, n, chunk):
        x = images[start : start + chunk].astype(np.float32)
        m = len(x)
        field = rng.uniform(-1, 1, size=(2, m, h, w)).astype(np.float32)
        dy, dx = (gaussian_filter(f, sigma=(0, ELASTIC_SIGMA, ELASTIC_SIGMA)) * alpha for f in field)
        coords = [
            np.broadcast_to(np.arange(m, dtype=np.float32)[:, None, None, None], (m, h, w, c)),
            np.broadcast_to((grid_y + dy)[..., None], (m, h, w, c)),
            np.broadcast_to((grid_x + dx)[..., None], (m, h, w, c)),
            np.broadcast_to(np.arange(c, dtype=np.float32), (m, h, w, c)),
        ]
        out[start : start + m] = map_coordinates(x, coords, order=1, mode="constant", cval=0.0)
    return out


def degrade(images: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """(N, H, W, 3) uint8 images with the three faults of CPU-scale samples,
    all growing with `strength`: malformed strokes (an elastic distortion,
    alpha = 20 x strength pixels; Simard et al. 2003 used 34 to augment
    MNIST), soft strokes (Gaussian blur, sigma = strength / 2 pixels) and
    speckle (Gaussian noise, sd = 6 x strength grey levels). Strength 0
    returns the images unchanged."""
    if strength < 0:
        raise ValueError(f"strength: must be >= 0, got {strength}")
    if strength == 0:
        return images
    x = _elastic(images, 20.0 * strength, rng)
    x = gaussian_filter(x, sigma=(0, strength / 2, strength / 2, 0))
    x += rng.normal(0.0, 6.0 * strength, size=x.shape).astype(np.float32)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def control_samples(
    model: str,
    dataset: str,
    datasets: dict[str, FactorDataset],
    num_samples: int,
    rng: np.random.Generator,
    mixer_fraction: float,
) -> np.ndarray:
    """(M, H, W, 3) uint8 samples of a control trained on `dataset` (datasets: name -> FactorDataset)."""
    shares = sources(model, dataset, mixer_fraction)
    idx = draw_indices({name: len(datasets[name].labels) for name in shares}, shares, num_samples, rng, dataset)
    return np.concatenate([np.asarray(datasets[name].images[i]) for name, i in idx.items()])
