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


def _change(factor: str, morph: morphology.Morphology, params: PerturbParams, rng: np.random.Generator) -> np.ndarray:
    """The high-resolution binary digits with the perturbation applied."""
    if factor == "thin":
        return morphology.thin(morph, params.thin.amount)
    if factor == "thick":
        return morphology.thicken(morph, params.thick.amount)
    if factor == "swell":
        return morphology.swell(morph, params.swell.strength, params.swell.radius, rng)
    fr = params.fracture
    return morphology.fracture(morph, fr.num_fractures, fr.thickness, fr.prune, fr.window, rng)


def _check(factor: str) -> None:
    if factor not in MORPHOLOGICAL:
        raise ValueError(f"unknown perturbation {factor!r}: choose one of {', '.join(MORPHOLOGICAL)}")


def perturb(factor: str, images: np.ndarray, params: PerturbParams, rng: np.random.Generator) -> np.ndarray:
    """Apply one morphological perturbation to (N, 28, 28) uint8 grey digits."""
    _check(factor)
    morph = morphology.analyse(images, params.scale, rng)
    return morphology.to_uint8(_change(factor, morph, params, rng), params.scale)


def plain_and_perturbed(
    factor: str, images: np.ndarray, params: PerturbParams, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(plain, perturbed) uint8 digits, both through the same path: upscale,
    binarise, (change,) reduce, truncate. The plain one skips only the change,
    as Morpho-MNIST's own plain digits do."""
    _check(factor)
    morph = morphology.analyse(images, params.scale, rng)
    perturbed = morphology.to_uint8(_change(factor, morph, params, rng), params.scale)
    return morphology.to_uint8(morph.binary, params.scale), perturbed


def render(
    factor: str, images: np.ndarray, params: PerturbParams, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render grey digits without and with the factor.

    Returns (absent, present, green): two (N, 28, 28, 3) uint8 batches and the
    (N,) bool ink colour. For `colour` the factor *is* green ink. For the
    morphological factors every digit gets a random colour (50/50, shared by
    both renderings) so colour is not confounded with the factor, and f=0 is
    the plain rendering (`perturb.baseline: plain`, the default): the digit
    sent through exactly the f=1 path with no change, so the two differ only
    by the factor, not by how they were drawn. `baseline: raw` keeps the
    source digit as it is (rgf before this choice; the two renderings then
    also differ in their grey levels, which an oracle can learn instead of
    the factor).
    """
    n = len(images)
    if factor == "colour":
        return colourise(images, np.zeros(n, bool)), colourise(images, np.ones(n, bool)), np.zeros(n, bool)
    green = rng.random(n) < 0.5
    plain, perturbed = plain_and_perturbed(factor, images, params, rng)
    absent = plain if params.baseline == "plain" else images
    return colourise(absent, green), colourise(perturbed, green), green
