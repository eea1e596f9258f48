"""Two "models" that need no training and prove the instrument.

- data-memorizer: its samples are images drawn from the very training set it
  was given. Trained on a skewed set it reproduces the skew exactly, so every
  defined class must come out memorized.
- data-learner: its samples are drawn from the balanced set whatever it was
  given, so the factor is generalised by construction and every memorized
  verdict it gets is a false positive.

Both go through the same sample -> oracle -> statistics -> report path as the
real models.
"""

from __future__ import annotations

import numpy as np

from pipeline.data.datasets import FactorDataset


def draw(images: np.ndarray, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """`num_samples` images drawn uniformly; without replacement when possible."""
    replace = num_samples > len(images)
    return np.asarray(images[np.sort(rng.choice(len(images), size=num_samples, replace=replace))])


def control_samples(
    model: str, trained_on: FactorDataset, balanced: FactorDataset, num_samples: int, rng: np.random.Generator
) -> np.ndarray:
    """(M, H, W, 3) uint8 samples of a control model trained on `trained_on`."""
    if model == "data-memorizer":
        return draw(trained_on.images, num_samples, rng)
    if model == "data-learner":
        return draw(balanced.images, num_samples, rng)
    raise ValueError(f"{model!r} is not a control model (data-memorizer, data-learner)")
