"""The generative factors of the study: colour and four Morpho-MNIST
perturbations, each rendered on grey MNIST digits as RGB images.

`render` is the one entry point the dataset builders use: it returns every
digit both without (f=0) and with (f=1) the factor, so balanced and skewed
datasets can be cut from the same images.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pipeline.factors import morphology
from pipeline.names import MORPHOLOGICAL

if TYPE_CHECKING:
    from pipeline.params import PerturbParams


def colourise(images: np.ndarray, green: np.ndarray) -> np.ndarray:
    """(N, 28, 28) grey uint8 -> (N, 28, 28, 3) RGB uint8 with all ink in the
    red channel, or in the green channel where `green` is true."""
    rgb = np.zeros(images.shape + (3,), dtype=np.uint8)
    rgb[..., 0] = np.where(green[:, None, None], 0, images)
    rgb[..., 1] = np.where(green[:, None, None], images, 0)
    return rgb


def perturb(factor: str, images: np.ndarray, params: PerturbParams, rng: np.random.Generator) -> np.ndarray:
    """Apply one morphological perturbation to (N, 28, 28) uint8 grey digits."""
    if factor not in MORPHOLOGICAL:
        raise ValueError(f"unknown perturbation {factor!r}: choose one of {', '.join(MORPHOLOGICAL)}")
    morph = morphology.analyse(images, params.scale, rng)
    if factor == "thin":
        binary = morphology.thin(morph, params.thin.amount)
    elif factor == "thick":
        binary = morphology.thicken(morph, params.thick.amount)
    elif factor == "swell":
        binary = morphology.swell(morph, params.swell.strength, params.swell.radius, rng)
    else:
        fr = params.fracture
        binary = morphology.fracture(morph, fr.num_fractures, fr.thickness, fr.prune, fr.window, rng)
    return morphology.to_uint8(binary, params.scale)


def render(
    factor: str, images: np.ndarray, params: PerturbParams, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render grey digits without and with the factor.

    Returns (absent, present, green): two (N, 28, 28, 3) uint8 batches and the
    (N,) bool ink colour. For `colour` the factor *is* green ink; for the
    morphological factors every digit gets a random colour (50/50, shared by
    both renderings) so colour is not confounded with the factor, and f=0 is
    the unperturbed digit, as in Morpho-MNIST.
    """
    n = len(images)
    if factor == "colour":
        return colourise(images, np.zeros(n, bool)), colourise(images, np.ones(n, bool)), np.zeros(n, bool)
    green = rng.random(n) < 0.5
    perturbed = perturb(factor, images, params, rng)
    return colourise(images, green), colourise(perturbed, green), green
