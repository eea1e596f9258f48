"""The registry of generative model families: model name -> how to build
its method from params.

Adding a family: write `pipeline/generative/<family>.py` with its network, a
`Method` subclass (`base.py`) and `build(params, image_size, device)`, and add
one entry to FAMILIES (README, "Adding a model family").
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pipeline.generative import ddpm, gan, vae
from pipeline.generative.base import Method
from pipeline.params import Params

# model name -> build(params, image_size, device); the names are pipeline.names.GENERATIVE
FAMILIES: dict[str, Callable[[Params, int, torch.device | str], Method]] = {
    "vae": vae.build,
    "gan": gan.build,
    "gan_sd": gan.build_sd,  # the GAN with the spectral-decoupling term (section 6.3)
    "ddpm": ddpm.build,
}


def build_method(name: str, params: Params, image_size: int, device: torch.device | str) -> Method:
    """The method `name` for (3, image_size, image_size) images, its networks
    on `device` and its optimizers built."""
    if name not in FAMILIES:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(FAMILIES)}")
    return FAMILIES[name](params, image_size, device)
