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
"""

from __future__ import annotations

import numpy as np

from pipeline import registry
from pipeline.data.datasets import FactorDataset
from pipeline.names import BALANCED


def sources(model: str, dataset: str, mixer_fraction: float) -> dict[str, float]:
    """Which datasets a control trained on `dataset` draws its samples from,
    and the share of samples from each (its registry entry's `draws`)."""
    draws = registry.control(model).draws
    if draws == "given":
        return {dataset: 1.0}
    if draws == "balanced" or dataset == BALANCED:
        return {BALANCED: 1.0}
    return {dataset: mixer_fraction, BALANCED: 1 - mixer_fraction}  # mixed


def draw_indices(
    sizes: dict[str, int], shares: dict[str, float], num_samples: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Sorted indices into each source (sizes: name -> images), round(share x
    M) from each but the last, which takes the rest; uniform, without
    replacement when the source is large enough."""
    out, left = {}, num_samples
    names = list(shares)
    for i, name in enumerate(names):
        m = left if i == len(names) - 1 else int(round(shares[name] * num_samples))
        left -= m
        out[name] = np.sort(rng.choice(sizes[name], size=m, replace=m > sizes[name]))
    return out


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
    idx = draw_indices({name: len(datasets[name].labels) for name in shares}, shares, num_samples, rng)
    return np.concatenate([np.asarray(datasets[name].images[i]) for name, i in idx.items()])
